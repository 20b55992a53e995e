//! Metrics through the [`metrics`](https://docs.rs/metrics/0.24) facade (feature
//! `metrics`): install any recorder (the Prometheus exporter, StatsD, your own) and the
//! layer and the remote key sets report to it. Without a recorder every report is a
//! no-op; without the feature the hooks compile to nothing.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `portcullis_decisions_total` | counter | `protocol`, `outcome`, `reason` | requests the layer decided |
//! | `portcullis_jwks_fetches_total` | counter | `issuer`, `result` | remote key-set fetches that ended |
//! | `portcullis_jwks_unknown_kid_refetches_total` | counter | `issuer` | fetches started because a token named a `kid` the set lacked |
//! | `portcullis_jwks_last_success_timestamp_seconds` | gauge | `issuer` | Unix time of the last successful fetch |
//! | `portcullis_jwks_age_seconds` | gauge | `issuer` | age of the current key set, as of the last [`update_key_set_ages`] |
//! | `portcullis_token_cache_lookups_total` | counter | `result` | verified-token cache look-ups (`hit`, `miss`) |
//! | `portcullis_shadow_decisions_total` | counter | `result` | decisions of dry-run rules and shadow policies, never enforced (`would_allow`, `would_deny`) |
//!
//! Label values are fixed words or configuration, never request data:
//!
//! - `protocol`: `http`, or `grpc` for a layer made with
//!   [`AuthLayer::for_grpc`](crate::AuthLayer::for_grpc).
//! - `outcome`: `allowed` or `denied`.
//! - `reason`: for `allowed`, `public` (a public prefix or method, no token read) or
//!   `authorized` (a valid token the policy lets through); for `denied`, the row of the
//!   answer table: `missing_credentials`, `invalid_request`, `invalid_token`,
//!   `token_expired` (an `invalid_token` whose only fault is its `exp`), `forbidden`,
//!   `keys_unavailable`, `misuse`.
//! - `issuer`: the configured OIDC issuer or JWK set URL of the set.
//! - `result`: `ok` or `error` (fetches); `hit` or `miss` (token cache); `would_allow` or
//!   `would_deny` (shadow decisions).
//!
//! Call [`register`] once after installing the recorder: it describes the metrics (help
//! text and units) and binds the decision counters, so that from then on a decision is one
//! atomic add, with no look-up in the recorder and no allocation, whatever the exporter.
//! Before it, each decision looks its counter up by a static key (some exporters allocate
//! a handle on each look-up).
//!
//! ```
//! // With a recorder installed (here none, so nothing is kept): register once, and before
//! // each scrape bring the key-set ages up to date.
//! portcullis::metrics::register();
//! portcullis::metrics::update_key_set_ages();
//! ```

#[cfg(feature = "metrics")]
use std::sync::Mutex;

use crate::error::AuthError;
#[cfg(feature = "metrics")]
use crate::error::AuthErrorKind;

#[cfg(feature = "metrics")]
/// Name of the decision counter.
pub const DECISIONS: &str = "portcullis_decisions_total";
#[cfg(feature = "metrics")]
/// Name of the key-set fetch counter.
pub const JWKS_FETCHES: &str = "portcullis_jwks_fetches_total";
#[cfg(feature = "metrics")]
/// Name of the counter of fetches caused by unknown `kid`s.
pub const JWKS_UNKNOWN_KID_REFETCHES: &str = "portcullis_jwks_unknown_kid_refetches_total";
#[cfg(feature = "metrics")]
/// Name of the gauge of the last successful fetch's time.
pub const JWKS_LAST_SUCCESS: &str = "portcullis_jwks_last_success_timestamp_seconds";
#[cfg(feature = "metrics")]
/// Name of the gauge of the current key set's age.
pub const JWKS_AGE: &str = "portcullis_jwks_age_seconds";
#[cfg(feature = "metrics")]
/// Name of the counter of verified-token cache look-ups.
pub const TOKEN_CACHE_LOOKUPS: &str = "portcullis_token_cache_lookups_total";
#[cfg(feature = "metrics")]
/// Name of the counter of dry-run (shadow) decisions.
pub const SHADOW_DECISIONS: &str = "portcullis_shadow_decisions_total";

#[cfg(feature = "metrics")]
/// Registers every metric above with the installed recorder (the global one, or the
/// thread's local one): their help text and units, and the decision counters the layer
/// counts with from then on. Call it once after installing the recorder; calling it again
/// binds the counters of the recorder installed then.
pub fn register() {
    HANDLES.store(Some(std::sync::Arc::new(Handles {
        http: REASONS.map(|r| decision_counter("http", r)),
        grpc: REASONS.map(|r| decision_counter("grpc", r)),
        cache: ["hit", "miss"].map(|r| metrics::counter!(TOKEN_CACHE_LOOKUPS, "result" => r)),
    })));
    {
        use metrics::{Unit, describe_counter, describe_gauge};
        describe_counter!(
            DECISIONS,
            Unit::Count,
            "Requests decided by the portcullis layer, by protocol, outcome and reason."
        );
        describe_counter!(
            JWKS_FETCHES,
            Unit::Count,
            "Remote JWK set fetches that ended, by issuer and result."
        );
        describe_counter!(
            JWKS_UNKNOWN_KID_REFETCHES,
            Unit::Count,
            "Remote JWK set fetches started because a token named an unknown kid."
        );
        describe_gauge!(
            JWKS_LAST_SUCCESS,
            Unit::Seconds,
            "Unix time of the last successful fetch of each remote JWK set."
        );
        describe_counter!(
            TOKEN_CACHE_LOOKUPS,
            Unit::Count,
            "Verified-token cache look-ups, by result (hit or miss)."
        );
        describe_counter!(
            SHADOW_DECISIONS,
            Unit::Count,
            "Decisions of dry-run rules and shadow policies (never enforced), by result."
        );
        describe_gauge!(
            JWKS_AGE,
            Unit::Seconds,
            "Seconds since the current keys of each remote JWK set were fetched."
        );
    }
}

#[cfg(feature = "metrics")]
/// Sets `portcullis_jwks_age_seconds` of every key set fetched so far in this process to
/// the time since its last successful fetch. Call it before each scrape; the gauge holds
/// the value of the last call.
pub fn update_key_set_ages() {
    {
        let now = unix_now();
        let loaded = LOADED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (issuer, at) in loaded.iter() {
            metrics::gauge!(JWKS_AGE, "issuer" => issuer.clone())
                .set(now.saturating_sub(*at) as f64);
        }
    }
}

/// The `reason` labels, by index (see [`reason_index`]); the first two are allowed.
#[cfg(feature = "metrics")]
const REASONS: [&str; 9] = [
    "public",
    "authorized",
    "missing_credentials",
    "invalid_request",
    "invalid_token",
    "token_expired",
    "forbidden",
    "keys_unavailable",
    "misuse",
];

/// The decision counters bound by [`register`], by protocol and reason.
#[cfg(feature = "metrics")]
struct Handles {
    http: [metrics::Counter; 9],
    grpc: [metrics::Counter; 9],
    /// Token cache hits, misses.
    cache: [metrics::Counter; 2],
}

#[cfg(feature = "metrics")]
static HANDLES: arc_swap::ArcSwapOption<Handles> = arc_swap::ArcSwapOption::const_empty();

#[cfg(feature = "metrics")]
fn decision_counter(protocol: &'static str, reason: &'static str) -> metrics::Counter {
    let outcome = if matches!(reason, "public" | "authorized") {
        "allowed"
    } else {
        "denied"
    };
    metrics::counter!(DECISIONS, "protocol" => protocol, "outcome" => outcome, "reason" => reason)
}

/// The index in [`REASONS`] of a decision.
#[cfg(feature = "metrics")]
fn reason_index(result: Result<bool, &AuthError>) -> usize {
    match result {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => match e.kind() {
            AuthErrorKind::MissingCredentials => 2,
            AuthErrorKind::InvalidRequest => 3,
            AuthErrorKind::InvalidToken if e.is_expired() => 5,
            AuthErrorKind::InvalidToken => 4,
            AuthErrorKind::Forbidden => 6,
            AuthErrorKind::KeysUnavailable => 7,
            AuthErrorKind::Misuse => 8,
        },
    }
}

/// Key sets by name, with the Unix time of their last successful fetch.
#[cfg(feature = "metrics")]
static LOADED: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

#[cfg(feature = "metrics")]
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Counts one decision of the layer: `Ok(public)` for a request let through (public
/// when no token was needed), `Err` for a refusal. With the counters bound by
/// [`register`], one atomic add; before, a look-up by a static key per label set.
#[inline]
pub(crate) fn decision(grpc: bool, result: Result<bool, &AuthError>) {
    #[cfg(feature = "metrics")]
    {
        if let Some(handles) = HANDLES.load().as_ref() {
            let set = if grpc { &handles.grpc } else { &handles.http };
            set[reason_index(result)].increment(1);
            return;
        }
        macro_rules! count {
            ($protocol:literal, $outcome:literal, $reason:literal) => {
                metrics::counter!(
                    "portcullis_decisions_total",
                    "protocol" => $protocol,
                    "outcome" => $outcome,
                    "reason" => $reason
                )
                .increment(1)
            };
        }
        macro_rules! by_reason {
            ($protocol:literal) => {
                match result {
                    Ok(true) => count!($protocol, "allowed", "public"),
                    Ok(false) => count!($protocol, "allowed", "authorized"),
                    Err(e) => match e.kind() {
                        AuthErrorKind::MissingCredentials => {
                            count!($protocol, "denied", "missing_credentials")
                        }
                        AuthErrorKind::InvalidRequest => {
                            count!($protocol, "denied", "invalid_request")
                        }
                        AuthErrorKind::InvalidToken if e.is_expired() => {
                            count!($protocol, "denied", "token_expired")
                        }
                        AuthErrorKind::InvalidToken => count!($protocol, "denied", "invalid_token"),
                        AuthErrorKind::Forbidden => count!($protocol, "denied", "forbidden"),
                        AuthErrorKind::KeysUnavailable => {
                            count!($protocol, "denied", "keys_unavailable")
                        }
                        AuthErrorKind::Misuse => count!($protocol, "denied", "misuse"),
                    },
                }
            };
        }
        if grpc {
            by_reason!("grpc")
        } else {
            by_reason!("http")
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (grpc, result);
}

/// Counts one look-up of the verified-token cache.
#[inline]
#[cfg(feature = "token-cache")]
pub(crate) fn token_cache(hit: bool) {
    #[cfg(feature = "metrics")]
    {
        if let Some(handles) = HANDLES.load().as_ref() {
            handles.cache[usize::from(!hit)].increment(1);
            return;
        }
        // Literal labels: a static key, no allocation without a recorder.
        if hit {
            metrics::counter!("portcullis_token_cache_lookups_total", "result" => "hit")
                .increment(1);
        } else {
            metrics::counter!("portcullis_token_cache_lookups_total", "result" => "miss")
                .increment(1);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = hit;
}

/// Counts one decision of a dry-run rule or shadow policy. Only when one is configured.
pub(crate) fn shadow_decision(allowed: bool) {
    #[cfg(feature = "metrics")]
    {
        if allowed {
            metrics::counter!(SHADOW_DECISIONS, "result" => "would_allow").increment(1);
        } else {
            metrics::counter!(SHADOW_DECISIONS, "result" => "would_deny").increment(1);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = allowed;
}

/// Counts one ended fetch of the key set `issuer`, and on success records its time.
/// Off the request path (one per fetch).
#[cfg(feature = "jwks")]
pub(crate) fn key_set_fetch(issuer: &str, ok: bool) {
    #[cfg(feature = "metrics")]
    {
        let result = if ok { "ok" } else { "error" };
        metrics::counter!(JWKS_FETCHES, "issuer" => issuer.to_owned(), "result" => result)
            .increment(1);
        if ok {
            let now = unix_now();
            metrics::gauge!(JWKS_LAST_SUCCESS, "issuer" => issuer.to_owned()).set(now as f64);
            metrics::gauge!(JWKS_AGE, "issuer" => issuer.to_owned()).set(0.0);
            let mut loaded = LOADED
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match loaded.iter_mut().find(|(name, _)| name == issuer) {
                Some(entry) => entry.1 = now,
                None => loaded.push((issuer.to_owned(), now)),
            }
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (issuer, ok);
}

/// Counts one fetch started because a token named a `kid` the set `issuer` lacked.
#[cfg(feature = "jwks")]
pub(crate) fn unknown_kid_refetch(issuer: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(JWKS_UNKNOWN_KID_REFETCHES, "issuer" => issuer.to_owned()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = issuer;
}
