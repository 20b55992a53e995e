//! The future of [`Auth`](super::Auth).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Response};

use super::handle::Handle;
use crate::body::AuthBody;
use crate::error::AuthError;

pin_project_lite::pin_project! {
    /// The future of [`Auth`](super::Auth): the inner service's, or an immediate rejection.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

impl<F, B> ResponseFuture<F, B> {
    #[inline(always)]
    pub(super) fn new(state: State<F, B>) -> Self {
        Self { state }
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    pub(super) enum State<F, B> {
        Inner { #[pin] fut: F, shared: Handle },
        Reject { res: Option<Response<AuthBody<B>>> },
        Fetch {
            fut: Pin<Box<dyn Future<Output = Result<F, AuthError>> + Send>>,
            shared: Handle,
            grpc: Option<GrpcAnswer>,
        },
    }
}

/// How a [`ResponseFuture`]'s answer becomes a response: the inner service's response as
/// it came, or one of ours (a rejection, or an inner rejection the hook reshaped). Each
/// body type maps each kind once, where the answer is made.
pub(super) trait Answer<B> {
    /// The response this body type answers with.
    type Response;
    /// The inner service's response.
    fn inner(res: Response<B>) -> Self::Response;
    /// One of ours.
    fn ours(res: Response<AuthBody<B>>) -> Self::Response;
}

/// The generic body: every response in [`AuthBody`].
pub(super) struct Generic;

impl<B> Answer<B> for Generic {
    type Response = Response<AuthBody<B>>;

    #[inline(always)]
    fn inner(res: Response<B>) -> Self::Response {
        res.map(AuthBody::inner)
    }

    #[inline(always)]
    fn ours(res: Response<AuthBody<B>>) -> Self::Response {
        res
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<AuthBody<B>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.poll_answer::<Generic>(cx)
    }
}

impl<F, B, E> ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    /// Polls for the answer, mapped by `A`.
    #[inline]
    pub(super) fn poll_answer<A: Answer<B>>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<A::Response, E>> {
        let mut state = self.project().state;
        // Only a request that waits for remote keys starts in `Fetch`; it moves on to
        // `Inner` (or answers with the rejection) once the keys are there.
        while let StateProj::Fetch { fut, shared, grpc } = state.as_mut().project() {
            match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(inner)) => {
                    let shared = shared.clone();
                    state.set(State::Inner { fut: inner, shared });
                }
                Poll::Ready(Err(err)) => {
                    let res = shared.reject(err, grpc.as_ref());
                    state.set(State::Reject { res: Some(res) });
                }
            }
        }
        match state.project() {
            StateProj::Fetch { .. } => Poll::Pending,
            StateProj::Inner { fut, shared } => fut.poll(cx).map(|r| {
                r.map(|mut res| {
                    // A rejection made inside (a require layer, an extractor, an
                    // `AuthError` a handler returns) gets the hook too: one answer shape
                    // for every rejection of a request that went through this layer.
                    // Only a rejection as it was made: a handler that turned one into
                    // something else (another status, a redirect) keeps its answer.
                    if shared.has_hook()
                        && res.extensions().get::<Shaped>().is_none()
                        && !is_grpc_answer(&res)
                        && let Some(err) = res.extensions().get::<AuthError>()
                        && res.status() == err.status()
                    {
                        return A::ours(shared.reject(err.clone(), None));
                    }
                    // A handler that answers with an `AuthError` gets the challenge the
                    // table asks for, with this layer's scheme and realm (and resource
                    // metadata: an inner rejection built from the authenticator's own
                    // answers gets the layer's instead).
                    // A rejection the hook already shaped keeps what the hook left.
                    let shaped = res.extensions().get::<Shaped>().is_some();
                    let challenge = res
                        .extensions()
                        .get::<AuthError>()
                        .filter(|_| !shaped)
                        .and_then(|e| {
                            let ours = shared.answers().challenge(e)?;
                            match res.headers().get(WWW_AUTHENTICATE) {
                                None => Some(ours.clone()),
                                Some(theirs)
                                    if shared.metadata_answers.is_some()
                                        && shared.authenticator.answers().challenge(e)
                                            == Some(theirs) =>
                                {
                                    Some(ours.clone())
                                }
                                Some(_) => None,
                            }
                        });
                    if let Some(value) = challenge {
                        res.headers_mut().insert(WWW_AUTHENTICATE, value);
                    }
                    A::inner(res)
                })
            }),
            StateProj::Reject { res } => match res.take() {
                Some(res) => Poll::Ready(Ok(A::ours(res))),
                None => panic!("ResponseFuture polled after completion"),
            },
        }
    }
}

/// Marks a rejection the hook already shaped, so that an outer layer passes it on.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shaped;

/// Whether an inner response is a gRPC one (its status travels in `grpc-status`): the hook
/// shapes HTTP rejections only.
fn is_grpc_answer<B>(res: &Response<B>) -> bool {
    res.headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// A gRPC answer's content type: the request's for gRPC-web, else `application/grpc`.
pub(super) struct GrpcAnswer(pub(super) Option<HeaderValue>);
