//! The memory of proof `jti`s (RFC 9449 section 11.1): a bounded map on this replica, and
//! optionally a store shared by every replica ([`SharedReplay`], Redis with the `redis`
//! feature), so a proof replayed at another replica is refused too.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Shards of the local map (one lock each).
const SHARDS: usize = 16;

/// One shard: a key (the hash of the proof key's thumbprint and the `jti`) to the time it
/// may be forgotten (Unix seconds).
type Shard = Mutex<HashMap<[u8; 32], u64>>;

/// The `jti`s seen on this replica, each until its proof could no longer be accepted.
pub(super) struct LocalReplay {
    shards: Box<[Shard]>,
    per_shard: usize,
    /// Picks a key's shard with a per-process random key, so that a caller cannot aim its
    /// `jti`s at one shard and fill it.
    spread: RandomState,
}

impl std::fmt::Debug for LocalReplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalReplay")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

impl LocalReplay {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            spread: RandomState::new(),
        }
    }

    /// Remembers `key` until `until` (Unix seconds). `Err` when it was seen and has not
    /// expired, or when the map is full of live entries (refused rather than forgetting
    /// one that could still be replayed).
    pub(super) fn remember(&self, key: [u8; 32], until: u64, now: u64) -> Result<(), &'static str> {
        let shard = &self.shards[(self.spread.hash_one(key) % SHARDS as u64) as usize];
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&key).is_some_and(|&t| t >= now) {
            return Err("proof jti seen before (replay)");
        }
        if map.len() >= self.per_shard {
            map.retain(|_, t| *t >= now);
            if map.len() >= self.per_shard {
                return Err("the replay cache is full");
            }
        }
        map.insert(key, until);
        Ok(())
    }
}

/// What a shared replay store answers: `Ok(true)` when the key is new (now remembered),
/// `Ok(false)` when it was there, `Err` with a log-safe reason when the store cannot say.
pub(crate) type Remembered = Pin<Box<dyn Future<Output = Result<bool, String>> + Send>>;

/// A store of proof `jti`s shared by replicas.
pub(crate) trait ReplayBackend: Send + Sync + 'static {
    /// Remembers `key` for `ttl` unless it is already there (Redis `SET key 1 NX PX`).
    fn remember(&self, key: String, ttl: Duration) -> Remembered;
}

/// A DPoP `jti` store shared by every replica of a service, so that a proof replayed at
/// another replica is refused too. Made by `RedisRevocations::dpop_replay` (feature
/// `redis`) and handed to [`DpopOptions::shared_replay`](super::DpopOptions::shared_replay).
///
/// Fail-closed: when the store does not answer within its timeout, the request is refused
/// with 503 on a guarded route (the proof could be a replay); on a public route the
/// public-auth mode decides, as for any refused token there.
#[derive(Clone)]
pub struct SharedReplay(pub(crate) Arc<dyn ReplayBackend>);

impl std::fmt::Debug for SharedReplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedReplay").finish_non_exhaustive()
    }
}

impl SharedReplay {
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn new(backend: impl ReplayBackend) -> Self {
        Self(Arc::new(backend))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_keys_are_refused_until_they_expire_and_the_map_is_bounded() {
        let r = LocalReplay::new(SHARDS);
        let key = [7u8; 32];
        assert!(r.remember(key, 100, 50).is_ok());
        assert!(r.remember(key, 100, 60).is_err());
        assert!(r.remember(key, 200, 101).is_ok(), "expired: a fresh entry");
        // One entry per shard: by the 17th live key some shard is full, and the key is
        // refused rather than another evicted.
        let full = (1..=SHARDS as u8 + 1)
            .map(|i| r.remember([i + 100; 32], 300, 150))
            .find(Result::is_err);
        assert_eq!(full, Some(Err("the replay cache is full")));
        // Once the entries expire there is room again.
        assert!(r.remember([99; 32], 400, 350).is_ok());
    }
}
