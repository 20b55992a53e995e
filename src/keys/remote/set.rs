//! The state of one remote key set: the snapshot requests read, and the fetch bookkeeping.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::{ArcSwap, Guard};
use reqwest::Url;
use tokio::sync::watch;

use super::fetch::{Fetcher, Source};
use crate::jose::Algorithm;
use crate::keys::{KeySet, Lookup, Mode, VerifyingKey};

/// Entries of the negative cache of unknown `kid`s (SECURITY.md D2).
const NEGATIVE_CAPACITY: u64 = 4096;
/// Longest wait between two attempts after failures, in seconds.
const MAX_BACKOFF: u64 = 60;

/// What the request path reads: the keys and their deadlines.
pub(crate) struct Snapshot {
    keys: Option<KeySet>,
    expires_at: u64,
    usable_until: u64,
    generation: u64,
}

/// Fetch bookkeeping, touched only off the hot path.
#[derive(Default)]
struct Control {
    flight: Option<watch::Receiver<()>>,
    failures: u32,
    retry_at: u64,
    last_miss_fetch: Option<u64>,
    jwks_uri: Option<Url>,
    last_error: Option<String>,
}

/// Why a request wants a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// No usable keys.
    Load,
    /// The TTL is over.
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
    fetcher: Arc<Fetcher>,
    state: ArcSwap<Snapshot>,
    ctl: Mutex<Control>,
    negative: moka::sync::Cache<Box<str>, ()>,
}

fn lock(m: &Mutex<Control>) -> MutexGuard<'_, Control> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RemoteSet {
    pub(super) fn new(source: Source, fetcher: Arc<Fetcher>) -> Arc<Self> {
        Arc::new(Self {
            source,
            fetcher,
            state: ArcSwap::from_pointee(Snapshot {
                keys: None,
                expires_at: 0,
                usable_until: 0,
                generation: 0,
            }),
            ctl: Mutex::new(Control::default()),
            negative: moka::sync::Cache::new(NEGATIVE_CAPACITY),
        })
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

    /// Whether usable keys are loaded, and the error of the last failed fetch.
    pub(crate) fn status(&self) -> (bool, Option<String>) {
        let now = self.fetcher.clock.now();
        let snap = self.state.load();
        let usable = snap.keys.is_some() && now < snap.usable_until;
        (usable, lock(&self.ctl).last_error.clone())
    }

    /// Chooses the key for a token from `snap`. On the hot path (fresh set, known kid)
    /// this takes no lock. `mode` says whether a needed fetch is asked for (`Wait`),
    /// started in the background (`Kick`), or not done (`Never`).
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
        if now >= snap.expires_at {
            if let Some(step) = self.need(Why::Refresh, snap.generation, now, mode, None) {
                return Err(step);
            }
        } else if now.saturating_add(self.fetcher.timing.refresh_ahead) >= snap.expires_at
            && mode != Mode::Never
        {
            // Fresh enough to answer now; refresh behind the request.
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
                        // is not published. Remember it until the next successful fetch.
                        self.negative.insert(kid.into(), ());
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
    /// mode starts the fetch without waiting.
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
            && self.negative.contains_key(kid)
        {
            return None;
        }
        {
            let ctl = lock(&self.ctl);
            // A fetch that ended after the caller read `generation` installed its set
            // before clearing the flight: in `Wait` mode the caller looks again.
            let newer = mode == Mode::Wait && self.state.load().generation != generation;
            if ctl.flight.is_none() && !self.allowed(&ctl, why, now) && !newer {
                return None;
            }
        }
        match mode {
            Mode::Wait => Some(Lookup::Fetch(Pending {
                set: self.clone(),
                why,
                generation,
            })),
            _ => {
                self.start(why, generation, now);
                None
            }
        }
    }

    /// Whether a new fetch for `why` may start now (backoff, and the miss cooldown).
    fn allowed(&self, ctl: &Control, why: Why, now: u64) -> bool {
        if now < ctl.retry_at {
            return false;
        }
        match why {
            Why::Miss => ctl
                .last_miss_fetch
                .is_none_or(|t| now >= t.saturating_add(self.fetcher.timing.cooldown)),
            Why::Load | Why::Refresh => true,
        }
    }

    /// Joins the running fetch, or starts one when it is still due. `None`: nothing to
    /// wait for (a fetch since `generation` already changed the set, or none is allowed).
    fn start(self: &Arc<Self>, why: Why, generation: u64, now: u64) -> Option<watch::Receiver<()>> {
        let mut ctl = lock(&self.ctl);
        if let Some(done) = &ctl.flight {
            return Some(done.clone());
        }
        if self.state.load().generation != generation || !self.allowed(&ctl, why, now) {
            return None;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                source = self.name(),
                "cannot fetch keys outside a tokio runtime"
            );
            return None;
        };
        if why == Why::Miss {
            ctl.last_miss_fetch = Some(now);
        }
        let (tx, rx) = watch::channel(());
        ctl.flight = Some(rx.clone());
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
                lock(&self.0.ctl).flight = None;
            }
        }
        let _clear = ClearFlight(&self);
        let result = match tokio::time::timeout(self.fetcher.timing.timeout, self.fetch()).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no complete answer within {:?}",
                self.fetcher.timing.timeout
            )),
        };
        let now = self.fetcher.clock.now();
        match result {
            Ok((keys, max_age)) => self.install(keys, max_age, now),
            Err(e) => self.failed(e, now),
        }
    }

    fn install(&self, keys: KeySet, max_age: Option<u64>, now: u64) {
        let t = &self.fetcher.timing;
        let ttl = max_age.map_or(t.ttl, |a| a.clamp(t.min_max_age, t.max_max_age));
        let expires_at = now.saturating_add(ttl);
        let generation = self.state.load().generation + 1;
        tracing::debug!(
            source = self.name(),
            keys = keys.len(),
            ttl,
            "key set loaded"
        );
        self.state.store(Arc::new(Snapshot {
            keys: Some(keys),
            expires_at,
            usable_until: expires_at.saturating_add(t.stale_age),
            generation,
        }));
        self.negative.invalidate_all();
        let mut ctl = lock(&self.ctl);
        ctl.failures = 0;
        ctl.retry_at = 0;
        ctl.last_error = None;
    }

    fn failed(&self, error: String, now: u64) {
        let mut ctl = lock(&self.ctl);
        ctl.failures = ctl.failures.saturating_add(1);
        let delay = (1u64 << (ctl.failures - 1).min(6)).min(MAX_BACKOFF);
        ctl.retry_at = now.saturating_add(delay);
        // The discovery document may have moved the key set: read it again next time.
        ctl.jwks_uri = None;
        tracing::warn!(
            source = self.name(),
            error = %error,
            retry_in_seconds = delay,
            "key set fetch failed; the last good keys stay in use"
        );
        ctl.last_error = Some(error);
    }

    async fn fetch(&self) -> Result<(KeySet, Option<u64>), String> {
        let url = match &self.source {
            Source::Jwks(url) => url.clone(),
            Source::Oidc { issuer, discovery } => {
                let known = lock(&self.ctl).jwks_uri.clone();
                match known {
                    Some(url) => url,
                    None => {
                        let url = self.fetcher.discover(issuer, discovery).await?;
                        lock(&self.ctl).jwks_uri = Some(url.clone());
                        url
                    }
                }
            }
        };
        self.fetcher.key_set(&url, self.name()).await
    }
}
