//! [`StartError`] and [`UnavailableError`]: a start-up step that reaches out (loading
//! remote keys, connecting to Redis) failed. Not a configuration error: the settings may
//! be right and the service down.

use std::fmt;

use super::config::ConfigError;

/// A service the settings name did not answer as needed at start: a remote key set
/// served no usable keys ([`Authenticator::load_keys`](crate::Authenticator::load_keys)),
/// or Redis did not answer within its timeout (`RedisRevocations::connect`, feature
/// `redis`).
///
/// The settings may be right: retry later, or start without waiting (keys load on first
/// use; `RedisRevocations::start` refuses tokens with 503 until its first sync).
/// [`setting`](Self::setting) names what was being reached; `Display` shows
/// `{setting}: {message}`.
///
/// ```
/// # #[cfg(feature = "jwks")]
/// # async fn run() {
/// use portcullis::Authenticator;
///
/// // Nothing listens on port 9 of loopback.
/// let auth = Authenticator::builder()
///     .jwks_url("https://127.0.0.1:9/jwks.json")
///     .build()
///     .expect("the settings are valid");
/// let err = auth.load_keys().await.unwrap_err();
/// assert_eq!(err.setting(), "jwks_url");
/// assert!(err.message().starts_with("no keys from `https://127.0.0.1:9/jwks.json`"));
/// # }
/// # #[cfg(feature = "jwks")]
/// # tokio::runtime::Runtime::new().unwrap().block_on(run());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnavailableError {
    setting: String,
    message: String,
}

impl UnavailableError {
    #[cfg_attr(not(any(feature = "jwks", feature = "redis")), allow(dead_code))]
    pub(crate) fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            message: message.into(),
        }
    }

    /// The setting that names the service (`jwks_url`, `PORTCULLIS_REDIS_URL`, ...).
    pub fn setting(&self) -> &str {
        &self.setting
    }

    /// What did not answer, and why when known, without the setting.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for UnavailableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

impl std::error::Error for UnavailableError {}

/// Why a start that both checks settings and reaches a service failed
/// (`RedisRevocations::connect`, `RedisRecords::connect`, feature `redis`): the settings
/// are wrong ([`Config`](Self::Config), fix them), or they are valid and the service did
/// not answer ([`Unavailable`](Self::Unavailable), retry or start without waiting).
///
/// Both carry the setting they are about; `?` turns either into a `StartError`.
///
/// ```
/// use portcullis::{ConfigError, StartError};
///
/// fn advice(err: &StartError) -> &'static str {
///     match err {
///         StartError::Config(_) => "fix the setting",
///         StartError::Unavailable(_) => "check that the server runs, or start without waiting",
///         _ => "see the message",
///     }
/// }
/// # let _ = advice;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartError {
    /// The settings are wrong.
    Config(ConfigError),
    /// The settings are valid; the service they name did not answer as needed.
    Unavailable(UnavailableError),
}

impl StartError {
    /// The setting the error is about.
    pub fn setting(&self) -> &str {
        match self {
            Self::Config(e) => e.setting(),
            Self::Unavailable(e) => e.setting(),
        }
    }

    /// True when the service did not answer (the settings may be right).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl From<UnavailableError> for StartError {
    fn from(e: UnavailableError) -> Self {
        Self::Unavailable(e)
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => e.fmt(f),
            Self::Unavailable(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(e) => Some(e),
            Self::Unavailable(e) => Some(e),
        }
    }
}
