//! The settings of remote key sets, and the HTTP client you may bring.

use std::time::Duration;

use crate::error::{ConfigError, ConfigErrorKind};

/// Largest body cap the options accept.
const MAX_BODY_CAP: usize = 16 * 1024 * 1024;
/// Most keys the options accept in one set (the strict JSON parser's array cap).
const MAX_KEYS_CAP: usize = 1024;

/// Settings of remote key sets ([`jwks_url`](crate::AuthenticatorBuilder::jwks_url),
/// [`issuer_jwks_url`](crate::AuthenticatorBuilder::issuer_jwks_url),
/// [`oidc_issuer`](crate::AuthenticatorBuilder::oidc_issuer)). Every setting documents its
/// default; times for the cache count in whole seconds.
///
/// ```
/// use std::time::Duration;
/// use portcullis::{Authenticator, JwksOptions};
///
/// let options = JwksOptions::new().ttl(Duration::from_secs(300)).cooldown(Duration::from_secs(10));
/// let auth = Authenticator::builder()
///     .oidc_issuer("https://login.example.com/realms/app")
///     .jwks_options(options)
///     .build()?;
/// # Ok::<(), portcullis::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct JwksOptions {
    ttl: Duration,
    min_max_age: Duration,
    max_max_age: Duration,
    cooldown: Duration,
    stale_age: Duration,
    refresh_ahead: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) timeout: Duration,
    max_bytes: usize,
    max_keys: usize,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
            min_max_age: Duration::from_secs(60),
            max_max_age: Duration::from_secs(3600),
            cooldown: Duration::from_secs(30),
            stale_age: Duration::from_secs(3600),
            refresh_ahead: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            max_bytes: 1024 * 1024,
            max_keys: 100,
        }
    }
}

impl JwksOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a fetched set is used before it is fetched again, when the answer carries
    /// no `Cache-Control: max-age`. Default 10 min (`PORTCULLIS_JWKS_TTL_SECONDS`).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The bounds a `Cache-Control: max-age` (or `no-cache`, read as 0) is clamped to.
    /// Default 1 min to 1 h: an issuer can neither make us fetch on every request nor pin
    /// a removed key for days.
    pub fn max_age_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_max_age = min;
        self.max_max_age = max;
        self
    }

    /// The least time between two fetches caused by unknown `kid`s. Default 30 s
    /// (`PORTCULLIS_JWKS_COOLDOWN_SECONDS`). A flood of made-up kids costs at most one
    /// fetch per cooldown.
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// How long past its TTL the last good set keeps serving while fetches fail. Default
    /// 1 h. After it, requests get 503 until a fetch succeeds.
    pub fn stale_age(mut self, stale_age: Duration) -> Self {
        self.stale_age = stale_age;
        self
    }

    /// A request in this last stretch of the TTL starts a refresh in the background (the
    /// request itself does not wait). Default 30 s, and never more than half the TTL of the
    /// set at hand; zero starts the refresh only once the TTL is over. Either way the refresh runs in the background: while the keys are
    /// usable (see [`stale_age`](Self::stale_age)), no request waits for it.
    pub fn refresh_ahead(mut self, ahead: Duration) -> Self {
        self.refresh_ahead = ahead;
        self
    }

    /// Connect timeout of the HTTP client this crate builds. Default 2 s. A client you
    /// bring keeps its own.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time limit of one fetch, discovery included, from the first byte sent to the last
    /// byte read. Default 5 s. It applies to a client you bring too.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Body size cap of one answer, enforced while the body streams in (a
    /// `Content-Length` is not trusted). Default 1 MiB; at most 16 MiB.
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max;
        self
    }

    /// Most keys one set may hold; a larger set is refused whole. Default 100; at most
    /// 1024.
    pub fn max_keys(mut self, max: usize) -> Self {
        self.max_keys = max;
        self
    }

    pub(super) fn check(&self) -> Result<Timing, ConfigError> {
        let secs = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        if self.ttl.is_zero() {
            return Err(ConfigError::new(
                ConfigErrorKind::RemoteKeys,
                "jwks_ttl",
                "must be at least 1 s",
            ));
        }
        if self.cooldown < Duration::from_secs(1) {
            return Err(ConfigError::new(
                ConfigErrorKind::RemoteKeys,
                "jwks_cooldown",
                "must be at least 1 s, or every unknown kid would fetch the set; the default is 30 s",
            ));
        }
        if self.min_max_age.is_zero() || self.min_max_age > self.max_max_age {
            return Err(ConfigError::new(
                ConfigErrorKind::RemoteKeys,
                "jwks_max_age_bounds",
                "need 0 < min <= max; the default is 60 s to 3600 s",
            ));
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(ConfigError::new(
                ConfigErrorKind::RemoteKeys,
                "jwks_timeout",
                "timeouts must be more than zero (defaults: 2 s connect, 5 s total)",
            ));
        }
        if self.max_bytes == 0 || self.max_bytes > MAX_BODY_CAP {
            return Err(ConfigError::new(
                ConfigErrorKind::RemoteKeys,
                "jwks_max_bytes",
                format!("must be between 1 and {MAX_BODY_CAP} bytes"),
            ));
        }
        if self.max_keys == 0 || self.max_keys > MAX_KEYS_CAP {
            return Err(ConfigError::new(
                ConfigErrorKind::RemoteKeys,
                "jwks_max_keys",
                format!("must be between 1 and {MAX_KEYS_CAP}"),
            ));
        }
        Ok(Timing {
            ttl: secs(self.ttl),
            min_max_age: secs(self.min_max_age),
            max_max_age: secs(self.max_max_age),
            cooldown: secs(self.cooldown),
            stale_age: secs(self.stale_age),
            refresh_ahead: secs(self.refresh_ahead),
            timeout: self.timeout,
            max_bytes: self.max_bytes,
            max_keys: self.max_keys,
        })
    }
}

/// The options in the units the cache works in.
#[derive(Debug, Clone)]
pub(super) struct Timing {
    pub(super) ttl: u64,
    pub(super) min_max_age: u64,
    pub(super) max_max_age: u64,
    pub(super) cooldown: u64,
    pub(super) stale_age: u64,
    pub(super) refresh_ahead: u64,
    pub(super) timeout: Duration,
    pub(super) max_bytes: usize,
    pub(super) max_keys: usize,
}

/// An HTTP client for key sets that you configure yourself (proxy, custom CA, mTLS),
/// given to [`AuthenticatorBuilder::jwks_client`](crate::AuthenticatorBuilder::jwks_client).
///
/// Feature `reqwest-client`: its constructor names a reqwest type, so that feature follows
/// reqwest's major version, not this crate's. Whatever the client's settings, this crate
/// still refuses redirected answers, caps the body and applies
/// [`JwksOptions::timeout`].
#[cfg(feature = "reqwest-client")]
#[derive(Clone)]
pub struct JwksClient {
    pub(super) client: reqwest::Client,
}

#[cfg(feature = "reqwest-client")]
impl JwksClient {
    /// Wraps a reqwest 0.13 client. Configure it without redirects
    /// (`redirect::Policy::none()`): a followed redirect makes every fetch fail.
    pub fn from_reqwest(client: reqwest::Client) -> Self {
        Self { client }
    }
}

#[cfg(feature = "reqwest-client")]
impl std::fmt::Debug for JwksClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksClient").finish_non_exhaustive()
    }
}
