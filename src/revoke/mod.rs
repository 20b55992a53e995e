//! Revocation: tokens refused before their `exp`.
//!
//! An [`Authenticator`](crate::Authenticator) built with
//! [`revocations`](crate::AuthenticatorBuilder::revocations) asks its [`RevocationStore`]
//! about every token it accepts: after a fresh verification, and on every hit of the
//! verified-token cache, so a token already in the cache is refused as soon as it is
//! revoked. A revoked token is answered 401 `invalid_token` with the message
//! `Token revoked` (gRPC `UNAUTHENTICATED`).
//!
//! Three ways to revoke ([`Revocation`]):
//!
//! - by `(iss, jti)`: the token with this id from this issuer;
//! - by subject: every token of `(iss, sub)` issued before a time (its `iat`); a token
//!   without `iat` cannot show when it was issued and counts as issued before;
//! - by the exact token: keyed by the SHA-256 of what the issuer signed (the signing input,
//!   `header.payload`), never by the whole token string and never storing the token. The
//!   signature segment is left out on purpose: an ECDSA signature has a second valid form
//!   (`s' = n - s`, accepted as RFC 7518 allows), so a token could otherwise be re-encoded
//!   past its revocation. Both forms of a revoked ES256 token are refused.
//!
//! Tokens without `iss` are revoked under the issuer `""`.
//!
//! Each entry carries an expiry, the latest `exp` of the tokens it revokes, and is dropped
//! once that has passed by more than the largest leeway an authenticator accepts (300 s),
//! so no token the verifier would still take outlives its entry.
//!
//! The look-up on the request path takes no lock, does no I/O and allocates nothing: the
//! index is sharded, each shard an immutable map swapped whole by writers. The SHA-256 of
//! the signing input is computed only while the store holds exact-token entries, and a
//! cache hit reuses the one computed when the token was cached.
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use portcullis::revoke::MemoryRevocations;
//! use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let secret = "0123456789abcdef0123456789abcdef";
//! let revoked = MemoryRevocations::new();
//! let auth = Authenticator::builder().hmac_secret(secret).revocations(revoked.clone()).build()?;
//! let app = Router::new()
//!     .route("/me", get(|| async { "me" }))
//!     .layer(AuthLayer::new(auth, Policy::builder().allow("GET", "/me", ["*"]).build()?));
//! let token = Signer::hmac(Algorithm::HS256, secret)?
//!     .sign(&serde_json::json!({"sub": "ada", "jti": "t-1", "exp": 4_000_000_000u64}))?;
//! let call = || http::Request::get("/me")
//!     .header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(call()).await?.status(), 200);
//!
//! revoked.revoke_jti("", "t-1", 4_000_000_000);
//! let res = app.oneshot(call()).await?;
//! assert_eq!(res.status(), 401);
//! assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api", error="invalid_token""#);
//! let body = axum::body::to_bytes(res.into_body(), 1024).await?;
//! assert_eq!(&body[..], br#"{"error":"invalid_token","message":"Token revoked"}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```
//!
//! With the `redis` feature, `RedisRevocations` shares one list between every replica of a
//! service, and `RedisRecords` does the same for the access records of
//! [`Authorizer::authorize_user`](crate::Authorizer::authorize_user); `RedisOptions` says
//! where and how (`PORTCULLIS_REDIS_*`).
//!
//! ## Sharing through Redis (feature `redis`)
//!
//! The list lives in Redis, each entry with its expiry; a change is written with a new
//! version number and published. Each replica keeps a local copy, applies each published
//! change, and every resync interval (1 s) compares its version with Redis's; a missed
//! message or a restarted Redis leads to a full resync, in which the replica also writes
//! back the entries Redis lacks (revocations only add, so copies merge safely). The request
//! path reads the local copy only. While Redis is away the copy keeps serving; once its
//! age passes the bound (10 s) tokens get 503 `Revocation list unavailable` unless the
//! store was set to fail open. Access records work the same way, as one versioned
//! document swapped in whole.

#[cfg(feature = "admin-api")]
mod admin;
mod list;
mod memory;
#[cfg(feature = "redis")]
mod options;
#[cfg(feature = "redis")]
mod records;
#[cfg(feature = "redis")]
mod remote;
mod request;
#[cfg(feature = "redis")]
mod sync;

use std::fmt;

#[cfg(feature = "admin-api")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin-api")))]
pub use admin::{AdminApi, AdminStore};
pub(crate) use list::List;
pub use memory::MemoryRevocations;
#[cfg(feature = "redis")]
pub use options::{DangerousRedisOptions, RedisOptions};
#[cfg(feature = "redis")]
pub use records::RedisRecords;
#[cfg(feature = "redis")]
pub use remote::RedisRevocations;
pub use request::{
    DEFAULT_REVOCATION_SECONDS, MAX_REVOCATION_SECONDS, PlannedRevocation, RevocationRequest,
};
#[cfg(feature = "redis")]
pub use sync::SyncStatus;

use crate::authn::signing_input;
pub use crate::authn::{RevocationStore, TokenRef, Verdict};
use crate::jose::{json, sha256, strict_b64};

/// How long an entry outlives the `exp` it was given: the largest leeway an authenticator
/// accepts, so a token the verifier still takes within its leeway is still refused.
pub const KEEP_AFTER_EXP: u64 = crate::authn::MAX_LEEWAY;

/// What one revocation names.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Jti { iss: Box<str>, jti: Box<str> },
    Subject { iss: Box<str>, sub: Box<str> },
    Token([u8; 32]),
}

/// One revocation: what it refuses, and until when.
///
/// ```
/// use portcullis::revoke::Revocation;
///
/// let r = Revocation::jti("https://issuer.example", "4f1c", 1_700_003_600);
/// assert_eq!(r.expires_at(), 1_700_003_600);
/// // Every token of ada issued before 1_700_000_000 (by `iat`), each expiring by then + 1 h.
/// let s = Revocation::subject("https://issuer.example", "ada", 1_700_000_000, 1_700_003_600);
/// assert_ne!(r, s);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Revocation {
    pub(crate) key: Key,
    /// Subject revocations: tokens with `iat` before this are refused. 0 otherwise.
    pub(crate) before: u64,
    pub(crate) expires_at: u64,
}

impl Revocation {
    /// The token with this `jti` from `issuer` (`""` for tokens without `iss`), whose
    /// `exp` is `expires_at` (seconds since the epoch).
    pub fn jti(issuer: impl Into<String>, jti: impl Into<String>, expires_at: u64) -> Self {
        Self {
            key: Key::Jti {
                iss: issuer.into().into_boxed_str(),
                jti: jti.into().into_boxed_str(),
            },
            before: 0,
            expires_at,
        }
    }

    /// Every token of `subject` from `issuer` whose `iat` is before `issued_before`
    /// (tokens without `iat` included), until `expires_at`: the latest `exp` such a token
    /// can carry (its `iat` plus the issuer's longest token lifetime). To revoke every token
    /// issued up to now, this second included, pass now + 1.
    pub fn subject(
        issuer: impl Into<String>,
        subject: impl Into<String>,
        issued_before: u64,
        expires_at: u64,
    ) -> Self {
        Self {
            key: Key::Subject {
                iss: issuer.into().into_boxed_str(),
                sub: subject.into().into_boxed_str(),
            },
            before: issued_before,
            expires_at,
        }
    }

    /// This exact token, until its `exp`. The token is not verified (its issuer's key
    /// may be unknown here); only its shape and `exp` are read, and only the SHA-256 of its
    /// signing input is kept. A token without `exp` needs
    /// [`token_until`](Self::token_until).
    ///
    /// The text may be pasted as it was sent: surrounding whitespace and a scheme word
    /// (`Bearer <token>`) are taken off. The token itself is read as strictly as the
    /// verifier reads it: three non-empty strict base64url segments, a header and a payload
    /// that are JSON objects. Anything that could never verify is an error naming what is
    /// wrong, so a revocation never names a token no one can present.
    ///
    /// ```
    /// use portcullis::revoke::Revocation;
    ///
    /// let token = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2ln";
    /// let r = Revocation::token(token)?;
    /// assert_eq!(Revocation::token(&format!(" Bearer {token}\n"))?, r);
    /// // Padding, a stray character or a non-JSON header can never verify: refused.
    /// assert!(Revocation::token("eyJhbGciOiJIUzI1NiJ9=.eyJleHAiOjE3MDAwMDAwMDB9.c2ln").is_err());
    /// assert!(Revocation::token("bm9wZQ.eyJleHAiOjE3MDAwMDAwMDB9.c2ln").is_err());
    /// # Ok::<(), portcullis::revoke::ChangeError>(())
    /// ```
    pub fn token(token: &str) -> Result<Self, ChangeError> {
        let token = pasted(token)?;
        let exp = token_exp(token)?.ok_or_else(|| {
            ChangeError::input("the token has no `exp`; give the expiry with token_until")
        })?;
        Self::token_until(token, exp)
    }

    /// This exact opaque token (one that is not a JWT, checked by introspection: RFC
    /// 7662, feature `introspection`) until `expires_at`, the latest time its
    /// authorization server could still call it active. The text may be pasted as
    /// [`token`](Self::token) takes it; it must be a bearer credential (RFC 6750 token68:
    /// letters, digits, `-._~+/`, then `=` padding) and not a JWS, for which
    /// [`token`](Self::token) is the way. Only the SHA-256 of the whole token is kept.
    ///
    /// ```
    /// use portcullis::revoke::Revocation;
    ///
    /// let r = Revocation::opaque_token("Bearer 2YotnFZFEjr1zCsicMWpAA", 1_700_003_600)?;
    /// assert_eq!(r.expires_at(), 1_700_003_600);
    /// assert!(Revocation::opaque_token("Bearer two words", 1_700_003_600).is_err());
    /// assert!(Revocation::opaque_token("a=b", 1_700_003_600).is_err());
    /// assert!(Revocation::opaque_token("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2ln", 1).is_err());
    /// # Ok::<(), portcullis::revoke::ChangeError>(())
    /// ```
    pub fn opaque_token(token: &str, expires_at: u64) -> Result<Self, ChangeError> {
        let token = pasted(token)?;
        let body = token.trim_end_matches('=');
        if body.is_empty()
            || !body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        {
            return Err(ChangeError::input(
                "not a bearer token: letters, digits and -._~+/ then `=` padding (RFC 6750)",
            ));
        }
        if token_exp(token).is_ok() {
            return Err(ChangeError::input(
                "this is a JWS, not an opaque token; use Revocation::token",
            ));
        }
        Ok(Self::token_sha256(sha256(token.as_bytes()), expires_at))
    }

    /// This exact token, until `expires_at` (for tokens without `exp`). The text is read
    /// as [`token`](Self::token) reads it.
    pub fn token_until(token: &str, expires_at: u64) -> Result<Self, ChangeError> {
        let token = pasted(token)?;
        token_exp(token)?;
        Ok(Self::token_sha256(
            sha256(signing_input(token).as_bytes()),
            expires_at,
        ))
    }

    /// The token whose signing input (`header.payload`) has this SHA-256, until
    /// `expires_at`. See [`TokenRef::token_sha256`].
    pub fn token_sha256(sha256: [u8; 32], expires_at: u64) -> Self {
        Self {
            key: Key::Token(sha256),
            before: 0,
            expires_at,
        }
    }

    /// Until when the entry refuses tokens: the latest `exp` of the tokens it names
    /// (seconds since the epoch). The entry itself is kept [`KEEP_AFTER_EXP`] longer.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Two revocations of the same key merged: the later subject cut-off, the later
    /// expiry.
    pub(crate) fn merge(&self, other: &Revocation) -> Revocation {
        Revocation {
            key: self.key.clone(),
            before: self.before.max(other.before),
            expires_at: self.expires_at.max(other.expires_at),
        }
    }

    /// Whether this entry refuses `t` (the key already matched by hash).
    pub(crate) fn refuses(&self, t: &TokenRef<'_>, sha: Option<&[u8; 32]>) -> bool {
        match &self.key {
            Key::Jti { iss, jti } => **iss == *t.issuer() && t.jti().is_some_and(|j| **jti == *j),
            Key::Subject { iss, sub } => {
                **iss == *t.issuer()
                    && t.subject().is_some_and(|s| **sub == *s)
                    && t.issued_at().is_none_or(|iat| iat < self.before)
            }
            Key::Token(h) => sha.is_some_and(|s| s == h),
        }
    }
}

impl fmt::Debug for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Revocation");
        match &self.key {
            Key::Jti { iss, jti } => d.field("issuer", iss).field("jti", jti),
            Key::Subject { iss, .. } => d
                .field("issuer", iss)
                .field("subject", &"<subject>")
                .field("issued_before", &self.before),
            Key::Token(h) => d.field("token_sha256_prefix", &crate::jose::hex(&h[..4])),
        };
        d.field("expires_at", &self.expires_at).finish()
    }
}

/// A token as a person pastes it: surrounding whitespace and an optional scheme word
/// (`Bearer`, `Token`, `DPoP`: letters, then spaces) are taken off; what is left is the
/// compact token. Nothing else is trimmed or repaired.
fn pasted(text: &str) -> Result<&str, ChangeError> {
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let token = match text.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((scheme, rest)) => {
            if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(ChangeError::input(
                    "the token holds whitespace; give the compact token, optionally after its scheme (`Bearer <token>`)",
                ));
            }
            rest.trim_start_matches(' ')
        }
        None => text,
    };
    if token.is_empty() || token.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(ChangeError::input(
            "the token holds whitespace; give the compact token, optionally after its scheme (`Bearer <token>`)",
        ));
    }
    Ok(token)
}

/// Reads the `exp` of a compact token without verifying it, refusing anything that could
/// never verify: exactly three non-empty segments, each strict base64url (no padding, no
/// whitespace, canonical trailing bits), a header and a payload that are JSON objects
/// (no duplicate names), a non-empty signature.
fn token_exp(token: &str) -> Result<Option<u64>, ChangeError> {
    use base64::Engine;
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ChangeError::input(
            "not a compact JWS: it needs exactly three segments separated by dots",
        ));
    };
    let segment = |name: &str, text: &str| {
        if text.is_empty() {
            return Err(ChangeError::input(format!("the {name} segment is empty")));
        }
        strict_b64().decode(text).map_err(|_| {
            ChangeError::input(format!(
                "the {name} segment is not strict base64url (no padding `=`, no `+` or `/`, canonical last character)"
            ))
        })
    };
    let header = segment("header", h)?;
    json::scan_object(&header, &[])
        .map_err(|_| ChangeError::input("the header is not a JSON object"))?;
    let payload = segment("payload", p)?;
    segment("signature", s)?;
    let [exp] = json::scan_object(&payload, &["exp"])
        .map_err(|_| ChangeError::input("the payload is not a JSON object"))?;
    match exp.map(json::Scalar::of) {
        None => Ok(None),
        Some(json::Scalar::U64(e)) => Ok(Some(e)),
        Some(json::Scalar::F64(f)) if f.is_finite() && f >= 0.0 => Ok(Some(f as u64)),
        Some(_) => Err(ChangeError::input("the token's `exp` is not a NumericDate")),
    }
}

/// A change (a revocation, a record set) that could not be made, or not yet shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeError {
    kind: ChangeErrorKind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChangeErrorKind {
    Input,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Pending,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Unreachable,
}

impl ChangeError {
    pub(crate) fn input(message: impl Into<String>) -> Self {
        Self {
            kind: ChangeErrorKind::Input,
            message: message.into(),
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn pending(message: impl Into<String>) -> Self {
        Self {
            kind: ChangeErrorKind::Pending,
            message: message.into(),
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn unreachable(message: impl Into<String>) -> Self {
        Self {
            kind: ChangeErrorKind::Unreachable,
            message: message.into(),
        }
    }

    /// Whether the input was refused (a malformed token, an invalid record set).
    pub fn is_invalid(&self) -> bool {
        self.kind == ChangeErrorKind::Input
    }

    /// Whether the change holds on this replica but is not yet shared (Redis could not be
    /// reached): a revocation is written to Redis when the connection is back.
    pub fn is_pending(&self) -> bool {
        self.kind == ChangeErrorKind::Pending
    }
}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ChangeError {}
