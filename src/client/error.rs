//! The one error of token sources.

use std::fmt;
use std::sync::Arc;

/// What went wrong when a source looked for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenErrorKind {
    /// No place had a token; [`TokenError::looked`] lists the places.
    NotFound,
    /// A place held something that is not a usable token, or a file that was named could
    /// not be read. A chain stops here rather than skip a broken setting.
    Invalid,
    /// The token endpoint refused the refresh token or the client credentials (HTTP 400 or
    /// 401). Not retried: the user has to log in again (or fix the credentials).
    Rejected,
    /// The token endpoint could not be reached, or answered something unusable. Retried
    /// after a backoff, never in a loop.
    Unavailable,
}

/// A token source failed. `Display` is lowercase, log-safe and never holds a token, a
/// refresh token or a key.
#[derive(Clone)]
pub struct TokenError {
    kind: TokenErrorKind,
    detail: Arc<str>,
    looked: Arc<[String]>,
}

impl TokenError {
    pub(crate) fn new(kind: TokenErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into().into(),
            looked: Arc::new([]),
        }
    }

    pub(crate) fn not_found(looked: Vec<String>) -> Self {
        Self {
            kind: TokenErrorKind::NotFound,
            detail: "".into(),
            looked: looked.into(),
        }
    }

    pub(crate) fn invalid(place: &str, what: &str) -> Self {
        Self::new(TokenErrorKind::Invalid, format!("{place}: {what}"))
    }

    /// The refresh token was refused (HTTP 400 or 401).
    pub(crate) fn refresh_rejected(status: u16) -> Self {
        Self::new(
            TokenErrorKind::Rejected,
            format!(
                "refresh token invalid or expired, log in again (the token endpoint answered {status})"
            ),
        )
    }

    pub(crate) fn unavailable(detail: impl fmt::Display) -> Self {
        Self::new(
            TokenErrorKind::Unavailable,
            format!("token endpoint unavailable: {detail}"),
        )
    }

    /// What went wrong.
    pub fn kind(&self) -> TokenErrorKind {
        self.kind
    }

    /// The places a [`NotFound`](TokenErrorKind::NotFound) source looked in, in order
    /// (`env FEDN_AUTH_TOKEN`, a file path, ...). Empty for the other kinds.
    pub fn looked(&self) -> impl Iterator<Item = &str> {
        self.looked.iter().map(String::as_str)
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TokenErrorKind::NotFound if self.looked.is_empty() => f.write_str("no token found"),
            TokenErrorKind::NotFound => {
                write!(f, "no token found; looked in {}", self.looked.join(", "))
            }
            _ => f.write_str(&self.detail),
        }
    }
}

impl fmt::Debug for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenError")
            .field("kind", &self.kind)
            .field("message", &self.to_string())
            .finish()
    }
}

impl std::error::Error for TokenError {}

/// The error of [`AddToken`](super::AddToken): the inner service's error, or the
/// [`TokenError`] of the source (downcast to read its kind), boxed as tower's middlewares
/// box theirs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
