//! The response body of the layer: the inner service's body, or a rejection's JSON.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

pin_project_lite::pin_project! {
    /// The body of a response that went through [`AuthLayer`](crate::AuthLayer): either the
    /// inner service's body, untouched, or the JSON body of a rejection.
    pub struct AuthBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Full { data: Option<Bytes> },
    }
}

impl<B> AuthBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    pub(crate) fn empty() -> Self {
        Self {
            kind: Kind::Full { data: None },
        }
    }

    /// The bytes of a rejection's body (`None` for an inner service's body).
    pub(crate) fn into_bytes(self) -> Option<Bytes> {
        match self.kind {
            Kind::Full { data } => Some(data.unwrap_or_default()),
            Kind::Inner { .. } => None,
        }
    }

    /// The inner service's body (`Ok`), or a rejection's bytes (`Err`).
    pub(crate) fn into_inner(self) -> Result<B, Bytes> {
        match self.kind {
            Kind::Inner { body } => Ok(body),
            Kind::Full { data } => Err(data.unwrap_or_default()),
        }
    }

    pub(crate) fn full(data: Bytes) -> Self {
        Self {
            kind: Kind::Full { data: Some(data) },
        }
    }
}

impl<B> std::fmt::Debug for AuthBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthBody").finish_non_exhaustive()
    }
}

impl<B: Body<Data = Bytes>> Body for AuthBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
