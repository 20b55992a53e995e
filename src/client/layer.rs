//! `TokenLayer`: attaches the token to outgoing requests, refreshes once on `Token expired`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tower_layer::Layer;
use tower_service::Service;

use super::body::{ReplayBody, ResponseBody, capture};
use super::endpoint::FednRefresh;
use super::environment::Environment;
use super::error::{BoxError, TokenError};
use super::provider::TokenProvider;
use super::refresh::Refreshing;
use super::token::{Token, normalise};
use crate::error::{ConfigError, ConfigErrorKind};

/// How much of a 401 answer is read to find its message.
const MAX_REFUSAL: usize = 16 * 1024;

/// The message FEDn (and portcullis) answer for an expired token.
const TOKEN_EXPIRED: &str = "Token expired";

/// A tower layer for outgoing requests: adds `Authorization: <scheme> <token>` from a
/// [`TokenProvider`], and refreshes once when the server says the token expired.
///
/// Wraps any `Service<http::Request<B>>` whose body is a [`ReplayBody`]: a hyper client,
/// an axum router, a reqwest-backed service, a tonic `Channel` (feature `tonic`).
///
/// - The scheme is `Bearer` unless set ([`scheme`](Self::scheme); FEDn's
///   `FEDN_AUTH_SCHEME` in [`fedn`](Self::fedn)). The header is marked sensitive, so
///   hyper and h2 never index or log it. A request that already has `Authorization` goes
///   out as it is.
/// - Refused: an HTTP 401 whose JSON body has the message `Token expired` (FEDn's and
///   portcullis's answer), or, when the body has no message, whose `WWW-Authenticate`
///   says `error="invalid_token"` (RFC 6750 section 3.1); a gRPC answer with status 16
///   (`UNAUTHENTICATED`) and the message `Token expired`. Any other message (`Invalid
///   token`, ...) is returned as it is, with no refresh.
/// - Then the source renews the token ([`TokenProvider::renew`]; concurrent callers share
///   one refresh) and the request is sent once more when its body can be replayed (see
///   [`ReplayBody`]); never more than once per request. A body that cannot be replayed
///   gets the 401 back, and the next request the new token.
/// - A source that fails fails the call with its [`TokenError`] (for example "refresh
///   token invalid or expired, log in again"); nothing is sent then.
///
/// ```
/// use axum::{Router, body::Body, routing::get};
/// use portcullis::client::{Token, TokenLayer};
/// use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer};
/// use tower::{Layer, ServiceExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let secret = "0123456789abcdef0123456789abcdef";
/// let api = Router::new().route("/me", get(|| async { "me" })).layer(AuthLayer::new(
///     Authenticator::builder().hmac_secret(secret).build()?,
///     Policy::builder().allow("GET", "/me", ["*"]).build()?,
/// ));
/// let token = Signer::hmac(Algorithm::HS256, secret)?
///     .sign(&serde_json::json!({"sub": "c1", "exp": 4_000_000_000u64}))?;
/// let client = TokenLayer::new(Token::new(token)).layer(api);
/// let res = client.oneshot(http::Request::get("/me").body(Body::empty())?).await?;
/// assert_eq!(res.status(), 200);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// # });
/// ```
#[derive(Clone)]
#[must_use]
pub struct TokenLayer {
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    source: Arc<dyn TokenProvider>,
    scheme: String,
    max_replay: usize,
}

impl fmt::Debug for TokenLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenLayer")
            .field("scheme", &self.shared.scheme)
            .field("max_replay_bytes", &self.shared.max_replay)
            .finish_non_exhaustive()
    }
}

fn valid_scheme(scheme: &str) -> bool {
    !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl TokenLayer {
    /// A layer sending tokens from `source` with the `Bearer` scheme.
    pub fn new(source: impl TokenProvider) -> Self {
        Self {
            shared: Arc::new(Shared {
                source: Arc::new(source),
                scheme: "Bearer".to_owned(),
                max_replay: 64 * 1024,
            }),
        }
    }

    /// The scheme word before the token (default `Bearer`; FEDn's older clients use
    /// `Token`). It must be an HTTP token (RFC 9110 section 11.1); one that is not fails
    /// every request with an error saying so.
    pub fn scheme(mut self, scheme: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.shared).scheme = scheme.into();
        self
    }

    /// The largest request body kept to be sent again after a refresh. Default 64 KiB;
    /// larger bodies are sent once.
    pub fn max_replay_bytes(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.shared).max_replay = bytes;
        self
    }

    /// FEDn's client settings from `env`: `FEDN_AUTH_SCHEME` (default `Bearer`),
    /// `FEDN_AUTH_TOKEN` (`Bearer xyz` read as `xyz`), and, when both are set,
    /// `FEDN_AUTH_REFRESH_TOKEN_URI` and `FEDN_AUTH_REFRESH_TOKEN` for FEDn's refresh
    /// protocol ([`FednRefresh`]; the token is then refreshed 30 s before it expires and on
    /// `Token expired`). No token and no refresh settings is an error naming them.
    ///
    /// ```
    /// use portcullis::client::{Environment, TokenLayer};
    ///
    /// let vars = [("FEDN_AUTH_TOKEN", "Bearer xyz"), ("FEDN_AUTH_SCHEME", "Token")];
    /// let env = Environment::from_lookup(move |n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()));
    /// let layer = TokenLayer::fedn(&env)?;
    /// assert_eq!(layer.scheme_name(), "Token");
    /// let err = TokenLayer::fedn(&Environment::from_lookup(|_| None)).unwrap_err();
    /// assert!(err.to_string().contains("FEDN_AUTH_TOKEN"));
    /// # Ok::<(), portcullis::ConfigError>(())
    /// ```
    pub fn fedn(env: &Environment) -> Result<Self, ConfigError> {
        let scheme = env
            .get("FEDN_AUTH_SCHEME")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "Bearer".to_owned());
        if !valid_scheme(&scheme) {
            return Err(ConfigError::new(
                ConfigErrorKind::Extraction,
                "FEDN_AUTH_SCHEME",
                "is not a scheme name (letters, digits and !#$%&'*+-.^_`|~, no spaces); use Bearer or Token",
            ));
        }
        let initial = match env.get("FEDN_AUTH_TOKEN") {
            Some(v) => Some(Token::new(normalise(&v).map_err(|what| {
                ConfigError::new(ConfigErrorKind::Environment, "FEDN_AUTH_TOKEN", what)
            })?)),
            None => None,
        };
        let layer = match (FednRefresh::from_env(env)?, initial) {
            (Some(refresh), initial) => {
                Self::new(Refreshing::builder(refresh).initial_token(initial).build())
            }
            (None, Some(token)) => Self::new(token),
            (None, None) => {
                return Err(ConfigError::new(
                    ConfigErrorKind::Environment,
                    "FEDN_AUTH_TOKEN",
                    "is unset; set the token (`xyz` or `Bearer xyz`), or FEDN_AUTH_REFRESH_TOKEN_URI and FEDN_AUTH_REFRESH_TOKEN to get one",
                ));
            }
        };
        Ok(layer.scheme(scheme))
    }

    /// [`fedn`](Self::fedn) with the process environment.
    pub fn fedn_from_env() -> Result<Self, ConfigError> {
        Self::fedn(&Environment::process())
    }

    /// The scheme word this layer sends.
    pub fn scheme_name(&self) -> &str {
        &self.shared.scheme
    }
}

impl<S> Layer<S> for TokenLayer {
    type Service = AddToken<S>;

    fn layer(&self, inner: S) -> AddToken<S> {
        AddToken {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`TokenLayer`].
#[derive(Clone)]
pub struct AddToken<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for AddToken<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddToken")
            .field("inner", &self.inner)
            .field("scheme", &self.shared.scheme)
            .finish_non_exhaustive()
    }
}

impl<S> AddToken<S> {
    crate::macros::inner_service_accessors!();
}

type Answer<RB> = Result<Response<ResponseBody<RB>>, BoxError>;

/// The future of [`AddToken`].
pub struct ResponseFuture<RB> {
    inner: Pin<Box<dyn Future<Output = Answer<RB>> + Send>>,
}

impl<RB> fmt::Debug for ResponseFuture<RB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<RB> Future for ResponseFuture<RB> {
    type Output = Result<Response<ResponseBody<RB>>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<S, B, RB> Service<Request<B>> for AddToken<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: ReplayBody + Send + 'static,
    B::Error: Into<BoxError>,
    RB: Body<Data = Bytes> + Unpin + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = BoxError;
    type Future = ResponseFuture<RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture<RB> {
        // The ready service goes into the future; a clone takes its place (tower's rule).
        let clone = self.inner.clone();
        let svc = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        ResponseFuture {
            inner: Box::pin(send(shared, svc, req)),
        }
    }
}

fn authorize<B>(
    shared: &Shared,
    mut parts: http::request::Parts,
    body: B,
    token: &Token,
) -> Result<Request<B>, BoxError> {
    if !valid_scheme(&shared.scheme) {
        return Err(
            TokenError::invalid("scheme", "is not an HTTP token (RFC 9110 section 11.1)").into(),
        );
    }
    let mut value = HeaderValue::try_from(format!("{} {}", shared.scheme, token.secret()))
        .map_err(|_| TokenError::invalid("token", "has characters a header cannot carry"))?;
    value.set_sensitive(true);
    parts.headers.insert(AUTHORIZATION, value);
    Ok(Request::from_parts(parts, body))
}

async fn send<S, B, RB>(
    shared: Arc<Shared>,
    mut svc: S,
    req: Request<B>,
) -> Result<Response<ResponseBody<RB>>, BoxError>
where
    S: Service<Request<B>, Response = Response<RB>> + Send,
    S::Error: Into<BoxError>,
    B: ReplayBody,
    B::Error: Into<BoxError>,
    RB: Body<Data = Bytes> + Unpin,
    RB::Error: Into<BoxError>,
{
    if req.headers().contains_key(AUTHORIZATION) {
        let res = svc.call(req).await.map_err(Into::into)?;
        return Ok(res.map(ResponseBody::pass));
    }
    let token = shared.source.token().await?;
    let (parts, body) = req.into_parts();
    let (body, replay) = capture(body, shared.max_replay)?;
    let first = authorize(&shared, parts.clone(), body, &token)?;
    let res = svc.call(first).await.map_err(Into::into)?;
    let (res, expired) = refused_as_expired(res).await?;
    if !expired {
        return Ok(res);
    }
    let Some(fresh) = shared.source.renew(&token).await? else {
        return Ok(res);
    };
    let Some((data, trailers)) = replay else {
        // Not replayable: this answer stands; the next request gets the new token.
        return Ok(res);
    };
    drop(res);
    std::future::poll_fn(|cx| svc.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    let again = authorize(&shared, parts, B::replay(data, None, trailers), &fresh)?;
    let res = svc.call(again).await.map_err(Into::into)?;
    Ok(res.map(ResponseBody::pass))
}

/// Whether a `WWW-Authenticate` value has the parameter `error="invalid_token"`.
fn says_invalid_token(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    value.split(',').any(|part| {
        let param = part.trim().rsplit(' ').next().unwrap_or("");
        param.split_once('=').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("error") && v.trim().trim_matches('"') == "invalid_token"
        })
    })
}

fn grpc_says_expired(headers: &HeaderMap) -> Option<bool> {
    let status = headers.get("grpc-status")?;
    let message = headers
        .get("grpc-message")
        .map(|m| percent_encoding::percent_decode(m.as_bytes()).decode_utf8_lossy())
        .unwrap_or_default();
    Some(status == "16" && message == TOKEN_EXPIRED)
}

/// Whether the answer refuses the token as expired (see [`TokenLayer`]); reads at most
/// [`MAX_REFUSAL`] bytes of a JSON 401 body, and hands the body on whole.
async fn refused_as_expired<RB>(
    res: Response<RB>,
) -> Result<(Response<ResponseBody<RB>>, bool), BoxError>
where
    RB: Body<Data = Bytes> + Unpin,
    RB::Error: Into<BoxError>,
{
    if let Some(expired) = grpc_says_expired(res.headers()) {
        return Ok((res.map(ResponseBody::pass), expired));
    }
    if res.status() != StatusCode::UNAUTHORIZED {
        return Ok((res.map(ResponseBody::pass), false));
    }
    let challenge = res
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .any(says_invalid_token);
    let json = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    if !json {
        return Ok((res.map(ResponseBody::pass), challenge));
    }
    let (parts, mut body) = res.into_parts();
    let mut buf = BytesMut::new();
    let mut trailers = None;
    let mut rest = None;
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    buf.extend_from_slice(&data);
                    if buf.len() > MAX_REFUSAL {
                        rest = Some(body);
                        break;
                    }
                }
                Err(frame) => {
                    trailers = frame.into_trailers().ok();
                    break;
                }
            },
        }
    }
    let data = buf.freeze();
    let message = if rest.is_none() {
        serde_json::from_slice::<serde_json::Value>(&data)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(|m| m == TOKEN_EXPIRED))
    } else {
        None
    };
    let expired = message.unwrap_or(challenge);
    Ok((
        Response::from_parts(parts, ResponseBody::new(data, rest, trailers)),
        expired,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(says_invalid_token(&v(
            r#"Bearer realm="api", error="invalid_token""#
        )));
        assert!(says_invalid_token(&v(r#"Bearer error=invalid_token"#)));
        assert!(says_invalid_token(&v(
            r#"Token realm="api",error="invalid_token",error_description="x""#
        )));
        assert!(!says_invalid_token(&v(r#"Bearer realm="api""#)));
        assert!(!says_invalid_token(&v(
            r#"Bearer realm="api", error="insufficient_scope""#
        )));
    }

    #[test]
    fn grpc() {
        let mut h = HeaderMap::new();
        assert_eq!(grpc_says_expired(&h), None);
        h.insert("grpc-status", v("16"));
        h.insert("grpc-message", v("Token%20expired"));
        assert_eq!(grpc_says_expired(&h), Some(true));
        h.insert("grpc-message", v("Invalid token"));
        assert_eq!(grpc_says_expired(&h), Some(false));
        h.insert("grpc-status", v("7"));
        h.insert("grpc-message", v("Token expired"));
        assert_eq!(grpc_says_expired(&h), Some(false));
    }

    fn v(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn schemes() {
        assert!(valid_scheme("Bearer") && valid_scheme("Token"));
        assert!(!valid_scheme("") && !valid_scheme("Bear er") && !valid_scheme("Bearer\t"));
    }
}
