//! OAuth 2.0 protected-resource metadata (RFC 9728): the JSON document that tells a client
//! which authorization servers issue tokens for this service, how to send them and which
//! scopes exist, and the `resource_metadata` parameter that points to it from a 401.
//!
//! [`ResourceMetadata::builder`] reads the authenticator's configuration:
//!
//! - `resource`: the one configured audience (or [`resource`](ResourceMetadataBuilder::resource));
//!   an `https` URL (`http` only for loopback hosts) without query or fragment;
//! - `authorization_servers`: the configured issuers (required issuers, OIDC issuers and
//!   issuers bound to a key set; issuer patterns name none), or
//!   [`authorization_servers`](ResourceMetadataBuilder::authorization_servers);
//! - `bearer_methods_supported`: from the token sources, `header` for `Authorization` and
//!   `query` for a query source (cookies and custom headers are not RFC 6750 methods, so a
//!   cookie-only service says `[]`);
//! - optional: `scopes_supported`, `resource_documentation`, `resource_name` and
//!   `resource_signing_alg_values_supported`. The last one is about responses the resource
//!   signs (RFC 9728 section 2), not the tokens it accepts, so it is left out unless you
//!   name algorithms: this crate signs no responses.
//!
//! The document is built and serialized once. [`AuthLayer::resource_metadata`](crate::AuthLayer::resource_metadata) makes every
//! challenge name its [`url`](ResourceMetadata::url), and, with the feature
//! `resource-metadata`, [`into_router`](ResourceMetadata::into_router) serves it at
//! [`WELL_KNOWN_PATH`] and at the path-suffixed form RFC 9728 section 3.1 derives from the
//! resource (`/.well-known/oauth-protected-resource/mcp` for `https://host/mcp`). Nothing is
//! fetched, at start or on a request.
//!
//! ```
//! use portcullis::resource_metadata::ResourceMetadata;
//! use portcullis::{AuthLayer, Authenticator, Policy};
//! use tower::{Layer, ServiceExt};
//!
//! let auth = Authenticator::builder()
//!     .hmac_secret("0123456789abcdef0123456789abcdef")
//!     .issuer("https://id.example.com/realms/acme")
//!     .audience("https://api.example.com/mcp")
//!     .build()?;
//! let metadata = ResourceMetadata::builder(&auth)
//!     .scopes_supported(["mcp:tools", "mcp:resources"])
//!     .build()?;
//! assert_eq!(metadata.url(), "https://api.example.com/.well-known/oauth-protected-resource/mcp");
//! let doc: serde_json::Value = serde_json::from_slice(metadata.json())?;
//! assert_eq!(doc, serde_json::json!({
//!     "resource": "https://api.example.com/mcp",
//!     "authorization_servers": ["https://id.example.com/realms/acme"],
//!     "bearer_methods_supported": ["header"],
//!     "scopes_supported": ["mcp:tools", "mcp:resources"],
//! }));
//!
//! // Every challenge of the layer points to it: a request without a token.
//! let layer = AuthLayer::new(auth, Policy::builder().build()?).resource_metadata(&metadata);
//! let svc = layer.layer(tower::service_fn(|_req: http::Request<String>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//! }));
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let res = svc.oneshot(http::Request::get("/tools").body(String::new())?).await?;
//! assert_eq!(res.status(), 401);
//! assert_eq!(
//!     res.headers()["www-authenticate"],
//!     r#"Bearer realm="api", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp""#,
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use bytes::Bytes;
use http::Uri;
use serde_json::{Map, Value};

use crate::authn::{Authenticator, TokenSource};
use crate::error::{ConfigError, ConfigErrorKind};
use crate::jose::Algorithm;

/// The well-known path of the metadata (RFC 9728 section 3): the document of a resource
/// without a path is here, that of `https://host/mcp` at this path followed by `/mcp`.
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// The protected-resource metadata of one service: its document, serialized once, and
/// the URL it is served at. See the [module](self).
///
/// Cheap to clone (the document is shared bytes).
#[derive(Debug, Clone)]
pub struct ResourceMetadata {
    resource: String,
    url: String,
    /// The path the document is served at: [`WELL_KNOWN_PATH`] and the resource's path.
    path: String,
    json: Bytes,
}

/// Builds [`ResourceMetadata`] from an authenticator's configuration; every setter
/// documents its default.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct ResourceMetadataBuilder {
    audiences: Vec<String>,
    issuers: Vec<String>,
    sources: Vec<TokenSource>,
    resource: Option<String>,
    authorization_servers: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    documentation: Option<String>,
    name: Option<String>,
    signing_algs: Vec<Algorithm>,
}

fn error(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(ConfigErrorKind::ResourceMetadata, setting, message)
}

/// The parts of an absolute `http(s)` URL we use, checked.
struct Absolute {
    origin: String,
    path: String,
}

/// Whether a URL's host is a loopback host (where plain http is allowed).
fn loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `url` as an absolute URL: `https`, or `http` for a loopback host; a host; no user
/// information, query or fragment; only characters a quoted-string carries as they are.
fn absolute(setting: &str, url: &str) -> Result<Absolute, ConfigError> {
    let bad = |why: &str| error(setting, format!("`{url}` {why}"));
    if url.is_empty() {
        return Err(error(setting, "is empty; give an absolute https URL"));
    }
    if !url
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(bad(
            "holds a space, a quote, a backslash or a non-ASCII character; percent-encode it",
        ));
    }
    if url.contains('#') || url.contains('?') {
        return Err(bad(
            "has a query or fragment; the resource identifier has neither (RFC 9728 section 1.2)",
        ));
    }
    let uri = Uri::try_from(url).map_err(|_| bad("is not a URL"))?;
    let authority = uri.authority().ok_or_else(|| {
        bad("is not an absolute https URL; write it like https://api.example.com/mcp")
    })?;
    if authority.as_str().contains('@') {
        return Err(bad("holds user information; leave it out"));
    }
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if loopback(authority.host()) => {}
        Some("http") => {
            return Err(bad(
                "uses plain http, which is allowed only for loopback hosts; use https",
            ));
        }
        _ => {
            return Err(bad(
                "is not an absolute https URL; write it like https://api.example.com/mcp",
            ));
        }
    }
    let scheme = uri.scheme_str().unwrap_or("https");
    Ok(Absolute {
        origin: format!("{scheme}://{authority}"),
        path: uri.path().to_owned(),
    })
}

impl ResourceMetadata {
    /// A builder that reads `authenticator`'s audience, issuers and token sources.
    pub fn builder(authenticator: &Authenticator) -> ResourceMetadataBuilder {
        ResourceMetadataBuilder {
            audiences: authenticator.audiences().to_vec(),
            issuers: authenticator.named_issuers(),
            sources: authenticator.token_sources().to_vec(),
            resource: None,
            authorization_servers: None,
            scopes: None,
            documentation: None,
            name: None,
            signing_algs: Vec::new(),
        }
    }

    /// The resource identifier (`resource`).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Where the document is: the resource's origin, [`WELL_KNOWN_PATH`], and the
    /// resource's path when it has one (RFC 9728 section 3.1). Challenges name this URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The path of [`url`](Self::url), where a router on the resource's origin serves the
    /// document.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The document, serialized (`application/json`).
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// The document as shared bytes (a clone costs no copy).
    pub fn json_bytes(&self) -> Bytes {
        self.json.clone()
    }

    /// The router that serves the document: `GET` (and `HEAD`) of [`path`](Self::path)
    /// and, when that is longer, of [`WELL_KNOWN_PATH`] too, answering 200 with
    /// `Content-Type: application/json`, `Cache-Control: public, max-age=3600` and
    /// `Access-Control-Allow-Origin: *` (the document is public, and browser-based clients
    /// read it across origins). Merge it beside your guarded router, outside the layer:
    /// a client fetches it without a token.
    ///
    /// ```
    /// use portcullis::resource_metadata::ResourceMetadata;
    /// use portcullis::Authenticator;
    /// use tower::ServiceExt;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let auth = Authenticator::builder()
    ///     .hmac_secret("0123456789abcdef0123456789abcdef")
    ///     .issuer("https://id.example.com")
    ///     .build()?;
    /// let metadata = ResourceMetadata::builder(&auth).resource("https://api.example.com/mcp").build()?;
    /// let app = axum::Router::new().merge(metadata.into_router());
    /// let req = http::Request::get("/.well-known/oauth-protected-resource/mcp").body(axum::body::Body::empty())?;
    /// let res = app.oneshot(req).await?;
    /// assert_eq!(res.status(), 200);
    /// assert_eq!(res.headers()["content-type"], "application/json");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # });
    /// ```
    #[cfg(feature = "resource-metadata")]
    #[cfg_attr(docsrs, doc(cfg(feature = "resource-metadata")))]
    pub fn into_router<S: Clone + Send + Sync + 'static>(self) -> axum::Router<S> {
        use axum::routing::get;
        let json = self.json.clone();
        let serve = move || {
            let json = json.clone();
            async move {
                let mut res = axum::response::Response::new(axum::body::Body::from(json));
                let h = res.headers_mut();
                h.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                h.insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("public, max-age=3600"),
                );
                h.insert(
                    http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    http::HeaderValue::from_static("*"),
                );
                res
            }
        };
        let mut router = axum::Router::new().route(&self.path, get(serve.clone()));
        if self.path != WELL_KNOWN_PATH {
            router = router.route(WELL_KNOWN_PATH, get(serve));
        }
        router
    }
}

impl ResourceMetadataBuilder {
    /// The resource identifier. Default: the authenticator's audience when it has exactly
    /// one; with none or several, set it here (the build error says so).
    pub fn resource(mut self, url: impl Into<String>) -> Self {
        self.resource = Some(url.into());
        self
    }

    /// The authorization servers' issuer identifiers, replacing the default: every issuer
    /// the authenticator names (required issuers, OIDC issuers, issuer key sets). With
    /// none, the member is left out, which clients such as the Model Context Protocol's
    /// refuse: name them here when only issuer patterns or plain key sets are configured.
    pub fn authorization_servers<I, S>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authorization_servers = Some(issuers.into_iter().map(Into::into).collect());
        self
    }

    /// `scopes_supported`: the scopes a client may ask for this resource. Default: left
    /// out (RFC 9728 makes it optional, and not every scope need be listed).
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// `resource_documentation`: a page for developers (absolute `https` URL). Default:
    /// left out.
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.documentation = Some(url.into());
        self
    }

    /// `resource_name`: a human-readable name of the resource. Default: left out.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// `resource_signing_alg_values_supported`: the algorithms this resource signs its
    /// responses with (RFC 9728 section 2), for a service that signs them itself. Default:
    /// left out, because the member is not about the tokens the resource accepts, and
    /// this crate signs no responses.
    pub fn resource_signing_algs<I: IntoIterator<Item = Algorithm>>(mut self, algs: I) -> Self {
        self.signing_algs = algs.into_iter().collect();
        self
    }

    /// The document, or an error of kind [`ConfigErrorKind::ResourceMetadata`] naming the
    /// setting: no resource (none or several audiences, and none set), a resource,
    /// authorization server or documentation URL that is not an absolute `https` URL
    /// (`http` only for loopback hosts), or a resource with a query or fragment; an empty
    /// scope or one with a space.
    pub fn build(self) -> Result<ResourceMetadata, ConfigError> {
        let resource = match (self.resource, self.audiences.as_slice()) {
            (Some(r), _) => r,
            (None, [one]) => one.clone(),
            (None, []) => {
                return Err(error(
                    "resource",
                    "no audience is configured to name the resource; set the resource's URL (ResourceMetadataBuilder::resource, serve --resource)",
                ));
            }
            (None, _) => {
                return Err(error(
                    "resource",
                    "several audiences are configured; set which one names this resource (ResourceMetadataBuilder::resource, serve --resource)",
                ));
            }
        };
        let parsed = absolute("resource", &resource)?;
        // RFC 9728 section 3.1: the well-known path goes between the host and the path; a
        // path of `/` alone is no path.
        let suffix = if parsed.path == "/" { "" } else { &parsed.path };
        let path = format!("{WELL_KNOWN_PATH}{suffix}");
        let url = format!("{}{path}", parsed.origin);
        let servers = self.authorization_servers.unwrap_or(self.issuers);
        for s in &servers {
            absolute("authorization_servers", s)?;
        }
        let mut doc = Map::new();
        doc.insert("resource".into(), Value::from(resource.clone()));
        if !servers.is_empty() {
            doc.insert("authorization_servers".into(), Value::from(servers));
        }
        let methods: Vec<&str> = {
            let mut m: Vec<&str> = Vec::new();
            for source in &self.sources {
                let name = match source {
                    TokenSource::Authorization => "header",
                    TokenSource::Query(_) => "query",
                    _ => continue,
                };
                if !m.contains(&name) {
                    m.push(name);
                }
            }
            m
        };
        doc.insert("bearer_methods_supported".into(), Value::from(methods));
        if let Some(scopes) = self.scopes {
            if let Some(bad) = scopes
                .iter()
                .find(|s| s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '"'))
            {
                return Err(error(
                    "scopes_supported",
                    format!("`{bad}` cannot be a scope (empty, or holding a space or a quote)"),
                ));
            }
            doc.insert("scopes_supported".into(), Value::from(scopes));
        }
        if !self.signing_algs.is_empty() {
            let algs: Vec<&str> = self.signing_algs.iter().map(|a| a.as_str()).collect();
            doc.insert(
                "resource_signing_alg_values_supported".into(),
                Value::from(algs),
            );
        }
        if let Some(docs) = self.documentation {
            absolute("resource_documentation", &docs)?;
            doc.insert("resource_documentation".into(), Value::from(docs));
        }
        if let Some(name) = self.name {
            doc.insert("resource_name".into(), Value::from(name));
        }
        let json = Bytes::from(Value::Object(doc).to_string());
        Ok(ResourceMetadata {
            resource,
            url,
            path,
            json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn auth() -> crate::AuthenticatorBuilder {
        Authenticator::builder().hmac_secret("0123456789abcdef0123456789abcdef")
    }

    fn doc(m: &ResourceMetadata) -> Value {
        serde_json::from_slice(m.json()).unwrap()
    }

    #[test]
    fn resource_from_the_one_audience_and_its_well_known_url() {
        let a = auth()
            .audience("https://api.example.com")
            .issuer("https://id.example.com")
            .build()
            .unwrap();
        let m = ResourceMetadata::builder(&a).build().unwrap();
        assert_eq!(
            m.url(),
            "https://api.example.com/.well-known/oauth-protected-resource"
        );
        assert_eq!(m.path(), WELL_KNOWN_PATH);
        assert_eq!(
            doc(&m),
            json!({
                "resource": "https://api.example.com",
                "authorization_servers": ["https://id.example.com"],
                "bearer_methods_supported": ["header"],
            })
        );
        let trailing = ResourceMetadata::builder(&a)
            .resource("https://api.example.com/mcp/")
            .build()
            .unwrap();
        assert_eq!(
            trailing.url(),
            "https://api.example.com/.well-known/oauth-protected-resource/mcp/"
        );
    }

    #[test]
    fn resource_errors_name_the_setting_and_the_fix() {
        let none = auth().build().unwrap();
        let e = ResourceMetadata::builder(&none).build().unwrap_err();
        assert_eq!(e.kind(), ConfigErrorKind::ResourceMetadata);
        assert!(e.to_string().starts_with("resource: no audience"), "{e}");
        let two = auth().audience("a").audience("b").build().unwrap();
        let e = ResourceMetadata::builder(&two).build().unwrap_err();
        assert!(e.to_string().contains("several audiences"), "{e}");
        for (url, why) in [
            ("api", "not an absolute https URL"),
            ("http://api.example.com", "plain http"),
            ("https://api.example.com/?a=1", "query or fragment"),
            ("https://api.example.com/#x", "query or fragment"),
            ("https://u@api.example.com/", "user information"),
            ("https://api.example.com/a\"b", "quote"),
            ("ftp://api.example.com/", "not an absolute https URL"),
        ] {
            let e = ResourceMetadata::builder(&none)
                .resource(url)
                .build()
                .unwrap_err();
            assert!(e.to_string().contains(why), "{url}: {e}");
        }
        assert!(
            ResourceMetadata::builder(&none)
                .resource("http://127.0.0.1:8080/mcp")
                .build()
                .is_ok()
        );
        let e = ResourceMetadata::builder(&none)
            .resource("https://api.example.com")
            .authorization_servers(["fedn"])
            .build()
            .unwrap_err();
        assert!(e.to_string().starts_with("authorization_servers:"), "{e}");
        let e = ResourceMetadata::builder(&none)
            .resource("https://api.example.com")
            .scopes_supported(["a b"])
            .build()
            .unwrap_err();
        assert!(e.to_string().starts_with("scopes_supported:"), "{e}");
    }

    #[test]
    fn bearer_methods_follow_the_token_sources() {
        let a = auth()
            .token_sources([
                TokenSource::cookie("at"),
                TokenSource::query("access_token"),
                TokenSource::Authorization,
            ])
            .build()
            .unwrap();
        let m = ResourceMetadata::builder(&a)
            .resource("https://api.example.com")
            .resource_signing_algs([Algorithm::ES256])
            .resource_documentation("https://docs.example.com/api")
            .resource_name("Example API")
            .build()
            .unwrap();
        assert_eq!(
            doc(&m),
            json!({
                "resource": "https://api.example.com",
                "bearer_methods_supported": ["query", "header"],
                "resource_signing_alg_values_supported": ["ES256"],
                "resource_documentation": "https://docs.example.com/api",
                "resource_name": "Example API",
            })
        );
        let cookie = auth()
            .token_sources([TokenSource::cookie("at")])
            .build()
            .unwrap();
        let m = ResourceMetadata::builder(&cookie)
            .resource("https://api.example.com")
            .build()
            .unwrap();
        assert_eq!(doc(&m)["bearer_methods_supported"], json!([]));
    }
}
