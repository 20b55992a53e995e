//! Remote key sets: a JWK set URL, or OIDC discovery from an issuer (feature `jwks`).
//!
//! What this module guarantees:
//!
//! - URLs come only from configuration: `https`, or `http` for loopback hosts
//!   (`localhost`, `127.0.0.0/8`, `::1`). Header parameters such as `jku` are never read.
//! - One shared HTTP client per authenticator (rustls; 2 s connect and 5 s total by
//!   default), no redirects, a 1 MiB body cap enforced while the body streams in, a cap on
//!   the number of keys; an answer counts only with status 200 and a JSON object with
//!   `keys`. Anything else keeps the previous keys.
//! - A remote set never yields an HMAC key: a set holding an `oct` key is refused whole.
//!   The K6 loading rules apply to every key. Kid-less keys of an algorithm that has
//!   several are skipped (no token could choose between them; the rest of the set serves).
//! - Key look-ups on the request path read the current set through an atomic pointer: no
//!   lock, no allocation, no network while the set is fresh.
//! - The set lives for its TTL (default 10 min; `Cache-Control: max-age` is honoured,
//!   clamped to 1 min .. 1 h by default). A request that arrives in the last 30 s of the
//!   TTL starts a refresh in the background; one that arrives after it waits for the
//!   refresh (all such requests share one fetch).
//! - An unknown `kid` refetches the set at most once per cooldown (default 30 s); all the
//!   requests that miss while that fetch runs wait for the same fetch. A `kid` still absent
//!   after a fetch goes into a bounded negative cache until the next successful fetch. A
//!   miss never drops a key.
//! - A failed fetch keeps the last good keys for the stale age (default 1 h past the TTL)
//!   and retries with backoff (1 s doubling to 60 s). With no usable keys the answer is
//!   503 (`UNAVAILABLE`), [`AuthErrorKind::KeysUnavailable`](crate::AuthErrorKind).
//! - Fetches run as their own tokio task: a client that goes away mid-fetch cancels only
//!   its wait, never the fetch.
//!
//! Times for TTL, cooldown, stale age and backoff come from the authenticator's
//! [`Clock`](crate::Clock), so tests move time by hand; the network timeouts are real.
//!
//! ```
//! use portcullis::{Algorithm, AuthErrorKind, Authenticator, Signer};
//!
//! // Plain http is for loopback only.
//! let err = Authenticator::builder().jwks_url("http://issuer.example/jwks.json").build().unwrap_err();
//! assert_eq!(err.setting(), "jwks_url");
//!
//! // Nothing listens on port 9 here: no keys were ever loaded, so the answer is 503.
//! let auth = Authenticator::builder().jwks_url("http://127.0.0.1:9/jwks.json").build()?;
//! // Any well-formed token will do: the key set is needed before its signature is read.
//! let token = Signer::hmac(Algorithm::HS256, [7u8; 32])?
//!     .sign(&serde_json::json!({"sub": "ada", "exp": 4_000_000_000u64}))?;
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let err = rt.block_on(auth.verify_async(&token)).unwrap_err();
//! assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
//! assert_eq!(err.status(), 503);
//! assert_eq!(auth.challenge(&err), None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use http::header::{ACCEPT, CACHE_CONTROL};
use http::{HeaderMap, StatusCode};
use reqwest::Url;
use serde_json::Value;
use tokio::sync::watch;

use super::jwk::parse_remote_jwk_set;
use super::{KeySet, Lookup, Mode, VerifyingKey};
use crate::clock::Clock;
use crate::error::ConfigError;
use crate::jose::{Algorithm, json};

/// Entries of the negative cache of unknown `kid`s (SECURITY.md D2).
const NEGATIVE_CAPACITY: u64 = 4096;
/// Longest wait between two attempts after failures, in seconds.
const MAX_BACKOFF: u64 = 60;
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
    connect_timeout: Duration,
    timeout: Duration,
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
    /// request itself does not wait). Default 30 s; zero turns background refresh off, so
    /// the first request after the TTL waits for the fetch.
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

    fn check(&self) -> Result<Timing, ConfigError> {
        let secs = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        if self.ttl.is_zero() {
            return Err(ConfigError::new("jwks_ttl", "must be at least 1 s"));
        }
        if self.cooldown < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "jwks_cooldown",
                "must be at least 1 s, or every unknown kid would fetch the set; the default is 30 s",
            ));
        }
        if self.min_max_age.is_zero() || self.min_max_age > self.max_max_age {
            return Err(ConfigError::new(
                "jwks_max_age_bounds",
                "need 0 < min <= max; the default is 60 s to 3600 s",
            ));
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(ConfigError::new(
                "jwks_timeout",
                "timeouts must be more than zero (defaults: 2 s connect, 5 s total)",
            ));
        }
        if self.max_bytes == 0 || self.max_bytes > MAX_BODY_CAP {
            return Err(ConfigError::new(
                "jwks_max_bytes",
                format!("must be between 1 and {MAX_BODY_CAP} bytes"),
            ));
        }
        if self.max_keys == 0 || self.max_keys > MAX_KEYS_CAP {
            return Err(ConfigError::new(
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
struct Timing {
    ttl: u64,
    min_max_age: u64,
    max_max_age: u64,
    cooldown: u64,
    stale_age: u64,
    refresh_ahead: u64,
    timeout: Duration,
    max_bytes: usize,
    max_keys: usize,
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
    client: reqwest::Client,
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

/// The remote-key part of an authenticator builder.
#[derive(Default)]
pub(crate) struct RemoteBuilder {
    any: Vec<String>,
    bound: Vec<(String, Option<String>)>,
    options: JwksOptions,
    client: Option<reqwest::Client>,
    allow_http: bool,
}

impl std::fmt::Debug for RemoteBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBuilder")
            .field("jwks_url", &self.any)
            .field("issuers", &self.bound)
            .finish_non_exhaustive()
    }
}

impl RemoteBuilder {
    pub(crate) fn jwks_url(&mut self, url: String) {
        self.any.push(url);
    }

    pub(crate) fn issuer_jwks_url(&mut self, issuer: String, url: String) {
        self.bound.push((issuer, Some(url)));
    }

    pub(crate) fn oidc_issuer(&mut self, issuer: String) {
        self.bound.push((issuer, None));
    }

    pub(crate) fn options(&mut self, options: JwksOptions) {
        self.options = options;
    }

    #[cfg(feature = "reqwest-client")]
    pub(crate) fn client(&mut self, client: JwksClient) {
        self.client = Some(client.client);
    }

    pub(crate) fn allow_http(&mut self) {
        self.allow_http = true;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.any.is_empty() && self.bound.is_empty()
    }

    /// The issuers whose tokens use their own keys.
    pub(crate) fn bound_issuers(&self) -> impl Iterator<Item = &str> {
        self.bound.iter().map(|(i, _)| i.as_str())
    }

    /// Checks URLs and options, and builds the shared client and one set per source.
    pub(crate) fn build(
        self,
        clock: Arc<dyn Clock>,
        has_static: bool,
    ) -> Result<Option<RemoteKeys>, ConfigError> {
        if self.is_empty() {
            return Ok(None);
        }
        let timing = self.options.check()?;
        if self.any.len() > 1 {
            return Err(ConfigError::new(
                "jwks_url",
                "more than one JWK set URL applies to every token; bind the others to their issuers with issuer_jwks_url or oidc_issuer",
            ));
        }
        if !self.any.is_empty() && has_static {
            return Err(ConfigError::new(
                "jwks_url",
                "a JWK set URL and static keys would both apply to every token; bind the URL to its issuer with issuer_jwks_url or oidc_issuer, or drop one",
            ));
        }
        let client = match self.client {
            Some(c) => c,
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(self.options.connect_timeout)
                .timeout(self.options.timeout)
                .build()
                .map_err(|e| {
                    ConfigError::new("jwks_client", format!("cannot build the HTTP client: {e}"))
                })?,
        };
        let fetcher = Arc::new(Fetcher {
            client,
            timing,
            clock,
            allow_http: self.allow_http,
        });
        let any = match self.any.into_iter().next() {
            Some(url) => {
                let url = parse_url("jwks_url", &url, self.allow_http)?;
                Some(RemoteSet::new(Source::Jwks(url), fetcher.clone()))
            }
            None => None,
        };
        let mut by_issuer = HashMap::new();
        for (issuer, url) in self.bound {
            let source = match url {
                Some(url) => Source::Jwks(parse_url("issuer_jwks_url", &url, self.allow_http)?),
                None => {
                    let base = parse_url("oidc_issuer", &issuer, self.allow_http)?;
                    let discovery = format!(
                        "{}/.well-known/openid-configuration",
                        base.as_str().trim_end_matches('/')
                    );
                    let discovery = parse_url("oidc_issuer", &discovery, self.allow_http)?;
                    Source::Oidc {
                        issuer: issuer.clone(),
                        discovery,
                    }
                }
            };
            if by_issuer
                .insert(issuer, RemoteSet::new(source, fetcher.clone()))
                .is_some()
            {
                return Err(ConfigError::new(
                    "oidc_issuer",
                    "an issuer is configured twice; give each issuer one key source",
                ));
            }
        }
        Ok(Some(RemoteKeys { any, by_issuer }))
    }
}

/// Parses a configured URL: https, or http for loopback hosts (or anywhere with the
/// dangerous opt-in).
fn parse_url(setting: &str, url: &str, allow_http: bool) -> Result<Url, ConfigError> {
    let parsed = Url::parse(url.trim()).map_err(|e| {
        ConfigError::new(
            setting,
            format!("`{url}` is not an absolute URL ({e}); use https://host/path"),
        )
    })?;
    check_url(&parsed, allow_http)
        .map_err(|e| ConfigError::new(setting, format!("`{url}` {e}")))?;
    Ok(parsed)
}

fn check_url(url: &Url, allow_http: bool) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(url) => Ok(()),
        "http" => Err(
            "uses plain http, which is allowed only for loopback hosts; use https (or, at your own risk, .dangerous().allow_http_key_urls())"
                .into(),
        ),
        _ => Err("is not an https URL".into()),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some(h) if h.eq_ignore_ascii_case("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// Every remote set of one authenticator: one for any token, and one per issuer.
pub(crate) struct RemoteKeys {
    pub(crate) any: Option<Arc<RemoteSet>>,
    pub(crate) by_issuer: HashMap<String, Arc<RemoteSet>>,
}

impl RemoteKeys {
    pub(crate) fn len(&self) -> usize {
        self.by_issuer.len() + usize::from(self.any.is_some())
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<RemoteSet>> {
        self.any.iter().chain(self.by_issuer.values())
    }
}

/// The shared client and settings.
struct Fetcher {
    client: reqwest::Client,
    timing: Timing,
    clock: Arc<dyn Clock>,
    allow_http: bool,
}

enum Source {
    Jwks(Url),
    Oidc { issuer: String, discovery: Url },
}

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
    fn new(source: Source, fetcher: Arc<Fetcher>) -> Arc<Self> {
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
                        let url = self.discover(issuer, discovery).await?;
                        lock(&self.ctl).jwks_uri = Some(url.clone());
                        url
                    }
                }
            }
        };
        let (body, max_age) = self.fetcher.get(&url).await?;
        let (set, skipped) = parse_remote_jwk_set(&body, self.fetcher.timing.max_keys)?;
        for s in &skipped {
            tracing::warn!(source = self.name(), index = s.index, why = %s.why, "JWK set: key skipped");
        }
        let (set, dropped) = set.without_ambiguous();
        for alg in dropped {
            tracing::warn!(
                source = self.name(),
                %alg,
                "JWK set: several {alg} keys have no kid; they are skipped"
            );
        }
        if set.is_empty() {
            let why = skipped
                .first()
                .map_or("the set is empty", |s| s.why.as_str());
            return Err(format!("no usable key in the set ({why})"));
        }
        Ok((set, max_age))
    }

    async fn discover(&self, issuer: &str, discovery: &Url) -> Result<Url, String> {
        let (body, _) = self.fetcher.get(discovery).await?;
        let doc = json::object(&body)
            .map_err(|e| format!("discovery document is not a JSON object: {e}"))?;
        if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err("the discovery document's `issuer` is not the configured issuer".into());
        }
        let uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or("the discovery document has no `jwks_uri` string")?;
        let url = Url::parse(uri).map_err(|e| format!("`jwks_uri` is not a URL: {e}"))?;
        check_url(&url, self.fetcher.allow_http).map_err(|e| format!("`jwks_uri` {e}"))?;
        Ok(url)
    }
}

impl Fetcher {
    /// GET with the J2 rules: no redirect, status 200, body capped while it streams.
    async fn get(&self, url: &Url) -> Result<(Vec<u8>, Option<u64>), String> {
        let max = self.timing.max_bytes;
        let mut res = self
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json, application/jwk-set+json")
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if res.url() != url {
            return Err("the answer came from another URL (redirects are not followed)".into());
        }
        if res.status() != StatusCode::OK {
            return Err(format!(
                "status {} (only 200 is accepted)",
                res.status().as_u16()
            ));
        }
        if res.content_length().is_some_and(|n| n > max as u64) {
            return Err(format!("the body is larger than the {max}-byte cap"));
        }
        let max_age = max_age(res.headers());
        let mut body = Vec::new();
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?
        {
            if body.len() + chunk.len() > max {
                return Err(format!("the body is larger than the {max}-byte cap"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }
}

/// `Cache-Control: max-age=N` in seconds (the smallest, if several); `no-cache` and
/// `no-store` read as 0 (then clamped to the lower bound).
fn max_age(headers: &HeaderMap) -> Option<u64> {
    let mut found: Option<u64> = None;
    let mut keep = |n: u64| found = Some(found.map_or(n, |f| f.min(n)));
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            match directive.split_once('=') {
                Some((name, n)) if name.trim().eq_ignore_ascii_case("max-age") => {
                    if let Ok(n) = n.trim().trim_matches('"').parse::<u64>() {
                        keep(n);
                    }
                }
                None if directive.eq_ignore_ascii_case("no-cache")
                    || directive.eq_ignore_ascii_case("no-store") =>
                {
                    keep(0);
                }
                _ => {}
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(CACHE_CONTROL, v.parse().unwrap());
            max_age(&m)
        };
        assert_eq!(h("public, max-age=300"), Some(300));
        assert_eq!(h("MAX-AGE=\"12\""), Some(12));
        assert_eq!(h("no-cache"), Some(0));
        assert_eq!(h("max-age=abc"), None);
        assert_eq!(h("public"), None);
    }

    #[test]
    fn loopback_hosts() {
        for (url, ok) in [
            ("http://127.0.0.1:8080/j", true),
            ("http://127.9.9.9/j", true),
            ("http://localhost/j", true),
            ("http://[::1]:80/j", true),
            ("http://10.0.0.1/j", false),
            ("http://example.com/j", false),
            ("https://example.com/j", true),
            ("ftp://127.0.0.1/j", false),
            ("file:///etc/passwd", false),
        ] {
            assert_eq!(
                check_url(&Url::parse(url).unwrap(), false).is_ok(),
                ok,
                "{url}"
            );
        }
    }
}
