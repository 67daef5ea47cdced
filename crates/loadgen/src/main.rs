//! loadgen: the load generator and revocation-latency probe behind `scripts/bench.sh`
//! (DESIGN.md §6). Loopback targets only.
//!
//! * `loadgen http --url http://127.0.0.1:8081/me --token T` — closed-loop HTTP/1.1
//!   keep-alive load over N connections for a duration or a request count; prints one JSON
//!   object: `{requests, seconds, rps, p50_us, p99_us, status, ...}`.
//! * `loadgen revocation --url .../me --redis-url redis://... --auth-url ...` — K times:
//!   a session (a fresh login, or one session deleted and restored), `/me` warmed up (200),
//!   then `DEL` of the session key and `/me` polled until the first 401; prints the
//!   DEL→first-401 latency distribution as JSON.
//! * `loadgen token` — registers (optionally) and logs in; prints shell assignments.
//! * `loadgen table FILE...` — the JSON results as tables (the first `http` result is the
//!   baseline for the ratios; `login`, `refresh` and `paced` results in a table of their own).
//! * `loadgen free-port` — a free TCP port on 127.0.0.1.
//! * `loadgen login-flood --binary target/release/auth-center` — starts that auth-center on a
//!   private SQLite file, floods it with concurrent logins for a bounded time and prints its
//!   resident memory before, during and after, as JSON.
//! * `loadgen login --auth-url http://127.0.0.1:8080 --username U -c 4 -d 10` — C clients
//!   log in back to back on keep-alive connections (password from `LOADGEN_PASSWORD`);
//!   prints logins/s (`ok_per_s`), answers by status and error code (429 and 503 apart),
//!   the latency percentiles and `percentile_spectrum`, server CPU per login
//!   (`--server-pid`). The server's `AUTH_LIMITS__LOGIN_IP_MAX` must be raised.
//! * `loadgen refresh --auth-url ... --username U --sessions 400 --rate 2000 -d 10` — opens
//!   N sessions, then each rotates its own refresh token: back to back with `--rate 0`, else
//!   R refreshes/s in all, evenly spread (open loop, latency from the intended send time, up
//!   to N in flight). Prints refreshes/s, in-flight max, statuses, the latency spectrum,
//!   server CPU per refresh and, with `--redis-url`, Redis commands per refresh. A client
//!   refused with 401 logs in again (counted). Needs `AUTH_SESSIONS__MAX_PER_USER` ≥ N and
//!   `AUTH_LIMITS__REFRESH_IP_MAX=0` (or high) on the server. With `--watch-cpus 0,1`
//!   (also on `login` and `paced`) a real-time thread pinned to each CPU notes when the
//!   machine stops running it, and the result's `machine_stalls` says how many slow 100 ms
//!   slices came with such a stall, and the p99 of the answers in the slices without one;
//!   it also times a fixed unit of work every 10 ms on each CPU, and says which slices ran
//!   1.2 times slower than usual (`pace_per_slice`).
//!   With `--server-metrics http://127.0.0.1:PORT/metrics` (also on `login` and `paced`),
//!   `server_histograms` gives the server's own share of requests, and of its timed calls,
//!   over each bucket bound in the window.
//! * `loadgen paced --url http://127.0.0.1:8081/me --token T --rate 2000 -c 8 -d 10` — GETs
//!   at a fixed total rate (open loop): the verify path's latency spectrum while another
//!   command loads the machine.
//! * `taskset -c 0 nice -n -20 loadgen hiccups --seconds 10` — spins on one thread and counts
//!   the gaps between two clock reads: how long the core stops running a thread that never
//!   blocks (interrupts, other threads, a hypervisor not running the virtual CPU).

#![allow(clippy::disallowed_methods)] // a load generator measures real time

mod auth;
mod authload;
mod client;
mod drive;
mod flood;
mod hiccups;
mod load;
mod pace;
mod paced;
mod post;
mod redis_stats;
mod revocation;
mod server_side;
mod stalls;
mod table;
mod threads;
mod wire;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// HTTP load generator and revocation-latency probe for the auth service benchmarks.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Closed-loop HTTP/1.1 keep-alive load against one URL.
    Http(load::HttpArgs),
    /// DEL of the session key in Redis → first 401 at the service, K times.
    Revocation(revocation::RevocationArgs),
    /// Register (optionally) and log in; prints shell assignments
    /// (ACCESS_TOKEN, SESSION_ID, SUB, SESSION_KEY).
    Token(auth::TokenArgs),
    /// Print JSON results of `http` / `revocation` / `login` / `refresh` / `paced` runs as
    /// tables.
    Table {
        /// Result files (one JSON object each); the first `http` one is the baseline.
        files: Vec<PathBuf>,
    },
    /// Print a free TCP port on 127.0.0.1.
    FreePort,
    /// Start an auth-center binary, flood it with concurrent logins, report its memory.
    LoginFlood(flood::FloodArgs),
    /// Closed-loop logins from C clients: logins/s, statuses, latency spectrum.
    Login(authload::LoginArgs),
    /// N sessions rotating their refresh tokens, closed loop or at a fixed total rate.
    Refresh(authload::RefreshArgs),
    /// Open-loop GETs at a fixed total rate: latency from the intended send time.
    Paced(paced::PacedArgs),
    /// Spin on one thread and count the gaps between two clock reads: time the thread did
    /// not run although it never blocked (with `--sleep-us N`: sleep N µs at a time and count
    /// how late each wake-up is).
    Hiccups(hiccups::HiccupArgs),
    /// Split each refresh of a loopback capture (`tcpdump -i lo -w`) into the auth-center's
    /// time before its Redis call, Redis's, and the auth-center's after it.
    Wire(wire::WireArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Http(args) => {
            let rt = runtime(args.threads)?;
            let result = rt.block_on(load::run(args))?;
            println!("{}", serde_json::to_string(&result)?);
        }
        Command::Revocation(args) => {
            let rt = runtime(1)?;
            let result = rt.block_on(revocation::run(args))?;
            println!("{}", serde_json::to_string(&result)?);
        }
        Command::Token(args) => {
            let rt = runtime(1)?;
            print!("{}", rt.block_on(auth::token_command(args))?);
        }
        Command::Table { files } => print!("{}", table::render(&files)?),
        Command::LoginFlood(args) => {
            let rt = runtime(2)?;
            let result = rt.block_on(flood::run(args))?;
            println!("{}", serde_json::to_string_pretty(&result)?);
        }
        Command::Login(args) => {
            let rt = runtime(1)?;
            println!(
                "{}",
                serde_json::to_string(&rt.block_on(authload::login(args))?)?
            );
        }
        Command::Refresh(args) => {
            let rt = runtime(args.threads)?;
            println!(
                "{}",
                serde_json::to_string(&rt.block_on(authload::refresh(args))?)?
            );
        }
        Command::Paced(args) => {
            let rt = runtime(1)?;
            println!(
                "{}",
                serde_json::to_string(&rt.block_on(paced::run(args))?)?
            );
        }
        Command::Hiccups(args) => println!("{}", serde_json::to_string(&hiccups::run(args))?),
        Command::Wire(args) => println!("{}", serde_json::to_string(&wire::run(args)?)?),
        Command::FreePort => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            println!("{}", listener.local_addr()?.port());
        }
    }
    Ok(())
}

/// A current-thread runtime for one thread (the benchmark pins the load generator to one
/// core), a multi-thread one otherwise.
fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    Ok(rt)
}
