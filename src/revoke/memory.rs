//! The in-memory store: one process, entries dropped as their tokens expire.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::{ChangeError, KEEP_AFTER_EXP, List, Revocation, RevocationStore, TokenRef, Verdict};
use crate::clock::{Clock, SystemClock};

/// A revocation list held in this process.
///
/// Cheap to clone (one `Arc`); clones share the list. Look-ups take no lock and allocate
/// nothing; each write replaces only the shards it touches. An entry is dropped once its
/// expiry has passed by [`KEEP_AFTER_EXP`] (300 s: the largest leeway an authenticator
/// accepts), on a later write (at most once a second) or on
/// [`purge_expired`](Self::purge_expired).
///
/// ```
/// use portcullis::revoke::{MemoryRevocations, RevocationStore, TokenRef, Verdict};
///
/// let now = 1_700_000_000;
/// let store = MemoryRevocations::new().clock(move || now);
/// store.revoke_jti("https://issuer.example", "t-1", now + 600);
/// store.revoke_subject("https://issuer.example", "mallory", now + 1, now + 3600);
///
/// let t1 = TokenRef::new("https://issuer.example", Some("t-1"), Some("ada"), Some(now), "e30.e30");
/// assert_eq!(store.check(&t1), Verdict::Revoked);
/// let later = TokenRef::new("https://issuer.example", None, Some("mallory"), Some(now + 1), "e30.e30");
/// assert_eq!(store.check(&later), Verdict::Valid); // issued after the cut-off
/// assert_eq!(store.len(), 2);
/// ```
#[derive(Clone)]
pub struct MemoryRevocations {
    inner: Arc<Inner>,
}

struct Inner {
    list: List,
    clock: Arc<dyn Clock>,
    keep: u64,
    next_purge: AtomicU64,
}

impl Default for MemoryRevocations {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryRevocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRevocations")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl MemoryRevocations {
    /// An empty list on the system clock.
    pub fn new() -> Self {
        Self::with(Arc::new(SystemClock), KEEP_AFTER_EXP)
    }

    fn with(clock: Arc<dyn Clock>, keep: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                list: List::default(),
                clock,
                keep,
                next_purge: AtomicU64::new(0),
            }),
        }
    }

    /// The clock entries expire by (default: the system clock). Call it before adding
    /// entries: the list starts empty again.
    pub fn clock(self, clock: impl Clock) -> Self {
        Self::with(Arc::new(clock), self.inner.keep)
    }

    /// How long an entry is kept past its expiry, in seconds. Default [`KEEP_AFTER_EXP`]
    /// (300). Risky below the authenticator's leeway: a revoked token whose `exp` has
    /// passed, but not its leeway, would be accepted again. Call it before adding entries:
    /// the list starts empty again.
    pub fn keep_after_exp(self, seconds: u64) -> Self {
        Self::with(self.inner.clock.clone(), seconds)
    }

    fn cutoff(&self) -> u64 {
        self.inner.clock.now().saturating_sub(self.inner.keep)
    }

    /// Adds a revocation.
    pub fn revoke(&self, revocation: Revocation) {
        self.revoke_all([revocation]);
    }

    /// Adds revocations, in one write.
    pub fn revoke_all(&self, revocations: impl IntoIterator<Item = Revocation>) {
        let now = self.inner.clock.now();
        if now >= self.inner.next_purge.load(Relaxed) {
            self.inner.next_purge.store(now + 1, Relaxed);
            self.inner.list.purge(self.cutoff());
        }
        self.inner.list.insert(revocations, self.cutoff());
    }

    /// Revokes the token with this `jti` from `issuer` (`""` for tokens without `iss`)
    /// until `expires_at` (its `exp`).
    pub fn revoke_jti(&self, issuer: &str, jti: &str, expires_at: u64) {
        self.revoke(Revocation::jti(issuer, jti, expires_at));
    }

    /// Revokes every token of `subject` from `issuer` issued before `issued_before`, until
    /// `expires_at`; see [`Revocation::subject`].
    pub fn revoke_subject(&self, issuer: &str, subject: &str, issued_before: u64, expires_at: u64) {
        self.revoke(Revocation::subject(
            issuer,
            subject,
            issued_before,
            expires_at,
        ));
    }

    /// Revokes this exact token until its `exp`; see [`Revocation::token`].
    pub fn revoke_token(&self, token: &str) -> Result<(), ChangeError> {
        self.revoke(Revocation::token(token)?);
        Ok(())
    }

    /// Entries held (expired ones included until they are purged).
    pub fn len(&self) -> usize {
        self.inner.list.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the entries whose expiry has passed by the keep time; returns how many.
    pub fn purge_expired(&self) -> usize {
        self.inner.list.purge(self.cutoff())
    }
}

impl RevocationStore for MemoryRevocations {
    fn check(&self, token: &TokenRef<'_>) -> Verdict {
        if self.inner.list.refuses(token) {
            Verdict::Revoked
        } else {
            Verdict::Valid
        }
    }
}
