//! One entry of the verified-token cache, shared by the cache and the threads' front
//! slots.

use super::KeyEpoch;
use crate::principal::Principal;

/// What the revocation check needs of a cached token (the subject is the principal's).
pub(crate) struct Revocable {
    pub(crate) iss: Box<str>,
    pub(crate) jti: Option<Box<str>>,
    pub(crate) iat: Option<u64>,
    /// SHA-256 of the signing input.
    pub(crate) sha: [u8; 32],
}

/// One cached token.
pub(crate) struct Entry {
    pub(super) token: Box<str>,
    pub(crate) principal: Principal,
    /// Present when the authenticator has a revocation store.
    pub(crate) revocable: Option<Revocable>,
    /// `exp` and `nbf` of the token, when present.
    pub(super) exp: Option<u64>,
    pub(super) nbf: Option<u64>,
    /// The remote set that verified it and its key epoch then (`None`: static keys).
    pub(super) source: Option<KeyEpoch>,
    pub(super) weight: u64,
    /// When it stops being served (Unix seconds): its token's `exp` (with the leeway), at
    /// most an hour after its insertion, checked on every hit, in the shared cache and in
    /// the threads' front slots alike.
    pub(super) until: u64,
}

impl Entry {
    /// Whether this entry is of exactly `token`.
    pub(crate) fn is_token(&self, token: &[u8]) -> bool {
        self.token.as_bytes() == token
    }

    /// Whether the entry still holds at `now` (with `leeway`): within its token's `exp`
    /// and `nbf`, and verified by a key of the current epoch.
    pub(super) fn fresh(&self, now: u64, leeway: u64) -> bool {
        let expired = self.exp.is_some_and(|exp| exp.saturating_add(leeway) < now);
        let early = self.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway));
        let stale_key = self.source.as_ref().is_some_and(|s| !s.is_current());
        !(expired || early || stale_key || now > self.until)
    }
}
