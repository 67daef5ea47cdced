//! The revocation self-test: how long each verifier takes to learn that a session was
//! deleted, measured end to end on a probe session.
//!
//! One round ([`AuthService::revocation_selftest`]):
//!
//! 1. take the round lock (the periodic task of every instance and the CLI never overlap);
//! 2. create a probe session (subject `_selftest`, a real session key) and point the probe at
//!    it; the verifiers that reported in within [`STALE_MS`] are the ones expected;
//! 3. wait (at most `arm_timeout_ms`) until each has *armed* it: checked it through its
//!    ordinary session check, so its tracked cache holds and Redis tracks the key;
//! 4. delete it, recording Redis `TIME`;
//! 5. wait (at most `ack_timeout_ms`) for each armed verifier's acknowledgement: the lag from
//!    the deletion to its invalidation push, Redis's clock at both ends (see the verifier's
//!    `revocation/selftest.rs`);
//! 6. release the lock, and answer each verifier's result.
//!
//! Only Redis's clock measures the lag; the injected clock only dates the report, and the
//! waits are real time (tokio timers).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::crypto::random_id;
use super::error::{AuthError, Chain, StoreError};
use super::metrics::RoundOutcome;
use super::ports::{ProbeAck, SelftestStore};
use super::service::AuthService;

/// A verifier counts as present if it reported in within this many ms (it reports every
/// second).
pub const STALE_MS: u64 = 5_000;

/// How often a round polls Redis while it waits for arms and acknowledgements.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Spare time of the lock and the probe's keys beyond a round's two waits, ms.
const SPARE_MS: u64 = 5_000;

/// One verifier's result in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifierResult {
    /// It learned of the deletion after at most `lag` (too high by at most `error_bound`).
    Acked {
        /// From the deletion to the invalidation reaching the verifier: an upper bound.
        lag: Duration,
        /// How much too high `lag` may be: the verifier's round trip to Redis.
        error_bound: Duration,
    },
    /// It armed the probe but did not acknowledge its deletion in time.
    NoAck,
    /// It reported in but did not check the probe in time.
    NotArmed,
}

/// The result of one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelftestReport {
    /// When the round started (the injected clock), ms.
    pub started_ms: i64,
    /// Every verifier that reported in (or armed), by instance name.
    pub verifiers: BTreeMap<String, VerifierResult>,
}

impl SelftestReport {
    /// How the round ended.
    pub fn outcome(&self) -> RoundOutcome {
        if self.verifiers.is_empty() {
            RoundOutcome::NoVerifiers
        } else if self.missed() > 0 {
            RoundOutcome::MissedAcks
        } else {
            RoundOutcome::Ok
        }
    }

    /// The verifiers that did not acknowledge.
    pub fn missed(&self) -> usize {
        self.verifiers
            .values()
            .filter(|r| !matches!(r, VerifierResult::Acked { .. }))
            .count()
    }
}

/// Why a round could not run.
#[derive(Debug, thiserror::Error)]
pub enum SelftestError {
    /// Sessions live in this process's memory: no verifier shares them.
    #[error("the revocation self-test needs Redis (no verifier shares in-memory sessions)")]
    NoRedis,
    /// Another round (another instance's periodic one, or a CLI's) holds the lock.
    #[error("another self-test round is running; try again in a few seconds")]
    Busy,
    /// Redis failed.
    #[error("the revocation self-test failed: {0}")]
    Store(#[from] StoreError),
    /// No random probe id.
    #[error("the revocation self-test failed: {0}")]
    Internal(#[from] AuthError),
}

impl AuthService {
    /// Runs one round of the revocation self-test (see the module) and answers each
    /// verifier's result. Records nothing; [`scheduled_selftest`](Self::scheduled_selftest)
    /// does.
    pub async fn revocation_selftest(&self) -> Result<SelftestReport, SelftestError> {
        let store = self.selftest.as_ref().ok_or(SelftestError::NoRedis)?;
        let settings = &self.config.selftest;
        let ttl_ms = settings.arm_timeout_ms + settings.ack_timeout_ms + SPARE_MS;
        let token = random_id()?;
        if !store.lock(&token, ttl_ms).await? {
            return Err(SelftestError::Busy);
        }
        let report = self.selftest_round(store, ttl_ms).await;
        if let Err(e) = store.unlock(&token).await {
            tracing::warn!(error = %Chain(&e), "could not release the self-test lock (it expires)");
        }
        report
    }

    /// One round under the lock.
    async fn selftest_round(
        &self,
        store: &Arc<dyn SelftestStore>,
        ttl_ms: u64,
    ) -> Result<SelftestReport, SelftestError> {
        let settings = &self.config.selftest;
        let started_ms = self.clock.now_millis();
        let sid = random_id()?;
        let expected: BTreeSet<String> = store
            .start_probe(&sid, ttl_ms, STALE_MS)
            .await?
            .into_iter()
            .collect();
        if expected.is_empty() {
            return Ok(SelftestReport {
                started_ms,
                verifiers: BTreeMap::new(),
            });
        }
        let armed = wait_until(
            Duration::from_millis(settings.arm_timeout_ms),
            || store.armed(&sid),
            |armed| expected.iter().all(|v| armed.contains(v)),
        )
        .await;
        // The probe is deleted whatever happened, so it never outlives the round by more
        // than its TTL.
        let deleted = store.delete_probe(&sid, ttl_ms).await;
        let armed: BTreeSet<String> = armed?.into_iter().collect();
        deleted?;
        let acks: BTreeMap<String, ProbeAck> = if armed.is_empty() {
            BTreeMap::new()
        } else {
            wait_until(
                Duration::from_millis(settings.ack_timeout_ms),
                || store.acks(&sid),
                |acks| armed.iter().all(|v| acks.iter().any(|(a, _)| a == v)),
            )
            .await?
            .into_iter()
            .collect()
        };
        let verifiers = expected
            .iter()
            .chain(&armed)
            .map(|instance| {
                let result = match (acks.get(instance), armed.contains(instance)) {
                    (Some(ack), _) => VerifierResult::Acked {
                        lag: Duration::from_micros(ack.lag_us),
                        error_bound: Duration::from_micros(ack.error_us),
                    },
                    (None, true) => VerifierResult::NoAck,
                    (None, false) => VerifierResult::NotArmed,
                };
                (instance.clone(), result)
            })
            .collect();
        Ok(SelftestReport {
            started_ms,
            verifiers,
        })
    }

    /// A round of the periodic task: runs it and records its metrics and a log line.
    pub async fn scheduled_selftest(&self) {
        let metrics = &self.metrics.selftest;
        let outcome = match self.revocation_selftest().await {
            Ok(report) => {
                for result in report.verifiers.values() {
                    if let VerifierResult::Acked { lag, .. } = result {
                        metrics.lag(*lag);
                    }
                }
                metrics.verifiers(report.verifiers.len(), report.missed());
                if report.missed() > 0 {
                    tracing::warn!(
                        ?report,
                        "revocation self-test: verifiers did not acknowledge"
                    );
                } else {
                    tracing::debug!(?report, "revocation self-test round");
                }
                report.outcome()
            }
            Err(SelftestError::Busy) => RoundOutcome::Skipped,
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "revocation self-test round failed");
                RoundOutcome::Error
            }
        };
        metrics.round(outcome);
    }

    /// Whether this instance can run the self-test (its sessions are in Redis).
    pub fn has_selftest(&self) -> bool {
        self.selftest.is_some()
    }
}

/// Fetches until `done` or `timeout` (real time), answering the last fetch.
async fn wait_until<T, F, Fut>(
    timeout: Duration,
    mut fetch: F,
    done: impl Fn(&T) -> bool,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    loop {
        let value = fetch().await?;
        if done(&value) || deadline.is_elapsed() {
            return Ok(value);
        }
        tokio::select! {
            () = &mut deadline => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}
