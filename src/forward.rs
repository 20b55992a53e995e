//! Forward auth: a proxy's subrequest decided by the same [`AuthLayer`] a Rust service
//! uses, and answered in the form the proxy understands.
//!
//! A proxy in front of a service (nginx `auth_request`, Caddy `forward_auth`, Traefik
//! `forwardAuth`) asks before it passes a request on: it sends the client's headers and
//! describes the original request in headers of its own. [`ForwardAuth::decide`] reads
//! that description ([`ProxyKind`] says which headers), runs the original request through
//! the layer (token, policy, revocation, rejection hook: everything the layer does), then
//! through the access records when [configured](ForwardAuth::records), and answers:
//!
//! - allowed: 200 with [`X-Auth-Subject`](SUBJECT_HEADER), [`X-Auth-Roles`](ROLES_HEADER)
//!   and every [identity header](ForwardAuth::identity_header), always present, empty
//!   when there is nothing to say (a public route, a claim the token lacks);
//! - refused: the layer's own answer (401 with the challenge, 403, 503), which the proxy
//!   passes back to the client;
//! - a proxy that left out the method or URI header: 500 (its configuration is wrong);
//!   a method or URI that cannot be read, or sent twice: 400 (401 for nginx, whose
//!   `auth_request` turns any status but 2xx, 401 and 403 into a 500; the challenge
//!   still says `error="invalid_request"`).
//!
//! Envoy ([`ProxyKind::Envoy`]: Istio, Envoy Gateway, the Gateway API's `ExternalAuth`,
//! Contour) describes the original request field by field instead, in its gRPC
//! `CheckRequest` or in the request line of its HTTP service:
//! [`ForwardAuth::decide_request`] takes it so, with the same answers, and names the
//! headers Envoy must remove in [`ENVOY_HEADERS_TO_REMOVE`].
//!
//! Identity values reach the upstream as exactly what the token says, or not at all: a
//! value with whitespace at either end or a control character is left out, never trimmed
//! (`" root "` is not `root`); a role or array-claim item that is empty or holds a comma
//! or `"` is left out of its list, so a value can never pose as two or as another.
//!
//! ```
//! use http::{HeaderMap, StatusCode};
//! use portcullis::forward::{ForwardAuth, ProxyKind};
//! use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let secret = "0123456789abcdef0123456789abcdef";
//! let layer = AuthLayer::new(
//!     Authenticator::builder().hmac_secret(secret).build()?,
//!     Policy::builder().allow("GET", "/reports/{id}", ["reader"]).build()?,
//! );
//! let forward = ForwardAuth::new(layer, ProxyKind::Nginx)
//!     .identity_header("tenant", http::HeaderName::from_static("x-auth-tenant"))?;
//!
//! // What nginx sends to the `auth_request` location: the client's headers, and the
//! // original method and URI as its configuration sets them.
//! let token = Signer::hmac(Algorithm::HS256, secret)?.sign(&serde_json::json!({
//!     "sub": "ada", "role": ["reader", "bad,role"], "tenant": "acme", "exp": 4_000_000_000u64,
//! }))?;
//! let mut headers = HeaderMap::new();
//! headers.insert("authorization", format!("Bearer {token}").parse()?);
//! headers.insert("x-original-method", "GET".parse()?);
//! headers.insert("x-original-uri", "/reports/7?page=2".parse()?);
//!
//! let res = forward.decide(&headers).await;
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.headers()["x-auth-subject"], "ada");
//! assert_eq!(res.headers()["x-auth-roles"], "reader"); // `bad,role` cannot be a list item
//! assert_eq!(res.headers()["x-auth-tenant"], "acme");
//!
//! // Another route: the layer's own 403.
//! headers.insert("x-original-uri", "/admin".parse()?);
//! let res = forward.decide(&headers).await;
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! assert!(res.headers()["www-authenticate"].to_str()?.contains("insufficient_scope"));
//!
//! // No token: 401 with the challenge; a URI nginx could not have sent: 401 for nginx.
//! headers.remove("authorization");
//! headers.insert("x-original-uri", "/reports/7".parse()?);
//! assert_eq!(forward.decide(&headers).await.status(), StatusCode::UNAUTHORIZED);
//! headers.insert("x-original-uri", "reports".parse()?);
//! assert_eq!(forward.decide(&headers).await.status(), StatusCode::UNAUTHORIZED);
//!
//! // A proxy configuration that does not set the URI header: 500.
//! headers.remove("x-original-uri");
//! assert_eq!(forward.decide(&headers).await.status(), StatusCode::INTERNAL_SERVER_ERROR);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, poll_fn, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use serde_json::Value;
use tower_layer::Layer;
use tower_service::Service;

use crate::access::Authorizer;
use crate::error::{AuthError, ConfigError, ConfigErrorKind};
use crate::layer::{Auth, AuthBody, AuthLayer};
use crate::principal::Principal;

/// `X-Auth-Subject`: the `sub` of an allowed request's token (empty when there is none,
/// or when it cannot be a header value as it is).
pub const SUBJECT_HEADER: HeaderName = HeaderName::from_static("x-auth-subject");

/// `X-Auth-Roles`: the roles of an allowed request's token, comma-separated.
pub const ROLES_HEADER: HeaderName = HeaderName::from_static("x-auth-roles");

/// The identity headers every answer carries.
static BUILT_IN: [HeaderName; 2] = [SUBJECT_HEADER, ROLES_HEADER];

/// `X-Envoy-Auth-Headers-To-Remove`: on an allowed [Envoy](ProxyKind::Envoy) request, the
/// request headers Envoy must remove before it passes the request on, comma-separated:
/// the identity headers that have no value, and the client's spellings of identity
/// headers with `_` (`x_auth_roles`). Envoy's HTTP service reads this header; the gRPC
/// service puts the names in `OkHttpResponse.headers_to_remove`.
pub const ENVOY_HEADERS_TO_REMOVE: HeaderName =
    HeaderName::from_static("x-envoy-auth-headers-to-remove");

/// Headers an [identity header](ForwardAuth::identity_header) may not name.
const RESERVED: [&str; 11] = [
    "authorization",
    "cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "www-authenticate",
    "x-auth-subject",
    "x-auth-roles",
    "x-envoy-auth-headers-to-remove",
];

/// The proxy that asks, which decides the headers read and the answers given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// nginx `auth_request`: `X-Original-Method` and `X-Original-URI` (the configuration
    /// sets them); a 400 is answered as 401, because nginx turns any status but 2xx, 401
    /// and 403 into a 500.
    Nginx,
    /// Caddy `forward_auth`: `X-Forwarded-Method` and `X-Forwarded-Uri`.
    Caddy,
    /// Traefik `forwardAuth`: `X-Forwarded-Method` and `X-Forwarded-Uri`.
    Traefik,
    /// Envoy's `ext_authz` (Istio, Envoy Gateway, Contour, the Gateway API's
    /// ExternalAuth): no headers describe the original request; its method, path and
    /// headers are given to [`ForwardAuth::decide_request`], from the request line of
    /// Envoy's HTTP service (under its [`path_prefix`](ForwardAuth::path_prefix)) or from
    /// a gRPC `CheckRequest`. Only a 200 allows. On 200 the identity headers that have a
    /// value are sent, and [`ENVOY_HEADERS_TO_REMOVE`] names those without one and the
    /// client's spellings of them with `_` (Envoy sets the headers first and removes
    /// after, so a header it sets is never in the list).
    Envoy,
}

impl ProxyKind {
    /// The proxy's name in lower case: `nginx`, `caddy`, `traefik`, `envoy` (for logs and
    /// metric labels).
    pub fn label(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Caddy => "caddy",
            Self::Traefik => "traefik",
            Self::Envoy => "envoy",
        }
    }

    /// The header that carries the original method. Only this proxy's pair is read: the
    /// other family may come from the client and is ignored. `None` for Envoy, which
    /// gives the original request itself.
    pub fn method_header(self) -> Option<HeaderName> {
        self.headers().map(|(m, _)| HeaderName::from_static(m))
    }

    /// The header that carries the original URI (path and query); `None` for Envoy.
    pub fn uri_header(self) -> Option<HeaderName> {
        self.headers().map(|(_, u)| HeaderName::from_static(u))
    }

    fn headers(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Nginx => Some(("x-original-method", "x-original-uri")),
            Self::Caddy | Self::Traefik => Some(("x-forwarded-method", "x-forwarded-uri")),
            Self::Envoy => None,
        }
    }
}

impl fmt::Display for ProxyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Whether `s` reaches the upstream as exactly itself: no control character (a tab is the
/// one a header value may carry) and no whitespace at either end, which a reader that
/// trims (RFC 9110 list parsing, `str.strip()`, `String.trim()`) would drop and so read
/// another value: `" root "` as `root`. Unicode spaces count, and U+FEFF, which
/// JavaScript's `trim()` removes.
fn exact(s: &str) -> bool {
    let edge = |c: char| c.is_whitespace() || c == '\u{feff}';
    !s.starts_with(edge) && !s.ends_with(edge) && !s.chars().any(char::is_control)
}

/// Whether `s` can be one item of a comma-separated header value: [`exact`], not empty,
/// no comma (else it would read as several items) and no `"` (an RFC 9110 list reader
/// unquotes a quoted-string: `"admin"` reads as `admin`, and a quote opened in one item
/// and closed in the next joins them).
fn list_item(s: &str) -> bool {
    !s.is_empty() && !s.contains([',', '"']) && exact(s)
}

/// A claim as one header value: strings as they are, numbers and booleans as JSON,
/// arrays as comma-separated items, objects as compact JSON. `None` when it cannot be a
/// header value or is not [`exact`]. An array item that is not a [`list_item`] is left
/// out, so a value can never pose as two or as another.
fn claim_value(v: &Value, header: &HeaderName) -> Option<HeaderValue> {
    let text = match v {
        Value::String(s) if exact(s) => s.clone(),
        Value::String(_) | Value::Null => return None,
        Value::Array(items) => {
            let kept: Vec<String> = items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(_) | Value::Bool(_) => Some(i.to_string()),
                    _ => None,
                })
                .filter(|s| list_item(s))
                .collect();
            if kept.len() < items.len() {
                tracing::debug!(
                    header = %header,
                    left_out = items.len() - kept.len(),
                    "forward-auth: claim items that cannot be list items left out"
                );
            }
            kept.join(",")
        }
        other => other.to_string(),
    };
    HeaderValue::from_str(&text).ok()
}

/// The permission an HTTP method asks of the access records when a request is checked
/// against them ([`ForwardAuth::records`]): the method's name, and `GET` for `HEAD` (a GET
/// grant also covers HEAD).
///
/// ```
/// use portcullis::forward::method_permission;
///
/// assert_eq!(method_permission(&http::Method::HEAD), "GET");
/// assert_eq!(method_permission(&http::Method::DELETE), "DELETE");
/// ```
pub fn method_permission(method: &Method) -> &str {
    if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    }
}

/// The layer's answer for `err`, with a body of bytes.
fn rejection(layer: &AuthLayer, err: AuthError) -> Response<Full<Bytes>> {
    layer.rejection::<Full<Bytes>>(err).map(flatten)
}

/// The layer's body as bytes: the inner service's, or a rejection's.
fn flatten(body: AuthBody<Full<Bytes>>) -> Full<Bytes> {
    match body.into_inner() {
        Ok(inner) => inner,
        Err(rejection) => Full::new(rejection),
    }
}

/// The service behind the layer: it sees only requests the layer let through, and
/// answers them with the identity headers (after the access records, when configured).
#[derive(Clone)]
struct Identity {
    layer: AuthLayer,
    records: Option<Authorizer>,
    claims: Arc<Vec<(String, HeaderName)>>,
}

impl Identity {
    fn answer(&self, req: &Request<()>) -> Response<Full<Bytes>> {
        let Some(p) = req.extensions().get::<Principal>() else {
            // Public: nothing verified, so every identity header is empty.
            return self.empty_identity();
        };
        if let Some(authz) = &self.records {
            let permission = method_permission(req.method());
            let decision = authz.authorize_user(p, req.uri().path(), permission);
            if let Err(e) = decision.into_result() {
                tracing::debug!(error = %e, "forward-auth: access records refused the request");
                return rejection(&self.layer, e);
            }
        }
        let mut res = self.empty_identity();
        let h = res.headers_mut();
        if let Some(sub) = p.subject() {
            // Left empty rather than trimmed: `" root "` is not `root`.
            match HeaderValue::from_str(sub) {
                Ok(v) if exact(sub) => {
                    h.insert(SUBJECT_HEADER, v);
                }
                _ => tracing::warn!(
                    "forward-auth: `sub` cannot be a header value as it is (a character a \
                     header cannot carry, or whitespace at an end); X-Auth-Subject left empty"
                ),
            }
        }
        // A role that is empty, holds a comma or `"`, whitespace at an end or a character a
        // header cannot carry is left out: it could otherwise read as other roles upstream.
        let mut left_out = 0usize;
        let roles: Vec<&str> = p
            .roles()
            .filter(|r| {
                let keep = list_item(r) && HeaderValue::from_str(r).is_ok();
                left_out += usize::from(!keep);
                keep
            })
            .collect();
        if left_out > 0 {
            tracing::debug!(
                left_out,
                "forward-auth: roles that cannot be list items left out of X-Auth-Roles"
            );
        }
        if let Ok(v) = HeaderValue::from_str(&roles.join(",")) {
            h.insert(ROLES_HEADER, v);
        }
        for (claim, name) in self.claims.iter() {
            match p.claim(claim).and_then(|v| claim_value(v, name)) {
                Some(v) => {
                    h.insert(name.clone(), v);
                }
                None if p.claim(claim).is_some() => {
                    tracing::warn!(
                        header = %name,
                        "forward-auth: the claim cannot be a header value as it is (a character \
                         a header cannot carry, or whitespace at an end); header left empty"
                    );
                }
                None => {}
            }
        }
        res
    }

    /// A 200 with every identity header present and empty: a proxy that copies headers
    /// then overwrites the client's with nothing (Caddy 2.6 would otherwise pass its own
    /// placeholder text upstream for a header the answer lacks).
    fn empty_identity(&self) -> Response<Full<Bytes>> {
        let mut res = Response::new(Full::default());
        let h = res.headers_mut();
        let empty = HeaderValue::from_static("");
        h.insert(SUBJECT_HEADER, empty.clone());
        h.insert(ROLES_HEADER, empty.clone());
        for (_, name) in self.claims.iter() {
            h.insert(name.clone(), empty.clone());
        }
        res
    }
}

impl Service<Request<()>> for Identity {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Full<Bytes>>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        ready(Ok(self.answer(&req)))
    }
}

/// Why the proxy's request could not be read.
enum Bad {
    /// The proxy did not send a header its configuration must set.
    Missing(&'static str),
    /// A value that cannot be a method or URI, or sent twice.
    Invalid,
}

/// The one value of `name`.
fn one<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h HeaderValue, Bad> {
    let mut all = headers.get_all(name).iter();
    let v = all.next().ok_or(Bad::Missing(name))?;
    if all.next().is_some() {
        return Err(Bad::Invalid);
    }
    Ok(v)
}

/// The forward-auth decision: a proxy's subrequest, described by its headers, becomes
/// the original request, which the layer (and the access records, when configured)
/// decides; see the [module](self) for the answers and an example.
///
/// Cheap to clone (the settings are shared); build it once and decide every request
/// with it.
#[derive(Clone)]
pub struct ForwardAuth {
    layer: AuthLayer,
    proxy: ProxyKind,
    records: Option<Authorizer>,
    claims: Arc<Vec<(String, HeaderName)>>,
    /// Envoy's HTTP service: the prefix its `path_prefix` puts before the original path.
    prefix: Option<Arc<str>>,
    guard: Auth<Identity>,
}

impl fmt::Debug for ForwardAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardAuth")
            .field("proxy", &self.proxy)
            .field("records", &self.records.is_some())
            .field("path_prefix", &self.prefix)
            .field(
                "identity_headers",
                &self.claims.iter().map(|(_, h)| h).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl ForwardAuth {
    /// Decides the requests `proxy` describes with `layer`: its authenticator, policy and
    /// rejection hook. Every refusal it answers carries its [`AuthError`] in the response
    /// extensions (as with [`AuthLayer::attach_errors`]), for the code that relays the
    /// decision (an ext_authz server reads the gRPC code and message from it).
    pub fn new(layer: AuthLayer, proxy: ProxyKind) -> Self {
        Self::assemble(layer.attach_errors(), proxy, None, Arc::default())
    }

    fn assemble(
        layer: AuthLayer,
        proxy: ProxyKind,
        records: Option<Authorizer>,
        claims: Arc<Vec<(String, HeaderName)>>,
    ) -> Self {
        let identity = Identity {
            layer: layer.clone(),
            records: records.clone(),
            claims: claims.clone(),
        };
        Self {
            guard: layer.layer(identity),
            layer,
            proxy,
            records,
            claims,
            prefix: None,
        }
    }

    /// Passes the claim `claim` (a path, as [`Principal::claim`] reads it) upstream in
    /// `header` on every allowed request: strings as they are, numbers and booleans as
    /// JSON, arrays as comma-separated items (items that cannot be list items left out),
    /// objects as compact JSON; empty when the token lacks the claim or its value cannot
    /// be a header value as it is.
    ///
    /// An error of kind [`ConfigErrorKind::Forward`], setting `identity_header`, when the
    /// claim is empty or `header` is one that cannot carry a claim (`Authorization`,
    /// `Cookie`, `Host`, the framing headers, `WWW-Authenticate`, `X-Auth-Subject`,
    /// `X-Auth-Roles`).
    ///
    /// ```
    /// use http::HeaderName;
    /// use portcullis::forward::{ForwardAuth, ProxyKind};
    /// use portcullis::{AuthLayer, Authenticator, ConfigErrorKind, Policy};
    ///
    /// let layer = AuthLayer::new(
    ///     Authenticator::builder().hmac_secret("0123456789abcdef0123456789abcdef").build()?,
    ///     Policy::builder().build()?,
    /// );
    /// let err = ForwardAuth::new(layer, ProxyKind::Caddy)
    ///     .identity_header("sub", HeaderName::from_static("authorization"))
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ConfigErrorKind::Forward);
    /// assert_eq!(err.to_string(), "identity_header: `authorization` cannot carry a claim");
    /// # Ok::<(), portcullis::ConfigError>(())
    /// ```
    pub fn identity_header(
        self,
        claim: impl Into<String>,
        header: HeaderName,
    ) -> Result<Self, ConfigError> {
        let claim = claim.into();
        if claim.trim().is_empty() {
            return Err(ConfigError::new(
                ConfigErrorKind::Forward,
                "identity_header",
                format!("the claim for `{header}` is empty"),
            ));
        }
        if RESERVED.contains(&header.as_str()) {
            return Err(ConfigError::new(
                ConfigErrorKind::Forward,
                "identity_header",
                format!("`{header}` cannot carry a claim"),
            ));
        }
        let mut claims = Vec::clone(&self.claims);
        claims.push((claim, header));
        let prefix = self.prefix.clone();
        Ok(Self {
            prefix,
            ..Self::assemble(self.layer, self.proxy, self.records, Arc::new(claims))
        })
    }

    /// Checks every request the layer allows against access records too:
    /// [`Authorizer::authorize_user`]`(principal, path, method)`, `HEAD` asking for `GET`.
    /// A refusal is the layer's answer for it (403). Public routes are not checked.
    pub fn records(self, records: Authorizer) -> Self {
        let prefix = self.prefix.clone();
        Self {
            prefix,
            ..Self::assemble(self.layer, self.proxy, Some(records), self.claims)
        }
    }

    /// For Envoy's HTTP service ([`ProxyKind::Envoy`]): the `path_prefix` its
    /// `http_service` puts before the original path, taken off again by
    /// [`decide_request`](Self::decide_request), so the decision judges `/api/items` when
    /// Envoy asks for `/ext-authz/api/items`. Default: none (the gRPC service, or an Envoy
    /// without a prefix). A path outside the prefix then answers 500: Envoy's
    /// configuration and this one disagree.
    ///
    /// An error of kind [`ConfigErrorKind::Forward`], setting `path_prefix`, when the
    /// proxy is not Envoy, or the prefix is not a path of whole segments: it must start
    /// with `/`, not end with one, and hold no query, fragment, dot segment, space or
    /// control character.
    ///
    /// ```
    /// use portcullis::forward::{ForwardAuth, ProxyKind};
    /// use portcullis::{AuthLayer, Authenticator, Policy};
    ///
    /// let layer = AuthLayer::new(
    ///     Authenticator::builder().hmac_secret("0123456789abcdef0123456789abcdef").build()?,
    ///     Policy::builder().build()?,
    /// );
    /// let envoy = ForwardAuth::new(layer.clone(), ProxyKind::Envoy).path_prefix("/ext-authz")?;
    /// let err = ForwardAuth::new(layer, ProxyKind::Envoy).path_prefix("ext-authz/").unwrap_err();
    /// assert!(err.to_string().starts_with("path_prefix: "));
    /// # Ok::<(), portcullis::ConfigError>(())
    /// ```
    pub fn path_prefix(mut self, prefix: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| {
            ConfigError::new(
                ConfigErrorKind::Forward,
                "path_prefix",
                format!("`{prefix}` {why}"),
            )
        };
        if self.proxy != ProxyKind::Envoy {
            return Err(bad(
                "is for Envoy's HTTP service (ProxyKind::Envoy); other proxies name the original URI in a header",
            ));
        }
        if !prefix.starts_with('/') || prefix.len() < 2 || prefix.ends_with('/') {
            return Err(bad(
                "must start with `/` and not end with one, like /ext-authz",
            ));
        }
        if prefix.contains(['?', '#', '%']) || prefix.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(bad(
                "may hold no query, fragment, percent-encoding, space or control character",
            ));
        }
        if prefix[1..]
            .split('/')
            .any(|seg| seg == "." || seg == ".." || seg.is_empty())
        {
            return Err(bad("may hold no empty or dot segment"));
        }
        self.prefix = Some(prefix.into());
        Ok(self)
    }

    /// The same decision (layer, identity headers, access records) for requests `proxy`
    /// asks; a [path prefix](Self::path_prefix) is left behind, since it belongs to one
    /// Envoy service. `serve` answers Envoy's HTTP and gRPC services from one
    /// configuration this way.
    pub fn with_proxy(self, proxy: ProxyKind) -> Self {
        Self {
            proxy,
            prefix: None,
            ..self
        }
    }

    /// The proxy whose requests this decides.
    pub fn proxy(&self) -> ProxyKind {
        self.proxy
    }

    /// Decides the proxy's request from its headers; see the [module](self) for the
    /// answers.
    pub async fn decide(&self, headers: &HeaderMap) -> Response<Full<Bytes>> {
        match self.original(headers) {
            Ok(req) => self.run(req).await,
            Err(bad) => self.refuse(bad),
        }
    }

    /// Decides an original request given field by field: its `method`, its `target` (path
    /// and query, as in the request line) and its headers as name and value bytes. This is
    /// what Envoy gives ([`ProxyKind::Envoy`]): the request line of its HTTP service, whose
    /// [path prefix](Self::path_prefix) is taken off, or the attributes of a gRPC
    /// `CheckRequest`. The answers are those of [`decide`](Self::decide), with Envoy's
    /// additions on 200 (see [`ProxyKind::Envoy`]):
    ///
    /// - an empty `method` or `target`, or a target outside the path prefix: 500 (the
    ///   proxy's configuration and this one disagree);
    /// - a method or target that cannot be read, a target not starting with `/`, or a
    ///   header name or value that cannot be one: 400 (401 for nginx);
    /// - pseudo-headers (`:path`, `:authority`...) are not headers: left out;
    ///   `Host`, `Content-Length` and the hop-by-hop headers are left out as in
    ///   [`decide`](Self::decide).
    ///
    /// ```
    /// use http::StatusCode;
    /// use portcullis::forward::{ENVOY_HEADERS_TO_REMOVE, ForwardAuth, ProxyKind};
    /// use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let secret = "0123456789abcdef0123456789abcdef";
    /// let layer = AuthLayer::new(
    ///     Authenticator::builder().hmac_secret(secret).build()?,
    ///     Policy::builder().allow("GET", "/api/{*rest}", ["client"]).build()?,
    /// );
    /// let envoy = ForwardAuth::new(layer, ProxyKind::Envoy)
    ///     .identity_header("tenant", http::HeaderName::from_static("x-auth-tenant"))?;
    /// let token = Signer::hmac(Algorithm::HS256, secret)?
    ///     .sign(&serde_json::json!({"sub": "ada", "role": "client", "exp": 4_000_000_000u64}))?;
    /// let bearer = format!("Bearer {token}");
    ///
    /// // A gRPC CheckRequest's attributes: method, path, headers (with pseudo-headers).
    /// let headers = [
    ///     (":authority", "api.example.com"),
    ///     ("authorization", bearer.as_str()),
    ///     ("x_auth_roles", "admin"), // a forged twin of X-Auth-Roles
    /// ];
    /// let res = envoy.decide_request("GET", "/api/items?page=2", headers).await;
    /// assert_eq!(res.status(), StatusCode::OK);
    /// assert_eq!(res.headers()["x-auth-subject"], "ada");
    /// assert_eq!(res.headers()["x-auth-roles"], "client");
    /// // No tenant claim: not sent, removed; and the forged twin removed.
    /// assert!(res.headers().get("x-auth-tenant").is_none());
    /// assert_eq!(res.headers()[ENVOY_HEADERS_TO_REMOVE], "x-auth-tenant, x_auth_roles");
    ///
    /// let res = envoy.decide_request("GET", "/api/..;/admin", [("authorization", bearer.as_str())]).await;
    /// assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    /// let res = envoy.decide_request("", "", [("authorization", bearer.as_str())]).await;
    /// assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # });
    /// ```
    pub async fn decide_request<I, K, V>(
        &self,
        method: &str,
        target: &str,
        headers: I,
    ) -> Response<Full<Bytes>>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        match self.described(method, target, headers) {
            Ok(req) => self.run(req).await,
            Err(bad) => self.refuse(bad),
        }
    }

    /// The answer for a proxy request that could not be read.
    fn refuse(&self, bad: Bad) -> Response<Full<Bytes>> {
        match bad {
            Bad::Missing(name) => {
                tracing::warn!(
                    header = name,
                    proxy = self.proxy.label(),
                    "forward-auth request without what the proxy configuration must send"
                );
                rejection(
                    &self.layer,
                    AuthError::misuse("proxy did not send the original request"),
                )
            }
            Bad::Invalid => {
                // The layer's own answer for a request it cannot read.
                self.shape(
                    rejection(&self.layer, AuthError::bad_request_target()),
                    Vec::new(),
                )
            }
        }
    }

    /// Runs the original request through the layer (and the records).
    async fn run(&self, req: Request<()>) -> Response<Full<Bytes>> {
        let twins = if self.proxy == ProxyKind::Envoy {
            self.twins(req.headers())
        } else {
            Vec::new()
        };
        let mut guard = self.guard.clone();
        let res = match poll_fn(|cx| guard.poll_ready(cx)).await {
            Ok(()) => match guard.call(req).await {
                Ok(res) => res.map(flatten),
                Err(never) => match never {},
            },
            Err(never) => match never {},
        };
        self.shape(res, twins)
    }

    /// The identity headers' names: subject, roles, then the configured ones.
    fn identity_names(&self) -> impl Iterator<Item = &HeaderName> {
        BUILT_IN.iter().chain(self.claims.iter().map(|(_, h)| h))
    }

    /// The request's headers that spell an identity header with `_` for `-`
    /// (`x_auth_roles`): a server that maps both to one name (WSGI, CGI) would read them
    /// as identity.
    fn twins(&self, headers: &HeaderMap) -> Vec<HeaderName> {
        headers
            .keys()
            .filter(|name| {
                let name = name.as_str();
                name.contains('_')
                    && self.identity_names().any(|id| {
                        id.as_str().len() == name.len()
                            && id
                                .as_str()
                                .bytes()
                                .zip(name.bytes())
                                .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
                    })
            })
            .cloned()
            .collect()
    }

    /// The original request, as the proxy describes it.
    fn original(&self, headers: &HeaderMap) -> Result<Request<()>, Bad> {
        let (mh, uh) = self.proxy.headers().ok_or(Bad::Missing(
            "the original request (Envoy: use decide_request)",
        ))?;
        let method = Method::from_bytes(one(headers, mh)?.as_bytes()).map_err(|_| Bad::Invalid)?;
        let mut req = request(method, one(headers, uh)?.as_bytes())?;
        // Every header the proxy passed on, so the configured token sources (Authorization,
        // a cookie, a custom header) read what the client sent; never the proxy's own
        // description of the request or the framing.
        let h = req.headers_mut();
        for (name, value) in headers {
            if passed_on(name) {
                h.append(name.clone(), value.clone());
            }
        }
        Ok(req)
    }

    /// The original request, given field by field.
    fn described<I, K, V>(&self, method: &str, target: &str, headers: I) -> Result<Request<()>, Bad>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        if method.is_empty() {
            return Err(Bad::Missing("the method"));
        }
        if target.is_empty() {
            return Err(Bad::Missing("the path"));
        }
        let target = match &self.prefix {
            Some(prefix) => target
                .strip_prefix(&**prefix)
                .filter(|rest| rest.starts_with('/'))
                .ok_or(Bad::Missing("a path under the configured path prefix"))?,
            None => target,
        };
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| Bad::Invalid)?;
        let mut req = request(method, target.as_bytes())?;
        let h = req.headers_mut();
        for (name, value) in headers {
            let name = name.as_ref();
            if name.first() == Some(&b':') {
                continue;
            }
            let name = HeaderName::from_bytes(name).map_err(|_| Bad::Invalid)?;
            let value = HeaderValue::from_bytes(value.as_ref()).map_err(|_| Bad::Invalid)?;
            if passed_on(&name) {
                h.append(name, value);
            }
        }
        Ok(req)
    }

    /// The layer's answer as the proxy needs it: nginx's `auth_request` knows only 2xx,
    /// 401 and 403, so a 400 goes back as 401 (its challenge already says
    /// `error="invalid_request"`). Envoy, on 200: identity headers without a value are
    /// not sent but removed, with the client's `_` spellings of them (`twins`).
    fn shape(
        &self,
        mut res: Response<Full<Bytes>>,
        twins: Vec<HeaderName>,
    ) -> Response<Full<Bytes>> {
        match self.proxy {
            ProxyKind::Nginx if res.status() == StatusCode::BAD_REQUEST => {
                *res.status_mut() = StatusCode::UNAUTHORIZED;
            }
            ProxyKind::Envoy if res.status() == StatusCode::OK => {
                let mut remove: Vec<&str> = Vec::new();
                for name in self.identity_names() {
                    if res.headers().get(name).is_some_and(|v| v.is_empty()) {
                        res.headers_mut().remove(name);
                        remove.push(name.as_str());
                    }
                }
                remove.extend(twins.iter().map(HeaderName::as_str));
                if !remove.is_empty()
                    && let Ok(v) = HeaderValue::from_str(&remove.join(", "))
                {
                    res.headers_mut().insert(ENVOY_HEADERS_TO_REMOVE, v);
                }
            }
            _ => {}
        }
        res
    }
}

/// Whether a header of the proxy's request is one of the client's, passed on to the
/// decision: not the proxy's own description of the request, nor the framing.
fn passed_on(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "x-original-method"
            | "x-original-uri"
            | "x-forwarded-method"
            | "x-forwarded-uri"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "host"
    )
}

/// A request of `method` to `target` (path and query, starting with `/`).
fn request(method: Method, target: &[u8]) -> Result<Request<()>, Bad> {
    let uri = Uri::try_from(target).map_err(|_| Bad::Invalid)?;
    let path_and_query = uri.path_and_query().ok_or(Bad::Invalid)?;
    if !path_and_query.as_str().starts_with('/') || uri.authority().is_some() {
        return Err(Bad::Invalid);
    }
    let mut req = Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = Uri::from(path_and_query.clone());
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exact_refuses_edges_and_controls() {
        assert!(exact("root"));
        assert!(exact("a b"));
        assert!(exact(""));
        for s in [
            " root",
            "root ",
            "\troot",
            "root\u{a0}",
            "\u{feff}root",
            "ro\u{7f}ot",
        ] {
            assert!(!exact(s), "{s:?}");
        }
        assert!(!exact("ro\not"));
    }

    #[test]
    fn list_items_hold_no_comma_quote_or_emptiness() {
        assert!(list_item("admin"));
        assert!(list_item("team:ops"));
        for s in ["", "a,b", "\"admin\"", " admin", "admin\u{2003}"] {
            assert!(!list_item(s), "{s:?}");
        }
    }

    #[test]
    fn claim_values_as_header_values() {
        let h = HeaderName::from_static("x-auth-tenant");
        let v = |j: Value| {
            claim_value(&j, &h).map(|v| String::from_utf8(v.as_bytes().to_vec()).unwrap())
        };
        assert_eq!(v(json!("acme")).as_deref(), Some("acme"));
        assert_eq!(v(json!(" acme")), None, "never trimmed");
        assert_eq!(v(json!("ac\u{1}me")), None);
        assert_eq!(
            v(json!("caf\u{e9}")).as_deref(),
            Some("caf\u{e9}"),
            "UTF-8 as it is"
        );
        assert_eq!(v(json!("a\u{2003}")), None, "a Unicode space at an end");
        assert_eq!(v(json!(null)), None);
        assert_eq!(v(json!(42)).as_deref(), Some("42"));
        assert_eq!(v(json!(true)).as_deref(), Some("true"));
        assert_eq!(v(json!({"a": 1})).as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(
            v(json!(["a", "b,c", "\"d\"", " e", "", 7, false, null, {"x": 1}, ["y"]])).as_deref(),
            Some("a,7,false")
        );
        assert_eq!(v(json!([])).as_deref(), Some(""));
    }

    #[test]
    fn head_asks_for_get() {
        assert_eq!(method_permission(&Method::HEAD), "GET");
        assert_eq!(method_permission(&Method::DELETE), "DELETE");
    }

    #[test]
    fn proxies_read_their_own_headers() {
        let name = |h: Option<HeaderName>| h.map(|h| h.as_str().to_owned());
        assert_eq!(
            name(ProxyKind::Nginx.method_header()).as_deref(),
            Some("x-original-method")
        );
        assert_eq!(
            name(ProxyKind::Nginx.uri_header()).as_deref(),
            Some("x-original-uri")
        );
        assert_eq!(
            name(ProxyKind::Caddy.uri_header()).as_deref(),
            Some("x-forwarded-uri")
        );
        assert_eq!(
            name(ProxyKind::Traefik.method_header()).as_deref(),
            Some("x-forwarded-method")
        );
        assert_eq!(ProxyKind::Envoy.method_header(), None);
        assert_eq!(ProxyKind::Envoy.uri_header(), None);
        assert_eq!(ProxyKind::Traefik.to_string(), "traefik");
        assert_eq!(ProxyKind::Envoy.to_string(), "envoy");
    }
}
