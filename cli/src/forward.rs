//! The forward-auth decision: the proxy's subrequest becomes the original request (method
//! and URI from the proxy's headers, the credential from `Authorization` or the configured
//! token source), goes through the same `AuthLayer` a Rust service would use, and the
//! answer goes back in the form the proxy understands.

use std::convert::Infallible;
use std::future::{Ready, poll_fn, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use portcullis::layer::Auth;
use portcullis::{AuthError, AuthLayer, Authorizer, Principal};
use serde_json::Value;
use tower_layer::Layer;
use tower_service::Service;

/// Which proxy asks, which decides the headers read and the answers given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Proxy {
    /// nginx `auth_request`: `X-Original-Method` and `X-Original-URI`; a 400 is answered
    /// as 401 (nginx turns any status but 2xx, 401 and 403 into a 500).
    Nginx,
    /// Caddy `forward_auth`: `X-Forwarded-Method` and `X-Forwarded-Uri`.
    Caddy,
    /// Traefik `forwardAuth`: `X-Forwarded-Method` and `X-Forwarded-Uri`.
    Traefik,
}

impl Proxy {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Caddy => "caddy",
            Self::Traefik => "traefik",
        }
    }

    /// The (method, URI) headers this proxy sets. Only these are read: the other family
    /// may come from the client and is ignored.
    fn headers(self) -> (&'static str, &'static str) {
        match self {
            Self::Nginx => ("x-original-method", "x-original-uri"),
            Self::Caddy | Self::Traefik => ("x-forwarded-method", "x-forwarded-uri"),
        }
    }
}

/// The identity headers of an allowed request.
pub(crate) const SUBJECT: &str = "x-auth-subject";
pub(crate) const ROLES: &str = "x-auth-roles";

/// Headers `--identity-header` may not name.
const RESERVED: [&str; 10] = [
    "authorization",
    "cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "www-authenticate",
    SUBJECT,
    ROLES,
];

/// Parses `CLAIM=HEADER`.
pub(crate) fn identity_header(text: &str) -> Result<(String, HeaderName), String> {
    let (claim, header) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: write CLAIM=HEADER, like tenant=X-Auth-Tenant"))?;
    if claim.trim().is_empty() {
        return Err(format!("`{text}`: the claim is empty"));
    }
    let name = HeaderName::try_from(header.trim())
        .map_err(|_| format!("`{text}`: `{header}` is not a header name"))?;
    if RESERVED.contains(&name.as_str()) {
        return Err(format!("`{text}`: `{name}` cannot carry a claim"));
    }
    Ok((claim.trim().to_owned(), name))
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

/// The service behind the layer: it sees only requests the layer let through, and
/// answers them with the identity headers (after the access records, when configured).
#[derive(Clone)]
pub(crate) struct Identity {
    layer: AuthLayer,
    records: Option<Authorizer>,
    claims: Arc<Vec<(String, HeaderName)>>,
}

impl Identity {
    fn answer(&self, req: &Request<()>) -> Response<Body> {
        let Some(p) = req.extensions().get::<Principal>() else {
            // Public: nothing verified, so every identity header is empty.
            return self.empty_identity();
        };
        if let Some(authz) = &self.records {
            let permission = crate::check::method_permission(req.method());
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
                    h.insert(SUBJECT, v);
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
            h.insert(ROLES, v);
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
}

impl Identity {
    /// A 200 with every identity header present and empty: a proxy that copies headers
    /// then overwrites the client's with nothing (Caddy 2.6 would otherwise pass its own
    /// placeholder text upstream for a header the answer lacks).
    fn empty_identity(&self) -> Response<Body> {
        let mut res = Response::new(Body::empty());
        let h = res.headers_mut();
        let empty = HeaderValue::from_static("");
        h.insert(SUBJECT, empty.clone());
        h.insert(ROLES, empty.clone());
        for (_, name) in self.claims.iter() {
            h.insert(name.clone(), empty.clone());
        }
        res
    }
}

impl Service<Request<()>> for Identity {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        ready(Ok(self.answer(&req)))
    }
}

/// The layer's answer for `err`: the answer table (status, challenge, JSON body) and the
/// rejection hook, with the error in the extensions; one story for every endpoint.
pub(crate) fn rejection(layer: &AuthLayer, err: AuthError) -> Response<Body> {
    layer.rejection::<Body>(err).map(Body::new)
}

/// The forward-auth decision service.
#[derive(Clone)]
pub(crate) struct Forward {
    guard: Auth<Identity>,
    layer: AuthLayer,
    proxy: Proxy,
}

/// Settings of [`Forward`].
pub(crate) struct Settings {
    pub(crate) proxy: Proxy,
    pub(crate) records: Option<Authorizer>,
    pub(crate) claims: Vec<(String, HeaderName)>,
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

impl Forward {
    pub(crate) fn new(layer: AuthLayer, settings: Settings) -> Self {
        let identity = Identity {
            layer: layer.clone(),
            records: settings.records,
            claims: Arc::new(settings.claims),
        };
        Self {
            guard: layer.layer(identity),
            layer,
            proxy: settings.proxy,
        }
    }

    /// The original request, as the proxy describes it.
    fn original(&self, headers: &HeaderMap) -> Result<Request<()>, Bad> {
        let (mh, uh) = self.proxy.headers();
        let method = Method::from_bytes(one(headers, mh)?.as_bytes()).map_err(|_| Bad::Invalid)?;
        let uri = http::Uri::try_from(one(headers, uh)?.as_bytes()).map_err(|_| Bad::Invalid)?;
        let path_and_query = uri.path_and_query().ok_or(Bad::Invalid)?;
        if !path_and_query.as_str().starts_with('/') {
            return Err(Bad::Invalid);
        }
        let mut req = Request::new(());
        *req.method_mut() = method;
        *req.uri_mut() = http::Uri::from(path_and_query.clone());
        // Every header the proxy passed on, so the configured token sources (Authorization,
        // a cookie, a custom header; PORTCULLIS_TOKEN_SOURCES) read what the client sent;
        // never the proxy's own description of the request or the framing.
        let h = req.headers_mut();
        for (name, value) in headers {
            if !matches!(
                name.as_str(),
                "x-original-method"
                    | "x-original-uri"
                    | "x-forwarded-method"
                    | "x-forwarded-uri"
                    | "content-length"
                    | "transfer-encoding"
                    | "connection"
                    | "host"
            ) {
                h.append(name.clone(), value.clone());
            }
        }
        Ok(req)
    }

    /// Decides the proxy's request.
    pub(crate) async fn decide(&self, headers: &HeaderMap) -> Response<Body> {
        let req = match self.original(headers) {
            Ok(r) => r,
            Err(Bad::Missing(name)) => {
                tracing::warn!(
                    header = name,
                    proxy = self.proxy.label(),
                    "forward-auth request without the header the proxy configuration must set"
                );
                return rejection(
                    &self.layer,
                    AuthError::misuse("proxy did not send the original request"),
                );
            }
            Err(Bad::Invalid) => {
                // The layer's own answer for a request it cannot read.
                return self.for_proxy(rejection(&self.layer, AuthError::bad_request_target()));
            }
        };
        let mut guard = self.guard.clone();
        let res = match poll_fn(|cx| guard.poll_ready(cx)).await {
            Ok(()) => match guard.call(req).await {
                Ok(res) => res.map(Body::new),
                Err(never) => match never {},
            },
            Err(never) => match never {},
        };
        self.for_proxy(res)
    }

    /// The layer's answer as the proxy needs it: nginx's `auth_request` knows only 2xx,
    /// 401 and 403, so a 400 goes back as 401 (its challenge already says
    /// `error="invalid_request"`).
    fn for_proxy(&self, mut res: Response<Body>) -> Response<Body> {
        if self.proxy == Proxy::Nginx && res.status() == StatusCode::BAD_REQUEST {
            *res.status_mut() = StatusCode::UNAUTHORIZED;
        }
        res
    }
}
