//! The revocation list shared through Redis.
//!
//! In Redis: a sorted set `<prefix>revoked` whose members are the entries and whose scores
//! are their expiries (purged by score), a counter `<prefix>revoked:version`, a hash
//! `<prefix>revoked:log` holding each version's entries (the last [`LOG`] versions), and a
//! channel `<prefix>revoked:events` on which each new version number is announced. Each
//! change (a batch of at most 1,000 entries; larger changes are several batches) is one Lua
//! script, so the entries, the version and the log move together.
//!
//! A replica takes versions and entries only from Redis's own state: a message is a hint
//! to catch up, never data. On a message, and every resync interval, it reads the counter
//! and the log entries of the versions it lacks; a gap the log no longer covers, or a
//! counter behind its own (a restarted Redis), is a full resync. So a forged or malformed
//! message costs at most one catch-up and can never make a replica skip a change.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use serde_json::{Value, json};

use super::options::RedisOptions;
use super::sync::{Replica, SyncStatus, Target};
use super::{ChangeError, Key, List, Revocation, RevocationStore, TokenRef, Verdict};
use crate::error::ConfigError;
use crate::jose::hex;

/// Most entries written by one script (one version).
const BATCH: usize = 1_000;

/// How many versions the log keeps: a replica further behind resyncs in full.
pub(crate) const LOG: u64 = 256;

/// Adds entries (score = expiry, kept at the later one), bumps the version, logs the
/// version's entries (dropping the one `LOG` versions back), announces the version.
const REVOKE: &str = r"
for i = 4, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], 'GT', ARGV[i], ARGV[i + 1])
end
local v = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[3], v, ARGV[2])
redis.call('HDEL', KEYS[3], v - tonumber(ARGV[3]))
redis.call('PUBLISH', ARGV[1], v)
return v
";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The Redis member of an entry.
fn member(r: &Revocation) -> String {
    match &r.key {
        Key::Jti { iss, jti } => json!(["j", iss, jti]),
        Key::Subject { iss, sub } => json!(["s", iss, sub, r.before]),
        Key::Token(h) => json!(["t", hex(h)]),
    }
    .to_string()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// An entry from its Redis member and score; `None` for anything else.
fn parse(member: &str, expires_at: u64) -> Option<Revocation> {
    let v: Vec<Value> = serde_json::from_str(member).ok()?;
    let s = |i: usize| v.get(i).and_then(Value::as_str);
    match (s(0)?, v.len()) {
        ("j", 3) => Some(Revocation::jti(s(1)?, s(2)?, expires_at)),
        ("s", 4) => Some(Revocation::subject(
            s(1)?,
            s(2)?,
            v[3].as_u64()?,
            expires_at,
        )),
        ("t", 2) => Some(Revocation::token_sha256(unhex(s(1)?)?, expires_at)),
        _ => None,
    }
}

/// The list, its version, and where it lives in Redis.
struct Shared {
    list: List,
    version: AtomicU64,
    zset: String,
    version_key: String,
    log_key: String,
    channel: String,
    keep: u64,
    timeout: Duration,
    script: redis::Script,
}

impl Shared {
    fn cutoff(&self) -> u64 {
        now().saturating_sub(self.keep)
    }

    /// Writes entries to Redis in batches; returns the last version.
    async fn write(
        &self,
        con: &mut ConnectionManager,
        revs: &[Revocation],
    ) -> redis::RedisResult<u64> {
        let mut v: u64 = 0;
        for chunk in revs.chunks(BATCH) {
            let inline = Value::Array(
                chunk
                    .iter()
                    .map(|r| json!([member(r), r.expires_at]))
                    .collect(),
            )
            .to_string();
            let mut call = self.script.key(&self.zset);
            call.key(&self.version_key)
                .key(&self.log_key)
                .arg(&self.channel)
                .arg(inline)
                .arg(LOG);
            for r in chunk {
                call.arg(r.expires_at).arg(member(r));
            }
            v = match tokio::time::timeout(self.timeout, call.invoke_async(con)).await {
                Ok(v) => v?,
                Err(_) => {
                    return Err(redis::RedisError::from(std::io::Error::from(
                        std::io::ErrorKind::TimedOut,
                    )));
                }
            };
            // Our own change, right after the version we hold: we already hold it.
            let _ = self
                .version
                .compare_exchange(v.saturating_sub(1), v, Relaxed, Relaxed);
        }
        Ok(v)
    }

    /// Replaces nothing: merges Redis's entries into the copy, and writes back what Redis
    /// lacks (a restarted Redis, revocations made while it was away).
    async fn full(&self, con: &mut ConnectionManager) -> redis::RedisResult<()> {
        let cutoff = self.cutoff();
        let (version, members): (Option<u64>, Vec<(String, f64)>) = redis::pipe()
            .atomic()
            .cmd("GET")
            .arg(&self.version_key)
            .cmd("ZRANGEBYSCORE")
            .arg(&self.zset)
            .arg(cutoff)
            .arg("+inf")
            .arg("WITHSCORES")
            .query_async(con)
            .await?;
        let remote: Vec<Revocation> = members
            .iter()
            .filter_map(|(m, score)| parse(m, *score as u64))
            .collect();
        self.list.insert(remote.iter().cloned(), cutoff);
        let mut held: HashMap<&Key, (u64, u64)> = HashMap::with_capacity(remote.len());
        for r in &remote {
            let e = held.entry(&r.key).or_insert((0, 0));
            *e = (e.0.max(r.before), e.1.max(r.expires_at));
        }
        let missing: Vec<Revocation> = self
            .list
            .all()
            .into_iter()
            .filter(|r| {
                r.expires_at >= cutoff
                    && held
                        .get(&r.key)
                        .is_none_or(|&(b, e)| b < r.before || e < r.expires_at)
            })
            .collect();
        // The copy now holds Redis's version. A write-back moves it on only when no other
        // replica's change came in between (the compare-and-swap in `write`); otherwise
        // the messages of those changes, or the next check, bring them.
        self.version.store(version.unwrap_or(0), Relaxed);
        if !missing.is_empty() {
            tracing::info!(
                entries = missing.len(),
                "revocation list: writing back entries Redis lacks"
            );
            self.write(con, &missing).await?;
        }
        Ok(())
    }
}

impl Target for Shared {
    fn channel(&self) -> String {
        self.channel.clone()
    }

    async fn resync(&self, con: &mut ConnectionManager, full: bool) -> redis::RedisResult<()> {
        let cutoff = self.cutoff();
        self.list.purge(cutoff);
        if full {
            return self.full(con).await;
        }
        let _: u64 = redis::cmd("ZREMRANGEBYSCORE")
            .arg(&self.zset)
            .arg("-inf")
            .arg(format!("({cutoff}"))
            .query_async(con)
            .await?;
        self.catch_up(con).await
    }

    async fn messages(
        &self,
        con: &mut ConnectionManager,
        _payloads: &[String],
    ) -> redis::RedisResult<()> {
        // A message only says that something may have changed: what changed is read from
        // Redis, so a forged message cannot move a version or skip a change.
        self.catch_up(con).await
    }
}

impl Shared {
    /// Brings the copy up to Redis's version from the log, or in full when the log does
    /// not cover the gap (or Redis is behind the copy: restarted and emptied).
    async fn catch_up(&self, con: &mut ConnectionManager) -> redis::RedisResult<()> {
        let remote: Option<u64> = redis::cmd("GET")
            .arg(&self.version_key)
            .query_async(con)
            .await?;
        let remote = remote.unwrap_or(0);
        let local = self.version.load(Relaxed);
        if remote == local {
            return Ok(());
        }
        if remote < local || remote - local > LOG {
            return self.full(con).await;
        }
        let mut get = redis::cmd("HMGET");
        get.arg(&self.log_key);
        for v in local + 1..=remote {
            get.arg(v);
        }
        let logged: Vec<Option<String>> = get.query_async(con).await?;
        let mut revs = Vec::new();
        for entries in &logged {
            let batch: Option<Vec<Revocation>> = entries
                .as_deref()
                .and_then(|e| serde_json::from_str::<Vec<(String, u64)>>(e).ok())
                .and_then(|e| e.iter().map(|(m, exp)| parse(m, *exp)).collect());
            match batch {
                Some(batch) => revs.extend(batch),
                // Trimmed from the log, or not readable: read everything.
                None => return self.full(con).await,
            }
        }
        self.list.insert(revs, self.cutoff());
        let _ = self
            .version
            .compare_exchange(local, remote, Relaxed, Relaxed);
        Ok(())
    }
}

/// A revocation list shared by every replica through Redis (feature `redis`).
///
/// The list lives in Redis, each entry with its expiry; each replica holds a local copy,
/// updated by pub/sub as changes happen and compared with Redis's version every resync
/// interval, so [`check`](RevocationStore::check) is a local look-up: no I/O, no lock,
/// no allocation. A revocation made on one replica reaches the others as fast as Redis
/// publishes it (well under a second on a LAN).
///
/// When Redis is unreachable the local copy keeps serving; the outage is logged at warn
/// level once; the client reconnects and resyncs by itself; revocations made meanwhile
/// hold on their replica at once and are written to Redis when it is back (a replica also
/// writes back whatever a restarted, emptied Redis lacks). Past
/// [`RedisOptions::max_age`] without an answer from Redis, tokens are refused with 503
/// `Revocation list unavailable` (fail-closed) unless
/// [`RedisOptions::dangerous`]`.fail_open()` is set. [`copy_age`](Self::copy_age) reports the
/// copy's age for metrics.
///
/// Cheap to clone (one `Arc`); the background task stops when the last clone is dropped.
/// Needs a tokio runtime with IO and timers.
///
/// ```no_run
/// use portcullis::revoke::{RedisOptions, RedisRevocations};
/// use portcullis::Authenticator;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let revocations = RedisRevocations::connect(&RedisOptions::new("redis://127.0.0.1:6379")).await?;
/// let auth = Authenticator::builder()
///     .hmac_secret(std::env::var("FEDN_JWT_SECRET_KEY")?)
///     .revocations(revocations.clone())
///     .build()?;
/// // Later, on any replica (or from an admin tool):
/// revocations.revoke_jti("https://issuer.example", "4f1c", 1_700_003_600).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRevocations {
    inner: Arc<Inner>,
}

struct Inner {
    replica: Replica<Shared>,
    fail_open: bool,
    /// The prefix of the DPoP `jti` keys (`<prefix>dpop:jti:`).
    dpop_prefix: String,
}

impl std::fmt::Debug for RedisRevocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRevocations")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl RedisRevocations {
    /// Starts the copy and waits for its first sync (at most three times the options'
    /// timeout). Bad options are [`StartError::Config`](crate::StartError::Config); a
    /// Redis that does not answer in time is
    /// [`StartError::Unavailable`](crate::StartError::Unavailable), naming the URL
    /// setting. Use [`start`](Self::start) to go on without waiting.
    pub async fn connect(options: &RedisOptions) -> Result<Self, crate::StartError> {
        let this = Self::start(options)?;
        this.inner.replica.first_sync(options).await?;
        Ok(this)
    }

    /// Starts the copy without waiting: until its first sync, tokens are refused with 503
    /// (fail-closed) or checked against an empty list (fail-open). Must be called inside a
    /// tokio runtime.
    pub fn start(options: &RedisOptions) -> Result<Self, ConfigError> {
        let shared = Shared {
            list: List::default(),
            version: AtomicU64::new(0),
            zset: options.key("revoked"),
            version_key: options.key("revoked:version"),
            log_key: options.key("revoked:log"),
            channel: options.key("revoked:events"),
            keep: options.keep(),
            timeout: options.timeout_value(),
            script: redis::Script::new(REVOKE),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                replica: Replica::start(options, "revocation list", shared)?,
                fail_open: options.fail_open(),
                dpop_prefix: options.key("dpop:jti:"),
            }),
        })
    }

    /// A DPoP proof `jti` store on the same Redis, for
    /// [`DpopOptions::shared_replay`](crate::sender::DpopOptions::shared_replay): each
    /// proof's `jti` is recorded with `SET <prefix>dpop:jti:<hash> 1 NX PX <window>`, so a
    /// proof replayed at any replica is refused. A Redis that does not answer within the
    /// options' timeout refuses the request with 503 (fail-closed, whatever the list's
    /// own fail-open setting).
    pub fn dpop_replay(&self) -> crate::sender::SharedReplay {
        crate::sender::SharedReplay::new(RedisReplay {
            con: self.inner.replica.con.clone(),
            prefix: self.inner.dpop_prefix.clone(),
            timeout: self.inner.replica.timeout,
        })
    }

    /// Adds revocations: at once on this replica, then in Redis for every other one.
    ///
    /// When Redis cannot be reached the entries still hold here, are written to Redis when
    /// it is back, and the error says so ([`ChangeError::is_pending`]).
    pub async fn revoke_all(
        &self,
        revocations: impl IntoIterator<Item = Revocation>,
    ) -> Result<(), ChangeError> {
        let shared = &self.inner.replica.shared;
        let revs: Vec<Revocation> = revocations.into_iter().collect();
        shared.list.insert(revs.iter().cloned(), shared.cutoff());
        let mut con = self.inner.replica.con.clone();
        // Each script call has its own timeout.
        match shared.write(&mut con, &revs).await {
            Ok(_) => Ok(()),
            Err(e) => Err(pending(&e)),
        }
    }

    /// Adds one revocation; see [`revoke_all`](Self::revoke_all).
    pub async fn revoke(&self, revocation: Revocation) -> Result<(), ChangeError> {
        self.revoke_all([revocation]).await
    }

    /// Revokes the token with this `jti` from `issuer` (`""` for tokens without `iss`)
    /// until `expires_at` (its `exp`).
    pub async fn revoke_jti(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: u64,
    ) -> Result<(), ChangeError> {
        self.revoke(Revocation::jti(issuer, jti, expires_at)).await
    }

    /// Revokes every token of `subject` from `issuer` issued before `issued_before`, until
    /// `expires_at`; see [`Revocation::subject`].
    pub async fn revoke_subject(
        &self,
        issuer: &str,
        subject: &str,
        issued_before: u64,
        expires_at: u64,
    ) -> Result<(), ChangeError> {
        self.revoke(Revocation::subject(
            issuer,
            subject,
            issued_before,
            expires_at,
        ))
        .await
    }

    /// Revokes this exact token until its `exp`: only the SHA-256 of its signing input is
    /// stored; see [`Revocation::token`].
    pub async fn revoke_token(&self, token: &str) -> Result<(), ChangeError> {
        self.revoke(Revocation::token(token)?).await
    }

    /// Time since Redis last answered this replica: the copy's age (`None` before the
    /// first sync). Export it as a metric.
    pub fn copy_age(&self) -> Option<Duration> {
        self.inner.replica.health.age()
    }

    /// The copy's age, connection, version and size.
    pub fn status(&self) -> SyncStatus {
        let shared = &self.inner.replica.shared;
        self.inner
            .replica
            .status(shared.version.load(Relaxed), shared.list.len())
    }

    /// Entries in the local copy.
    pub fn len(&self) -> usize {
        self.inner.replica.shared.list.len()
    }

    /// Whether the local copy is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The DPoP `jti` store of [`RedisRevocations::dpop_replay`].
struct RedisReplay {
    con: ConnectionManager,
    prefix: String,
    timeout: Duration,
}

impl crate::sender::ReplayBackend for RedisReplay {
    fn remember(&self, key: String, ttl: Duration) -> crate::sender::Remembered {
        let mut con = self.con.clone();
        let key = format!("{}{key}", self.prefix);
        let timeout = self.timeout;
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        Box::pin(async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key).arg(1).arg("NX").arg("PX").arg(ms);
            let set = cmd.query_async::<Option<String>>(&mut con);
            match tokio::time::timeout(timeout, set).await {
                Ok(Ok(reply)) => Ok(reply.is_some()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_owned()),
            }
        })
    }
}

fn pending(e: &dyn std::fmt::Display) -> ChangeError {
    ChangeError::pending(format!(
        "Redis did not take the change ({e}); it holds on this replica and is written to Redis when it is back"
    ))
}

impl RevocationStore for RedisRevocations {
    fn check(&self, token: &TokenRef<'_>) -> Verdict {
        let inner = &*self.inner;
        if inner.replica.health.is_stale() && !inner.fail_open {
            return Verdict::Unavailable;
        }
        if inner.replica.shared.list.refuses(token) {
            Verdict::Revoked
        } else {
            Verdict::Valid
        }
    }
}
