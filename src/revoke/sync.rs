//! Replica sync through Redis: the options, the connection, the copy's health, and the
//! background task that keeps a local copy current.
//!
//! Each shared object (the revocation list, the access records) lives in Redis under a
//! version number. A change bumps the version and is published on a channel; each replica
//! subscribes, applies what it hears, and every resync interval compares its version with
//! Redis's (a full resync on any difference, which also heals missed messages). Redis
//! going away costs nothing on the request path: the local copy keeps serving, the task
//! reconnects and resyncs by itself, and the copy's age tells how current it is.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::{Instant, timeout, timeout_at};

use crate::error::{ConfigError, ConfigErrorKind};

/// Default prefix of every Redis key and channel.
const DEFAULT_PREFIX: &str = "portcullis:";
/// Default resync interval.
const DEFAULT_RESYNC: Duration = Duration::from_secs(1);
/// Default bound on the copy's age before tokens are refused (fail-closed).
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(10);
/// Most messages applied in one go.
const MAX_DRAIN: usize = 256;
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
    url_setting: &'static str,
    prefix: String,
    resync: Duration,
    max_age: Duration,
    fail_open: bool,
    keep_after_exp: u64,
    timeout: Duration,
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
    fn client(&self) -> Result<redis::Client, ConfigError> {
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

/// How current a replica's copy is: for metrics and health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncStatus {
    /// Time since Redis last answered this replica (`None`: never yet).
    pub age: Option<Duration>,
    /// Whether the last exchange with Redis succeeded.
    pub connected: bool,
    /// The version of the copy (bumped by every change).
    pub version: u64,
    /// Entries in the copy (revocations; records for an access-record store).
    pub entries: usize,
}

/// The copy's health, shared by the task and the request path.
pub(crate) struct Health {
    what: &'static str,
    base: Instant,
    /// Milliseconds from `base` to the last answer from Redis; `u64::MAX`: never.
    last_ms: AtomicU64,
    /// Older than the bound, or never synced, or the task is gone.
    stale: AtomicBool,
    /// In an outage (for logging once).
    outage: AtomicBool,
    first: tokio::sync::Notify,
    max_age: Duration,
}

impl Health {
    pub(crate) fn new(what: &'static str, max_age: Duration) -> Self {
        Self {
            what,
            base: Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
            stale: AtomicBool::new(true),
            outage: AtomicBool::new(false),
            first: tokio::sync::Notify::new(),
            max_age,
        }
    }

    /// Whether the copy is older than its bound (one atomic load).
    pub(crate) fn is_stale(&self) -> bool {
        self.stale.load(Relaxed)
    }

    pub(crate) fn age(&self) -> Option<Duration> {
        match self.last_ms.load(Relaxed) {
            u64::MAX => None,
            ms => Some(
                Instant::now().saturating_duration_since(self.base + Duration::from_millis(ms)),
            ),
        }
    }

    pub(crate) fn connected(&self) -> bool {
        !self.outage.load(Relaxed) && self.last_ms.load(Relaxed) != u64::MAX
    }

    /// Redis answered.
    fn contact(&self) {
        let ms = Instant::now()
            .saturating_duration_since(self.base)
            .as_millis() as u64;
        let first = self.last_ms.swap(ms, Relaxed) == u64::MAX;
        self.stale.store(false, Relaxed);
        if self.outage.swap(false, Relaxed) {
            tracing::info!(
                what = self.what,
                "Redis reachable again; the local copy is resynced"
            );
        }
        if first {
            self.first.notify_waiters();
        }
    }

    /// Redis did not answer: logged at warn once per outage.
    fn failed(&self, why: &dyn std::fmt::Display, url: &str, fail_open: bool) {
        if !self.outage.swap(true, Relaxed) {
            tracing::warn!(
                what = self.what,
                url,
                error = %why,
                max_age_seconds = self.max_age.as_secs_f64(),
                fail_open,
                "Redis unreachable; the local copy keeps serving, reconnecting in the background"
            );
        }
        self.check_age(fail_open);
    }

    /// Marks the copy stale once it is older than the bound.
    fn check_age(&self, fail_open: bool) {
        let old = self.age().is_none_or(|a| a > self.max_age);
        if old && !self.stale.swap(true, Relaxed) {
            tracing::error!(
                what = self.what,
                fail_open,
                "the local copy is older than its bound: {}",
                if fail_open {
                    "answering from it anyway (fail-open)"
                } else {
                    "refusing tokens with 503 until Redis answers (fail-closed)"
                }
            );
        }
    }

    /// Waits until the first sync, at most `within`.
    pub(crate) async fn first_sync(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.first.notified();
            if self.last_ms.load(Relaxed) != u64::MAX {
                return true;
            }
            if timeout_at(deadline, notified).await.is_err() {
                return self.last_ms.load(Relaxed) != u64::MAX;
            }
        }
    }
}

/// Marks the copy stale when the task ends (runtime shut down, handle dropped): a copy
/// nobody keeps current must not pass for a fresh one.
struct StaleOnDrop(Arc<Health>);

impl Drop for StaleOnDrop {
    fn drop(&mut self) {
        self.0.stale.store(true, Relaxed);
    }
}

/// Aborts the sync task when the last handle goes.
pub(crate) struct Task(tokio::task::AbortHandle);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the task keeps current.
pub(crate) trait Target: Send + Sync + 'static {
    /// The channel changes are published on.
    fn channel(&self) -> String;
    /// Compares versions with Redis (and purges); a full resync when they differ or when
    /// `full`.
    fn resync(
        &self,
        con: &mut ConnectionManager,
        full: bool,
    ) -> impl Future<Output = redis::RedisResult<()>> + Send;
    /// Applies published messages, in order (or resyncs if it cannot).
    fn messages(
        &self,
        con: &mut ConnectionManager,
        payloads: &[String],
    ) -> impl Future<Output = redis::RedisResult<()>> + Send;
}

/// The connection pieces a shared object needs.
struct Conn {
    client: redis::Client,
    /// For changes (revocations, new record sets).
    pub(crate) con: ConnectionManager,
    /// For the sync task.
    sync: ConnectionManager,
}

/// One replica's copy of state shared through Redis: the state, the copy's health, a
/// connection for changes, and the task that keeps the copy current (stopped when the
/// replica is dropped). The revocation list and the access records are each one.
pub(crate) struct Replica<T: Target> {
    pub(crate) shared: Arc<T>,
    pub(crate) health: Arc<Health>,
    /// For changes (revocations, new record sets); the task has its own.
    pub(crate) con: ConnectionManager,
    pub(crate) timeout: Duration,
    _task: Task,
}

impl<T: Target> Replica<T> {
    /// Opens the connections and starts the task, without waiting for Redis. Needs a tokio
    /// runtime. `what` names the copy in logs.
    pub(crate) fn start(
        options: &RedisOptions,
        what: &'static str,
        shared: T,
    ) -> Result<Self, ConfigError> {
        let conn = open(options)?;
        let shared = Arc::new(shared);
        let health = Arc::new(Health::new(what, options.max_age_value()));
        let task = spawn(shared.clone(), &conn, health.clone(), options);
        Ok(Self {
            shared,
            health,
            con: conn.con,
            timeout: options.timeout_value(),
            _task: task,
        })
    }

    /// Waits for the first sync (at most three times the options' timeout); no answer is
    /// an error naming the URL setting.
    pub(crate) async fn first_sync(&self, options: &RedisOptions) -> Result<(), ConfigError> {
        if self.health.first_sync(self.timeout * 3).await {
            return Ok(());
        }
        Err(ConfigError::new(
            ConfigErrorKind::Redis,
            options.url_setting(),
            format!(
                "no answer from Redis at `{}`; check the URL and that the server runs",
                options.url_redacted()
            ),
        ))
    }

    /// The copy's age and connection, with the state's version and size.
    pub(crate) fn status(&self, version: u64, entries: usize) -> SyncStatus {
        SyncStatus {
            age: self.health.age(),
            connected: self.health.connected(),
            version,
            entries,
        }
    }
}

/// Opens the client and a lazy connection manager. Needs a tokio runtime (with IO and
/// timers).
fn open(options: &RedisOptions) -> Result<Conn, ConfigError> {
    let client = options.client()?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(ConfigError::new(
            ConfigErrorKind::Redis,
            options.url_setting,
            "Redis sync needs a tokio runtime; build it from inside one (#[tokio::main])",
        ));
    }
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(options.resync)
        .set_connection_timeout(Some(options.timeout))
        .set_response_timeout(Some(options.timeout));
    let manager = || {
        ConnectionManager::new_lazy_with_config(client.clone(), config.clone()).map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::Redis,
                options.url_setting,
                format!("cannot start the Redis client: {e}"),
            )
        })
    };
    // The sync task has its own connection: a full resync never delays a change.
    let (con, sync) = (manager()?, manager()?);
    Ok(Conn { client, con, sync })
}

/// Starts the task that keeps `target` current.
fn spawn<T: Target>(
    target: Arc<T>,
    conn: &Conn,
    health: Arc<Health>,
    options: &RedisOptions,
) -> Task {
    let handle = tokio::spawn(run(
        target,
        conn.client.clone(),
        conn.sync.clone(),
        health,
        options.clone(),
    ));
    Task(handle.abort_handle())
}

fn text(msg: &redis::Msg) -> String {
    String::from_utf8_lossy(msg.get_payload_bytes()).into_owned()
}

async fn run<T: Target>(
    target: Arc<T>,
    client: redis::Client,
    mut con: ConnectionManager,
    health: Arc<Health>,
    o: RedisOptions,
) {
    let _stale = StaleOnDrop(health.clone());
    let url = o.url_redacted();
    let channel = target.channel();
    let failed = |why: &dyn std::fmt::Display| health.failed(why, &url, o.fail_open);
    loop {
        let subscribed = timeout(o.timeout, async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(ps)
        })
        .await;
        let mut ps = match subscribed {
            Ok(Ok(ps)) => ps,
            Ok(Err(e)) => {
                failed(&e);
                tokio::time::sleep(o.resync).await;
                continue;
            }
            Err(_) => {
                failed(&"connection timed out");
                tokio::time::sleep(o.resync).await;
                continue;
            }
        };
        // Subscribed first, then a full resync: nothing published in between is lost.
        match timeout(o.timeout, target.resync(&mut con, true)).await {
            Ok(Ok(())) => health.contact(),
            Ok(Err(e)) => {
                failed(&e);
                tokio::time::sleep(o.resync).await;
                continue;
            }
            Err(_) => {
                failed(&"resync timed out");
                continue;
            }
        }
        let mut messages = ps.on_message();
        let mut tick = Instant::now() + o.resync;
        loop {
            match timeout_at(tick, messages.next()).await {
                Ok(Some(msg)) => {
                    // Every message already here is applied in one go: a replica that
                    // falls behind catches up in larger steps.
                    let mut payloads = vec![text(&msg)];
                    while payloads.len() < MAX_DRAIN {
                        match messages.next().now_or_never() {
                            Some(Some(msg)) => payloads.push(text(&msg)),
                            _ => break,
                        }
                    }
                    match timeout(o.timeout, target.messages(&mut con, &payloads)).await {
                        Ok(Ok(())) => health.contact(),
                        Ok(Err(e)) => failed(&e),
                        Err(_) => failed(&"command timed out"),
                    }
                }
                Ok(None) => {
                    failed(&"the pub/sub connection closed");
                    break;
                }
                Err(_) => {
                    tick = Instant::now() + o.resync;
                    match timeout(o.timeout, target.resync(&mut con, false)).await {
                        Ok(Ok(())) => health.contact(),
                        Ok(Err(e)) => {
                            failed(&e);
                            break;
                        }
                        Err(_) => {
                            failed(&"resync timed out");
                            break;
                        }
                    }
                }
            }
            health.check_age(o.fail_open);
        }
        drop(messages);
        tokio::time::sleep(o.resync.min(Duration::from_millis(100))).await;
    }
}
