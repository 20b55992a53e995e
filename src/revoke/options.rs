//! Where the shared state lives in Redis, and how replicas keep their copies of it: the
//! options, from code or from `PORTCULLIS_REDIS_*`.

use std::time::Duration;

use crate::error::{ConfigError, ConfigErrorKind};

/// Default prefix of every Redis key and channel.
const DEFAULT_PREFIX: &str = "portcullis:";
/// Default resync interval.
const DEFAULT_RESYNC: Duration = Duration::from_secs(1);
/// Default bound on the copy's age before tokens are refused (fail-closed).
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(10);
/// Longest wait for one connection or command.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the shared state lives in Redis, and how replicas keep their copies of it.
///
/// | setting | environment | default |
/// |---|---|---|
/// | [`new`](Self::new) (the URL) | `PORTCULLIS_REDIS_URL` | none |
/// | [`key_prefix`](Self::key_prefix) | `PORTCULLIS_REDIS_KEY_PREFIX` | `portcullis:` |
/// | [`resync_interval`](Self::resync_interval) | `PORTCULLIS_REDIS_RESYNC_SECONDS` | 1 s |
/// | [`max_age`](Self::max_age) | `PORTCULLIS_REDIS_MAX_AGE_SECONDS` | 10 s |
/// | [`dangerous().fail_open()`](DangerousRedisOptions::fail_open) | `PORTCULLIS_REDIS_FAIL_OPEN` | `false` (fail-closed) |
/// | [`keep_after_exp`](Self::keep_after_exp) | `PORTCULLIS_REDIS_KEEP_AFTER_EXP_SECONDS` | 300 s |
///
/// URLs: `redis://[user:password@]host[:port][/db]`, `rediss://...` for TLS (rustls, the
/// platform's root certificates), `redis+unix:///path/to.sock`. Sentinel and Cluster are
/// not supported yet: point the URL at the current primary (or a proxy in front of it).
///
/// ```
/// use std::time::Duration;
/// use portcullis::revoke::RedisOptions;
///
/// let options = RedisOptions::new("redis://127.0.0.1:6379")
///     .key_prefix("api-prod:")
///     .resync_interval(Duration::from_millis(500))
///     .max_age(Duration::from_secs(30));
/// assert_eq!(options.prefix(), "api-prod:");
///
/// let env = |name: &str| (name == "PORTCULLIS_REDIS_URL").then(|| "rediss://redis.internal".to_owned());
/// assert!(RedisOptions::from_lookup(env)?.is_some());
/// assert!(RedisOptions::from_lookup(|_| None)?.is_none());
/// # Ok::<(), portcullis::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RedisOptions {
    url: String,
    /// The environment variable the URL came from, for errors.
    pub(super) url_setting: &'static str,
    prefix: String,
    pub(super) resync: Duration,
    max_age: Duration,
    fail_open: bool,
    keep_after_exp: u64,
    pub(super) timeout: Duration,
}

/// A URL without its password, for logs and errors.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}<redacted>@{}", &url[..s + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &redacted(&self.url))
            .field("prefix", &self.prefix)
            .field("resync", &self.resync)
            .field("max_age", &self.max_age)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

fn seconds(name: &str, v: &str) -> Result<Duration, ConfigError> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            ConfigError::new(
                ConfigErrorKind::Redis,
                name,
                "not a number of seconds above 0 (such as 1 or 0.5)",
            )
        })
}

impl RedisOptions {
    /// Options for the Redis server at `url`, with the defaults of the table above.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            url_setting: "redis_url",
            prefix: DEFAULT_PREFIX.to_owned(),
            resync: DEFAULT_RESYNC,
            max_age: DEFAULT_MAX_AGE,
            fail_open: false,
            keep_after_exp: super::KEEP_AFTER_EXP,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Reads the `PORTCULLIS_REDIS_*` variables; `None` when `PORTCULLIS_REDIS_URL` is
    /// unset or empty. Bad values are errors naming the variable.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) through `lookup` (a variable name to its value).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let Some(url) = get("PORTCULLIS_REDIS_URL") else {
            for name in [
                "PORTCULLIS_REDIS_KEY_PREFIX",
                "PORTCULLIS_REDIS_RESYNC_SECONDS",
                "PORTCULLIS_REDIS_MAX_AGE_SECONDS",
                "PORTCULLIS_REDIS_FAIL_OPEN",
                "PORTCULLIS_REDIS_KEEP_AFTER_EXP_SECONDS",
            ] {
                if get(name).is_some() {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Redis,
                        name,
                        "is set but PORTCULLIS_REDIS_URL is not; set the URL too, or unset it",
                    ));
                }
            }
            return Ok(None);
        };
        let mut o = Self::new(url.trim());
        o.url_setting = "PORTCULLIS_REDIS_URL";
        if let Some(p) = get("PORTCULLIS_REDIS_KEY_PREFIX") {
            o.prefix = p.trim().to_owned();
        }
        if let Some(v) = get("PORTCULLIS_REDIS_RESYNC_SECONDS") {
            o.resync = seconds("PORTCULLIS_REDIS_RESYNC_SECONDS", &v)?;
        }
        if let Some(v) = get("PORTCULLIS_REDIS_MAX_AGE_SECONDS") {
            o.max_age = seconds("PORTCULLIS_REDIS_MAX_AGE_SECONDS", &v)?;
        }
        if let Some(v) = get("PORTCULLIS_REDIS_FAIL_OPEN") {
            o.fail_open = match v.trim() {
                "true" | "1" => {
                    tracing::warn!(
                        "PORTCULLIS_REDIS_FAIL_OPEN is set: while the revocation list's copy is older than its bound, revoked tokens may be accepted"
                    );
                    true
                }
                "false" | "0" => false,
                _ => {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Redis,
                        "PORTCULLIS_REDIS_FAIL_OPEN",
                        "use `true` or `false`",
                    ));
                }
            };
        }
        if let Some(v) = get("PORTCULLIS_REDIS_KEEP_AFTER_EXP_SECONDS") {
            o.keep_after_exp = v.trim().parse().map_err(|_| {
                ConfigError::new(
                    ConfigErrorKind::Redis,
                    "PORTCULLIS_REDIS_KEEP_AFTER_EXP_SECONDS",
                    "not a whole number of seconds",
                )
            })?;
        }
        Ok(Some(o))
    }

    /// The prefix of every key and channel (`PORTCULLIS_REDIS_KEY_PREFIX`). Default
    /// `portcullis:`. Replicas that share state use the same prefix; services that must not
    /// share use different ones.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How often a replica compares its copy's version with Redis's, and retries while
    /// Redis is away (`PORTCULLIS_REDIS_RESYNC_SECONDS`). Default 1 s. Changes normally
    /// arrive at once by pub/sub; this bounds how long a missed message goes unnoticed.
    pub fn resync_interval(mut self, every: Duration) -> Self {
        self.resync = every;
        self
    }

    /// How old the local copy of the revocation list may get (time since Redis last
    /// answered) before tokens are refused with 503 `Revocation list unavailable`
    /// (`PORTCULLIS_REDIS_MAX_AGE_SECONDS`). Default 10 s. The copy keeps serving until
    /// then.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// Settings that weaken the list's guarantees, each documented with its risk:
    /// [`DangerousRedisOptions::fail_open`].
    pub fn dangerous(self) -> DangerousRedisOptions {
        DangerousRedisOptions { inner: self }
    }

    /// How long an entry is kept past its expiry, in seconds, in Redis and in each copy
    /// (`PORTCULLIS_REDIS_KEEP_AFTER_EXP_SECONDS`). Default 300, the largest leeway an
    /// authenticator accepts. Risky below the authenticators' leeway: a revoked token past
    /// its `exp` but within the leeway would be accepted again. Use the same value on every
    /// replica.
    pub fn keep_after_exp(mut self, seconds: u64) -> Self {
        self.keep_after_exp = seconds;
        self
    }

    /// The longest wait for one connection attempt or command. Default 2 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub(crate) fn max_age_value(&self) -> Duration {
        self.max_age
    }

    pub(crate) fn timeout_value(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn fail_open(&self) -> bool {
        self.fail_open
    }

    pub(crate) fn keep(&self) -> u64 {
        self.keep_after_exp
    }

    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub(crate) fn url_setting(&self) -> &'static str {
        self.url_setting
    }

    /// The URL with its password (if any) replaced by `***`: safe to log or print.
    ///
    /// ```
    /// use portcullis::revoke::RedisOptions;
    ///
    /// let o = RedisOptions::new("redis://app:s3cret@127.0.0.1:6379/0");
    /// assert!(!o.url_redacted().contains("s3cret"));
    /// ```
    pub fn url_redacted(&self) -> String {
        redacted(&self.url)
    }

    /// Checks the settings and opens the client (no connection yet).
    pub(super) fn client(&self) -> Result<redis::Client, ConfigError> {
        if self.resync.is_zero() || self.max_age.is_zero() || self.timeout.is_zero() {
            return Err(ConfigError::new(
                ConfigErrorKind::Redis,
                "redis",
                "the resync interval, the maximum age and the timeout must be above 0",
            ));
        }
        redis::Client::open(self.url.as_str()).map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::Redis, self.url_setting,
                format!(
                    "`{}` is not a Redis URL ({e}); use redis://host:port, rediss://host:port or redis+unix:///path",
                    redacted(&self.url)
                ),
            )
            .with_source(e)
        })
    }
}

/// The risky settings of [`RedisOptions`], reached through
/// [`RedisOptions::dangerous`] so that each stands out in review.
///
/// ```
/// use portcullis::revoke::RedisOptions;
///
/// let options = RedisOptions::new("redis://127.0.0.1:6379").dangerous().fail_open();
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct DangerousRedisOptions {
    inner: RedisOptions,
}

impl DangerousRedisOptions {
    /// Risk: while Redis is unreachable for longer than
    /// [`max_age`](RedisOptions::max_age), tokens revoked meanwhile on other replicas are
    /// accepted here. Keeps answering from the old copy past the bound
    /// (`PORTCULLIS_REDIS_FAIL_OPEN=true`) instead of refusing every token with 503 (the
    /// default, fail-closed).
    pub fn fail_open(mut self) -> RedisOptions {
        self.inner.fail_open = true;
        self.inner
    }
}
