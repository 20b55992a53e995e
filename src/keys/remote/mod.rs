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
//!   Every key follows the rules of local JWK sets (`use` is `sig`, `key_ops` includes
//!   `verify`, `kty`, `crv` and `alg` agree, RSA keys have at least 2048 bits). Kid-less keys of an algorithm that has
//!   several are skipped (no token could choose between them; the rest of the set serves).
//! - Key look-ups on the request path read the current set through an atomic pointer, and
//!   the checks that decide whether a fetch may start (one running, the backoff, the
//!   cooldown) read atomics: a look-up takes a lock only to start a fetch, and allocates
//!   nothing and never touches the network while the set is fresh.
//! - The set lives for its TTL (default 10 min; `Cache-Control: max-age` is honoured,
//!   clamped to 1 min .. 1 h by default). A request that arrives in the last 30 s of the
//!   TTL, or after it while the keys are usable (the stale age), starts a refresh in the
//!   background and is answered from the keys already loaded: a refresh never makes a
//!   request wait, so an issuer outage costs no latency. Only a first load (no usable
//!   keys) and an unknown `kid` wait for a fetch.
//! - An unknown `kid` refetches the set at most once per cooldown (default 30 s); all the
//!   requests that miss while that fetch runs wait for the same fetch. A `kid` still absent
//!   after a fetch goes into a bounded negative cache (4096 entries) for one cooldown: it is
//!   refused without a fetch until then, and may refetch once the cooldown is over (so a
//!   key published just after that fetch is accepted a cooldown later). A successful fetch
//!   empties the negative cache. A miss never drops a key.
//! - A failed fetch keeps the last good keys for the stale age (default 1 h past the TTL)
//!   and retries with backoff (1 s doubling to 60 s). With no usable keys the answer is
//!   503 (`UNAVAILABLE`), [`AuthErrorKind::KeysUnavailable`](crate::AuthErrorKind).
//! - Fetches run as their own tokio task: a client that goes away mid-fetch cancels only
//!   its wait, never the fetch. A thread without a tokio runtime, or a runtime built without
//!   IO and timers (`Builder::enable_all` enables them), cannot fetch: that counts as a
//!   failed fetch, with the backoff and one warning per set (until a fetch succeeds or the
//!   cause changes), never a panic in the caller.
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
mod fetch;
mod options;
mod rule;
mod set;
mod tenants;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use reqwest::Url;

#[cfg(feature = "reqwest-client")]
pub use options::JwksClient;
pub use options::JwksOptions;
pub(crate) use rule::{IssuerKeys, IssuerRefusal, IssuerRule, Unmatched};
pub(crate) use set::{Pending, RemoteSet};
pub use tenants::TenantOptions;
pub(crate) use tenants::Tenants;

use crate::clock::Clock;
use crate::error::{ConfigError, ConfigErrorKind};
use fetch::{Fetcher, Source};

/// The remote-key part of an authenticator builder.
#[derive(Default)]
pub(crate) struct RemoteBuilder {
    any: Vec<String>,
    bound: Vec<(String, Option<String>)>,
    patterns: Vec<String>,
    rules: Vec<Arc<dyn IssuerRule>>,
    tenant_options: TenantOptions,
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

    pub(crate) fn issuer_pattern(&mut self, pattern: String) {
        self.patterns.push(pattern);
    }

    pub(crate) fn issuer_rule(&mut self, rule: Arc<dyn IssuerRule>) {
        self.rules.push(rule);
    }

    pub(crate) fn tenant_options(&mut self, options: TenantOptions) {
        self.tenant_options = options;
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

    /// The one HTTP client of the authenticator (the configured one, or one built with
    /// these options), also for token introspection: built once, shared from then on.
    #[cfg_attr(not(feature = "introspection"), allow(dead_code))]
    pub(crate) fn http_client(&mut self) -> Result<reqwest::Client, ConfigError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        self.options.check()?;
        let c = new_client(&self.options)?;
        self.client = Some(c.clone());
        Ok(c)
    }

    /// Whether plain http is allowed on any host (the dangerous opt-in).
    #[cfg_attr(not(feature = "introspection"), allow(dead_code))]
    pub(crate) fn allows_http(&self) -> bool {
        self.allow_http
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.any.is_empty()
            && self.bound.is_empty()
            && self.patterns.is_empty()
            && self.rules.is_empty()
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
                ConfigErrorKind::RemoteKeys,
                "jwks_url",
                "more than one JWK set URL applies to every token; bind the others to their issuers with issuer_jwks_url or oidc_issuer",
            ));
        }
        if !self.any.is_empty() && has_static {
            return Err(ConfigError::new(
                ConfigErrorKind::RemoteKeys,
                "jwks_url",
                "a JWK set URL and static keys would both apply to every token; bind the URL to its issuer with issuer_jwks_url or oidc_issuer, or drop one",
            ));
        }
        let client = match self.client {
            Some(c) => c,
            None => new_client(&self.options)?,
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
                    ConfigErrorKind::RemoteKeys,
                    "oidc_issuer",
                    "an issuer is configured twice; give each issuer one key source",
                ));
            }
        }
        let tenants = if self.patterns.is_empty() && self.rules.is_empty() {
            None
        } else {
            Some(Tenants::build(
                &self.patterns,
                &self.rules,
                &self.tenant_options,
                fetcher.clone(),
                self.allow_http,
            )?)
        };
        Ok(Some(RemoteKeys {
            any,
            by_issuer,
            tenants,
        }))
    }
}

/// The HTTP client of remote key sets: no redirects, the options' timeouts.
fn new_client(options: &JwksOptions) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(options.connect_timeout)
        .timeout(options.timeout)
        .build()
        .map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::RemoteKeys,
                "jwks_client",
                format!("cannot build the HTTP client: {e}"),
            )
            .with_source(e)
        })
}

/// Parses a configured URL: https, or http for loopback hosts (or anywhere with the
/// dangerous opt-in).
fn parse_url(setting: &str, url: &str, allow_http: bool) -> Result<Url, ConfigError> {
    let parsed = Url::parse(url.trim()).map_err(|e| {
        ConfigError::new(
            ConfigErrorKind::RemoteKeys,
            setting,
            format!("`{url}` is not an absolute URL ({e}); use https://host/path"),
        )
    })?;
    check_url(&parsed, allow_http).map_err(|e| {
        ConfigError::new(ConfigErrorKind::RemoteKeys, setting, format!("`{url}` {e}"))
    })?;
    Ok(parsed)
}

/// Whether a configured URL may be fetched: https, or http for loopback hosts (or
/// anywhere with the dangerous opt-in); the error says why not and how to fix it.
pub(crate) fn check_url(url: &Url, allow_http: bool) -> Result<(), String> {
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
    /// Issuers discovered on first use through issuer patterns.
    pub(crate) tenants: Option<Tenants>,
}

impl RemoteKeys {
    pub(crate) fn len(&self) -> usize {
        self.by_issuer.len() + usize::from(self.any.is_some())
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<RemoteSet>> {
        self.any.iter().chain(self.by_issuer.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
