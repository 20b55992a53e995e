//! The verified-token cache: a token seen again is answered with the principal it gave
//! the first time, without decoding or verifying it again.
//!
//! What it guarantees:
//!
//! - Keyed by a seeded fast hash of the whole token; a hit compares the full token bytes,
//!   so no collision can hand one token another's principal.
//! - An entry never outlives the token: every hit checks `exp` and `nbf` against the
//!   authenticator's clock (with its leeway), and entries also expire by themselves.
//! - An entry never outlives the key that verified it: a remote key set that drops or
//!   changes a key starts a new key epoch, and entries of an older epoch are verified
//!   again.
//! - A token is cached on its second sight (a small table of recently seen hashes decides),
//!   so a stream of tokens that never repeat costs one table probe each, not an insertion.
//! - Bounded by entries and by bytes; one cache per authenticator, never shared.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::KeyEpoch;
use crate::principal::Principal;

/// Settings of the verified-token cache ([`AuthenticatorBuilder::token_cache`]
/// (crate::AuthenticatorBuilder::token_cache)).
///
/// On by default: at most 10,000 tokens and 32 MiB (token, principal and bookkeeping
/// counted together), so its memory stays under 32 MiB whatever arrives. Each entry lives
/// until its token's `exp` (plus the leeway), at most one hour.
///
/// ```
/// use portcullis::{Algorithm, Authenticator, Signer, TokenCache};
///
/// let secret = "0123456789abcdef0123456789abcdef";
/// let auth = Authenticator::builder()
///     .hmac_secret(secret)
///     .token_cache(TokenCache::new().max_entries(50_000).max_bytes(64 << 20))
///     .build()?;
/// let token = Signer::hmac(Algorithm::HS256, secret)?
///     .sign(&serde_json::json!({"sub": "ada", "exp": 4_000_000_000u64}))?;
/// assert_eq!(auth.verify(&token)?.subject(), Some("ada"));
/// assert_eq!(auth.verify(&token)?.subject(), Some("ada")); // cached from now on
/// // Off:
/// let _ = Authenticator::builder().hmac_secret(secret).token_cache(TokenCache::off()).build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TokenCache {
    max_entries: u64,
    max_bytes: u64,
    pub(crate) collide_for_tests: bool,
}

/// Default most tokens in the cache.
const DEFAULT_ENTRIES: u64 = 10_000;
/// Default most bytes in the cache.
const DEFAULT_BYTES: u64 = 32 << 20;
/// Longest life of an entry, whatever its `exp` says.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// Bookkeeping counted for each entry beyond its token and principal.
const ENTRY_OVERHEAD: u64 = 256;
/// Slots of the table of recently seen token hashes (second sight admits).
const SEEN_SLOTS: usize = 4096;

impl Default for TokenCache {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_ENTRIES,
            max_bytes: DEFAULT_BYTES,
            collide_for_tests: false,
        }
    }
}

impl TokenCache {
    /// The defaults: on, 10,000 tokens, 32 MiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// No cache: every request verifies its token.
    pub fn off() -> Self {
        Self {
            max_entries: 0,
            ..Self::default()
        }
    }

    /// Most tokens held (`PORTCULLIS_TOKEN_CACHE_ENTRIES`; 0 turns the cache off). Default
    /// 10,000.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// Most bytes held, counting each token, its principal and the cache's bookkeeping
    /// (`PORTCULLIS_TOKEN_CACHE_BYTES`). Default 32 MiB.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self
    }

    /// Every token hashes alike, so each hit must tell tokens apart by their bytes. For
    /// the tests that prove a collision never shares a principal.
    #[doc(hidden)]
    pub fn colliding_hash_for_tests(mut self) -> Self {
        self.collide_for_tests = true;
        self
    }

    pub(crate) fn is_on(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0
    }

    pub(crate) fn build(&self) -> Option<Cache> {
        if !self.is_on() {
            return None;
        }
        // Each entry weighs at least max_bytes / max_entries, so the byte bound also
        // bounds the count.
        let floor = (self.max_bytes / self.max_entries).max(1);
        let cache = moka::sync::Cache::builder()
            .max_capacity(self.max_bytes)
            .weigher(move |_, e: &Arc<Entry>| {
                u32::try_from(e.weight.max(floor)).unwrap_or(u32::MAX)
            })
            .expire_after(Expire)
            .build();
        Some(Cache {
            cache,
            hasher: foldhash::quality::RandomState::default(),
            seen: (0..SEEN_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            collide: self.collide_for_tests,
        })
    }
}

/// One cached token.
pub(crate) struct Entry {
    token: Box<str>,
    principal: Principal,
    /// `exp` and `nbf` of the token, when present.
    exp: Option<u64>,
    nbf: Option<u64>,
    /// The remote set that verified it and its key epoch then (`None`: static keys).
    source: Option<KeyEpoch>,
    weight: u64,
    /// How long the entry may live, from its insertion.
    ttl: Duration,
}

struct Expire;

impl moka::Expiry<u64, Arc<Entry>> for Expire {
    fn expire_after_create(
        &self,
        _key: &u64,
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The cache of one authenticator.
pub(crate) struct Cache {
    cache: moka::sync::Cache<u64, Arc<Entry>>,
    hasher: foldhash::quality::RandomState,
    seen: Box<[AtomicU64]>,
    collide: bool,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

/// What the verifier learned about a token, for the cache.
pub(crate) struct Verified {
    pub(crate) exp: Option<u64>,
    pub(crate) nbf: Option<u64>,
    pub(crate) source: Option<KeyEpoch>,
}

impl Cache {
    pub(crate) fn hash(&self, token: &str) -> u64 {
        if self.collide {
            return 1;
        }
        use std::hash::BuildHasher;
        // Never 0: 0 marks an empty slot of the seen table.
        self.hasher.hash_one(token.as_bytes()) | 1
    }

    /// The principal of `token` if it is cached and still valid at `now` (with `leeway`).
    pub(crate) fn get(&self, hash: u64, token: &str, now: u64, leeway: u64) -> Option<Principal> {
        let entry = self.cache.get(&hash)?;
        if *entry.token != *token {
            return None;
        }
        let expired = entry
            .exp
            .is_some_and(|exp| exp.saturating_add(leeway) < now);
        let early = entry
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(leeway));
        let stale_key = entry.source.as_ref().is_some_and(|s| !s.is_current());
        if expired || early || stale_key {
            self.cache.invalidate(&hash);
            return None;
        }
        Some(entry.principal.clone())
    }

    /// Remembers a verified token, on its second sight.
    pub(crate) fn insert(
        &self,
        hash: u64,
        token: &str,
        principal: &Principal,
        verified: Verified,
        now: u64,
        leeway: u64,
    ) {
        let slot = &self.seen[(hash as usize) % self.seen.len()];
        if slot.swap(hash, Relaxed) != hash {
            return;
        }
        let ttl = match verified.exp {
            Some(exp) => Duration::from_secs(exp.saturating_add(leeway).saturating_sub(now)),
            None => MAX_TTL,
        }
        .min(MAX_TTL);
        let weight = token.len() as u64 + principal.weight() + ENTRY_OVERHEAD;
        self.cache.insert(
            hash,
            Arc::new(Entry {
                token: token.into(),
                principal: principal.clone(),
                exp: verified.exp,
                nbf: verified.nbf,
                source: verified.source,
                weight,
                ttl,
            }),
        );
    }
}
