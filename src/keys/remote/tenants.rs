//! Keys for many issuers not known in advance (a Keycloak realm per tenant, Entra ID's
//! `login.microsoftonline.com/{tenant}/v2.0`): an issuer pattern, and OIDC discovery on
//! first use into a bounded cache.
//!
//! The issuer in an unverified token picks what is fetched, so an attacker can name
//! endless matching issuers. Therefore: only issuers that match a configured pattern are
//! ever fetched; discoveries of issuers not yet known are rate-limited globally; an issuer
//! whose discovery failed is remembered (and refused without a fetch) for a while; only
//! issuers that delivered keys enter the cache, so a flood of made-up issuers can neither
//! evict the real ones nor make this crate an amplifier against the identity provider.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::Url;

use super::fetch::{Fetcher, Source};
use super::rule::{IssuerKeys, IssuerRefusal, IssuerRule, Unmatched};
use super::set::RemoteSet;
use super::{check_url, parse_url};
use crate::error::{ConfigError, ConfigErrorKind};

/// Settings of multi-tenant issuers
/// ([`issuer_pattern`](crate::AuthenticatorBuilder::issuer_pattern)).
///
/// ```
/// use std::time::Duration;
/// use portcullis::{Authenticator, TenantOptions};
///
/// let auth = Authenticator::builder()
///     .issuer_pattern("https://idp.example.com/realms/*")
///     .tenant_options(TenantOptions::new().capacity(500).discoveries_per_minute(30))
///     .build()?;
/// # let _ = Duration::ZERO;
/// # Ok::<(), portcullis::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TenantOptions {
    capacity: u64,
    idle: Duration,
    per_minute: u64,
    failure_memory: Duration,
}

impl Default for TenantOptions {
    fn default() -> Self {
        Self {
            capacity: 100,
            idle: Duration::from_secs(3600),
            per_minute: 10,
            failure_memory: Duration::from_secs(300),
        }
    }
}

impl TenantOptions {
    /// The defaults: 100 issuers, dropped after an hour unused; 10 discoveries of new
    /// issuers a minute; a failed issuer remembered for 5 minutes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Most issuers whose keys are held. Default 100.
    pub fn capacity(mut self, n: u64) -> Self {
        self.capacity = n;
        self
    }

    /// An issuer unused this long is dropped (and discovered again on its next token).
    /// Default 1 h.
    pub fn idle(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// Most discoveries of issuers not yet known, per minute, for all patterns together:
    /// tokens of further new issuers are refused (401) until the budget refills. Default 10.
    pub fn discoveries_per_minute(mut self, n: u64) -> Self {
        self.per_minute = n;
        self
    }

    /// How long an issuer whose discovery failed is refused without a new fetch.
    /// Default 5 min.
    pub fn failure_memory(mut self, d: Duration) -> Self {
        self.failure_memory = d;
        self
    }
}

/// An issuer pattern: a scheme and host exactly, then path segments, `*` standing for one
/// whole segment; with an integration's rule, or none.
#[derive(Debug, Clone)]
struct Pattern {
    /// The pattern as configured: the metric label of the key sets it finds.
    label: Arc<str>,
    origin: String,
    segments: Vec<Option<String>>,
    rule: Option<Arc<dyn IssuerRule>>,
}

impl Pattern {
    fn parse(pattern: &str, allow_http: bool) -> Result<Self, String> {
        let url =
            Url::parse(pattern).map_err(|e| format!("`{pattern}` is not an absolute URL ({e})"))?;
        check_url(&url, allow_http).map_err(|e| format!("`{pattern}` {e}"))?;
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(format!(
                "`{pattern}`: no query, fragment or user info in an issuer pattern"
            ));
        }
        let origin = url.origin().ascii_serialization();
        let path = pattern
            .get(origin.len()..)
            .ok_or_else(|| format!("`{pattern}`: write the host in lower case"))?;
        let segments = path
            .trim_start_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| match s {
                "*" => Ok(None),
                s if s.contains('*') => {
                    Err(format!("`{pattern}`: `*` stands for a whole segment only"))
                }
                s => Ok(Some(s.to_owned())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !segments.iter().any(Option::is_none) {
            return Err(format!(
                "`{pattern}` has no `*` segment; use oidc_issuer for one issuer"
            ));
        }
        Ok(Self {
            label: Arc::from(pattern),
            origin,
            segments,
            rule: None,
        })
    }

    /// The pattern of an integration's rule, which judges its issuers.
    fn of_rule(rule: &Arc<dyn IssuerRule>, allow_http: bool) -> Result<Self, ConfigError> {
        let pattern = rule.pattern(allow_http)?;
        let mut p = Self::parse(&pattern, allow_http)
            .map_err(|e| ConfigError::new(ConfigErrorKind::RemoteKeys, rule.setting(), e))?;
        p.rule = Some(rule.clone());
        Ok(p)
    }

    /// Whether `iss` matches: the same origin, the same number of segments, each equal or
    /// a plain non-empty segment where the pattern has `*`.
    fn matches(&self, iss: &str) -> bool {
        let Some(path) = iss.strip_prefix(self.origin.as_str()) else {
            return false;
        };
        let Some(path) = path.strip_prefix('/') else {
            return false;
        };
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut parts = path.split('/');
        for want in &self.segments {
            let Some(got) = parts.next() else {
                return false;
            };
            let plain = !got.is_empty()
                && got != "."
                && got != ".."
                && got
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            match want {
                Some(lit) if lit != got => return false,
                None if !plain => return false,
                _ => {}
            }
        }
        parts.next().is_none()
    }
}

/// A token bucket by the authenticator's clock, in whole seconds.
struct Budget {
    per_minute: u64,
    /// Tokens left, in sixtieths (so one second refills `per_minute` sixtieths).
    left: AtomicU64,
    at: AtomicU64,
}

impl Budget {
    fn take(&self, now: u64) -> bool {
        let cap = self.per_minute * 60;
        let then = self.at.swap(now, Ordering::AcqRel);
        let refill = now.saturating_sub(then).saturating_mul(self.per_minute);
        let mut left = self.left.load(Ordering::Acquire);
        loop {
            let have = left.saturating_add(refill).min(cap);
            let (next, ok) = if have >= 60 {
                (have - 60, true)
            } else {
                (have, false)
            };
            match self
                .left
                .compare_exchange(left, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return ok,
                Err(now_left) => left = now_left,
            }
        }
    }
}

/// The issuers discovered through patterns.
pub(crate) struct Tenants {
    patterns: Vec<Pattern>,
    fetcher: Arc<Fetcher>,
    /// Issuers that delivered keys.
    sets: moka::sync::Cache<Box<str>, Arc<RemoteSet>>,
    /// Issuers whose first discovery runs (at most the budget's worth).
    pending: Mutex<HashMap<Box<str>, Arc<RemoteSet>>>,
    failed: moka::sync::Cache<Box<str>, ()>,
    budget: Budget,
}

impl Tenants {
    pub(super) fn build(
        patterns: &[String],
        rules: &[Arc<dyn IssuerRule>],
        options: &TenantOptions,
        fetcher: Arc<Fetcher>,
        allow_http: bool,
    ) -> Result<Self, ConfigError> {
        let mut patterns = patterns
            .iter()
            .map(|p| Pattern::parse(p, allow_http))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::new(ConfigErrorKind::RemoteKeys, "issuer_pattern", e))?;
        for rule in rules {
            let p = Pattern::of_rule(rule, allow_http)?;
            if patterns
                .iter()
                .any(|q| q.origin == p.origin && q.segments == p.segments)
            {
                return Err(ConfigError::new(
                    ConfigErrorKind::RemoteKeys,
                    rule.setting(),
                    format!(
                        "the issuers `{}` are configured twice; configure each issuer pattern once",
                        p.label
                    ),
                ));
            }
            patterns.push(p);
        }
        if options.capacity == 0 || options.per_minute == 0 {
            return Err(ConfigError::new(
                ConfigErrorKind::RemoteKeys,
                "tenant_options",
                "capacity and discoveries per minute must be at least 1",
            ));
        }
        let now = fetcher.clock.now();
        Ok(Self {
            patterns,
            sets: moka::sync::Cache::builder()
                .max_capacity(options.capacity)
                .time_to_idle(options.idle)
                .build(),
            pending: Mutex::new(HashMap::new()),
            failed: moka::sync::Cache::builder()
                .max_capacity(4096)
                .time_to_live(options.failure_memory)
                .build(),
            budget: Budget {
                per_minute: options.per_minute,
                left: AtomicU64::new(options.per_minute * 60),
                at: AtomicU64::new(now),
            },
            fetcher,
        })
    }

    /// Whether an issuer matches a pattern.
    pub(crate) fn matches(&self, iss: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(iss))
    }

    /// The rule of the first pattern with a rule that `iss` matches.
    pub(crate) fn rule_for(&self, iss: &str) -> Option<&dyn IssuerRule> {
        self.patterns
            .iter()
            .filter_map(|p| Some((p, p.rule.as_deref()?)))
            .find_map(|(p, rule)| p.matches(iss).then_some(rule))
    }

    /// What the rules say of `iss`, which matches no pattern: refused when a rule calls it
    /// a foreign issuer of its kind and no rule calls it its own.
    pub(crate) fn unmatched(&self, iss: &str) -> Result<(), IssuerRefusal> {
        let mut refusal = None;
        for p in &self.patterns {
            let Some(rule) = &p.rule else { continue };
            match rule.unmatched(iss, &p.origin) {
                Unmatched::Unrelated => {}
                Unmatched::Own => return Ok(()),
                Unmatched::Foreign(r) => {
                    refusal.get_or_insert(r);
                }
            }
        }
        refusal.map_or(Ok(()), Err)
    }

    /// The messages the rules refuse with.
    pub(crate) fn refusal_messages(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.patterns
            .iter()
            .filter_map(|p| p.rule.as_ref())
            .flat_map(|r| r.messages().iter().copied())
    }

    /// The key set for `iss`: a cached one, a running first discovery, or a new one when
    /// the issuer matches, did not fail lately, and the discovery budget allows. `None`:
    /// refused without any fetch.
    pub(crate) fn set_for(&self, iss: &str) -> Option<Arc<RemoteSet>> {
        if let Some(set) = self.sets.get(iss) {
            return Some(set);
        }
        if !self.matches(iss) || self.failed.contains_key(iss) {
            return None;
        }
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = pending.get(iss).cloned() {
            // The first discovery has ended: keep the issuer, or remember its failure.
            match set.first_load_outcome() {
                Some(true) => {
                    pending.remove(iss);
                    self.sets.insert(iss.into(), set.clone());
                }
                Some(false) => {
                    pending.remove(iss);
                    self.failed.insert(iss.into(), ());
                    return None;
                }
                None => {}
            }
            return Some(set);
        }
        if !self.budget.take(self.fetcher.clock.now()) {
            tracing::debug!(
                issuer = iss,
                "issuer discovery budget spent; token refused without a fetch"
            );
            return None;
        }
        // A pattern with a rule that matches decides where the keys are.
        let pattern = self
            .patterns
            .iter()
            .filter(|p| p.matches(iss))
            .max_by_key(|p| p.rule.is_some())?;
        let base = iss.trim_end_matches('/');
        let keys = pattern
            .rule
            .as_ref()
            .map_or(IssuerKeys::Discovery, |r| r.keys(iss));
        let source = match keys {
            IssuerKeys::KeySet(url) => {
                let setting = pattern
                    .rule
                    .as_ref()
                    .map_or("issuer_pattern", |r| r.setting());
                Source::Jwks(parse_url(setting, &url, self.fetcher.allow_http).ok()?)
            }
            IssuerKeys::Discovery => {
                let discovery = parse_url(
                    "issuer_pattern",
                    &format!("{base}/.well-known/openid-configuration"),
                    self.fetcher.allow_http,
                )
                .ok()?;
                Source::Oidc {
                    issuer: iss.to_owned(),
                    discovery,
                }
            }
        };
        // Metrics name the pattern, never the token's `iss`: label values stay bounded.
        let set = RemoteSet::labelled(source, self.fetcher.clone(), pattern.label.clone());
        pending.insert(iss.into(), set.clone());
        Some(set)
    }

    /// Issuers whose keys are held now.
    pub(crate) fn len(&self) -> u64 {
        self.sets.run_pending_tasks();
        self.sets.entry_count()
    }
}
