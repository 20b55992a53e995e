//! Access records shared through Redis: one versioned document, swapped in whole.
//!
//! In Redis: a hash `<prefix>records` with `version`, `format` (`json` or `toml`) and
//! `body` (the record file's text), written together by one script that also publishes
//! the new version on `<prefix>records:events`. A replica that hears a version it does not
//! hold reads the hash (one command: version and body together), parses it, and swaps the
//! new set in as [`MemoryStore::replace`] does, so every decision sees the old set or the
//! new one, never a mix.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::ChangeError;
use super::options::RedisOptions;
use super::sync::{Replica, SyncStatus, Target};
use crate::access::{MemoryStore, RecordSet, RecordStore};
use crate::error::ConfigError;

/// Writes the document, bumps the version, publishes it.
const PUBLISH: &str = r"
redis.call('HSET', KEYS[1], 'format', ARGV[2], 'body', ARGV[3])
local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('PUBLISH', ARGV[1], v)
return v
";

/// Puts a document back into a Redis that lost it (restarted empty), under its version.
const RESEED: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'version', ARGV[2], 'format', ARGV[3], 'body', ARGV[4])
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return 0
";

/// The document formats, as stored.
fn parse(format: &str, body: &str) -> Result<RecordSet, ConfigError> {
    match format {
        "toml" => RecordSet::from_toml_str(body),
        _ => RecordSet::from_json_str(body),
    }
}

struct Shared {
    store: MemoryStore,
    version: AtomicU64,
    /// The document held (format, body), to put back into a Redis that lost it.
    text: Mutex<Option<(String, String)>>,
    hash: String,
    channel: String,
    publish: redis::Script,
    reseed: redis::Script,
}

impl Shared {
    fn swap(&self, version: u64, format: String, body: String, records: RecordSet) {
        self.store.replace(records);
        self.version.store(version, Relaxed);
        *self.text.lock().unwrap_or_else(|e| e.into_inner()) = Some((format, body));
    }

    async fn full(&self, con: &mut ConnectionManager) -> redis::RedisResult<()> {
        let (version, format, body): (Option<u64>, Option<String>, Option<String>) =
            redis::cmd("HMGET")
                .arg(&self.hash)
                .arg("version")
                .arg("format")
                .arg("body")
                .query_async(con)
                .await?;
        let Some(version) = version else {
            // Redis lost the document (or never had one): put ours back, if any.
            let held = self.text.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some((format, body)) = held {
                tracing::info!("access records: writing back the document Redis lacks");
                let _: i64 = self
                    .reseed
                    .key(&self.hash)
                    .arg(&self.channel)
                    .arg(self.version.load(Relaxed))
                    .arg(format)
                    .arg(body)
                    .invoke_async(con)
                    .await?;
            }
            return Ok(());
        };
        if version == self.version.load(Relaxed) {
            return Ok(());
        }
        let (format, body) = (format.unwrap_or_default(), body.unwrap_or_default());
        match parse(&format, &body) {
            Ok(records) => {
                self.swap(version, format, body, records);
                tracing::debug!(version, "access records updated from Redis");
            }
            Err(e) => {
                // Never swap in a set that does not parse; note the version so the bad
                // document is reported once.
                self.version.store(version, Relaxed);
                tracing::warn!(version, error = %e, "access records in Redis do not parse; keeping the current ones");
            }
        }
        Ok(())
    }
}

impl Target for Shared {
    fn channel(&self) -> String {
        self.channel.clone()
    }

    async fn resync(&self, con: &mut ConnectionManager, _full: bool) -> redis::RedisResult<()> {
        // Reading the version alone saves little over reading the document's fields when
        // it changed; the hash read is one command either way.
        self.full(con).await
    }

    async fn messages(
        &self,
        con: &mut ConnectionManager,
        payloads: &[String],
    ) -> redis::RedisResult<()> {
        // Only the latest version matters: the document is read whole.
        let held = self.version.load(Relaxed);
        let newer = payloads.iter().any(|p| p.trim().parse::<u64>() != Ok(held));
        if newer { self.full(con).await } else { Ok(()) }
    }
}

/// Access records shared by every replica through Redis (feature `redis`): a
/// [`RecordStore`] for [`Authorizer::from_store`](crate::Authorizer::from_store).
///
/// The record set is one versioned document in Redis (the record file's format, JSON or
/// TOML). [`publish_json`](Self::publish_json) checks a new version, writes it and
/// announces it; every replica reads it, checks it again and swaps it in atomically, so
/// `authorize_user` answers by the new set on every replica as soon as Redis delivers the
/// message (and within a resync interval if a message is missed), and never by a mix of
/// two sets. Decisions never wait on Redis: they read the local copy. A document that
/// does not parse is never swapped in. While Redis is away the last set keeps answering;
/// the copy's age is [`copy_age`](Self::copy_age). Before the first sync the set is empty
/// (every request denied).
///
/// ```no_run
/// use portcullis::revoke::{RedisOptions, RedisRecords};
/// use portcullis::Authorizer;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let records = RedisRecords::connect(&RedisOptions::new("redis://127.0.0.1:6379")).await?;
/// let authz = Authorizer::from_store(records.clone());
/// records.publish_json(r#"{"roles": {"reader": ["documents:read"]}, "records": [
///     {"id": "r", "statements": [{"roles": ["reader"], "resources": ["/documents"], "users": ["ada"]}]}
/// ]}"#).await?;
/// assert!(authz.authorize_user("ada", "/documents/A", "documents:read").is_allowed());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRecords {
    inner: Arc<Replica<Shared>>,
}

impl std::fmt::Debug for RedisRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRecords")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl RedisRecords {
    /// Starts the copy and waits for its first sync (at most three times the options'
    /// timeout). Bad options are [`StartError::Config`](crate::StartError::Config); a
    /// Redis that does not answer in time is
    /// [`StartError::Unavailable`](crate::StartError::Unavailable), naming the URL
    /// setting. Use [`start`](Self::start) to go on without waiting.
    pub async fn connect(options: &RedisOptions) -> Result<Self, crate::StartError> {
        let this = Self::start(options)?;
        this.inner.first_sync(options).await?;
        Ok(this)
    }

    /// Starts the copy without waiting (an empty set until the first sync). Must be called
    /// inside a tokio runtime.
    pub fn start(options: &RedisOptions) -> Result<Self, ConfigError> {
        let shared = Shared {
            store: MemoryStore::new(RecordSet::empty()),
            version: AtomicU64::new(0),
            text: Mutex::new(None),
            hash: options.key("records"),
            channel: options.key("records:events"),
            publish: redis::Script::new(PUBLISH),
            reseed: redis::Script::new(RESEED),
        };
        Ok(Self {
            inner: Arc::new(Replica::start(options, "access records", shared)?),
        })
    }

    /// Publishes a new record set, in the JSON record-file format
    /// ([`RecordSet::from_file`]): checked first (an invalid set is refused with the
    /// field that is wrong), written to Redis as the next version, announced, and swapped
    /// in here. Returns the new version.
    pub async fn publish_json(&self, text: &str) -> Result<u64, ChangeError> {
        self.publish("json", text).await
    }

    /// [`publish_json`](Self::publish_json) for the TOML record-file format.
    pub async fn publish_toml(&self, text: &str) -> Result<u64, ChangeError> {
        self.publish("toml", text).await
    }

    async fn publish(&self, format: &str, text: &str) -> Result<u64, ChangeError> {
        let records = parse(format, text).map_err(|e| ChangeError::input(e.to_string()))?;
        let shared = &self.inner.shared;
        let mut con = self.inner.con.clone();
        let call = async {
            shared
                .publish
                .key(&shared.hash)
                .arg(&shared.channel)
                .arg(format)
                .arg(text)
                .invoke_async::<u64>(&mut con)
                .await
        };
        match tokio::time::timeout(self.inner.timeout, call).await {
            Ok(Ok(v)) => {
                // Swapped in here unless a newer version arrived meanwhile.
                if v > shared.version.load(Relaxed) {
                    shared.swap(v, format.to_owned(), text.to_owned(), records);
                }
                Ok(v)
            }
            Ok(Err(e)) => Err(not_published(&e)),
            Err(_) => Err(not_published(&"timed out")),
        }
    }

    /// The version of the set in use here (0 before any).
    pub fn version(&self) -> u64 {
        self.inner.shared.version.load(Relaxed)
    }

    /// Time since Redis last answered this replica: the copy's age (`None` before the
    /// first sync).
    pub fn copy_age(&self) -> Option<Duration> {
        self.inner.health.age()
    }

    /// The copy's age, connection, version and number of records.
    pub fn status(&self) -> SyncStatus {
        self.inner.status(
            self.version(),
            self.inner.shared.store.snapshot().record_count(),
        )
    }
}

fn not_published(e: &dyn std::fmt::Display) -> ChangeError {
    ChangeError::unreachable(format!(
        "Redis did not take the record set ({e}); nothing changed, publish it again"
    ))
}

impl RecordStore for RedisRecords {
    fn snapshot(&self) -> RecordSet {
        self.inner.shared.store.snapshot()
    }
}
