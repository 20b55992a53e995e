//! Per-route requirements on the principal the outer [`AuthLayer`](super::AuthLayer)
//! verified: roles or a claim, checked without verifying the token again.
//!
//! Named as tower-http names its middleware: [`RequireLayer`] makes [`Require`]`<S>`,
//! whose future is [`ResponseFuture`]. The everyday entry points, [`require_roles`] and
//! [`require_claim`], are also at [`portcullis::layer`](super).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::PublicTarget;
use crate::answer;
use crate::body::AuthBody;
use crate::error::{AuthError, AuthErrorKind, Reason};
use crate::principal::{ClaimPath, Principal};

/// A requirement on the verified caller, for one route or a group of routes: made by
/// [`require_roles`] or [`require_claim`], applied with axum's `route_layer` (or any
/// tower stack) *inside* an [`AuthLayer`](super::AuthLayer).
///
/// It reads the [`Principal`] the outer layer put into the request; it never verifies a
/// token. A caller without one of the roles (or the claim) gets 403 with the outer
/// layer's challenge; a request with no principal gets 401 on a route the policy made
/// public, and 500 (misuse) when no `AuthLayer` runs in front.
///
/// ```
/// use axum::{Router, routing::get};
/// use portcullis::{AuthLayer, Authenticator, Policy, Algorithm, Signer, layer::require_roles};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let secret = "0123456789abcdef0123456789abcdef";
/// let auth = Authenticator::builder().hmac_secret(secret).build()?;
/// // The policy lets any valid token reach /reports; one route asks for more.
/// let policy = Policy::builder().allow("*", "/reports/**", ["*"]).build()?;
/// let app = Router::new()
///     .route("/reports/summary", get(|| async { "summary" }))
///     .route("/reports/payroll", get(|| async { "payroll" }).route_layer(require_roles(["hr"])))
///     .layer(AuthLayer::new(auth, policy));
/// let token = Signer::hmac(Algorithm::HS256, secret)?
///     .sign(&serde_json::json!({"sub": "ada", "role": "staff", "exp": 4_000_000_000u64}))?;
/// let get = |path: &str| http::Request::get(path)
///     .header("authorization", format!("Bearer {token}"))
///     .body(axum::body::Body::empty()).unwrap();
/// assert_eq!(app.clone().oneshot(get("/reports/summary")).await?.status(), 200);
/// let res = app.oneshot(get("/reports/payroll")).await?;
/// assert_eq!(res.status(), 403);
/// assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api", error="insufficient_scope""#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// ```
#[derive(Clone, Debug)]
#[must_use = "a layer does nothing until it wraps a service"]
pub struct RequireLayer {
    rule: Arc<Rule>,
}

#[derive(Debug)]
enum Rule {
    Roles(Vec<String>),
    Claim {
        name: String,
        path: ClaimPath,
        value: String,
    },
}

/// Requires one of `roles` (exact names; `*` is an ordinary name here) from the caller.
pub fn require_roles<I, S>(roles: I) -> RequireLayer
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    RequireLayer {
        rule: Arc::new(Rule::Roles(roles.into_iter().map(Into::into).collect())),
    }
}

/// Requires the claim at `path` (nested member names with dots, `\.` for a dot in a name)
/// to be a string equal to `value`, or an array containing it.
pub fn require_claim(path: impl Into<String>, value: impl Into<String>) -> RequireLayer {
    let name = path.into();
    RequireLayer {
        rule: Arc::new(Rule::Claim {
            path: ClaimPath::parse(&name),
            name,
            value: value.into(),
        }),
    }
}

impl Rule {
    fn check(&self, principal: &Principal) -> Result<(), AuthError> {
        match self {
            Rule::Roles(roles) => {
                if principal.roles().any(|r| roles.iter().any(|x| x == r)) {
                    Ok(())
                } else {
                    Err(AuthError::forbidden_because(format!(
                        "the route needs one of: {}",
                        roles.join(", ")
                    )))
                }
            }
            Rule::Claim { name, path, value } => {
                if principal.claim_is(path, value) {
                    Ok(())
                } else {
                    Err(AuthError::new(
                        AuthErrorKind::Forbidden,
                        Reason::RequiredClaim(name.clone()),
                    ))
                }
            }
        }
    }
}

impl<S> Layer<S> for RequireLayer {
    type Service = Require<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Require {
            inner,
            rule: self.rule.clone(),
        }
    }
}

/// The service made by [`RequireLayer`]: checks the route's requirement, then calls the
/// inner service.
#[derive(Clone, Debug)]
pub struct Require<S> {
    inner: S,
    rule: Arc<Rule>,
}

impl<S> Require<S> {
    crate::macros::inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Require<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let verdict = match req.extensions().get::<Principal>() {
            Some(p) => self.rule.check(p).map_err(|e| answer_for(&e, Some(p))),
            None => {
                let e = if req.extensions().get::<PublicTarget>().is_some() {
                    AuthError::missing()
                } else {
                    AuthError::misuse("require_roles or require_claim without AuthLayer in front")
                };
                Err(answer_for(&e, None))
            }
        };
        match verdict {
            Ok(()) => ResponseFuture {
                state: State::Inner {
                    fut: self.inner.call(req),
                },
            },
            Err(res) => ResponseFuture {
                state: State::Reject { res: Some(res) },
            },
        }
    }
}

fn answer_for<B>(err: &AuthError, principal: Option<&Principal>) -> Response<AuthBody<B>> {
    tracing::debug!(target: "portcullis::layer", error = %err, "route requirement refused the request");
    match principal {
        Some(p) => p.answers().http(err),
        None => answer::plain(err),
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Require`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner { #[pin] fut: F },
        Reject { res: Option<Response<AuthBody<B>>> },
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<AuthBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { fut } => fut.poll(cx).map(|r| r.map(|res| res.map(AuthBody::inner))),
            StateProj::Reject { res } => match res.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => panic!("ResponseFuture polled after completion"),
            },
        }
    }
}
