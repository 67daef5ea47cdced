//! `loadgen paced`: GETs at a fixed total rate over C keep-alive connections (open loop,
//! latency from the intended send time): the verify path's latency while something else
//! (`loadgen login`, `loadgen refresh`) loads the machine.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::client::{RawConn, Target};
use crate::drive::{self, Client, Measured, RunArgs};

/// Arguments of `loadgen paced`.
#[derive(Debug, clap::Args)]
pub(crate) struct PacedArgs {
    /// The URL to GET (loopback only), e.g. `http://127.0.0.1:8081/me`.
    #[arg(long)]
    pub url: String,
    /// Bearer token sent with every request.
    #[arg(long, env = "LOADGEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Total requests per second over all connections.
    #[arg(long)]
    pub rate: f64,
    /// Keep-alive connections; each sends every `connections / rate` seconds.
    #[arg(long, short = 'c', default_value_t = 8)]
    pub connections: usize,
    #[command(flatten)]
    pub run: RunArgs,
    /// Client timeout per request, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
}

/// The result of a `paced` run.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PacedResult {
    pub kind: String,
    pub label: String,
    pub url: String,
    pub connections: usize,
    /// Requests per second asked for.
    pub rate: f64,
    /// `ok` are the 200 answers, the latency theirs, from the intended send time.
    #[serde(flatten)]
    pub measured: Measured,
}

/// One connection; after a timeout it starts over on a new one.
struct PacedClient {
    target: Target,
    token: Option<String>,
    conn: RawConn,
    timeout: Duration,
    /// Connections opened by the connections given up after a timeout.
    earlier_connects: u64,
}

impl Client for PacedClient {
    async fn send(&mut self) -> Option<String> {
        match tokio::time::timeout(self.timeout, self.conn.get()).await {
            Ok(Ok(status)) => Some(status.as_u16().to_string()),
            Ok(Err(_)) => None,
            Err(_) => {
                // The answer may still arrive: never read it as the next one's.
                let fresh = RawConn::new(&self.target, self.token.as_deref()).ok()?;
                self.earlier_connects += std::mem::replace(&mut self.conn, fresh).connects;
                None
            }
        }
    }

    fn connects(&self) -> u64 {
        self.earlier_connects + self.conn.connects
    }
}

/// Runs `loadgen paced`.
pub(crate) async fn run(args: PacedArgs) -> anyhow::Result<PacedResult> {
    if args.connections == 0 || args.connections > 4096 {
        bail!("--connections must be 1..=4096");
    }
    if !(args.rate > 0.0 && args.rate <= 1_000_000.0) {
        bail!("--rate must be in (0, 1000000] requests per second");
    }
    if !(args.timeout > 0.0 && args.timeout <= 600.0) {
        bail!("--timeout must be in (0, 600] seconds");
    }
    let target = Target::parse(&args.url)?;
    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let mut client = PacedClient {
            conn: RawConn::new(&target, args.token.as_deref())?,
            target: target.clone(),
            token: args.token.clone(),
            timeout: Duration::from_secs_f64(args.timeout),
            earlier_connects: 0,
        };
        // Open every connection (and fail fast) before the clock starts.
        if client.send().await.is_none() {
            bail!("{}: no answer", args.url);
        }
        clients.push(client);
    }
    let outcome = drive::run(clients, args.run.plan(args.rate)).await?;
    Ok(PacedResult {
        kind: "paced".into(),
        label: args.run.label.clone(),
        url: args.url,
        connections: args.connections,
        rate: args.rate,
        measured: Measured::of(&outcome),
    })
}
