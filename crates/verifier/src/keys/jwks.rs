//! A JWKS key source: fetched over HTTP(S), cached, refetched periodically and on an
//! unknown `kid` (at most once per cooldown, single-flight), last good keys kept when a
//! fetch fails. Redirects are not followed.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;

use super::KeySet;

/// Fetches and caches the keys published at a JWKS URL.
#[derive(Debug)]
pub(crate) struct JwksSource {
    url: String,
    client: reqwest::Client,
    cooldown: Duration,
    keys: RwLock<KeySet>,
    /// Single flight: held while fetching; remembers when the last fetch started.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl JwksSource {
    pub(crate) fn new(
        url: String,
        timeout: Duration,
        cooldown: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            url,
            client,
            cooldown,
            keys: RwLock::new(KeySet::default()),
            last_fetch: tokio::sync::Mutex::new(None),
        })
    }

    /// The keys currently trusted.
    pub(crate) fn keys(&self) -> KeySet {
        self.keys.read().map(|k| k.clone()).unwrap_or_default()
    }

    /// Refetches unless a fetch started less than a cooldown ago (then waits for it).
    /// Returns whether the set of key ids changed.
    #[allow(clippy::disallowed_methods)] // real time: the refetch cooldown protects the issuer, not domain time
    pub(crate) async fn refresh(&self) -> bool {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.cooldown) {
            return false;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(fresh) if fresh.is_empty() => {
                tracing::warn!(url = %self.url, "JWKS has no usable key; keeping the last good keys");
                false
            }
            Ok(fresh) => {
                let Ok(mut keys) = self.keys.write() else {
                    return false;
                };
                let changed = keys.kids() != fresh.kids();
                if changed {
                    tracing::info!(url = %self.url, kids = ?fresh.kids(), "JWKS keys changed");
                }
                *keys = fresh;
                changed
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed; keeping the last good keys");
                false
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        if bytes.len() > 256 * 1024 {
            return Err("JWKS document too large".into());
        }
        let set: JwkSet = serde_json::from_slice(&bytes).map_err(|e| format!("not a JWKS: {e}"))?;
        Ok(KeySet::from_jwks(&set))
    }

    /// Refreshes every `interval` until the source is dropped.
    pub(crate) fn spawn_periodic_refresh(
        self: &Arc<Self>,
        interval: Duration,
        on_change: impl Fn() + Send + 'static,
    ) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(source) = weak.upgrade() else { return };
                if source.refresh().await {
                    on_change();
                }
            }
        });
    }
}
