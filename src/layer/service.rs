//! The service [`Auth`]: checks each request, then calls the inner service or answers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Request, Response};
use tower_service::Service;

use super::future::{GrpcAnswer, ResponseFuture, State};
use super::handle::Handle;
use super::{PublicAuth, PublicTarget, Shared};
use crate::authn::Step;
use crate::body::AuthBody;
use crate::error::AuthError;
use crate::policy::Target;
use crate::principal::Principal;

/// The service made by [`AuthLayer`](super::AuthLayer).
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    shared: Handle,
}

impl<S> std::fmt::Debug for Auth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl<S> Auth<S> {
    pub(super) fn new(inner: S, shared: Handle) -> Self {
        Self { inner, shared }
    }

    crate::macros::inner_service_accessors!();
}

/// What the check reads of a request: borrowed from the request itself on the fast path,
/// so the request is never taken apart and put together again.
#[derive(Clone, Copy)]
struct Head<'a> {
    method: &'a http::Method,
    uri: &'a http::Uri,
    headers: &'a http::HeaderMap,
    extensions: &'a http::Extensions,
}

impl<'a> Head<'a> {
    fn of<B>(req: &'a Request<B>) -> Self {
        Self {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }

    fn of_parts(parts: &'a http::request::Parts) -> Self {
        Self {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            extensions: &parts.extensions,
        }
    }

    fn view(self) -> crate::sender::RequestView<'a> {
        crate::sender::RequestView {
            method: self.method,
            uri: self.uri,
            headers: self.headers,
            extensions: Some(self.extensions),
        }
    }
}

/// Why the first try did not answer.
enum Next {
    /// The answer is this error.
    Fail(AuthError),
    /// Remote keys must be fetched first.
    Fetch,
    /// Everything passed but the proof's `jti` must still be recorded in the shared
    /// replay store (`public`: on a public target, where the public-auth mode decides what
    /// a refusal means).
    Replay {
        principal: Principal,
        pending: crate::sender::PendingReplay,
        public: bool,
    },
}

impl From<AuthError> for Next {
    #[inline]
    fn from(e: AuthError) -> Self {
        Self::Fail(e)
    }
}

impl From<Step> for Next {
    #[inline]
    fn from(s: Step) -> Self {
        match s {
            Step::Fail(e) => Self::Fail(e),
            Step::Fetch(_) | Step::Introspect => Self::Fetch,
        }
    }
}

impl Shared {
    /// Whether a rejection hook is set.
    pub(super) fn has_hook(&self) -> bool {
        self.on_rejection.is_some()
    }

    fn target<'a>(&self, parts: Head<'a>) -> Result<Target<'a>, AuthError> {
        if self.grpc {
            let agent = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
            self.policy
                .grpc_target(parts.uri.path(), agent)
                .map(|t| t.with_headers(parts.headers))
        } else {
            self.policy.request_target(
                parts.method,
                parts.uri.path(),
                parts.uri.query(),
                Some(parts.headers),
            )
        }
    }

    /// The sender constraints of a verified token (DPoP proofs, certificate binding): a
    /// token bound by `cnf` never passes as a plain bearer token. `Some` when the proof's
    /// `jti` must still be recorded in the shared replay store.
    #[inline]
    fn sender(
        &self,
        parts: Head<'_>,
        principal: &Principal,
    ) -> Result<Option<crate::sender::PendingReplay>, AuthError> {
        match self.authenticator.sender() {
            None if !principal.is_sender_constrained() => Ok(None),
            None => crate::sender::unconfigured(principal).map(|()| None),
            Some(checks) => checks.check(parts.view(), principal, self.authenticator.now()),
        }
    }

    /// Answers at once, or says remote keys must be fetched first (`Next::Fetch`) or a
    /// proof's `jti` recorded in the shared replay store (`Next::Replay`).
    fn check(&self, parts: Head<'_>) -> Result<Checked, Next> {
        let target = self.target(parts)?;
        if target.is_public() {
            let mut pending = None;
            let checked = self
                .public(parts, |h| {
                    let p = self
                        .authenticator
                        .authenticate_or_fetch(h, parts.uri.query())?;
                    pending = self.sender(parts, &p)?;
                    Ok(p)
                })
                .map_err(Next::from)?;
            // A proof's `jti` is recorded in the shared replay store here too; if that
            // refuses, the public-auth mode decides as for any other refusal.
            return match (pending, checked) {
                (Some(pending), Checked::Principal(principal)) => Err(Next::Replay {
                    principal,
                    pending,
                    public: true,
                }),
                (_, checked) => Ok(checked),
            };
        }
        if self.is_preflight(parts) {
            return Ok(Checked::Preflight);
        }
        let principal = self
            .authenticator
            .authenticate_or_fetch(parts.headers, parts.uri.query())?;
        let pending = self.sender(parts, &principal)?;
        self.policy.authorize(&principal, &target)?;
        if let Some(pending) = pending {
            return Err(Next::Replay {
                principal,
                pending,
                public: false,
            });
        }
        Ok(Checked::Principal(principal))
    }

    /// The same check, waiting for remote keys.
    async fn check_async(&self, parts: Head<'_>) -> Result<Checked, AuthError> {
        let target = self.target(parts)?;
        if target.is_public() {
            if self.public_auth == PublicAuth::Ignore
                || !self
                    .authenticator
                    .has_credential(parts.headers, parts.uri.query())
            {
                return Ok(Checked::Public);
            }
            let verified = match self
                .authenticator
                .authenticate_parts_async(parts.headers, parts.uri.query())
                .await
            {
                Ok(p) => match self.sender(parts, &p) {
                    Ok(Some(pending)) => pending.confirm().await.map(|()| p),
                    Ok(None) => Ok(p),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            return match verified {
                Ok(p) => Ok(Checked::Principal(p)),
                Err(e) if self.public_auth == PublicAuth::Verify => Err(e),
                Err(_) => Ok(Checked::Public),
            };
        }
        if self.is_preflight(parts) {
            return Ok(Checked::Preflight);
        }
        let principal = self
            .authenticator
            .authenticate_parts_async(parts.headers, parts.uri.query())
            .await?;
        let pending = self.sender(parts, &principal)?;
        self.policy.authorize(&principal, &target)?;
        if let Some(pending) = pending {
            pending.confirm().await?;
        }
        Ok(Checked::Principal(principal))
    }

    /// A public target: by the public-auth mode, the token is ignored, or verified when
    /// one is sent (a valid one fills the principal).
    fn public(
        &self,
        parts: Head<'_>,
        authenticate: impl FnOnce(&http::HeaderMap) -> Result<Principal, Step>,
    ) -> Result<Checked, Step> {
        if self.public_auth == PublicAuth::Ignore
            || !self
                .authenticator
                .has_credential(parts.headers, parts.uri.query())
        {
            return Ok(Checked::Public);
        }
        match authenticate(parts.headers) {
            Ok(p) => Ok(Checked::Principal(p)),
            Err(Step::Fetch(p)) => Err(Step::Fetch(p)),
            Err(Step::Introspect) => Err(Step::Introspect),
            Err(e) if self.public_auth == PublicAuth::Verify => Err(e),
            Err(_) => Ok(Checked::Public),
        }
    }

    /// A CORS preflight, when the layer lets them through: `OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`.
    fn is_preflight(&self, parts: Head<'_>) -> bool {
        self.cors_preflight
            && parts.method == http::Method::OPTIONS
            && parts.headers.contains_key(http::header::ORIGIN)
            && parts
                .headers
                .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// Whether to answer `headers`' request in gRPC form, and under which content type:
    /// only on a gRPC layer, only for a gRPC content type; gRPC-web gets its own content
    /// type back (its clients refuse `application/grpc`), gRPC gets `application/grpc`.
    #[inline]
    pub(super) fn grpc_answer(&self, headers: &http::HeaderMap) -> Option<GrpcAnswer> {
        if !self.grpc {
            return None;
        }
        let ct = headers.get(CONTENT_TYPE).filter(|v| is_grpc_type(v))?;
        let web = ct.as_bytes().get(16) == Some(&b'-');
        Some(GrpcAnswer(web.then(|| ct.clone())))
    }

    pub(super) fn reject<B>(
        &self,
        err: AuthError,
        grpc: Option<&GrpcAnswer>,
    ) -> Response<AuthBody<B>> {
        let answers = self.answers();
        let sender = self.authenticator.sender().filter(|_| grpc.is_none());
        let Some(hook) = &self.on_rejection else {
            let mut res = match grpc {
                Some(GrpcAnswer(content_type)) => answers.grpc(&err, content_type.as_ref()),
                None => answers.http_bare(&err),
            };
            // HTTP answers only (`sender` is `None` for gRPC ones): the DPoP challenge.
            if let Some(sender) = sender {
                let now = self.authenticator.now();
                sender.decorate(&err, res.headers_mut(), answers.realm(), now);
            }
            if self.attach_errors {
                res.extensions_mut().insert(err);
            }
            return res;
        };
        let mut default = match grpc {
            Some(GrpcAnswer(content_type)) => answers.grpc::<()>(&err, content_type.as_ref()),
            None => answers.http_bare::<()>(&err),
        };
        if let Some(sender) = sender {
            let now = self.authenticator.now();
            sender.decorate(&err, default.headers_mut(), answers.realm(), now);
        }
        let (parts, body) = default.into_parts();
        let body = body.into_bytes().unwrap_or_default();
        let mut res = hook(&err, Response::from_parts(parts, body));
        if self.attach_errors && res.extensions().get::<AuthError>().is_none() {
            res.extensions_mut().insert(err);
        }
        // Shaped once: a layer in front leaves it as it is.
        res.extensions_mut().insert(super::future::Shaped);
        res.map(|b| {
            if b.is_empty() {
                AuthBody::empty()
            } else {
                AuthBody::full(b)
            }
        })
    }
}

/// What the check let through.
enum Checked {
    /// A verified caller.
    Principal(Principal),
    /// A public target, without a principal.
    Public,
    /// A CORS preflight.
    Preflight,
}

impl Checked {
    /// Whether it passed without a token (a public target or a CORS preflight).
    fn without_token(&self) -> bool {
        !matches!(self, Checked::Principal(_))
    }

    /// Puts what the handler may read into the request extensions: the verified
    /// principal (replacing any the request already carried), or, without one, the
    /// public mark with any principal that came with the request taken out. Identity
    /// comes only from our own verification.
    fn record(self, extensions: &mut http::Extensions) {
        match self {
            Checked::Principal(p) => {
                extensions.insert(p);
            }
            Checked::Public => {
                extensions.remove::<Principal>();
                extensions.insert(PublicTarget);
            }
            Checked::Preflight => {
                extensions.remove::<Principal>();
            }
        }
    }
}

/// One event per decision, under the target `portcullis::layer`: allowed at TRACE,
/// rejected at DEBUG, with the method and path (or the gRPC method) and the reason;
/// never a token or a claim value.
fn trace_allowed(parts: Head<'_>, grpc: bool) {
    tracing::trace!(
        target: "portcullis::layer",
        method = %parts.method,
        path = parts.uri.path(),
        grpc,
        outcome = "allowed",
        "request allowed"
    );
}

fn trace_rejected(parts: Head<'_>, grpc: bool, err: &AuthError) {
    tracing::debug!(
        target: "portcullis::layer",
        method = %parts.method,
        path = parts.uri.path(),
        grpc,
        outcome = "rejected",
        status = err.status().as_u16(),
        reason = %err,
        "request rejected"
    );
}

/// Whether a content type is gRPC: `application/grpc`, `application/grpc+<codec>`, or
/// gRPC-web (`application/grpc-web...`).
fn is_grpc_type(v: &HeaderValue) -> bool {
    let v = v.as_bytes();
    v.len() >= 16
        && v[..16].eq_ignore_ascii_case(b"application/grpc")
        && matches!(v.get(16), None | Some(b'+') | Some(b';') | Some(b'-'))
}

/// The path of a request that must wait for remote keys: check, then call the inner
/// service (already ready) with the principal. Boxed, and taken only when a fetch is due.
fn checked<S, ReqBody>(
    shared: Handle,
    mut parts: http::request::Parts,
    body: ReqBody,
    mut inner: S,
) -> Pin<Box<dyn Future<Output = Result<S::Future, AuthError>> + Send>>
where
    S: Service<Request<ReqBody>> + Send + 'static,
    ReqBody: Send + 'static,
{
    Box::pin(async move {
        let outcome = shared.check_async(Head::of_parts(&parts)).await;
        shared.settle(&mut parts, outcome)?;
        Ok(inner.call(Request::from_parts(parts, body)))
    })
}

/// The path of a request whose proof `jti` must be recorded in the shared replay store
/// first: record it, then call the inner service (already ready) with the principal.
fn replayed<S, ReqBody>(
    shared: Handle,
    req: Request<ReqBody>,
    mut inner: S,
    (principal, public): (Principal, bool),
    pending: crate::sender::PendingReplay,
) -> Pin<Box<dyn Future<Output = Result<S::Future, AuthError>> + Send>>
where
    S: Service<Request<ReqBody>> + Send + 'static,
    ReqBody: Send + 'static,
{
    Box::pin(async move {
        let outcome = match pending.confirm().await {
            Ok(()) => Ok(Checked::Principal(principal)),
            // On a public target a refused proof only leaves the caller anonymous, unless
            // the public-auth mode asks for a valid token whenever one is sent.
            Err(_) if public && shared.public_auth != PublicAuth::Verify => Ok(Checked::Public),
            Err(err) => Err(err),
        };
        let (mut parts, body) = req.into_parts();
        shared.settle(&mut parts, outcome)?;
        Ok(inner.call(Request::from_parts(parts, body)))
    })
}

impl Shared {
    /// The end of a check that had to wait: the decision counted and logged, and on a pass
    /// what it let through recorded in the request.
    fn settle(
        &self,
        parts: &mut http::request::Parts,
        outcome: Result<Checked, AuthError>,
    ) -> Result<(), AuthError> {
        match outcome {
            Ok(checked) => {
                crate::metrics::decision(self.grpc, Ok(checked.without_token()));
                trace_allowed(Head::of_parts(parts), self.grpc);
                checked.record(&mut parts.extensions);
                Ok(())
            }
            Err(err) => {
                crate::metrics::decision(self.grpc, Err(&err));
                trace_rejected(Head::of_parts(parts), self.grpc, &err);
                Err(err)
            }
        }
    }
}

/// `S: Clone + Send + 'static` and `ReqBody: Send + 'static`: a request that must wait
/// for remote keys (feature `jwks`) is checked in a boxed future that owns a ready clone of
/// the inner service; every other request is answered at once, without boxing.
impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Auth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // Identity comes only from our own verification: `record` replaces or drops a
        // principal already in the request before the inner service sees it.
        match self.shared.check(Head::of(&req)) {
            Ok(checked) => {
                crate::metrics::decision(self.shared.grpc, Ok(checked.without_token()));
                trace_allowed(Head::of(&req), self.shared.grpc);
                checked.record(req.extensions_mut());
                ResponseFuture::new(State::Inner {
                    fut: self.inner.call(req),
                    shared: self.shared.clone(),
                })
            }
            Err(Next::Fail(err)) => {
                crate::metrics::decision(self.shared.grpc, Err(&err));
                trace_rejected(Head::of(&req), self.shared.grpc, &err);
                let grpc = self.shared.grpc_answer(req.headers());
                ResponseFuture::new(State::Reject {
                    res: Some(self.shared.reject(err, grpc.as_ref())),
                })
            }
            Err(Next::Replay {
                principal,
                pending,
                public,
            }) => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let grpc = self.shared.grpc_answer(req.headers());
                let checked = (principal, public);
                ResponseFuture::new(State::Fetch {
                    fut: replayed(self.shared.clone(), req, inner, checked, pending),
                    shared: self.shared.clone(),
                    grpc,
                })
            }
            Err(Next::Fetch) => {
                // `self.inner` was polled ready: it goes into the future, a clone stays.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let grpc = self.shared.grpc_answer(req.headers());
                let (parts, body) = req.into_parts();
                ResponseFuture::new(State::Fetch {
                    fut: checked(self.shared.clone(), parts, body, inner),
                    shared: self.shared.clone(),
                    grpc,
                })
            }
        }
    }
}
