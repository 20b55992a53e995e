//! One fetch: the GET with the J2 rules, OIDC discovery, and reading the set.

use std::sync::Arc;

use http::header::{ACCEPT, CACHE_CONTROL};
use http::{HeaderMap, StatusCode};
use reqwest::Url;
use serde_json::Value;

use super::check_url;
use super::options::Timing;
use crate::clock::Clock;
use crate::jose::json;
use crate::keys::KeySet;
use crate::keys::jwk::parse_remote_jwk_set;

/// The shared client and settings.
pub(super) struct Fetcher {
    pub(super) client: reqwest::Client,
    pub(super) timing: Timing,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) allow_http: bool,
}

pub(super) enum Source {
    Jwks(Url),
    Oidc { issuer: String, discovery: Url },
}

impl Fetcher {
    /// Fetches the JWK set at `url` and reads it; `name` is the set's, for logs.
    pub(super) async fn key_set(
        &self,
        url: &Url,
        name: &str,
    ) -> Result<(KeySet, Option<u64>), String> {
        let (body, max_age) = self.get(url).await?;
        let (set, skipped) = parse_remote_jwk_set(&body, self.timing.max_keys)?;
        for s in &skipped {
            tracing::warn!(source = name, index = s.index, why = %s.why, "JWK set: key skipped");
        }
        let (set, dropped) = set.without_ambiguous();
        for alg in dropped {
            tracing::warn!(
                source = name,
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

    /// Reads the OIDC discovery document and returns its `jwks_uri`.
    pub(super) async fn discover(&self, issuer: &str, discovery: &Url) -> Result<Url, String> {
        let (body, _) = self.get(discovery).await?;
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
        check_url(&url, self.allow_http).map_err(|e| format!("`jwks_uri` {e}"))?;
        Ok(url)
    }

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
}
