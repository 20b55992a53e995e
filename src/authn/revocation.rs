//! What the verifier asks of a revocation store: [`RevocationStore`], the [`TokenRef`] it
//! sees and the [`Verdict`] it gives. The verifier defines the question; the stores in
//! `crate::revoke` answer it (and re-export these names, so they read
//! `portcullis::revoke::RevocationStore`).

use std::cell::Cell;
use std::fmt;

use crate::jose::sha256;

/// A source of revocations, asked about every token the authenticator accepts.
///
/// [`check`](Self::check) runs on the request path, on every request (cache hits
/// included): it must not block, wait, allocate or do I/O. A store whose list lives
/// elsewhere keeps a local copy and updates it in the background, as `RedisRevocations`
/// (feature `redis`) does.
///
/// ```
/// use portcullis::revoke::{RevocationStore, TokenRef, Verdict};
///
/// /// Refuses every token of one subject.
/// struct Banned(&'static str);
///
/// impl RevocationStore for Banned {
///     fn check(&self, token: &TokenRef<'_>) -> Verdict {
///         if token.subject() == Some(self.0) { Verdict::Revoked } else { Verdict::Valid }
///     }
/// }
///
/// let store = Banned("mallory");
/// let token = TokenRef::new("", None, Some("mallory"), Some(1_700_000_000), "e30.e30");
/// assert_eq!(store.check(&token), Verdict::Revoked);
/// ```
pub trait RevocationStore: Send + Sync + 'static {
    /// Whether `token` (already verified: signature and claims) is revoked.
    fn check(&self, token: &TokenRef<'_>) -> Verdict;
}

impl<T: RevocationStore + ?Sized> RevocationStore for std::sync::Arc<T> {
    fn check(&self, token: &TokenRef<'_>) -> Verdict {
        (**self).check(token)
    }
}

/// The answer of a [`RevocationStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verdict {
    /// Not revoked: the token is accepted.
    Valid,
    /// Revoked: 401 `invalid_token`, `Token revoked`.
    Revoked,
    /// The store cannot tell (its copy of a shared list is too old): 503 with the message
    /// `Revocation list unavailable` (gRPC `UNAVAILABLE`).
    Unavailable,
}

/// What a [`RevocationStore`] sees of a verified token.
///
/// Borrowed from the token being checked; nothing is copied. The SHA-256 of the signing
/// input is computed on the first call to [`token_sha256`](Self::token_sha256), and only
/// then.
pub struct TokenRef<'a> {
    issuer: &'a str,
    jti: Option<&'a str>,
    subject: Option<&'a str>,
    issued_at: Option<u64>,
    signed: Signed<'a>,
}

enum Signed<'a> {
    /// `header.payload`, hashed on first use.
    Input(&'a str, Cell<Option<[u8; 32]>>),
    /// Already hashed (a cached token).
    #[cfg_attr(not(feature = "token-cache"), allow(dead_code))]
    Hash(&'a [u8; 32]),
}

impl<'a> TokenRef<'a> {
    /// A token's view: its `iss` (`""` when it has none), `jti`, `sub`, `iat`, and its
    /// signing input (`header.payload`, or a whole compact token: what follows the second
    /// dot is ignored).
    pub fn new(
        issuer: &'a str,
        jti: Option<&'a str>,
        subject: Option<&'a str>,
        issued_at: Option<u64>,
        token: &'a str,
    ) -> Self {
        Self {
            issuer,
            jti,
            subject,
            issued_at,
            signed: Signed::Input(signing_input(token), Cell::new(None)),
        }
    }

    #[cfg_attr(not(feature = "token-cache"), allow(dead_code))]
    pub(crate) fn hashed(
        issuer: &'a str,
        jti: Option<&'a str>,
        subject: Option<&'a str>,
        issued_at: Option<u64>,
        sha: &'a [u8; 32],
    ) -> Self {
        Self {
            issuer,
            jti,
            subject,
            issued_at,
            signed: Signed::Hash(sha),
        }
    }

    /// The token's `iss`, or `""` when it has none.
    pub fn issuer(&self) -> &'a str {
        self.issuer
    }

    /// The token's `jti`.
    pub fn jti(&self) -> Option<&'a str> {
        self.jti
    }

    /// The token's `sub`.
    pub fn subject(&self) -> Option<&'a str> {
        self.subject
    }

    /// The token's `iat`.
    pub fn issued_at(&self) -> Option<u64> {
        self.issued_at
    }

    /// The SHA-256 of the token's signing input (`header.payload`): what exact-token
    /// revocations are keyed by. Computed once, on the first call.
    pub fn token_sha256(&self) -> [u8; 32] {
        match &self.signed {
            Signed::Hash(h) => **h,
            Signed::Input(input, cell) => match cell.get() {
                Some(h) => h,
                None => {
                    let h = sha256(input.as_bytes());
                    cell.set(Some(h));
                    h
                }
            },
        }
    }
}

impl fmt::Debug for TokenRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRef")
            .field("issuer", &self.issuer)
            .field("jti", &self.jti)
            .field("issued_at", &self.issued_at)
            .finish_non_exhaustive()
    }
}

/// `header.payload` of a compact token (the whole text when it has fewer than two dots).
pub(crate) fn signing_input(token: &str) -> &str {
    let mut dots = token.match_indices('.').map(|(i, _)| i);
    match (dots.next(), dots.next()) {
        (Some(_), Some(second)) => &token[..second],
        _ => token,
    }
}
