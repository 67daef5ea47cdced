//! The verifier's side of the revocation self-test (tracked mode only): a background task
//! that reports this verifier in, arms the auth-center's probe session through the same
//! session check as a request, and acknowledges the probe's deletion with the time it took
//! to learn of it.
//!
//! The protocol, all in Redis, on the keys of [`SelftestKeys`] (one hash tag, one slot):
//!
//! 1. every [`REPORT_EVERY`], and whenever the probe pointer changes (its invalidation
//!    reaches [`SelftestSignal::on_invalidated`]: the `REPORT` script read it, so this
//!    connection tracks it), `REPORT` records this instance in the `verifiers` ZSET (Redis
//!    `TIME`) and answers the current probe's sid;
//! 2. on a new probe, the task checks the probe session with [`SessionCheck::check`] (so the
//!    key is cached and tracked exactly as a request's), marks it armed in
//!    [`SelftestSignal`], and runs `REPORT` again naming the sid, which records the
//!    instance in the probe's `armed` HASH;
//! 3. the auth-center deletes the probe (recording Redis `TIME`); the invalidation push
//!    reaches the push handler, which notes the local instant and hands the event to the
//!    task without blocking;
//! 4. the task runs `ACK`: lag = Redis `TIME` now − deleted at − (local time from the push to
//!    the `ACK` being sent). What is left over is the `ACK`'s one-way trip to Redis, so the lag
//!    is an upper bound, too high by at most that trip; the round trip of the latest `REPORT`
//!    is sent along as the error bound. Redis's clock is the only one used: hosts need no
//!    clock sync.
//!
//! Failures never reach verification: the task logs the first failure at `warn` (later ones
//! at `debug`), counts every one (`verifier_selftest_errors_total`) and backs off.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Script;
use tokio::sync::mpsc;

use super::SessionCheck;
use super::reader::TrackingReader;
use crate::error::VerifyError;
use crate::metrics::VerifierMetrics;
use crate::session_keys::SelftestKeys;

/// How often a verifier reports in (and polls for a probe, in case the pointer's
/// invalidation did not come).
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(1);

/// The longest back-off after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// TTL of what a verifier writes: the `verifiers` ZSET, the `armed` and `acks` HASHes.
const WRITTEN_TTL_MS: u64 = 60_000;

/// Longest accepted instance name, bytes.
pub(crate) const MAX_INSTANCE_NAME: usize = 128;

/// KEYS: verifiers, probe[, armed]. ARGV: instance, TTL (ms). Reports the instance in
/// (score: Redis `TIME` in ms); with the third key (the armed HASH of the probe the instance
/// has just checked), records it armed if that probe is still the current one. Answers the
/// current probe's sid, or nil.
const REPORT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local probe = redis.call('GET', KEYS[2])
if KEYS[3] and probe and string.sub(KEYS[3], -(#probe + 7)) == ':' .. probe .. ':armed' then
  redis.call('HSET', KEYS[3], ARGV[1], now)
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return probe
";

/// KEYS: the probe's `deleted` key, its `acks` HASH. ARGV: instance, local delay (µs from
/// the push to this call being sent), error bound (µs), TTL (ms). Records
/// `"<lag µs> <error bound µs>"` under the instance and answers the lag, or -1 when the
/// deletion is unknown (the round is over).
const ACK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local deleted = redis.call('GET', KEYS[1])
if not deleted then
  return -1
end
local lag = math.max(0, now - tonumber(deleted) - tonumber(ARGV[2]))
redis.call('HSET', KEYS[2], ARGV[1], string.format('%d %d', lag, tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return lag
";

/// What the push handler hands the task.
#[derive(Debug)]
enum Event {
    /// The probe pointer changed: a round started or ended.
    ProbeChanged,
    /// The armed probe session was invalidated, at this instant.
    Revoked { key: Box<[u8]>, at: Instant },
}

/// Shared by the tracked cache's push handler and the task: which keys matter, and the way
/// to the task. Only pushes look at it, never a request.
#[derive(Debug)]
pub(crate) struct SelftestSignal {
    /// The probe pointer key.
    probe_key: Box<[u8]>,
    /// The probe session this verifier armed, if any.
    armed: Mutex<Option<Box<[u8]>>>,
    events: mpsc::Sender<Event>,
}

impl SelftestSignal {
    /// Called by the push handler with the keys of an invalidation; never blocks.
    #[allow(clippy::disallowed_methods)] // real time: when this verifier learned of the deletion
    pub(crate) fn on_invalidated(&self, keys: &[redis::Value]) {
        for key in keys {
            let redis::Value::BulkString(key) = key else {
                continue;
            };
            if key.as_slice() == &*self.probe_key {
                let _ = self.events.try_send(Event::ProbeChanged);
            } else if self
                .armed
                .lock()
                .is_ok_and(|armed| armed.as_deref() == Some(key.as_slice()))
            {
                let _ = self.events.try_send(Event::Revoked {
                    key: key.as_slice().into(),
                    at: Instant::now(),
                });
            }
        }
    }

    fn arm(&self, key: Option<&str>) {
        if let Ok(mut armed) = self.armed.lock() {
            *armed = key.map(|k| k.as_bytes().into());
        }
    }
}

/// Aborts the task when the verifier is dropped.
#[derive(Debug)]
pub(crate) struct SelftestTask {
    instance: String,
    task: tokio::task::AbortHandle,
}

impl SelftestTask {
    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }
}

impl Drop for SelftestTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The signal for the push handler (give it to the tracked cache before the task starts)
/// and what [`spawn`] needs to receive its events.
pub(crate) fn signal(keys: &SelftestKeys) -> (Arc<SelftestSignal>, SelftestEvents) {
    let (events, receiver) = mpsc::channel(16);
    let signal = Arc::new(SelftestSignal {
        probe_key: keys.probe().into_bytes().into(),
        armed: Mutex::new(None),
        events,
    });
    (signal, SelftestEvents(receiver))
}

/// The receiving end of a [`SelftestSignal`].
#[derive(Debug)]
pub(crate) struct SelftestEvents(mpsc::Receiver<Event>);

/// Starts the task of `instance` on the reader thread (with the tracked connection it
/// uses); it runs until the returned guard is dropped.
pub(crate) fn spawn(
    reader: &TrackingReader,
    check: SessionCheck,
    keys: SelftestKeys,
    instance: String,
    signal: Arc<SelftestSignal>,
    events: SelftestEvents,
    metrics: Arc<VerifierMetrics>,
) -> SelftestTask {
    let task = Selftest {
        check,
        keys,
        instance: instance.clone(),
        signal,
        metrics,
        report_script: Script::new(REPORT),
        ack_script: Script::new(ACK),
        armed_sid: None,
        round_trip: Duration::ZERO,
        failures: 0,
    };
    let handle = reader.spawn(task.run(events.0));
    SelftestTask {
        instance,
        task: handle.abort_handle(),
    }
}

struct Selftest {
    check: SessionCheck,
    keys: SelftestKeys,
    instance: String,
    signal: Arc<SelftestSignal>,
    metrics: Arc<VerifierMetrics>,
    report_script: Script,
    ack_script: Script,
    /// The probe this verifier armed and has not acknowledged yet.
    armed_sid: Option<String>,
    /// The round trip of the latest `REPORT`: the error bound sent with an acknowledgement.
    round_trip: Duration,
    /// Failures in a row (for the back-off and the one warning).
    failures: u32,
}

/// Why a step of the self-test failed.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis timed out")]
    Timeout,
}

impl Selftest {
    #[allow(clippy::disallowed_methods)] // real time: the back-off after failures
    async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        let mut ticks = tokio::time::interval(REPORT_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut resume_at = tokio::time::Instant::now();
        loop {
            let event = tokio::select! {
                _ = ticks.tick() => None,
                event = events.recv() => match event {
                    Some(event) => Some(event),
                    None => return,
                },
            };
            if tokio::time::Instant::now() < resume_at {
                continue; // backing off after failures
            }
            let outcome = match event {
                None | Some(Event::ProbeChanged) => self.report_and_arm().await,
                Some(Event::Revoked { key, at }) => self.acknowledge(&key, at).await,
            };
            match outcome {
                Ok(()) => self.failures = 0,
                Err(e) => {
                    self.metrics.selftest_error();
                    if self.failures == 0 {
                        tracing::warn!(
                            error = %e,
                            instance = %self.instance,
                            "the revocation self-test failed (verification is not affected; \
                             does the Redis ACL user have the self-test's permissions?)"
                        );
                    } else {
                        tracing::debug!(error = %e, "the revocation self-test failed again");
                    }
                    self.failures = self.failures.saturating_add(1);
                    let backoff = REPORT_EVERY
                        .saturating_mul(1 << self.failures.min(6))
                        .min(MAX_BACKOFF);
                    resume_at = tokio::time::Instant::now() + backoff;
                }
            }
        }
    }

    /// Reports in; on a probe not armed yet, checks its session and reports it armed.
    async fn report_and_arm(&mut self) -> Result<(), StepError> {
        let Some(sid) = self.report(None).await? else {
            return Ok(());
        };
        if self.armed_sid.as_deref() == Some(sid.as_str()) {
            return Ok(());
        }
        let (Some(session), Some(armed)) = (self.keys.probe_session(&sid), self.keys.armed(&sid))
        else {
            return Ok(()); // not a probe this verifier could check
        };
        // Armed before the check: an invalidation right after the check's reply is not lost.
        self.signal.arm(Some(&session));
        match self.check.check(&session, &mut None).await {
            Ok(()) => {
                self.armed_sid = Some(sid);
                self.report(Some(&armed)).await?;
            }
            // The round ended before this verifier saw the probe.
            Err(VerifyError::Revoked) => self.disarm(),
            Err(e) => {
                self.disarm();
                tracing::debug!(error = %e, "the probe session could not be checked");
            }
        }
        Ok(())
    }

    #[allow(clippy::disallowed_methods)] // real time: the round trip, the error bound of a lag
    async fn report(&mut self, armed: Option<&str>) -> Result<Option<String>, StepError> {
        let mut invocation = self.report_script.key(self.keys.verifiers());
        invocation.key(self.keys.probe());
        if let Some(armed) = armed {
            invocation.key(armed);
        }
        invocation.arg(&self.instance).arg(WRITTEN_TTL_MS);
        let mut conn = self.check.conn.clone();
        let sent = tokio::time::Instant::now();
        let probe = tokio::time::timeout(self.check.timeout, invocation.invoke_async(&mut conn))
            .await
            .map_err(|_| StepError::Timeout)??;
        self.round_trip = sent.elapsed();
        Ok(probe)
    }

    /// Acknowledges the armed probe's deletion, learned of at `at`.
    async fn acknowledge(&mut self, key: &[u8], at: Instant) -> Result<(), StepError> {
        let Some(sid) = self.armed_sid.take() else {
            return Ok(());
        };
        let (Some(session), Some(deleted), Some(acks)) = (
            self.keys.probe_session(&sid),
            self.keys.deleted(&sid),
            self.keys.acks(&sid),
        ) else {
            return Ok(());
        };
        if session.as_bytes() != key {
            self.armed_sid = Some(sid);
            return Ok(());
        }
        self.disarm();
        let mut invocation = self.ack_script.key(deleted);
        invocation.key(acks);
        let error_bound = micros(self.round_trip);
        let mut conn = self.check.conn.clone();
        // The local part of the delay ends when the ACK is sent: Redis's TIME covers the rest.
        invocation
            .arg(&self.instance)
            .arg(micros(at.elapsed()))
            .arg(error_bound)
            .arg(WRITTEN_TTL_MS);
        let lag: i64 = tokio::time::timeout(self.check.timeout, invocation.invoke_async(&mut conn))
            .await
            .map_err(|_| StepError::Timeout)??;
        if let Ok(lag) = u64::try_from(lag) {
            self.metrics.revocation_lag(Duration::from_micros(lag));
        }
        Ok(())
    }

    fn disarm(&mut self) {
        self.armed_sid = None;
        self.signal.arm(None);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A readable, unique instance name: `<host>/<pid>/<random>`.
pub(crate) fn default_instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && is_instance_name(h))
        .unwrap_or_else(|| "verifier".into());
    let mut random = [0u8; 3];
    let suffix = match aws_lc_rs::rand::fill(&mut random) {
        Ok(()) => random.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => String::from("0"),
    };
    format!("{host}/{}/{suffix}", std::process::id())
}

/// 1 to [`MAX_INSTANCE_NAME`] bytes of printable ASCII without spaces (it is printed in
/// tables and logs).
pub(crate) fn is_instance_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_INSTANCE_NAME
        && name.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_instance_name_is_a_valid_and_unique_one() {
        let (a, b) = (default_instance_name(), default_instance_name());
        assert!(is_instance_name(&a), "{a}");
        assert_ne!(a, b);
        assert!(a.contains(&format!("/{}/", std::process::id())), "{a}");
    }

    #[test]
    fn instance_names_with_spaces_controls_or_too_long_are_refused() {
        for bad in [
            "",
            "a b",
            "tab\there",
            "é",
            &"x".repeat(MAX_INSTANCE_NAME + 1),
        ] {
            assert!(!is_instance_name(bad), "{bad:?}");
        }
        assert!(is_instance_name("pod-7/42/ab12"));
    }

    #[tokio::test]
    async fn only_the_probe_pointer_and_the_armed_key_reach_the_task() {
        let keys = SelftestKeys::new("t");
        let (signal, mut events) = signal(&keys);
        let bulk = |k: &str| redis::Value::BulkString(k.as_bytes().to_vec());
        let armed = keys.probe_session("p1").unwrap_or_default();
        signal.on_invalidated(&[bulk("t:s:{u}:other"), bulk(&armed)]);
        assert!(events.0.try_recv().is_err(), "nothing is armed yet");
        signal.arm(Some(&armed));
        signal.on_invalidated(&[bulk("t:s:{u}:other"), bulk(&armed), bulk(&keys.probe())]);
        assert!(
            matches!(events.0.try_recv(), Ok(Event::Revoked { key, .. }) if *key == *armed.as_bytes())
        );
        assert!(matches!(events.0.try_recv(), Ok(Event::ProbeChanged)));
        assert!(events.0.try_recv().is_err());
    }
}
