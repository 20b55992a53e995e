//! The verified-token cache: a token seen again is answered with the principal it gave
//! the first time, without decoding or verifying it again.
//!
//! What it guarantees:
//!
//! - Keyed by a seeded fast hash of the token's length and last 16 bytes (a verified
//!   token's signature); a hit compares the full token bytes, so no collision can hand one
//!   token another's principal.
//! - An entry never outlives the token: every hit checks `exp` and `nbf` against the
//!   authenticator's clock (with its leeway) and the entry's own end (its `exp`, at most an
//!   hour after it was cached); a hit on an entry past either is dropped and verified again.
//! - An entry never outlives the key that verified it: a remote key set that drops or
//!   changes a key starts a new key epoch, and entries of an older epoch are verified
//!   again.
//! - A token is cached on its second sight (a small filter of recently seen tokens, in two
//!   generations so that it never fills up, decides), so a stream of tokens that never
//!   repeat costs a few bit probes each, not a cache look-up and an insertion.
//! - Bounded by entries and by bytes; one cache per authenticator, never shared.
//! - With a revocation store, every hit is checked against it: an entry keeps the token's
//!   `iss`, `jti`, `iat` and the SHA-256 of its signing input, so the check on a hit is a
//!   look-up, not a new parse.
//! - Asked first, with the credential as it came: a cached token is byte for byte one that
//!   passed the format and JWS checks, so those run only on a miss.
//!
//! The shared part is a quick_cache (sharded, each shard under its own lock). When full,
//! it evicts entries that were not hit since they came in before those that were, and
//! remembers the keys of evicted tokens, so that one coming back is kept with the ones in
//! use. Entries past their end stay until a look-up finds them or eviction takes them;
//! they count against the bounds and are never served.
//!
//! What a hit writes: each thread keeps a few slots in front of the shared cache
//! (`front.rs`), each with its own copy of the principal. A hit on a slot reads the slot,
//! the entry's `exp`, `nbf` and key epoch and the revocation store (loads), and clones this
//! thread's principal copy (a count in memory no other thread uses while requests stay on
//! their thread): no lock word, no shared reference count, no shared counter. Only a slot
//! miss goes to the shared cache (quick_cache: a hit there takes a shard's read lock and
//! marks the entry referenced, both writes to memory other threads use), and a token that
//! hits there twice in a row takes the slot. Metrics, when a recorder is installed, add
//! their own counter increments.
//!
//! Through the layer, the policy reads the principal's remembered role bits (set once per
//! principal copy) and the principal goes into the request's own extensions: no shared
//! write either. The layer's own state is held by a handle (`layer/handle.rs`) that counts
//! axum's per-request clone of a layered service and the response future on this thread's
//! replica of the state (a count in memory no other thread uses while requests stay on
//! their thread): a request on a thread that already served the layer reads the shared
//! reference count but does not write it. What is left
//! shared belongs to the server: `axum::serve` clones axum's own router state (an `Arc`)
//! for every request, with or without this crate.
//!
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

pub(crate) use super::entry::{Entry, Revocable};
use super::{KeyEpoch, front};
use crate::error::AuthError;
use crate::principal::Principal;

/// Settings of the verified-token cache
/// ([`AuthenticatorBuilder::token_cache`](crate::AuthenticatorBuilder::token_cache)).
///
/// On by default: at most 20,000 tokens and 32 MiB (token, principal and bookkeeping
/// counted together), so its memory stays under 32 MiB whatever arrives. Each entry lives
/// until its token's `exp` (plus the leeway), at most one hour.
///
/// Each thread that verifies tokens also keeps up to 64 recent hits in front of the shared
/// cache, with its own copy of each principal, so that a token sent at a high rate from
/// many threads is answered without writing memory the threads share. Those slots hold
/// their entries (a few KiB per thread) beyond the bounds above, and every hit on them is
/// checked like a hit on the shared cache: `exp`, `nbf`, the key epoch and revocation.
///
/// What a hit on those slots writes, through [`AuthLayer`](crate::AuthLayer) too: only
/// memory of its own thread (the slot's principal copy, the request's extensions, the
/// count of the layer's per-thread replica); it reads the shared entry, the key epoch, the
/// layer's reference count and the revocation store (a revocation list is read through
/// an `arc-swap` snapshot, whose bookkeeping is a slot of the reading thread), and
/// performs no atomic read-modify-write on memory other threads use: no shared reference
/// count, lock word or counter. A metrics recorder, when installed, counts each lookup and decision with
/// its own counters.
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
const DEFAULT_ENTRIES: u64 = 20_000;
/// Default most bytes in the cache.
const DEFAULT_BYTES: u64 = 32 << 20;
/// Longest life of an entry, whatever its `exp` says.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// Most entries the shared cache is told to expect (it sizes its shards and its
/// remembered keys by this; its table grows as entries come).
const MAX_ESTIMATED_ENTRIES: usize = 1 << 20;
/// The shared cache's share of its byte bound for entries hit since they came in; the
/// rest holds newly admitted entries until they are hit, and older ones that were not.
/// quick_cache's default (97 %) suits a cache that takes in every key; this one takes a
/// token only on its second sight, so a new entry is already wanted, and needs room to
/// be hit again before newer ones push it out: with half, a set of tokens in turn of up
/// to three quarters of the capacity comes in even when the cache is full of entries
/// nobody asks for (tests/cache.rs).
const HOT_SHARE: f64 = 0.5;
/// Evicted tokens whose keys the shared cache remembers, as a share of the entries it
/// expects: such a key coming back enters among the entries that were hit, so a
/// working set that was pushed out once gets in for good, and entries never used
/// again give way to it.
const GHOST_SHARE: f64 = 1.0;
/// Bytes one remembered key of an evicted token takes (its table slot and list links),
/// taken off the byte bound: at most a quarter of it, as an entry weighs at least
/// [`ENTRY_OVERHEAD`] (256).
const GHOST_BYTES: u64 = 64;
/// Fewest entries a shard of the shared cache is sized for: each shard is bounded on its
/// own, so a small shard fills before the cache does.
const MIN_SHARD_ENTRIES: usize = 256;
/// Bookkeeping counted for each entry beyond its token and principal.
const ENTRY_OVERHEAD: u64 = 256;
/// Bits of the filter of recently seen tokens (second sight admits) per token a
/// generation holds: two probes in sixteen bits each keep false positives near 1.4 % a
/// generation (with eight, near 5 %, and each false positive admits an unseen token at
/// the cost of a cache insertion: 16 % on an HS256 miss in the criterion bench).
const SEEN_BITS_PER_MARK: usize = 16;
/// Fewest and most tokens a generation of the filter holds.
const SEEN_MARKS: (usize, usize) = (1 << 10, 1 << 20);

/// Shards of the shared cache (each with a lock of its own): four per core, but none
/// sized for fewer than [`MIN_SHARD_ENTRIES`] entries; a power of two.
fn shards(estimated: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = (estimated / MIN_SHARD_ENTRIES).clamp(1, cores * 4);
    1 << n.ilog2()
}

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
    /// The defaults: on, 20,000 tokens, 32 MiB.
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
    /// 20,000. The filter that admits a token on its second sight remembers at least as
    /// many tokens (the next power of two, 1,024 to 1,048,576), so a working set that fits
    /// the cache gets into it however its tokens take turns.
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
        // No entry weighs less than its bookkeeping, so the bytes may allow fewer entries
        // than `max_entries`: expect what both allow.
        let estimated = usize::try_from(self.max_entries.min(self.max_bytes / ENTRY_OVERHEAD))
            .unwrap_or(usize::MAX)
            .clamp(1, MAX_ESTIMATED_ENTRIES);
        // The keys it remembers of evicted tokens are outside its weights: their bytes
        // come off the byte bound, so the whole stays within it.
        let ghosts = (estimated as f64 * GHOST_SHARE) as u64;
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(estimated)
            .weight_capacity(
                self.max_bytes
                    .saturating_sub(ghosts * GHOST_BYTES)
                    .max(floor),
            )
            .ghost_allocation(GHOST_SHARE)
            .hot_allocation(HOT_SHARE)
            .shards(shards(estimated))
            // Fails only without a capacity, and both are set above.
            .build()
            .ok()?;
        let cache = quick_cache::sync::Cache::with_options(
            options,
            Weigh { floor },
            KeyIsHash,
            Default::default(),
        );
        let reset = usize::try_from(self.max_entries)
            .unwrap_or(usize::MAX)
            .clamp(SEEN_MARKS.0, SEEN_MARKS.1)
            .next_power_of_two();
        let bits = reset * SEEN_BITS_PER_MARK;
        Some(Cache {
            id: front::new_id(),
            cache,
            hasher: foldhash::quality::RandomState::default(),
            seen: (0..2 * bits / 64).map(|_| AtomicU64::new(0)).collect(),
            bits,
            reset,
            marks: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            collide: self.collide_for_tests,
        })
    }
}

/// The weight of an entry: its bytes, at least the floor that makes the byte bound also
/// bound the count.
#[derive(Clone, Copy)]
struct Weigh {
    floor: u64,
}

impl quick_cache::Weighter<u64, Arc<Entry>> for Weigh {
    fn weight(&self, _: &u64, entry: &Arc<Entry>) -> u64 {
        entry.weight.max(self.floor)
    }
}

/// The shared cache's hasher for its keys: a key is already a seeded hash of its token
/// ([`Cache::hash`]), so it is its own hash and is not hashed a second time.
#[derive(Clone, Copy, Default)]
struct KeyIsHash;

impl std::hash::BuildHasher for KeyIsHash {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// See [`KeyIsHash`].
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    /// Not used by `u64` keys; mixes the bytes in anyway.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// What a look-up found.
pub(crate) enum Found {
    /// A cached token, checked: its principal.
    Hit(Principal),
    /// A cached token the caller's check refused (a revoked one).
    Refused(AuthError),
    /// Nothing usable: verify the token.
    Miss,
}

/// The cache of one authenticator.
pub(crate) struct Cache {
    /// Tells this cache apart in the threads' front slots.
    id: usize,
    cache: quick_cache::sync::Cache<u64, Arc<Entry>, Weigh, KeyIsHash>,
    hasher: foldhash::quality::RandomState,
    /// A two-probe bloom filter of recently seen tokens, in two generations (current and
    /// previous).
    seen: Box<[AtomicU64]>,
    /// Bits of one generation (a multiple of 64).
    bits: usize,
    /// Tokens marked in a generation before the other is cleared and takes over, so the
    /// filter never fills up and admits all: a token stays known for at least this many
    /// others after it was last seen.
    reset: usize,
    marks: AtomicUsize,
    generation: AtomicUsize,
    collide: bool,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.cache.len())
            .finish_non_exhaustive()
    }
}

/// What the verifier learned about a token, for the cache.
pub(crate) struct Verified {
    pub(crate) exp: Option<u64>,
    pub(crate) nbf: Option<u64>,
    pub(crate) source: Option<KeyEpoch>,
    pub(crate) revocable: Option<Revocable>,
}

/// How long an entry may live from `now`: until `until` (seconds since the epoch), at most
/// `cap`; `cap` when there is no end.
fn time_left(until: Option<u64>, now: u64, cap: Duration) -> Duration {
    until.map_or(cap, |u| Duration::from_secs(u.saturating_sub(now)).min(cap))
}

impl Cache {
    /// The token's key: a seeded hash of its length and last 16 bytes (of a verified
    /// token, its signature's), read as two words. Every hit still compares the whole
    /// token, so tokens that share a tail only share a key, never a principal.
    #[inline]
    pub(crate) fn hash(&self, token: &[u8]) -> u64 {
        if self.collide {
            return 1;
        }
        use std::hash::BuildHasher;
        match token.last_chunk::<16>() {
            Some(tail) => {
                let (a, b) = tail.split_at(8);
                let word = |w: &[u8]| u64::from_le_bytes(w.try_into().unwrap_or_default());
                self.hasher.hash_one((token.len() as u64, word(a), word(b)))
            }
            None => self.hasher.hash_one(token),
        }
    }

    /// The filter's two bits of a token: (word, mask) in the generation `g`.
    fn bits(&self, g: usize, hash: u64) -> [(&AtomicU64, u64); 2] {
        let words = self.bits / 64;
        let bit = |b: u64| {
            let b = (b as usize) % self.bits;
            (&self.seen[g * words + b / 64], 1u64 << (b % 64))
        };
        [bit(hash), bit(hash >> 32)]
    }

    /// Whether the filter holds the token, in either generation.
    fn in_filter(&self, hash: u64) -> bool {
        (0..2).any(|g| {
            self.bits(g, hash)
                .iter()
                .all(|(w, m)| w.load(Relaxed) & m != 0)
        })
    }

    /// Marks a token in the current generation. When that generation is full, it becomes
    /// the previous one and the other is cleared: a token stays known for at least one
    /// generation after it was last seen.
    fn mark(&self, hash: u64) {
        let g = self.generation.load(Relaxed) & 1;
        let mut set = false;
        for (w, m) in self.bits(g, hash) {
            if w.load(Relaxed) & m == 0 {
                w.fetch_or(m, Relaxed);
                set = true;
            }
        }
        if set && self.marks.fetch_add(1, Relaxed) >= self.reset {
            self.marks.store(0, Relaxed);
            let next = (self.generation.fetch_add(1, Relaxed) + 1) & 1;
            let words = self.bits / 64;
            for w in &self.seen[next * words..(next + 1) * words] {
                w.store(0, Relaxed);
            }
        }
    }

    /// Looks `token` up: first in this thread's front slots, then in the shared cache.
    /// A hit must be fresh at `now` (with `leeway`) and pass `check` (the revocation
    /// check: `Ok(false)` when the entry cannot be checked and the token must be verified
    /// again). Only a token in the filter can be in the shared cache, so an unseen one
    /// costs no shared look-up.
    pub(crate) fn lookup(
        &self,
        hash: u64,
        token: &[u8],
        now: u64,
        leeway: u64,
        check: impl Fn(&Entry) -> Result<bool, AuthError>,
    ) -> Found {
        let front = front::get(self.id, hash, token, |entry| {
            if !entry.fresh(now, leeway) {
                return Err(None);
            }
            match check(entry) {
                Ok(true) => Ok(()),
                Ok(false) => Err(None),
                Err(e) => Err(Some(e)),
            }
        });
        match front {
            Some(Ok(principal)) => return Found::Hit(principal),
            Some(Err(Some(e))) => return Found::Refused(e),
            // Stale or uncheckable here: the shared cache decides.
            Some(Err(None)) | None => {}
        }
        let Some(entry) = self.get(hash, token, now, leeway) else {
            return Found::Miss;
        };
        match check(&entry) {
            Ok(true) => {
                front::note_hit(self.id, hash, &entry);
                Found::Hit(entry.principal.clone())
            }
            Ok(false) => Found::Miss,
            Err(e) => Found::Refused(e),
        }
    }

    /// The shared entry of `token` if it is cached and still valid at `now` (with
    /// `leeway`).
    fn get(&self, hash: u64, token: &[u8], now: u64, leeway: u64) -> Option<Arc<Entry>> {
        if !self.in_filter(hash) {
            return None;
        }
        let entry = self.cache.get(&hash)?;
        if !entry.is_token(token) {
            return None;
        }
        if !entry.fresh(now, leeway) {
            self.cache.remove(&hash);
            return None;
        }
        self.mark(hash);
        Some(entry)
    }

    /// Forgets a token (a revoked one).
    pub(crate) fn invalidate(&self, hash: u64) {
        self.cache.remove(&hash);
    }

    /// Whether [`insert`](Self::insert) would remember this token now (its second sight).
    pub(crate) fn admits(&self, hash: u64) -> bool {
        self.in_filter(hash)
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
        if !self.in_filter(hash) {
            self.mark(hash);
            return;
        }
        self.mark(hash);
        let ttl = time_left(verified.exp.map(|e| e.saturating_add(leeway)), now, MAX_TTL);
        self.put(hash, token, principal, verified, now, ttl);
    }

    /// Remembers a token at once (not on its second sight) until its `exp` (without
    /// leeway), at most `bound`: an introspected token, whose check is a request to the
    /// authorization server, and whose answer may be cached only so long.
    #[cfg(feature = "introspection")]
    pub(crate) fn insert_now(
        &self,
        hash: u64,
        token: &str,
        principal: &Principal,
        verified: Verified,
        now: u64,
        bound: Duration,
    ) {
        self.mark(hash);
        let ttl = time_left(verified.exp, now, bound.min(MAX_TTL));
        self.put(hash, token, principal, verified, now, ttl);
    }

    fn put(
        &self,
        hash: u64,
        token: &str,
        principal: &Principal,
        verified: Verified,
        now: u64,
        ttl: Duration,
    ) {
        let weight = token.len() as u64
            + principal.weight()
            + ENTRY_OVERHEAD
            + verified.revocable.as_ref().map_or(0, |r| {
                (r.iss.len() + r.jti.as_ref().map_or(0, |j| j.len())) as u64 + 64
            });
        self.cache.insert(
            hash,
            Arc::new(Entry {
                token: token.into(),
                principal: principal.clone(),
                exp: verified.exp,
                nbf: verified.nbf,
                source: verified.source,
                revocable: verified.revocable,
                weight,
                until: now.saturating_add(ttl.as_secs()),
            }),
        );
    }
}
