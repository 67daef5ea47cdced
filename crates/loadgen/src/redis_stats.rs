//! Server-side counters, read with `INFO commandstats`.

use anyhow::Context as _;
use redis::aio::MultiplexedConnection;

use crate::client::Target;

/// A plain (non-tracking) connection to a loopback Redis.
pub(crate) async fn connect(url: &str) -> anyhow::Result<MultiplexedConnection> {
    let rest = url
        .strip_prefix("redis://")
        .context("the Redis URL must be redis://127.0.0.1:PORT")?;
    Target::parse(&format!("http://{rest}")).context("the Redis URL must be a loopback address")?;
    redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
        .context("connect to redis")
}

/// How many `EXISTS` commands the server has executed so far.
pub(crate) async fn exists_calls(conn: &mut MultiplexedConnection) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_exists:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}
