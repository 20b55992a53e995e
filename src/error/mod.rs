//! Errors: [`AuthError`] for rejected requests, [`ConfigError`] for bad configuration.
//!
//! Every rejection maps to exactly one row of the answer table; the HTTP mapping and the
//! gRPC mapping are each one `match` in this file.
//!
//! ```
//! use portcullis::{AuthError, AuthErrorKind};
//! use http::StatusCode;
//!
//! let err = AuthError::forbidden();
//! assert_eq!(err.kind(), AuthErrorKind::Forbidden);
//! assert_eq!(err.status(), StatusCode::FORBIDDEN);
//! assert_eq!(err.message(), "Insufficient permissions");
//! assert_eq!(
//!     err.www_authenticate("Bearer", "api").unwrap(),
//!     r#"Bearer realm="api", error="insufficient_scope""#
//! );
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::StatusCode;

mod config;
mod start;

pub use config::{ConfigError, ConfigErrorKind};
pub use start::{StartError, UnavailableError};

/// The kind of a rejection: one row of the answer table.
///
/// | kind | HTTP | `WWW-Authenticate` | gRPC code |
/// |---|---|---|---|
/// | [`MissingCredentials`](Self::MissingCredentials) | 401 | `<Scheme> realm="..."` | `UNAUTHENTICATED` |
/// | [`InvalidRequest`](Self::InvalidRequest) | 400 | `error="invalid_request"` | `UNAUTHENTICATED` |
/// | [`InvalidToken`](Self::InvalidToken) | 401 | `error="invalid_token"` | `UNAUTHENTICATED` |
/// | [`Forbidden`](Self::Forbidden) | 403 | `error="insufficient_scope"` | `PERMISSION_DENIED` |
/// | [`KeysUnavailable`](Self::KeysUnavailable) | 503 | none | `UNAVAILABLE` |
/// | [`Misuse`](Self::Misuse) | 500 | none | `INTERNAL` |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// No `Authorization` header, or one with another scheme.
    MissingCredentials,
    /// The right scheme with an empty or malformed credential, duplicate headers, an
    /// oversized token, or a request path with dot segments.
    InvalidRequest,
    /// The token failed to parse, its signature did not verify, a claim was refused, or
    /// it was revoked.
    InvalidToken,
    /// The token is valid but the policy or a required claim does not allow the request.
    Forbidden,
    /// No keys were ever loaded for the token's issuer, the revocation list could not
    /// be checked (its shared copy is too old and the store fails closed), or the
    /// introspection endpoint could not answer (feature `introspection`, fail-closed).
    KeysUnavailable,
    /// The crate was used wrongly, for example an extractor without the layer.
    Misuse,
}

/// The gRPC status code of a rejection, as the numbers of the gRPC status-code docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrpcCode {
    /// `INTERNAL` (13).
    Internal = 13,
    /// `UNAVAILABLE` (14).
    Unavailable = 14,
    /// `UNAUTHENTICATED` (16).
    Unauthenticated = 16,
    /// `PERMISSION_DENIED` (7).
    PermissionDenied = 7,
}

impl AuthErrorKind {
    /// The HTTP status of this kind.
    ///
    /// RFC 6750 section 3.1: `invalid_request` is 400, `invalid_token` is 401,
    /// `insufficient_scope` is 403; a request without credentials is 401 with no error code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingCredentials => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Misuse => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC status code of this kind.
    ///
    /// gRPC status-code docs (`doc/statuscodes.md`): `UNAUTHENTICATED` "does not have valid
    /// authentication credentials", `PERMISSION_DENIED` "does not have permission",
    /// `UNAVAILABLE` "currently unavailable", `INTERNAL` for broken invariants.
    pub fn grpc_code(self) -> GrpcCode {
        match self {
            Self::MissingCredentials | Self::InvalidRequest | Self::InvalidToken => {
                GrpcCode::Unauthenticated
            }
            Self::Forbidden => GrpcCode::PermissionDenied,
            Self::KeysUnavailable => GrpcCode::Unavailable,
            Self::Misuse => GrpcCode::Internal,
        }
    }

    /// The RFC 6750 error code for `WWW-Authenticate`, if this kind has one.
    pub(crate) fn rfc6750_code(self) -> Option<&'static str> {
        match self {
            Self::InvalidRequest => Some("invalid_request"),
            Self::InvalidToken => Some("invalid_token"),
            Self::Forbidden => Some("insufficient_scope"),
            Self::MissingCredentials | Self::KeysUnavailable | Self::Misuse => None,
        }
    }

    /// The `error` member of the JSON body.
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingCredentials => "missing_token",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::Forbidden => "insufficient_scope",
            Self::KeysUnavailable => "temporarily_unavailable",
            Self::Misuse => "server_error",
        }
    }
}

/// Why a request was rejected, in more detail than the kind. Never holds token bytes,
/// key ids or claim values, so it is safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reason {
    NoHeader,
    WrongScheme,
    EmptyCredential,
    MalformedHeader,
    DuplicateHeader,
    TooLarge,
    DotSegment,
    BadPath,
    Malformed(&'static str),
    BadAlgorithm(&'static str),
    NoKey(&'static str),
    BadSignature,
    Expired,
    Claim(&'static str),
    /// The claims do not fit a handler's type: the field's path and what was wrong.
    #[cfg_attr(not(any(feature = "axum", feature = "tonic")), allow(dead_code))]
    ClaimsType(String),
    Policy(String),
    /// A refusal whose reason is worked out when someone reads it.
    Deferred(Deferred),
    RequiredClaim(String),
    KeysUnavailable,
    Misuse(&'static str),
    Revoked,
    RevocationUnavailable,
    /// The introspection endpoint could not answer (RFC 7662; fail-closed).
    #[cfg_attr(not(feature = "introspection"), allow(dead_code))]
    IntrospectionUnavailable,
    /// Refused by an integration's issuer rule: the answer's fixed message and the
    /// log-safe detail, both the rule's.
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    IssuerRule {
        message: &'static str,
        detail: &'static str,
    },
    /// Refused by a sender-constraint check (RFC 9449 DPoP, RFC 8705 certificate-bound
    /// tokens): the error code of the challenge and body (`invalid_dpop_proof`,
    /// `use_dpop_nonce`, `invalid_token`), the answer's fixed message, and the log-safe
    /// detail.
    Sender {
        code: &'static str,
        message: &'static str,
        detail: &'static str,
    },
}

/// A reason computed on demand; two are equal when they read the same.
#[derive(Clone)]
pub(crate) struct Deferred(Arc<dyn Fn() -> String + Send + Sync>);

impl PartialEq for Deferred {
    fn eq(&self, other: &Self) -> bool {
        (self.0)() == (other.0)()
    }
}

impl Eq for Deferred {}

impl fmt::Debug for Deferred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&(self.0)())
    }
}

/// A rejected request: what went wrong, and how to answer it over HTTP or gRPC.
///
/// The error is opaque on purpose: [`kind`](Self::kind) says which row of the table
/// applies, [`Display`](fmt::Display) gives a log-safe detail, and
/// [`message`](Self::message) the fixed text sent to the client.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthError {
    kind: AuthErrorKind,
    reason: Reason,
    scheme: Option<Arc<str>>,
}

/// One row of the answer table: a kind with one fixed message. Answers are precomputed per
/// row (see `crate::answer`). A refusal of an issuer rule is answered as
/// [`InvalidToken`](Row::InvalidToken) with the rule's own message
/// ([`AuthError::rule_message`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Row {
    Missing,
    WrongScheme,
    InvalidRequest,
    InvalidPath,
    Expired,
    InvalidToken,
    Forbidden,
    KeysUnavailable,
    Misuse,
    Revoked,
    RevocationUnavailable,
    IntrospectionUnavailable,
}

impl Row {
    /// Every row, in index order.
    pub(crate) const ALL: [Row; 12] = [
        Row::Missing,
        Row::WrongScheme,
        Row::InvalidRequest,
        Row::InvalidPath,
        Row::Expired,
        Row::InvalidToken,
        Row::Forbidden,
        Row::KeysUnavailable,
        Row::Misuse,
        Row::Revoked,
        Row::RevocationUnavailable,
        Row::IntrospectionUnavailable,
    ];

    pub(crate) fn kind(self) -> AuthErrorKind {
        match self {
            Row::Missing | Row::WrongScheme => AuthErrorKind::MissingCredentials,
            Row::InvalidRequest | Row::InvalidPath => AuthErrorKind::InvalidRequest,
            Row::Expired | Row::InvalidToken | Row::Revoked => AuthErrorKind::InvalidToken,
            Row::Forbidden => AuthErrorKind::Forbidden,
            Row::KeysUnavailable | Row::RevocationUnavailable | Row::IntrospectionUnavailable => {
                AuthErrorKind::KeysUnavailable
            }
            Row::Misuse => AuthErrorKind::Misuse,
        }
    }

    /// The fixed text of the row; `scheme` completes "Invalid token scheme, expected".
    /// It keeps FEDn's words so FEDn clients keep working.
    pub(crate) fn message(self, scheme: &str) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Row::WrongScheme => {
                return Cow::Owned(format!("Invalid token scheme, expected {scheme}"));
            }
            Row::Missing => "Missing token",
            Row::InvalidPath => "Invalid request path",
            Row::InvalidRequest => "Invalid request",
            Row::Expired => "Token expired",
            Row::InvalidToken => "Invalid token",
            Row::Forbidden => "Insufficient permissions",
            Row::KeysUnavailable => "Authentication keys unavailable",
            Row::Misuse => "Internal error",
            Row::Revoked => "Token revoked",
            Row::RevocationUnavailable => "Revocation list unavailable",
            Row::IntrospectionUnavailable => "Token introspection unavailable",
        })
    }

    /// The JSON body: `{"error": "<code>", "message": "<fixed text>"}`.
    pub(crate) fn body(self, scheme: &str) -> String {
        body(self.kind(), &self.message(scheme))
    }
}

/// The JSON body of an answer: `{"error": "<code>", "message": "<fixed text>"}`.
pub(crate) fn body(kind: AuthErrorKind, message: &str) -> String {
    serde_json::json!({ "error": kind.code(), "message": message }).to_string()
}

impl AuthError {
    pub(crate) fn new(kind: AuthErrorKind, reason: Reason) -> Self {
        Self {
            kind,
            reason,
            scheme: None,
        }
    }

    pub(crate) fn missing() -> Self {
        Self::new(AuthErrorKind::MissingCredentials, Reason::NoHeader)
    }

    pub(crate) fn wrong_scheme(expected: &Arc<str>) -> Self {
        Self {
            kind: AuthErrorKind::MissingCredentials,
            reason: Reason::WrongScheme,
            scheme: Some(expected.clone()),
        }
    }

    pub(crate) fn invalid_request(reason: Reason) -> Self {
        Self::new(AuthErrorKind::InvalidRequest, reason)
    }

    pub(crate) fn invalid_token(reason: Reason) -> Self {
        Self::new(AuthErrorKind::InvalidToken, reason)
    }

    /// A request whose target cannot be read (a proxy's description of the original
    /// request that is not a method and a path, say): 400 `invalid_request`, the same
    /// answer as a path the policy refuses to read.
    pub fn bad_request_target() -> Self {
        Self::invalid_request(Reason::BadPath)
    }

    /// No keys were ever loaded for the token's issuer (503 / `UNAVAILABLE`): for key
    /// sources that fetch keys and have not had any yet.
    pub fn keys_unavailable() -> Self {
        Self::new(AuthErrorKind::KeysUnavailable, Reason::KeysUnavailable)
    }

    /// The introspection endpoint could not answer (503 / `UNAVAILABLE`,
    /// `Token introspection unavailable`): down, too slow, or an answer that is not one;
    /// fail-closed.
    pub fn introspection_unavailable() -> Self {
        Self::new(
            AuthErrorKind::KeysUnavailable,
            Reason::IntrospectionUnavailable,
        )
    }

    /// A revoked token (401 `invalid_token`, `Token revoked`).
    pub(crate) fn revoked() -> Self {
        Self::invalid_token(Reason::Revoked)
    }

    /// The revocation list could not be checked (503 / `UNAVAILABLE`,
    /// `Revocation list unavailable`): a shared list whose local copy is older than its
    /// bound, with the store failing closed.
    pub fn revocation_unavailable() -> Self {
        Self::new(
            AuthErrorKind::KeysUnavailable,
            Reason::RevocationUnavailable,
        )
    }

    /// A policy refusal (403 / `PERMISSION_DENIED`) for use in handlers and adapters.
    pub fn forbidden() -> Self {
        Self::new(AuthErrorKind::Forbidden, Reason::Policy("denied".into()))
    }

    pub(crate) fn forbidden_because(why: String) -> Self {
        Self::new(AuthErrorKind::Forbidden, Reason::Policy(why))
    }

    /// A policy refusal whose reason `why` works out when someone reads it (a log line,
    /// the rejection hook): the request path never pays for words nobody reads.
    pub(crate) fn forbidden_deferred(why: impl Fn() -> String + Send + Sync + 'static) -> Self {
        Self::new(
            AuthErrorKind::Forbidden,
            Reason::Deferred(Deferred(Arc::new(why))),
        )
    }

    /// The crate was used wrongly (500 / `INTERNAL`), for example an extractor that runs
    /// without the layer in front of it.
    pub fn misuse(what: &'static str) -> Self {
        Self::new(AuthErrorKind::Misuse, Reason::Misuse(what))
    }

    /// Which row of the answer table applies.
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The gRPC status code to answer with.
    pub fn grpc_code(&self) -> GrpcCode {
        self.kind.grpc_code()
    }

    /// Whether the token was refused only because it expired (FEDn clients refresh on it).
    pub fn is_expired(&self) -> bool {
        self.reason == Reason::Expired
    }

    /// Whether the token was refused because it was revoked.
    pub fn is_revoked(&self) -> bool {
        self.reason == Reason::Revoked
    }

    /// The row of the answer table this error is answered with.
    pub(crate) fn row(&self) -> Row {
        match (&self.kind, &self.reason) {
            (AuthErrorKind::MissingCredentials, Reason::WrongScheme) => Row::WrongScheme,
            (AuthErrorKind::MissingCredentials, _) => Row::Missing,
            (AuthErrorKind::InvalidRequest, Reason::DotSegment | Reason::BadPath) => {
                Row::InvalidPath
            }
            (AuthErrorKind::InvalidRequest, _) => Row::InvalidRequest,
            (AuthErrorKind::InvalidToken, Reason::Expired) => Row::Expired,
            (AuthErrorKind::InvalidToken, Reason::Revoked) => Row::Revoked,
            (AuthErrorKind::InvalidToken, _) => Row::InvalidToken,
            (AuthErrorKind::Forbidden, _) => Row::Forbidden,
            (AuthErrorKind::KeysUnavailable, Reason::RevocationUnavailable) => {
                Row::RevocationUnavailable
            }
            (AuthErrorKind::KeysUnavailable, Reason::IntrospectionUnavailable) => {
                Row::IntrospectionUnavailable
            }
            (AuthErrorKind::KeysUnavailable, _) => Row::KeysUnavailable,
            (AuthErrorKind::Misuse, _) => Row::Misuse,
        }
    }

    /// The message of an issuer rule's refusal (or a sender-constraint refusal), which
    /// replaces its row's.
    pub(crate) fn rule_message(&self) -> Option<&'static str> {
        match self.reason {
            Reason::IssuerRule { message, .. } | Reason::Sender { message, .. } => Some(message),
            _ => None,
        }
    }

    /// A sender-constraint refusal (RFC 9449, RFC 8705): `code` names the error of the
    /// challenge and body, `message` the fixed text, `detail` what the logs say.
    pub(crate) fn sender(
        kind: AuthErrorKind,
        code: &'static str,
        message: &'static str,
        detail: &'static str,
    ) -> Self {
        Self::new(
            kind,
            Reason::Sender {
                code,
                message,
                detail,
            },
        )
    }

    /// The error code of a sender-constraint refusal (`invalid_dpop_proof`,
    /// `use_dpop_nonce`, `invalid_token`), if this is one.
    pub(crate) fn sender_code(&self) -> Option<&'static str> {
        match self.reason {
            Reason::Sender { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The fixed text sent to the client. It keeps FEDn's words so FEDn clients keep
    /// working, and never holds the token, a key id or a claim value.
    pub fn message(&self) -> String {
        match self.rule_message() {
            Some(message) => message.to_owned(),
            None => self
                .row()
                .message(self.scheme.as_deref().unwrap_or("Bearer"))
                .into_owned(),
        }
    }

    /// The JSON body: `{"error": "<code>", "message": "<fixed text>"}`.
    pub fn body(&self) -> String {
        match (&self.reason, self.rule_message()) {
            (Reason::Sender { code, message, .. }, _)
                if self.kind != AuthErrorKind::KeysUnavailable =>
            {
                serde_json::json!({ "error": code, "message": message }).to_string()
            }
            (_, Some(message)) => body(self.kind, message),
            (_, None) => self.row().body(self.scheme.as_deref().unwrap_or("Bearer")),
        }
    }

    /// The `WWW-Authenticate` value for this rejection, given the scheme name and realm,
    /// or `None` for kinds that carry none (503 and 500).
    ///
    /// RFC 6750 section 3.1: a request without credentials gets the challenge with no
    /// error code; the other 4xx answers name `invalid_request`, `invalid_token` or
    /// `insufficient_scope`.
    pub fn www_authenticate(&self, scheme: &str, realm: &str) -> Option<String> {
        match self.kind {
            AuthErrorKind::KeysUnavailable | AuthErrorKind::Misuse => None,
            kind => Some(match kind.rfc6750_code() {
                Some(code) => format!(r#"{scheme} realm="{realm}", error="{code}""#),
                None => format!(r#"{scheme} realm="{realm}""#),
            }),
        }
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthError")
            .field("kind", &self.kind)
            .field("detail", &format_args!("{self}"))
            .finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Reason::NoHeader => f.write_str("no credentials"),
            Reason::WrongScheme => f.write_str("authorization header has another scheme"),
            Reason::EmptyCredential => f.write_str("empty credential"),
            Reason::MalformedHeader => f.write_str("malformed authorization header"),
            Reason::DuplicateHeader => f.write_str("more than one authorization header"),
            Reason::TooLarge => f.write_str("token larger than the size cap"),
            Reason::DotSegment => f.write_str("request path has a dot segment"),
            Reason::BadPath => f.write_str("request path is not valid"),
            Reason::Malformed(what) => write!(f, "malformed token: {what}"),
            Reason::BadAlgorithm(what) => write!(f, "algorithm refused: {what}"),
            Reason::NoKey(what) => write!(f, "no key: {what}"),
            Reason::BadSignature => f.write_str("invalid signature"),
            Reason::Expired => f.write_str("token expired"),
            Reason::Claim(what) => write!(f, "claim refused: {what}"),
            Reason::ClaimsType(field) => {
                write!(f, "claims do not fit the handler's type at {field}")
            }
            Reason::Policy(why) => write!(f, "forbidden: {why}"),
            Reason::Deferred(why) => write!(f, "forbidden: {}", (why.0)()),
            Reason::RequiredClaim(key) => write!(f, "required claim `{key}` missing or different"),
            Reason::KeysUnavailable => f.write_str("no keys loaded for the issuer"),
            Reason::Misuse(what) => write!(f, "misuse: {what}"),
            Reason::Revoked => f.write_str("token revoked"),
            Reason::RevocationUnavailable => {
                f.write_str("the revocation list's copy is too old to check (fail-closed)")
            }
            Reason::IntrospectionUnavailable => {
                f.write_str("the introspection endpoint did not answer (fail-closed)")
            }
            Reason::IssuerRule { detail, .. } => f.write_str(detail),
            Reason::Sender { detail, .. } => write!(f, "sender constraint: {detail}"),
        }
    }
}

impl std::error::Error for AuthError {}
