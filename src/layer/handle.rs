//! The handle services and futures keep on the layer's shared state.
//!
//! axum clones a route's service for every request, and each request's future keeps the
//! shared state until the response is out. With a plain `Arc` that is two increments and
//! two decrements of one count that every core shares, on every request: its cache line
//! moves between cores at every request. A [`Handle`] keeps two spare references per
//! thread instead. A clone on a thread that holds a spare of the same layer takes it; a
//! drop gives its reference back as the thread's last spare (when both places are taken,
//! the older spare goes back to the shared count). In the steady state of a thread serving one layer, a request takes
//! both spares and gives both back: it reads the shared count (to notice a layer that is
//! going) but writes nothing another thread reads or writes. Only a thread without a spare
//! (its first requests, or more requests of the layer in flight than two) changes the
//! shared count, as a plain `Arc` would.
//!
//! Memory and lifetime: at most two references per thread, to the layers it served last.
//! A drop that finds only itself and its own thread's spares left frees the state at once.
//! Spares of a layer whose last service went on another thread are given back when their
//! thread gives back two references of any layer, or ends.

use std::cell::Cell;
use std::ops::Deref;
use std::sync::Arc;

use super::Shared;

/// A thread's spare references, the one given back last first, each with the address of
/// its layer's state (0 for none) so that looking for one reads two words.
struct Spares {
    last: Cell<Option<Arc<Shared>>>,
    last_id: Cell<usize>,
    before: Cell<Option<Arc<Shared>>>,
    before_id: Cell<usize>,
}

fn id(arc: &Arc<Shared>) -> usize {
    Arc::as_ptr(arc) as usize
}

impl Spares {
    /// A spare of `arc`'s layer, if this thread holds one.
    #[inline]
    fn take(&self, arc: &Arc<Shared>) -> Option<Arc<Shared>> {
        let id = id(arc);
        if self.last_id.get() == id {
            self.last_id.set(0);
            return self.last.take();
        }
        if self.before_id.get() == id {
            self.before_id.set(0);
            return self.before.take();
        }
        None
    }

    /// Keeps `arc` as the last spare; when both places are taken, the older spare goes
    /// back to the shared count. When no one but `arc` and this thread's spares holds its
    /// layer, they all go (and the layer's state with them).
    #[inline]
    fn keep(&self, arc: Arc<Shared>) {
        let id = id(&arc);
        let count = Arc::strong_count(&arc);
        if count <= 3 {
            let mine =
                usize::from(self.last_id.get() == id) + usize::from(self.before_id.get() == id);
            if count == mine + 1 {
                return self.free(arc);
            }
        }
        if self.last_id.get() == 0 {
            // A free place: the spare before stays.
            self.last.set(Some(arc));
            self.last_id.set(id);
            return;
        }
        let last = self.last.replace(Some(arc));
        let gone = self.before.replace(last);
        self.before_id.set(self.last_id.replace(id));
        // Dropped last: the state it may free can use handles too.
        drop(gone);
    }

    /// `arc` and this thread's spares of its layer are its last references.
    #[cold]
    fn free(&self, arc: Arc<Shared>) {
        let id = id(&arc);
        let mut gone = (None, None);
        if self.last_id.get() == id {
            self.last_id.set(0);
            gone.0 = self.last.take();
        }
        if self.before_id.get() == id {
            self.before_id.set(0);
            gone.1 = self.before.take();
        }
        drop(gone);
        drop(arc);
    }
}

thread_local! {
    static SPARE: Spares = const {
        Spares {
            last: Cell::new(None),
            last_id: Cell::new(0),
            before: Cell::new(None),
            before_id: Cell::new(0),
        }
    };
}

/// A counted reference to a layer's shared state; see the module docs.
pub(super) struct Handle {
    /// `None` only while it is being dropped.
    shared: Option<Arc<Shared>>,
}

impl Handle {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared: Some(shared),
        }
    }

    /// The reference itself, not given back to the thread's spares.
    pub(super) fn into_arc(mut self) -> Arc<Shared> {
        match self.shared.take() {
            Some(shared) => shared,
            None => unreachable!("a handle is only empty while it is dropped"),
        }
    }

    #[inline]
    fn arc(&self) -> &Arc<Shared> {
        match &self.shared {
            Some(shared) => shared,
            None => unreachable!("a handle is only empty while it is dropped"),
        }
    }
}

impl Deref for Handle {
    type Target = Shared;

    #[inline]
    fn deref(&self) -> &Shared {
        self.arc()
    }
}

impl Clone for Handle {
    #[inline]
    fn clone(&self) -> Self {
        let arc = self.arc();
        let spare = SPARE.try_with(|spare| spare.take(arc)).ok().flatten();
        Self {
            shared: Some(spare.unwrap_or_else(|| Arc::clone(arc))),
        }
    }
}

impl Drop for Handle {
    #[inline]
    fn drop(&mut self) {
        let Some(arc) = self.shared.take() else {
            return;
        };
        // When the thread is ending, `arc` goes with the closure, uncounted.
        let _ = SPARE.try_with(move |spare| spare.keep(arc));
    }
}

#[cfg(test)]
mod tests {
    use super::Handle;
    use crate::{AuthLayer, Authenticator, Policy};
    use std::sync::Arc;

    fn shared() -> Arc<super::Shared> {
        let auth = Authenticator::builder()
            .hmac_secret("0123456789abcdef0123456789abcdef")
            .build()
            .unwrap();
        AuthLayer::new(auth, Policy::builder().build().unwrap())
            .shared
            .into_arc()
    }

    #[test]
    fn clones_on_one_thread_reuse_the_spare() {
        let first = Handle::new(shared());
        let weak = Arc::downgrade(first.arc());
        assert_eq!(weak.strong_count(), 1);
        // The first clone counts; its drop keeps the reference as this thread's spare,
        // which every later clone takes and every later drop gives back.
        drop(first.clone());
        assert_eq!(weak.strong_count(), 2);
        for _ in 0..100 {
            let (a, b) = (first.clone(), first.clone());
            assert_eq!(weak.strong_count(), 3);
            drop((a, b));
            assert_eq!(weak.strong_count(), 3);
        }
        // The last handle gone on this thread: its spares go too and the state is freed.
        drop(first);
        assert!(
            weak.upgrade().is_none(),
            "a spare kept a dropped layer alive"
        );
    }

    #[test]
    fn the_state_is_freed_when_the_last_handle_goes() {
        let handle = Handle::new(shared());
        let weak = Arc::downgrade(handle.arc());
        let clones: Vec<Handle> = (0..40).map(|_| handle.clone()).collect();
        assert_eq!(weak.strong_count(), 41);
        drop(clones);
        // Two spares kept; the rest went back.
        assert_eq!(weak.strong_count(), 3);
        drop(handle);
        assert!(
            weak.upgrade().is_none(),
            "spares kept a dropped layer alive"
        );
    }

    #[test]
    fn two_layers_on_one_thread_never_mix() {
        let (a, b) = (Handle::new(shared()), Handle::new(shared()));
        for _ in 0..10 {
            let (ca, cb) = (a.clone(), b.clone());
            assert!(Arc::ptr_eq(ca.arc(), a.arc()) && Arc::ptr_eq(cb.arc(), b.arc()));
            drop((cb, ca));
        }
        let (wa, wb) = (Arc::downgrade(a.arc()), Arc::downgrade(b.arc()));
        drop(a);
        assert!(wa.upgrade().is_none());
        assert!(wb.upgrade().is_some());
        drop(b);
        assert!(wb.upgrade().is_none());
    }

    #[test]
    fn a_layer_dropped_after_its_last_service_takes_the_state_with_it() {
        use tower::Layer;
        let auth = Authenticator::builder()
            .hmac_secret("0123456789abcdef0123456789abcdef")
            .build()
            .unwrap();
        let layer = AuthLayer::new(auth, Policy::builder().build().unwrap());
        let weak = Arc::downgrade(layer.shared.arc());
        let svc = layer.layer(tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }));
        drop(svc.clone());
        drop(svc);
        drop(layer);
        assert!(
            weak.upgrade().is_none(),
            "spares kept a dropped layer alive"
        );
    }

    #[test]
    fn a_thread_keeps_a_spare_of_each_of_two_layers() {
        let (a, b) = (Handle::new(shared()), Handle::new(shared()));
        drop((a.clone(), b.clone()));
        let (wa, wb) = (Arc::downgrade(a.arc()), Arc::downgrade(b.arc()));
        assert_eq!((wa.strong_count(), wb.strong_count()), (2, 2));
        // One clone of `a` at a time, taken and given back: `b`'s spare stays.
        for _ in 0..10 {
            drop(a.clone());
            assert_eq!((wa.strong_count(), wb.strong_count()), (2, 2));
        }
    }

    #[test]
    fn spares_on_another_thread_go_with_that_thread() {
        let handle = Handle::new(shared());
        let weak = Arc::downgrade(handle.arc());
        let other = handle.clone();
        std::thread::spawn(move || {
            // A clone and two drops there leave two spares on that thread.
            drop(other.clone());
            drop(other);
        })
        .join()
        .unwrap();
        drop(handle);
        assert!(weak.upgrade().is_none());
    }
}
