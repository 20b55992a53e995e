//! Replica sync through Redis: the connection, the copy's health, and the background task
//! that keeps a local copy current.
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

use super::options::RedisOptions;
use crate::error::{ConfigError, ConfigErrorKind};

/// Most messages applied in one go.
const MAX_DRAIN: usize = 256;

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
    pub(crate) async fn first_sync(
        &self,
        options: &RedisOptions,
    ) -> Result<(), crate::UnavailableError> {
        if self.health.first_sync(self.timeout * 3).await {
            return Ok(());
        }
        Err(crate::UnavailableError::new(
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
    let failed = |why: &dyn std::fmt::Display| health.failed(why, &url, o.fail_open());
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
            health.check_age(o.fail_open());
        }
        drop(messages);
        tokio::time::sleep(o.resync.min(Duration::from_millis(100))).await;
    }
}
