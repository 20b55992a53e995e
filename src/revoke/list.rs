//! The local revocation index: 64 shards, each an immutable map that writers replace whole.
//!
//! A look-up hashes the key with a seeded fast hash and asks a Bloom filter first (16 bits
//! per entry, three probes: about 0.1 % false positives, and small enough to stay in cache
//! at 100,000 entries, where the maps do not); only a possible hit loads its shard (an
//! `ArcSwap` load: no lock, no allocation) and probes one map, where collisions chain.
//! Writers (revocations, syncs, purges) take a mutex among themselves, set the filter's
//! bits first, clone only the shards they change and swap them in, so a reader sees each
//! shard before or after a write, never half of it. The filter is rebuilt, at its new size,
//! when the list doubles and after a purge.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{
    AtomicU8, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::{Key, Revocation, TokenRef};

const SHARDS: usize = 64;
const JTI: u8 = 1;
const SUBJECT: u8 = 2;
const TOKEN: u8 = 4;

/// The map key is already a seeded hash: use it as is.
#[derive(Default)]
struct Ident(u64);

impl Hasher for Ident {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Map = HashMap<u64, Arc<Node>, BuildHasherDefault<Ident>>;

/// Bits of the Bloom filter per entry it is sized for.
const BLOOM_BITS_PER_ENTRY: usize = 16;
/// The smallest filter (bits): 8 KiB.
const BLOOM_MIN_BITS: usize = 1 << 16;

/// A Bloom filter over key hashes, shared by readers and writers (atomic words).
struct Bloom {
    words: Box<[AtomicU64]>,
    /// Number of bits minus one (a power of two minus one).
    mask: u64,
    /// Entries it was sized for.
    capacity: usize,
}

impl Bloom {
    fn for_entries(n: usize) -> Self {
        let bits = (n.saturating_mul(BLOOM_BITS_PER_ENTRY))
            .max(BLOOM_MIN_BITS)
            .next_power_of_two();
        Self {
            words: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
            mask: bits as u64 - 1,
            capacity: bits / BLOOM_BITS_PER_ENTRY,
        }
    }

    /// Three bit positions by double hashing.
    fn bits(&self, hash: u64) -> [u64; 3] {
        let step = (hash >> 32) | 1;
        [0u64, 1, 2].map(|i| hash.wrapping_add(i.wrapping_mul(step)) & self.mask)
    }

    fn set(&self, hash: u64) {
        for b in self.bits(hash) {
            self.words[(b / 64) as usize].fetch_or(1 << (b % 64), Release);
        }
    }

    fn may_hold(&self, hash: u64) -> bool {
        self.bits(hash)
            .iter()
            .all(|&b| self.words[(b / 64) as usize].load(Acquire) & (1 << (b % 64)) != 0)
    }
}

impl Default for Bloom {
    fn default() -> Self {
        Self::for_entries(0)
    }
}

/// One entry, and the next with the same hash (rare).
struct Node {
    rev: Revocation,
    next: Option<Arc<Node>>,
}

impl Node {
    fn iter(&self) -> impl Iterator<Item = &Revocation> {
        let mut node = Some(self);
        std::iter::from_fn(move || {
            let n = node?;
            node = n.next.as_deref();
            Some(&n.rev)
        })
    }

    fn chain(revs: Vec<Revocation>) -> Option<Arc<Node>> {
        revs.into_iter()
            .rev()
            .fold(None, |next, rev| Some(Arc::new(Node { rev, next })))
    }
}

#[derive(Default, Clone)]
struct Shard {
    map: Map,
    /// The earliest expiry in the shard, so a purge skips shards with nothing to drop.
    earliest: u64,
}

fn kind_of(key: &Key) -> u8 {
    match key {
        Key::Jti { .. } => JTI,
        Key::Subject { .. } => SUBJECT,
        Key::Token(_) => TOKEN,
    }
}

/// Entries per kind, kept by writers.
#[derive(Default)]
struct Counts([usize; 3]);

impl Counts {
    fn slot(kind: u8) -> usize {
        match kind {
            JTI => 0,
            SUBJECT => 1,
            _ => 2,
        }
    }
    fn add(&mut self, kind: u8, n: isize) {
        let s = &mut self.0[Self::slot(kind)];
        *s = s.saturating_add_signed(n);
    }
    fn kinds(&self) -> u8 {
        let mut k = 0;
        for (i, bit) in [JTI, SUBJECT, TOKEN].into_iter().enumerate() {
            if self.0[i] > 0 {
                k |= bit;
            }
        }
        k
    }
    fn total(&self) -> usize {
        self.0.iter().sum()
    }
}

/// The index. `Send + Sync`; readers never wait for writers.
pub(crate) struct List {
    shards: Box<[ArcSwap<Shard>]>,
    bloom: ArcSwap<Bloom>,
    hasher: foldhash::fast::RandomState,
    /// Which kinds of entries exist (bits), so a look-up skips the others.
    kinds: AtomicU8,
    len: AtomicUsize,
    writer: Mutex<Counts>,
}

impl Default for List {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| ArcSwap::default()).collect(),
            bloom: ArcSwap::default(),
            hasher: foldhash::fast::RandomState::default(),
            kinds: AtomicU8::new(0),
            len: AtomicUsize::new(0),
            writer: Mutex::new(Counts::default()),
        }
    }
}

impl std::fmt::Debug for List {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("List").field("len", &self.len()).finish()
    }
}

fn shard_of(hash: u64) -> usize {
    // Bits the map does not use for its buckets (low) or its control bytes (top 7).
    ((hash >> 32) as usize) % SHARDS
}

impl List {
    fn hash(&self, kind: u8, a: &[u8], b: &[u8]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write_u8(kind);
        h.write_usize(a.len());
        h.write(a);
        h.write(b);
        h.finish()
    }

    fn hash_key(&self, key: &Key) -> u64 {
        match key {
            Key::Jti { iss, jti } => self.hash(JTI, iss.as_bytes(), jti.as_bytes()),
            Key::Subject { iss, sub } => self.hash(SUBJECT, iss.as_bytes(), sub.as_bytes()),
            Key::Token(h) => self.hash(TOKEN, h, &[]),
        }
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    fn probe(&self, bloom: &Bloom, hash: u64, t: &TokenRef<'_>, sha: Option<&[u8; 32]>) -> bool {
        if !bloom.may_hold(hash) {
            return false;
        }
        let shard = self.shards[shard_of(hash)].load();
        shard
            .map
            .get(&hash)
            .is_some_and(|n| n.iter().any(|r| r.refuses(t, sha)))
    }

    /// Whether an entry refuses `t`. No lock, no allocation; the signing-input hash is
    /// computed only while exact-token entries exist.
    pub(crate) fn refuses(&self, t: &TokenRef<'_>) -> bool {
        let kinds = self.kinds.load(Relaxed);
        if kinds == 0 {
            return false;
        }
        let iss = t.issuer().as_bytes();
        let bloom = self.bloom.load();
        if kinds & JTI != 0
            && let Some(jti) = t.jti()
            && self.probe(&bloom, self.hash(JTI, iss, jti.as_bytes()), t, None)
        {
            return true;
        }
        if kinds & SUBJECT != 0
            && let Some(sub) = t.subject()
            && self.probe(&bloom, self.hash(SUBJECT, iss, sub.as_bytes()), t, None)
        {
            return true;
        }
        if kinds & TOKEN != 0 {
            let sha = t.token_sha256();
            return self.probe(&bloom, self.hash(TOKEN, &sha, &[]), t, Some(&sha));
        }
        false
    }

    /// Adds entries (merged with an entry of the same key: the later cut-off and expiry),
    /// skipping those that expire before `cutoff`. Returns how many changed the index.
    pub(crate) fn insert(&self, revs: impl IntoIterator<Item = Revocation>, cutoff: u64) -> usize {
        let mut counts = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut dirty: Vec<Option<Shard>> = (0..SHARDS).map(|_| None).collect();
        let mut changed = 0;
        let bloom = self.bloom.load_full();
        for rev in revs {
            if rev.expires_at < cutoff {
                continue;
            }
            let hash = self.hash_key(&rev.key);
            let i = shard_of(hash);
            // Nothing to change (an entry already held, a sync's echo): no clone.
            let held = |map: &Map| {
                map.get(&hash).is_some_and(|n| {
                    n.iter().any(|r| {
                        r.key == rev.key && r.before >= rev.before && r.expires_at >= rev.expires_at
                    })
                })
            };
            let unchanged = match &dirty[i] {
                Some(shard) => held(&shard.map),
                None => held(&self.shards[i].load().map),
            };
            if unchanged {
                continue;
            }
            let shard = dirty[i].get_or_insert_with(|| Shard::clone(&self.shards[i].load()));
            let mut chain: Vec<Revocation> = shard
                .map
                .get(&hash)
                .map(|n| n.iter().cloned().collect())
                .unwrap_or_default();
            match chain.iter_mut().find(|r| r.key == rev.key) {
                Some(old) => {
                    let merged = old.merge(&rev);
                    if merged == *old {
                        continue;
                    }
                    *old = merged;
                }
                None => {
                    counts.add(kind_of(&rev.key), 1);
                    chain.push(rev.clone());
                }
            }
            shard.earliest = if shard.map.is_empty() {
                rev.expires_at
            } else {
                shard.earliest.min(rev.expires_at)
            };
            if let Some(node) = Node::chain(chain) {
                shard.map.insert(hash, node);
            }
            // The filter knows the key before any reader can find it in its shard.
            bloom.set(hash);
            changed += 1;
        }
        self.publish(dirty, &counts);
        if counts.total() > bloom.capacity {
            self.rebuild_bloom(counts.total());
        }
        changed
    }

    /// Drops entries that expire before `cutoff`. Returns how many were dropped.
    pub(crate) fn purge(&self, cutoff: u64) -> usize {
        let mut counts = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut dirty: Vec<Option<Shard>> = (0..SHARDS).map(|_| None).collect();
        let mut dropped = 0;
        for (i, slot) in dirty.iter_mut().enumerate() {
            let shard = self.shards[i].load();
            if shard.map.is_empty() || shard.earliest >= cutoff {
                continue;
            }
            let mut earliest = u64::MAX;
            let mut map = Map::default();
            for (&hash, node) in &shard.map {
                let keep: Vec<Revocation> = node
                    .iter()
                    .filter(|r| {
                        let keep = r.expires_at >= cutoff;
                        if !keep {
                            counts.add(kind_of(&r.key), -1);
                            dropped += 1;
                        } else {
                            earliest = earliest.min(r.expires_at);
                        }
                        keep
                    })
                    .cloned()
                    .collect();
                if let Some(n) = Node::chain(keep) {
                    map.insert(hash, n);
                }
            }
            // A fresh map, sized to what is left: memory goes back as entries go.
            map.shrink_to_fit();
            *slot = Some(Shard { map, earliest });
        }
        self.publish(dirty, &counts);
        if dropped > 0 {
            self.rebuild_bloom(counts.total());
        }
        dropped
    }

    /// A new filter sized for `n` entries, from the shards as published (writers only).
    fn rebuild_bloom(&self, n: usize) {
        let bloom = Bloom::for_entries(n + n / 4);
        for shard in self.shards.iter() {
            for &hash in shard.load().map.keys() {
                bloom.set(hash);
            }
        }
        self.bloom.store(Arc::new(bloom));
    }

    fn publish(&self, dirty: Vec<Option<Shard>>, counts: &Counts) {
        for (i, shard) in dirty.into_iter().enumerate() {
            if let Some(s) = shard {
                self.shards[i].store(Arc::new(s));
            }
        }
        self.kinds.store(counts.kinds(), Relaxed);
        self.len.store(counts.total(), Relaxed);
    }

    /// Every entry, for a sync.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn all(&self) -> Vec<Revocation> {
        let mut out = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            for node in shard.load().map.values() {
                out.extend(node.iter().cloned());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token<'a>(jti: Option<&'a str>, sub: Option<&'a str>, iat: Option<u64>) -> TokenRef<'a> {
        TokenRef::new("iss", jti, sub, iat, "e30.e30.sig")
    }

    #[test]
    fn each_kind_refuses_only_its_tokens() {
        let list = List::default();
        assert!(!list.refuses(&token(Some("a"), Some("ada"), Some(10))));
        list.insert([Revocation::jti("iss", "a", 100)], 0);
        assert!(list.refuses(&token(Some("a"), None, None)));
        assert!(!list.refuses(&token(Some("b"), None, None)));
        assert!(!list.refuses(&TokenRef::new("other", Some("a"), None, None, "e30.e30")));
        list.insert([Revocation::subject("iss", "ada", 50, 100)], 0);
        assert!(list.refuses(&token(None, Some("ada"), Some(49))));
        assert!(list.refuses(&token(None, Some("ada"), None)));
        assert!(!list.refuses(&token(None, Some("ada"), Some(50))));
        // A later cut-off merges in.
        list.insert([Revocation::subject("iss", "ada", 60, 100)], 0);
        assert!(list.refuses(&token(None, Some("ada"), Some(55))));
        assert_eq!(list.len(), 2);
        let t = token(None, None, None);
        list.insert([Revocation::token_sha256(t.token_sha256(), 100)], 0);
        assert!(list.refuses(&t));
        assert!(!list.refuses(&TokenRef::new("iss", None, None, None, "e30.e31.sig")));
        assert_eq!(list.len(), 3);
    }

    #[test]
    fn purge_drops_expired_entries_and_their_kinds() {
        let list = List::default();
        list.insert(
            (0..1000).map(|i| Revocation::jti("iss", i.to_string(), i)),
            0,
        );
        assert_eq!(list.len(), 1000);
        assert_eq!(list.purge(500), 500);
        assert_eq!(list.len(), 500);
        assert!(!list.refuses(&token(Some("10"), None, None)));
        assert!(list.refuses(&token(Some("700"), None, None)));
        assert_eq!(list.purge(u64::MAX), 500);
        assert_eq!(list.kinds.load(Relaxed), 0);
        // Entries already past the cut-off are not added.
        assert_eq!(list.insert([Revocation::jti("iss", "x", 5)], 10), 0);
    }
}
