//! One introspection: the endpoint (configured or discovered), the POST with client
//! authentication, and the answer read under its bounds.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::StatusCode;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Url;
use serde_json::Value;

use super::{ClientAuth, Endpoint, Introspection};
use crate::clock::Clock;
use crate::jose::{fill_random, json, sha256};
use crate::keys::check_url;

/// Largest introspection answer read, in bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// `client_assertion_type` of `private_key_jwt` (RFC 7523 section 2.2).
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Most inactive tokens remembered.
const NEGATIVE_ENTRIES: u64 = 10_000;

/// `application/x-www-form-urlencoded` (the WHATWG form serializer keeps `*-._`).
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// What the endpoint said.
pub(crate) enum Answer {
    /// `active: true`, with the whole answer (a JSON object) to read as claims.
    Active(Vec<u8>),
    /// `active: false`.
    Inactive,
}

/// The built introspection of one authenticator.
pub(crate) struct Introspector {
    endpoint: Endpoint,
    /// The discovered endpoint, once found.
    found: std::sync::OnceLock<Url>,
    client: reqwest::Client,
    client_id: String,
    secret: String,
    key: Option<crate::Signer>,
    auth: ClientAuth,
    issuers: Vec<String>,
    answer_issuers: Vec<String>,
    opaque: bool,
    pub(crate) max_cache: Duration,
    inactive_cache: Duration,
    allow_http: bool,
    /// Inactive tokens (by SHA-256) and until when (clock seconds) they are known so.
    negative: moka::sync::Cache<[u8; 32], u64>,
    clock: Arc<dyn Clock>,
    max_in_flight: usize,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Introspector {
    /// Checks the settings and builds the introspection with the shared `client`.
    pub(crate) fn new(
        options: Introspection,
        client: reqwest::Client,
        clock: Arc<dyn Clock>,
        allow_http: bool,
    ) -> Result<Self, String> {
        options.check()?;
        let (setting_url, what) = match &options.endpoint {
            Endpoint::Url(u) => (u.clone(), "endpoint"),
            Endpoint::Discover(i) => (i.clone(), "issuer"),
        };
        let url = Url::parse(setting_url.trim())
            .map_err(|e| format!("the {what} `{setting_url}` is not an absolute URL ({e})"))?;
        check_url(&url, allow_http).map_err(|e| format!("the {what} `{setting_url}` {e}"))?;
        let found = std::sync::OnceLock::new();
        if let Endpoint::Url(_) = options.endpoint {
            let _ = found.set(url);
        }
        Ok(Self {
            answer_issuers: options.answer_issuers(),
            endpoint: options.endpoint,
            found,
            client,
            client_id: options.client_id,
            secret: options.secret,
            key: options.key,
            auth: options.auth,
            issuers: options.issuers,
            opaque: options.opaque,
            max_cache: options.max_cache,
            inactive_cache: options.inactive_cache,
            allow_http,
            negative: moka::sync::Cache::builder()
                .max_capacity(NEGATIVE_ENTRIES)
                .time_to_live(options.inactive_cache.max(Duration::from_secs(1)))
                .build(),
            clock,
            max_in_flight: options.max_in_flight,
        })
    }

    /// Whether tokens that are not JWTs are introspected.
    pub(crate) fn opaque(&self) -> bool {
        self.opaque
    }

    /// Whether JWTs of `iss` are introspected.
    pub(crate) fn introspects_issuer(&self, iss: &str) -> bool {
        self.issuers.iter().any(|i| i == iss)
    }

    /// Whether any JWT issuer is introspected.
    pub(crate) fn has_issuers(&self) -> bool {
        !self.issuers.is_empty()
    }

    /// The issuers an answer's `iss` may name (empty: the authenticator's rules alone).
    pub(crate) fn answer_issuers(&self) -> &[String] {
        &self.answer_issuers
    }

    /// The issuer whose metadata named the endpoint, when it was discovered.
    pub(crate) fn discovered_issuer(&self) -> Option<&str> {
        match &self.endpoint {
            Endpoint::Discover(iss) => Some(iss),
            Endpoint::Url(_) => None,
        }
    }

    /// Most introspections at once.
    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Whether `token` (by its SHA-256) was answered inactive lately.
    pub(crate) fn known_inactive(&self, sha: &[u8; 32]) -> bool {
        self.negative
            .get(sha)
            .is_some_and(|until| self.clock.now() < until)
    }

    /// Remembers an inactive answer.
    pub(crate) fn remember_inactive(&self, sha: [u8; 32]) {
        if !self.inactive_cache.is_zero() {
            let until = self
                .clock
                .now()
                .saturating_add(self.inactive_cache.as_secs());
            self.negative.insert(sha, until);
        }
    }

    /// The SHA-256 of a token: the key of the negative cache and of the flights.
    pub(crate) fn key(token: &str) -> [u8; 32] {
        sha256(token.as_bytes())
    }

    /// Asks the endpoint about `token`. `Err` says why it could not answer (log-safe:
    /// never the token).
    pub(crate) async fn ask(&self, token: &str) -> Result<Answer, String> {
        let url = self.endpoint().await?;
        let mut body = format!(
            "token={}&token_type_hint=access_token",
            utf8_percent_encode(token, FORM)
        );
        let mut req = self
            .client
            .post(url.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        match self.auth {
            ClientAuth::ClientSecretBasic => {
                // RFC 6749 section 2.3.1: both form-encoded before the Basic encoding.
                let pair = format!(
                    "{}:{}",
                    utf8_percent_encode(&self.client_id, FORM),
                    utf8_percent_encode(&self.secret, FORM)
                );
                let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
                req = req.header(AUTHORIZATION, format!("Basic {b64}"));
            }
            ClientAuth::ClientSecretPost => {
                body.push_str("&client_id=");
                body.extend(utf8_percent_encode(&self.client_id, FORM));
                body.push_str("&client_secret=");
                body.extend(utf8_percent_encode(&self.secret, FORM));
            }
            ClientAuth::PrivateKeyJwt => {
                let assertion = self.assertion(url)?;
                body.push_str("&client_id=");
                body.extend(utf8_percent_encode(&self.client_id, FORM));
                body.push_str("&client_assertion_type=");
                body.extend(utf8_percent_encode(ASSERTION_TYPE, FORM));
                body.push_str("&client_assertion=");
                body.push_str(&assertion);
            }
        }
        let (status, bytes) = self.send(req.body(body), url).await?;
        if status != StatusCode::OK {
            return Err(format!("status {} (only 200 is accepted)", status.as_u16()));
        }
        let [active] = json::scan_object(&bytes, &["active"])
            .map_err(|e| format!("the answer is not a JSON object: {e}"))?;
        match active.map(json::Scalar::of) {
            Some(json::Scalar::Bool(true)) => Ok(Answer::Active(bytes)),
            Some(json::Scalar::Bool(false)) => Ok(Answer::Inactive),
            _ => Err("the answer has no boolean `active`".into()),
        }
    }

    /// A `private_key_jwt` client assertion for a request to `url` (RFC 7523 section 3):
    /// `iss` and `sub` the client id, `aud` the endpoint, a fresh random `jti`, 60 s.
    fn assertion(&self, url: &Url) -> Result<String, String> {
        let key = self
            .key
            .as_ref()
            .ok_or("no private key for private_key_jwt")?;
        let mut id = [0u8; 16];
        if !fill_random(&mut id) {
            return Err("no random bytes for the assertion's jti".into());
        }
        let jti = crate::jose::hex(&id);
        let now = self.clock.now();
        key.sign(&serde_json::json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": url.as_str(),
            "jti": jti,
            "iat": now,
            "exp": now + 60,
        }))
        .map_err(|e| format!("cannot sign the client assertion: {e}"))
    }

    /// Sends a request: no redirects, the body capped while it streams.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<(StatusCode, Vec<u8>), String> {
        let mut res = req
            .send()
            .await
            .map_err(|e| format!("request failed: {}", e.without_url()))?;
        if res.url() != url {
            return Err("the answer came from another URL (redirects are not followed)".into());
        }
        let status = res.status();
        if res
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(format!(
                "the body is larger than the {MAX_ANSWER_BYTES}-byte cap"
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| format!("reading the body failed: {}", e.without_url()))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(format!(
                    "the body is larger than the {MAX_ANSWER_BYTES}-byte cap"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    /// The endpoint: configured, or read from the issuer's metadata (once it is found;
    /// a failed discovery is tried again by the next introspection).
    async fn endpoint(&self) -> Result<&Url, String> {
        if let Some(url) = self.found.get() {
            return Ok(url);
        }
        let Endpoint::Discover(issuer) = &self.endpoint else {
            return Err("no endpoint".into());
        };
        let base = issuer.trim_end_matches('/');
        let oidc = format!("{base}/.well-known/openid-configuration");
        let mut why = String::new();
        let mut candidates = vec![oidc];
        // RFC 8414 section 3: the well-known segment goes between the host and the path.
        if let Ok(u) = Url::parse(base) {
            let path = u.path().trim_end_matches('/');
            let mut root = u.clone();
            root.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
            candidates.push(root.to_string());
        }
        for doc in candidates {
            match self.metadata(issuer, &doc).await {
                Ok(url) => {
                    let _ = self.found.set(url);
                    return self.found.get().ok_or_else(|| "no endpoint".into());
                }
                Err(e) => {
                    if !why.is_empty() {
                        why.push_str("; ");
                    }
                    why.push_str(&format!("{doc}: {e}"));
                }
            }
        }
        Err(format!("discovery failed ({why})"))
    }

    /// The `introspection_endpoint` of the metadata document at `doc`.
    async fn metadata(&self, issuer: &str, doc: &str) -> Result<Url, String> {
        let url = Url::parse(doc).map_err(|e| format!("not a URL: {e}"))?;
        let req = self
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json");
        let (status, body) = self.send(req, &url).await?;
        if status != StatusCode::OK {
            return Err(format!("status {}", status.as_u16()));
        }
        let doc = json::object(&body).map_err(|e| format!("not a JSON object: {e}"))?;
        if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err("its `issuer` is not the configured issuer".into());
        }
        let endpoint = doc
            .get("introspection_endpoint")
            .and_then(Value::as_str)
            .ok_or("it has no `introspection_endpoint` string")?;
        let endpoint = Url::parse(endpoint)
            .map_err(|e| format!("`introspection_endpoint` is not a URL: {e}"))?;
        check_url(&endpoint, self.allow_http)
            .map_err(|e| format!("`introspection_endpoint` {e}"))?;
        Ok(endpoint)
    }

    /// The configured endpoint or issuer, for logs.
    pub(crate) fn name(&self) -> &str {
        match &self.endpoint {
            Endpoint::Url(u) | Endpoint::Discover(u) => u,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        let e = |s: &str| utf8_percent_encode(s, FORM).to_string();
        assert_eq!(e("a b+c/d=e&f"), "a%20b%2Bc%2Fd%3De%26f");
        assert_eq!(e("Az09-._*~"), "Az09-._*%7E");
    }
}
