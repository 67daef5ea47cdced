//! The causes of session-cache drops, counted with or without the `metrics` feature.

/// Why tracked mode dropped cached sessions (`verifier_cache_drops_total{cause}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropCause {
    /// The tracked connection dropped: invalidations may have been missed.
    Disconnect,
    /// `FLUSHALL` / `FLUSHDB` (an invalidation with no key list).
    Flush,
    /// The heartbeat found Redis stalled.
    Heartbeat,
    /// One entry had outlived the max staleness or its session key's expiry.
    Staleness,
    /// The heartbeat found a tracked connection replaced (its `CLIENT ID` changed) without a
    /// disconnection push: what Redis tracked for the old one is gone.
    Replaced,
}
