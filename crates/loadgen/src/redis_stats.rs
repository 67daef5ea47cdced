//! Server-side counters, read with `INFO commandstats`.

use anyhow::Context as _;
use redis::aio::MultiplexedConnection;

use crate::client::Target;

/// A plain (non-tracking) connection to a loopback Redis.
pub(crate) async fn connect(url: &str) -> anyhow::Result<MultiplexedConnection> {
    check_loopback(url)?;
    redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
        .context("connect to redis")
}

/// Refuses a Redis URL that is not `redis://` on a loopback address.
pub(crate) fn check_loopback(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("redis://")
        .context("the Redis URL must be redis://127.0.0.1:PORT")?;
    Target::parse(&format!("http://{rest}")).context("the Redis URL must be a loopback address")?;
    Ok(())
}

/// How many session checks (`EXISTS`, `PTTL`) the server has executed so far.
pub(crate) async fn session_checks(conn: &mut MultiplexedConnection) -> anyhow::Result<u64> {
    let calls = command_calls(conn).await?;
    Ok(["exists", "pttl"]
        .iter()
        .filter_map(|c| calls.get(*c))
        .sum())
}

/// Calls so far per command (`INFO commandstats`), e.g. `{"evalsha": 812, "info": 3}`;
/// commands run by scripts count too.
pub(crate) async fn command_calls(
    conn: &mut MultiplexedConnection,
) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    Ok(parse_commandstats(&info))
}

/// `cmdstat_<name>:calls=<n>,...` lines; subcommands (`cmdstat_client|setname`) keep their
/// full name.
fn parse_commandstats(info: &str) -> std::collections::BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_are_read_per_command() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=812,usec=9000,usec_per_call=11.08,rejected_calls=0,failed_calls=0\r\ncmdstat_client|setname:calls=2,usec=3\r\ncmdstat_info:calls=3,usec=50\r\n";
        let calls = parse_commandstats(info);
        assert_eq!(calls.len(), 3);
        assert_eq!(calls["evalsha"], 812);
        assert_eq!(calls["client|setname"], 2);
        assert_eq!(calls["info"], 3);
    }
}
