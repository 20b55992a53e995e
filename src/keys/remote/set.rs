//! The state of one remote key set: the snapshot requests read, and the fetch bookkeeping.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::{ArcSwap, Guard};
use reqwest::Url;
use tokio::sync::watch;

use super::fetch::{Fetcher, Source};
use crate::jose::Algorithm;
use crate::keys::{KeySet, Lookup, Mode, VerifyingKey};

/// Entries of the negative cache of unknown `kid`s: bounded, since kids come from tokens.
const NEGATIVE_CAPACITY: u64 = 4096;
/// Longest wait between two attempts after failures, in seconds.
const MAX_BACKOFF: u64 = 60;

/// What the request path reads: the keys and their deadlines.
pub(crate) struct Snapshot {
    keys: Option<KeySet>,
    /// When a background refresh starts: `refresh_ahead` before `expires_at`, but never
    /// earlier than half the TTL (a window as long as the TTL would refetch without end).
    refresh_from: u64,
    usable_until: u64,
    generation: u64,
}

/// What decides, without a lock, whether a fetch may start. The request path only reads
/// these; they change with [`Control`] locked, so a fetch starts only under the lock
/// (single-flight) while the checks that usually say "no" take none.
#[derive(Default)]
struct Gates {
    /// A fetch is running (mirrors `Control::flight`). Cleared after the fetch has
    /// installed its set or recorded its failure, so a reader that sees `false` also sees
    /// those.
    flight: AtomicBool,
    /// No fetch before this time: the backoff after failures.
    retry_at: AtomicU64,
    /// No fetch for an unknown `kid` before this time: the cooldown after the last one.
    miss_at: AtomicU64,
}

/// Fetch bookkeeping, locked only to start a fetch, to end one, and for the rare reads
/// (`load_keys`, discovery).
#[derive(Default)]
struct Control {
    flight: Option<watch::Receiver<()>>,
    failures: u32,
    jwks_uri: Option<Url>,
    last_error: Option<String>,
    /// The trouble of the last failure, once warned about.
    warned: Option<Trouble>,
}

/// What made a fetch fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    /// The issuer or the network: timeouts, statuses, bodies, discovery.
    Fetch,
    /// No tokio runtime on the thread that would start the fetch.
    NoRuntime,
    /// The fetch task panicked: a runtime without IO or timers cannot run it.
    Runtime,
}

/// Why a request wants a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// No usable keys.
    Load,
    /// The TTL is over or nearly, and the keys are still usable (never waited for).
    Refresh,
    /// The token names a `kid` the set lacks.
    Miss,
}

/// A request that should wait for a fetch before it is answered.
pub(crate) struct Pending {
    set: Arc<RemoteSet>,
    why: Why,
    generation: u64,
}

impl Pending {
    /// Waits for the fetch (starting it, or joining the one running). Dropping this future
    /// cancels only the wait.
    pub(crate) async fn wait(self) {
        let now = self.set.fetcher.clock.now();
        if let Some(mut done) = self.set.start(self.why, self.generation, now) {
            // The fetch task never sends; the channel closes when it ends.
            let _ = done.changed().await;
        }
    }
}

/// One remote key set: a JWK set URL or an OIDC issuer.
pub(crate) struct RemoteSet {
    source: Source,
    /// The metric label: the configured URL or issuer, or for a set found through an
    /// issuer pattern the pattern itself (never a value taken from a token).
    label: Arc<str>,
    fetcher: Arc<Fetcher>,
    state: ArcSwap<Snapshot>,
    gates: Gates,
    ctl: Mutex<Control>,
    /// Unknown `kid`s, with the clock time a fetch was found to lack them. An entry counts
    /// for the cooldown (by the injected clock; moka's own expiry reads the real one).
    negative: moka::sync::Cache<Box<str>, u64>,
    /// Bumped whenever a fetch removes or changes a key (not when it only adds keys): what
    /// a key verified under an older epoch may no longer verify.
    epoch: std::sync::atomic::AtomicU64,
    /// How often `ctl` was locked, for the tests that prove the request path takes no lock.
    #[cfg(test)]
    locks: std::sync::atomic::AtomicUsize,
}

impl RemoteSet {
    /// A set whose metric label is its configured URL or issuer.
    pub(super) fn new(source: Source, fetcher: Arc<Fetcher>) -> Arc<Self> {
        let label = match &source {
            Source::Jwks(url) => Arc::from(url.as_str()),
            Source::Oidc { issuer, .. } => Arc::from(issuer.as_str()),
        };
        Self::labelled(source, fetcher, label)
    }

    /// A set reported under `label` (an issuer pattern's sets share their pattern's).
    pub(super) fn labelled(source: Source, fetcher: Arc<Fetcher>, label: Arc<str>) -> Arc<Self> {
        Arc::new(Self {
            source,
            label,
            fetcher,
            state: ArcSwap::from_pointee(Snapshot {
                keys: None,
                refresh_from: 0,
                usable_until: 0,
                generation: 0,
            }),
            gates: Gates::default(),
            ctl: Mutex::new(Control::default()),
            negative: moka::sync::Cache::new(NEGATIVE_CAPACITY),
            epoch: AtomicU64::new(0),
            #[cfg(test)]
            locks: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        #[cfg(test)]
        self.locks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.ctl.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The URL or issuer, for logs and errors.
    pub(crate) fn name(&self) -> &str {
        match &self.source {
            Source::Jwks(url) => url.as_str(),
            Source::Oidc { issuer, .. } => issuer,
        }
    }

    /// The setting this set came from, for errors.
    pub(crate) fn setting(&self) -> &'static str {
        match &self.source {
            Source::Jwks(_) => "jwks_url",
            Source::Oidc { .. } => "oidc_issuer",
        }
    }

    /// The key epoch: it changes when a fetch removes or changes a key, so anything
    /// remembered about a token verified under another epoch must be checked again.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Acquire)
    }

    /// The current snapshot (an atomic load, no lock).
    pub(crate) fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.state.load()
    }

    /// Fetches the set now unless a fetch is running (then waits for it) or the backoff
    /// after a failure is not over.
    pub(crate) async fn load(self: &Arc<Self>) {
        let now = self.fetcher.clock.now();
        let generation = self.state.load().generation;
        if let Some(mut done) = self.start(Why::Load, generation, now) {
            let _ = done.changed().await;
        }
    }

    /// How the first load ended: `Some(true)` keys are loaded, `Some(false)` a fetch failed
    /// and no keys ever came, `None` nothing has ended yet.
    pub(crate) fn first_load_outcome(&self) -> Option<bool> {
        if self.state.load().keys.is_some() {
            return Some(true);
        }
        (self.lock().failures > 0).then_some(false)
    }

    /// Whether usable keys are loaded, and the error of the last failed fetch.
    pub(crate) fn status(&self) -> (bool, Option<String>) {
        let now = self.fetcher.clock.now();
        let snap = self.state.load();
        let usable = snap.keys.is_some() && now < snap.usable_until;
        (usable, self.lock().last_error.clone())
    }

    /// For a token remembered as verified by this set: whether the keys still serve (not
    /// past the stale age), starting a due refresh in the background as a look-up would,
    /// so that a stream of remembered tokens keeps the set fresh and its rotations seen.
    pub(crate) fn still_serves(self: &Arc<Self>) -> bool {
        let now = self.fetcher.clock.now();
        let snap = self.state.load();
        if snap.keys.is_none() || now >= snap.usable_until {
            return false;
        }
        if now >= snap.refresh_from {
            self.need(Why::Refresh, snap.generation, now, Mode::Kick, None);
        }
        true
    }

    /// Chooses the key for a token from `snap`. It takes no lock unless it starts a fetch:
    /// not for a fresh set, nor while a fetch runs, nor in the backoff or the cooldown.
    /// `mode` says whether a needed fetch is asked for (`Wait`), started in the background
    /// (`Kick`), or not done (`Never`). A refresh is always started in the background.
    pub(crate) fn select<'s>(
        self: &Arc<Self>,
        snap: &'s Snapshot,
        kid: Option<&str>,
        alg: Algorithm,
        mode: Mode,
    ) -> Result<&'s VerifyingKey, Lookup> {
        let now = self.fetcher.clock.now();
        let keys = match &snap.keys {
            Some(keys) if now < snap.usable_until => keys,
            _ => {
                return Err(self
                    .need(Why::Load, snap.generation, now, mode, None)
                    .unwrap_or(Lookup::Unavailable));
            }
        };
        if mode != Mode::Never && now >= snap.refresh_from {
            // The TTL is over or nearly, but the keys still serve: whatever the mode, the
            // refresh runs behind the request. Only a first load or an unknown kid waits.
            self.need(Why::Refresh, snap.generation, now, Mode::Kick, None);
        }
        match keys.select(kid, alg) {
            Ok(key) => Ok(key),
            Err(e) => {
                if let Some(kid) = kid
                    && !keys.has_kid(kid)
                {
                    if mode == Mode::Never {
                        // This pass follows a fetch made after the request came: the kid
                        // is not published. Remember it for the cooldown.
                        self.negative.insert(kid.into(), now);
                    } else if let Some(step) =
                        self.need(Why::Miss, snap.generation, now, mode, Some(kid))
                    {
                        return Err(step);
                    }
                }
                Err(Lookup::NoKey(e))
            }
        }
    }

    /// Decides whether a fetch is due for `why`: in `Wait` mode returns the wait, in `Kick`
    /// mode starts the fetch without waiting. Takes no lock unless a fetch is to start.
    fn need(
        self: &Arc<Self>,
        why: Why,
        generation: u64,
        now: u64,
        mode: Mode,
        kid: Option<&str>,
    ) -> Option<Lookup> {
        if mode == Mode::Never {
            return None;
        }
        if let Some(kid) = kid
            && self.known_missing(kid, now)
        {
            return None;
        }
        // `allowed` (the miss cooldown, the backoff) before `flight`: a fetch sets its flight
        // before its cooldown, so a caller that sees the cooldown of a fetch that just
        // started also sees that fetch running (and joins it rather than being refused).
        // A fetch clears its flight only after installing its set or recording its failure.
        let allowed = self.allowed(why, now);
        let running = self.gates.flight.load(Acquire);
        match mode {
            Mode::Wait => {
                // A fetch that ended after the caller read `generation` installed its set
                // before clearing the flight: the caller looks again.
                let newer = self.state.load().generation != generation;
                (running || newer || allowed).then(|| {
                    Lookup::Fetch(Pending {
                        set: self.clone(),
                        why,
                        generation,
                    })
                })
            }
            _ => {
                if !running && allowed {
                    self.start(why, generation, now);
                }
                None
            }
        }
    }

    /// Whether a fetch within the cooldown found this `kid` missing. An older entry is
    /// dropped: the kid may have been published since.
    fn known_missing(&self, kid: &str, now: u64) -> bool {
        match self.negative.get(kid) {
            Some(at) if now <= at.saturating_add(self.fetcher.timing.cooldown) => true,
            Some(_) => {
                self.negative.invalidate(kid);
                false
            }
            None => false,
        }
    }

    /// Whether a new fetch for `why` may start now (backoff, and the miss cooldown).
    fn allowed(&self, why: Why, now: u64) -> bool {
        now >= self.gates.retry_at.load(Acquire)
            && (why != Why::Miss || now >= self.gates.miss_at.load(Acquire))
    }

    /// Joins the running fetch, or starts one when it is still due. `None`: nothing to
    /// wait for (a fetch since `generation` already changed the set, or none is allowed).
    fn start(self: &Arc<Self>, why: Why, generation: u64, now: u64) -> Option<watch::Receiver<()>> {
        let mut ctl = self.lock();
        if let Some(done) = &ctl.flight {
            return Some(done.clone());
        }
        if self.state.load().generation != generation || !self.allowed(why, now) {
            return None;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let error = "no tokio runtime on this thread to run the fetch in; verify tokens \
                         from within a tokio runtime";
            self.failed(&mut ctl, Trouble::NoRuntime, error.into(), now);
            return None;
        };
        let (tx, rx) = watch::channel(());
        ctl.flight = Some(rx.clone());
        // The flight before the cooldown: see `need`.
        self.gates.flight.store(true, Release);
        if why == Why::Miss {
            crate::metrics::unknown_kid_refetch(&self.label);
            let next = now.saturating_add(self.fetcher.timing.cooldown);
            self.gates.miss_at.store(next, Release);
        }
        drop(ctl);
        let this = self.clone();
        runtime.spawn(async move { this.run(tx).await });
        Some(rx)
    }

    /// One fetch, as its own task. The flight is cleared however the task ends (success,
    /// failure, panic, or the runtime shutting down), then `_done` closes and wakes every
    /// waiter.
    async fn run(self: Arc<Self>, _done: watch::Sender<()>) {
        struct ClearFlight<'a>(&'a RemoteSet);
        impl Drop for ClearFlight<'_> {
            fn drop(&mut self) {
                let mut ctl = self.0.lock();
                ctl.flight = None;
                self.0.gates.flight.store(false, Release);
            }
        }
        let _clear = ClearFlight(&self);
        // The fetch runs in a task of its own: a runtime that cannot run it (built without
        // IO or timers, which reqwest and `timeout` need) makes that task panic, which this
        // one sees as an error and counts as a failed fetch.
        let this = self.clone();
        let fetch = tokio::spawn(async move {
            let limit = this.fetcher.timing.timeout;
            match tokio::time::timeout(limit, this.fetch()).await {
                Ok(result) => result,
                Err(_) => Err(format!("no complete answer within {limit:?}")),
            }
        });
        let result = match fetch.await {
            Ok(result) => result.map_err(|e| (Trouble::Fetch, e)),
            Err(e) if e.is_panic() => Err((
                Trouble::Runtime,
                format!(
                    "the fetch task panicked ({}); a tokio runtime needs IO and timers \
                     enabled (Builder::enable_all) to fetch keys",
                    panic_message(e.into_panic().as_ref())
                ),
            )),
            Err(_) => Err((
                Trouble::Fetch,
                "the fetch task was cancelled (the runtime is shutting down)".into(),
            )),
        };
        let now = self.fetcher.clock.now();
        crate::metrics::key_set_fetch(&self.label, result.is_ok());
        match result {
            Ok((keys, max_age)) => self.install(keys, max_age, now),
            Err((trouble, e)) => self.failed(&mut self.lock(), trouble, e, now),
        }
    }

    fn install(&self, keys: KeySet, max_age: Option<u64>, now: u64) {
        let t = &self.fetcher.timing;
        let ttl = max_age.map_or(t.ttl, |a| a.clamp(t.min_max_age, t.max_max_age));
        let expires_at = now.saturating_add(ttl);
        let previous = self.state.load();
        let generation = previous.generation + 1;
        let changed = previous
            .keys
            .as_ref()
            .is_some_and(|old| !keys.keeps_every_key_of(old));
        drop(previous);
        tracing::debug!(
            source = self.name(),
            keys = keys.len(),
            ttl,
            "key set loaded"
        );
        self.state.store(Arc::new(Snapshot {
            keys: Some(keys),
            refresh_from: expires_at.saturating_sub(t.refresh_ahead.min(ttl / 2)),
            usable_until: expires_at.saturating_add(t.stale_age),
            generation,
        })); // After the new keys are in place: a reader loads the epoch before the snapshot,
        // so a token verified with an old key is always recorded under an old epoch.
        if changed {
            self.epoch.fetch_add(1, AcqRel);
        }

        self.negative.invalidate_all();
        let mut ctl = self.lock();
        ctl.failures = 0;
        self.gates.retry_at.store(0, Release);
        ctl.last_error = None;
        ctl.warned = None;
    }

    /// Records a failed fetch (or one that could not start) and sets the backoff. A
    /// trouble of the runtime fails the same way at every attempt: it is warned about once,
    /// until a fetch succeeds or the trouble changes.
    fn failed(&self, ctl: &mut Control, trouble: Trouble, error: String, now: u64) {
        ctl.failures = ctl.failures.saturating_add(1);
        let delay = (1u64 << (ctl.failures - 1).min(6)).min(MAX_BACKOFF);
        self.gates
            .retry_at
            .store(now.saturating_add(delay), Release);
        if trouble == Trouble::Fetch {
            // The discovery document may have moved the key set: read it again next time.
            ctl.jwks_uri = None;
        }
        let repeated = trouble != Trouble::Fetch && ctl.warned == Some(trouble);
        ctl.warned = Some(trouble);
        let snap = self.state.load();
        let then = match &snap.keys {
            None => "no keys are loaded yet; requests get 503 until a fetch succeeds",
            Some(_) if now >= snap.usable_until => {
                "the keys are past their stale age; requests get 503 until a fetch succeeds"
            }
            Some(_) => "the last good keys stay in use",
        };
        if repeated {
            tracing::debug!(
                source = self.name(),
                error = %error,
                retry_in_seconds = delay,
                "key set fetch failed again; {then}"
            );
        } else {
            tracing::warn!(
                source = self.name(),
                error = %error,
                retry_in_seconds = delay,
                "key set fetch failed; {then}"
            );
        }
        ctl.last_error = Some(error);
    }

    async fn fetch(&self) -> Result<(KeySet, Option<u64>), String> {
        let url = match &self.source {
            Source::Jwks(url) => url.clone(),
            Source::Oidc { issuer, discovery } => {
                let known = self.lock().jwks_uri.clone();
                match known {
                    Some(url) => url,
                    None => {
                        let url = self.fetcher.discover(issuer, discovery).await?;
                        self.lock().jwks_uri = Some(url.clone());
                        url
                    }
                }
            }
        };
        self.fetcher.key_set(&url, self.name()).await
    }
}

/// The message of a panic, if it has one.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "no message"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;

    use super::*;
    use crate::keys::jwk::parse_remote_jwk_set;
    use crate::keys::remote::JwksOptions;

    const T0: u64 = 1_700_000_000;
    const TTL: u64 = 600;
    /// RFC 8037's Ed25519 public key: `select` chooses keys, it never verifies here.
    const SET: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","use":"sig","alg":"EdDSA",
        "kid":"a","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    /// A set with the default options, loaded at `T0`, and the clock it reads.
    fn loaded() -> (Arc<RemoteSet>, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(T0));
        let clock = now.clone();
        let fetcher = Arc::new(Fetcher {
            client: reqwest::Client::new(),
            timing: JwksOptions::new().check().unwrap(),
            clock: Arc::new(move || clock.load(SeqCst)),
            allow_http: false,
        });
        let url = Url::parse("https://issuer.example/jwks.json").unwrap();
        let set = RemoteSet::new(Source::Jwks(url), fetcher);
        let (keys, _) = parse_remote_jwk_set(SET.as_bytes(), 100).unwrap();
        set.install(keys, None, T0);
        (set, now)
    }

    /// Marks a fetch as running, as `start` does, without spawning one.
    fn running(set: &RemoteSet) -> watch::Sender<()> {
        let (tx, rx) = watch::channel(());
        set.lock().flight = Some(rx);
        set.gates.flight.store(true, Release);
        tx
    }

    /// How often `select` locked the control mutex for these kids, in every mode.
    fn locks_taken(set: &Arc<RemoteSet>, kids: &[&str]) -> usize {
        let before = set.locks.load(SeqCst);
        // `Never` last: it puts unknown kids in the negative cache.
        for mode in [Mode::Wait, Mode::Kick, Mode::Never] {
            for kid in kids {
                let snap = set.snapshot();
                let _ = set.select(&snap, Some(kid), Algorithm::EdDSA, mode);
            }
        }
        set.locks.load(SeqCst) - before
    }

    #[test]
    fn request_path_takes_no_lock_unless_a_fetch_starts() {
        // A fresh set and a known kid.
        let (set, _) = loaded();
        assert_eq!(locks_taken(&set, &["a"]), 0);

        // The refresh-ahead window and past the TTL, with a fetch running.
        let (set, now) = loaded();
        let _fetch = running(&set);
        for (i, t) in [T0 + TTL - 10, T0 + TTL, T0 + TTL + 100]
            .into_iter()
            .enumerate()
        {
            now.store(t, SeqCst);
            let ghost = format!("ghost-{i}");
            assert_eq!(locks_taken(&set, &["a", &ghost]), 0, "at T0 + {}", t - T0);
        }

        // Backoff after a failure: past the TTL, known and unknown kids.
        let (set, now) = loaded();
        now.store(T0 + TTL, SeqCst);
        set.failed(&mut set.lock(), Trouble::Fetch, "down".into(), T0 + TTL);
        assert_eq!(locks_taken(&set, &["a", "ghost"]), 0);

        // The cooldown after a fetch for an unknown kid.
        let (set, _) = loaded();
        set.gates.miss_at.store(T0 + 30, Release);
        assert_eq!(locks_taken(&set, &["ghost-1", "ghost-2"]), 0);
    }
}
