//! Bodies: replaying a request body, and a response body read in part.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::error::BoxError;

/// A request body [`TokenLayer`](super::TokenLayer) can send again after a refresh.
///
/// Before a request goes out, the layer reads the frames of its body that are already
/// there, without waiting, up to a cap (64 KiB by default). A body that ends within them
/// (a unary gRPC message, a JSON document) can be replayed; the layer sends a body made by
/// [`replay`](Self::replay) from what it read. A body that would wait (a client stream) or
/// is larger goes out as what was read followed by the rest, and is never retried.
///
/// Implemented for `http_body_util::Full<Bytes>`, `Empty<Bytes>`, `String`, the boxed
/// bodies of `http_body_util`, `axum::body::Body` (feature `axum`) and
/// `tonic::body::Body` (feature `tonic`, for tonic channels).
pub trait ReplayBody: Body<Data = Bytes> + Unpin + Sized {
    /// A body that yields `data` (when not empty), then the frames of `rest` (when given),
    /// then `trailers` (when given; `rest` is then `None`).
    fn replay(data: Bytes, rest: Option<Self>, trailers: Option<HeaderMap>) -> Self;
}

pin_project! {
    /// A body that yields bytes already read, then the rest of the body they came from,
    /// then trailers already read: the response body of [`TokenLayer`](super::TokenLayer)
    /// (which may read a 401 answer to see why it was refused).
    pub struct ResponseBody<B> {
        data: Option<Bytes>,
        #[pin]
        rest: Option<B>,
        trailers: Option<HeaderMap>,
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("buffered", &self.data.as_ref().map_or(0, Bytes::len))
            .field("streaming", &self.rest.is_some())
            .finish()
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(data: Bytes, rest: Option<B>, trailers: Option<HeaderMap>) -> Self {
        Self {
            data: Some(data).filter(|d| !d.is_empty()),
            rest,
            trailers,
        }
    }

    pub(crate) fn pass(body: B) -> Self {
        Self::new(Bytes::new(), Some(body), None)
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        if let Some(data) = this.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(rest) = this.rest.as_mut().as_pin_mut() {
            match rest.poll_frame(cx) {
                Poll::Ready(None) => this.rest.set(None),
                other => return other,
            }
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
            && self.trailers.is_none()
            && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self
            .rest
            .as_ref()
            .map_or(SizeHint::with_exact(0), B::size_hint);
        let n = self.data.as_ref().map_or(0, |d| d.len() as u64);
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(n));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(n));
        }
        hint
    }
}

/// A body read whole: its data and trailers.
pub(crate) type Whole = (Bytes, Option<HeaderMap>);

/// Reads the frames of `body` that are ready, up to `cap` bytes. Returns the body to send
/// and, when the body ended within them, what it held (for a replay).
pub(crate) fn capture<B>(mut body: B, cap: usize) -> Result<(B, Option<Whole>), BoxError>
where
    B: ReplayBody,
    B::Error: Into<BoxError>,
{
    if body.is_end_stream() {
        return Ok((body, Some((Bytes::new(), None))));
    }
    let mut cx = Context::from_waker(Waker::noop());
    let mut buf = BytesMut::new();
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(None) => {
                let data = buf.freeze();
                return Ok((B::replay(data.clone(), None, None), Some((data, None))));
            }
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    buf.extend_from_slice(&data);
                    if buf.len() > cap {
                        return Ok((B::replay(buf.freeze(), Some(body), None), None));
                    }
                }
                Err(frame) => {
                    let trailers = frame.into_trailers().ok();
                    let data = buf.freeze();
                    return Ok((
                        B::replay(data.clone(), None, trailers.clone()),
                        Some((data, trailers)),
                    ));
                }
            },
            Poll::Ready(Some(Err(e))) => return Err(e.into()),
            Poll::Pending => return Ok((B::replay(buf.freeze(), Some(body), None), None)),
        }
    }
}

/// The data of a body that is always ready (`Full`), read without waiting.
fn ready_data<B: Body<Data = Bytes> + Unpin>(mut body: B) -> BytesMut {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = BytesMut::new();
    while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) {
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
        }
    }
    out
}

impl ReplayBody for http_body_util::Full<Bytes> {
    fn replay(data: Bytes, rest: Option<Self>, _trailers: Option<HeaderMap>) -> Self {
        // A `Full` body is always ready and has no trailers: `rest` is what is left of it.
        match rest {
            None => Self::new(data),
            Some(rest) => {
                let mut all = BytesMut::from(&data[..]);
                all.extend_from_slice(&ready_data(rest));
                Self::new(all.freeze())
            }
        }
    }
}

impl ReplayBody for http_body_util::Empty<Bytes> {
    fn replay(_data: Bytes, _rest: Option<Self>, _trailers: Option<HeaderMap>) -> Self {
        // An empty body reads as nothing, so there is nothing to replay.
        Self::new()
    }
}

impl ReplayBody for String {
    fn replay(data: Bytes, rest: Option<Self>, _trailers: Option<HeaderMap>) -> Self {
        // A `String` body is always ready and has no trailers.
        let mut all = BytesMut::from(&data[..]);
        if let Some(rest) = rest {
            all.extend_from_slice(&ready_data(rest));
        }
        String::from_utf8_lossy(&all).into_owned()
    }
}

impl<E: 'static> ReplayBody for http_body_util::combinators::UnsyncBoxBody<Bytes, E>
where
    E: Send,
{
    fn replay(data: Bytes, rest: Option<Self>, trailers: Option<HeaderMap>) -> Self {
        Self::new(ResponseBody::new(data, rest, trailers))
    }
}

impl<E: 'static> ReplayBody for http_body_util::combinators::BoxBody<Bytes, E>
where
    E: Send + Sync,
{
    fn replay(data: Bytes, rest: Option<Self>, trailers: Option<HeaderMap>) -> Self {
        Self::new(ResponseBody::new(data, rest, trailers))
    }
}

#[cfg(feature = "axum")]
impl ReplayBody for axum_core::body::Body {
    fn replay(data: Bytes, rest: Option<Self>, trailers: Option<HeaderMap>) -> Self {
        Self::new(ResponseBody::new(data, rest, trailers))
    }
}

#[cfg(feature = "tonic")]
impl ReplayBody for tonic::body::Body {
    fn replay(data: Bytes, rest: Option<Self>, trailers: Option<HeaderMap>) -> Self {
        Self::new(ResponseBody::new(data, rest, trailers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn full_bodies_replay_and_pass_through() {
        let (send, replay) = capture(Full::new(Bytes::from_static(b"hello")), 1024).unwrap();
        assert_eq!(replay.unwrap().0, "hello");
        assert_eq!(send.collect().await.unwrap().to_bytes(), "hello");
        let (send, replay) = capture(Full::new(Bytes::from_static(b"hello")), 2).unwrap();
        assert!(replay.is_none(), "over the cap");
        assert_eq!(send.collect().await.unwrap().to_bytes(), "hello");
    }

    #[tokio::test]
    async fn response_body_order() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x", "1".parse().unwrap());
        let body = ResponseBody::new(
            Bytes::from_static(b"ab"),
            Some(Full::new(Bytes::from_static(b"cd"))),
            None,
        );
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcd");
        let body: ResponseBody<Full<Bytes>> =
            ResponseBody::new(Bytes::from_static(b"ab"), None, Some(trailers));
        let got = body.collect().await.unwrap();
        assert_eq!(got.trailers().unwrap()["x"], "1");
    }
}
