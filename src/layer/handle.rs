//! The handle services and futures keep on the layer's shared state.
//!
//! axum clones a route's service for every request, and each request's future keeps the
//! shared state until the response is out. With a plain `Arc` that is two increments and
//! two decrements of one count that every core shares, on every request: its cache line
//! moves between cores at every request. A [`Handle`] counts a *replica* instead: a small
//! reference to the state that belongs to one thread. A clone on the replica's own thread
//! counts on the replica; a clone on another thread (a server's worker cloning the
//! service the router holds) takes that thread's replica of the same state, kept in a
//! thread-local slot, and counts on it. In the steady state of a thread serving a layer, a
//! request changes only its own thread's replica count and reads the shared count (to
//! notice a layer that is going); it writes nothing another thread reads or writes. A
//! future that moved to another thread before it ended gives its count back to the
//! replica it came with, as a plain `Arc` would.
//!
//! Memory and lifetime: a replica is one small allocation (the state's `Arc` and its
//! thread); each thread keeps the replicas of the two layers it served last, which keep
//! those layers' state. When the last handle but the thread's own replica goes, on that
//! thread, the replica goes too and the state with it. A replica kept by another thread
//! is given back when that thread takes replicas of two other layers, or ends.

use std::cell::Cell;
use std::ops::Deref;
use std::sync::Arc;

use super::Shared;

/// One thread's reference to a layer's state.
struct Replica {
    shared: Arc<Shared>,
    /// The thread it belongs to ([`this_thread`]; 0 for none).
    owner: usize,
    /// Made for its thread's slots (a handle's first replica is kept nowhere).
    slotted: bool,
}

/// A thread's replicas of the two layers it served last, the one taken last first, each
/// with the address of its layer's state (0 for none) so that looking for one reads two
/// words.
struct Slots {
    last: Cell<Option<Arc<Replica>>>,
    last_id: Cell<usize>,
    before: Cell<Option<Arc<Replica>>>,
    before_id: Cell<usize>,
}

thread_local! {
    static SLOTS: Slots = const {
        Slots {
            last: Cell::new(None),
            last_id: Cell::new(0),
            before: Cell::new(None),
            before_id: Cell::new(0),
        }
    };
    /// Its address names the thread (it has no destructor, so reading it checks nothing).
    static MARK: u8 = const { 0 };
}

/// This thread, as the address of its mark.
#[inline(always)]
fn this_thread() -> usize {
    MARK.with(|m| std::ptr::from_ref(m) as usize)
}

fn id(shared: &Arc<Shared>) -> usize {
    Arc::as_ptr(shared) as usize
}

impl Slots {
    /// This thread's replica of `shared`, taken from the slots or made and kept there
    /// (the older replica goes back when both slots are taken).
    fn replica(&self, shared: &Arc<Shared>, me: usize) -> Arc<Replica> {
        let id = id(shared);
        if self.last_id.get() == id
            && let Some(r) = self.last.take()
        {
            self.last.set(Some(Arc::clone(&r)));
            return r;
        }
        if self.before_id.get() == id
            && let Some(r) = self.before.take()
        {
            // Now the last one taken.
            let last = self.last.replace(Some(Arc::clone(&r)));
            self.before.set(last);
            self.before_id.set(self.last_id.replace(id));
            return r;
        }
        let r = Arc::new(Replica {
            shared: Arc::clone(shared),
            owner: me,
            slotted: true,
        });
        let last = self.last.replace(Some(Arc::clone(&r)));
        let gone = self.before.replace(last);
        self.before_id.set(self.last_id.replace(id));
        // Dropped last: the state it may free can use handles too.
        drop(gone);
        r
    }

    /// Takes `r` out of the slots if they hold it.
    fn release(&self, r: &Arc<Replica>) -> Option<Arc<Replica>> {
        let id = id(&r.shared);
        let holds = |slot: &Cell<Option<Arc<Replica>>>| {
            let kept = slot.take();
            let same = kept.as_ref().is_some_and(|k| Arc::ptr_eq(k, r));
            if same {
                return kept;
            }
            slot.set(kept);
            None
        };
        if self.last_id.get() == id
            && let Some(kept) = holds(&self.last)
        {
            self.last_id.set(0);
            return Some(kept);
        }
        if self.before_id.get() == id
            && let Some(kept) = holds(&self.before)
        {
            self.before_id.set(0);
            return Some(kept);
        }
        None
    }
}

/// A counted reference to a layer's shared state; see the module docs.
pub(super) struct Handle {
    /// `None` only while it is being dropped.
    replica: Option<Arc<Replica>>,
}

impl Handle {
    /// A handle on `shared`, with a replica of its own for this thread.
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            replica: Some(Arc::new(Replica {
                shared,
                owner: this_thread(),
                slotted: false,
            })),
        }
    }

    /// The state itself, counted on its shared count.
    pub(super) fn into_arc(mut self) -> Arc<Shared> {
        let replica = self.take();
        match Arc::try_unwrap(replica) {
            Ok(replica) => replica.shared,
            Err(replica) => Arc::clone(&replica.shared),
        }
    }

    #[inline]
    fn replica(&self) -> &Arc<Replica> {
        match &self.replica {
            Some(replica) => replica,
            None => unreachable!("a handle is only empty while it is dropped"),
        }
    }

    fn take(&mut self) -> Arc<Replica> {
        match self.replica.take() {
            Some(replica) => replica,
            None => unreachable!("a handle is only empty while it is dropped"),
        }
    }

    #[cfg(test)]
    fn arc(&self) -> &Arc<Shared> {
        &self.replica().shared
    }

    /// A clone made on another thread than the replica's: that thread's replica.
    #[inline(never)]
    fn clone_here(&self, me: usize) -> Self {
        let shared = &self.replica().shared;
        let replica = SLOTS
            .try_with(|slots| slots.replica(shared, me))
            // The thread is ending: a replica of its own, kept nowhere.
            .unwrap_or_else(|_| {
                Arc::new(Replica {
                    shared: Arc::clone(shared),
                    owner: 0,
                    slotted: false,
                })
            });
        Self {
            replica: Some(replica),
        }
    }

    /// Dropping `replica` leaves only this thread's slot holding it, and it alone holds
    /// the state: the slot lets it go too, and the state goes with it.
    #[cold]
    fn release(replica: Arc<Replica>) {
        let kept = SLOTS
            .try_with(|slots| slots.release(&replica))
            .ok()
            .flatten();
        drop(replica);
        drop(kept);
    }
}

impl Deref for Handle {
    type Target = Shared;

    #[inline]
    fn deref(&self) -> &Shared {
        &self.replica().shared
    }
}

impl Clone for Handle {
    #[inline]
    fn clone(&self) -> Self {
        let replica = self.replica();
        let me = this_thread();
        if replica.owner == me {
            return Self {
                replica: Some(Arc::clone(replica)),
            };
        }
        self.clone_here(me)
    }
}

impl Drop for Handle {
    #[inline]
    fn drop(&mut self) {
        let Some(replica) = self.replica.take() else {
            return;
        };
        if replica.slotted
            && Arc::strong_count(&replica) == 2
            && Arc::strong_count(&replica.shared) == 1
            && replica.owner == this_thread()
        {
            Self::release(replica);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Handle;
    use crate::{AuthLayer, Authenticator, Policy};
    use std::sync::{Arc, Weak};

    fn shared() -> Arc<super::Shared> {
        let auth = Authenticator::builder()
            .hmac_secret("0123456789abcdef0123456789abcdef")
            .build()
            .unwrap();
        AuthLayer::new(auth, Policy::builder().build().unwrap())
            .shared
            .into_arc()
    }

    /// Runs `f` on a new thread and waits for it (and for its thread-locals to go).
    fn on_another_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().unwrap()
    }

    #[test]
    fn clones_on_one_thread_count_on_its_replica() {
        let first = Handle::new(shared());
        let weak = Arc::downgrade(first.arc());
        for _ in 0..100 {
            let (a, b) = (first.clone(), first.clone());
            assert_eq!(
                weak.strong_count(),
                1,
                "a clone counted on the shared count"
            );
            assert_eq!(Arc::strong_count(a.replica()), 3);
            drop((a, b));
        }
        drop(first);
        assert!(weak.upgrade().is_none(), "the state outlived its handles");
    }

    #[test]
    fn a_worker_writes_the_shared_count_once() {
        // The router's handle was made on this thread; a worker clones it per request,
        // and the request's future clones that clone.
        let router = Handle::new(shared());
        let weak = Arc::downgrade(router.arc());
        let held = router.clone();
        let counts = on_another_thread(move || {
            let mut counts = Vec::new();
            for _ in 0..100 {
                let service = held.clone();
                let future = service.clone();
                drop(service);
                counts.push(Weak::strong_count(&Arc::downgrade(future.arc())));
                drop(future);
            }
            drop(held);
            counts
        });
        // The worker's replica counted once on the shared count, and went with the worker.
        assert!(counts.iter().all(|&c| c == 2), "{counts:?}");
        assert_eq!(weak.strong_count(), 1);
        drop(router);
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn the_last_handle_on_a_thread_takes_its_replica_and_the_state() {
        let router = Handle::new(shared());
        let weak = Arc::downgrade(router.arc());
        let gone = on_another_thread(move || {
            let clone = router.clone();
            drop(router);
            // Only this thread's replica holds the state now: its last handle frees it,
            // before the thread ends.
            drop(clone);
            weak.upgrade().is_none()
        });
        assert!(gone, "the thread's replica kept a dropped layer alive");
    }

    #[test]
    fn two_layers_on_one_thread_never_mix() {
        let (a, b) = (Handle::new(shared()), Handle::new(shared()));
        let (wa, wb) = (Arc::downgrade(a.arc()), Arc::downgrade(b.arc()));
        let (ra, rb) = (a.clone(), b.clone());
        let mixed = on_another_thread(move || {
            (0..10).any(|_| {
                let (ca, cb) = (ra.clone(), rb.clone());
                !(Arc::ptr_eq(ca.arc(), ra.arc()) && Arc::ptr_eq(cb.arc(), rb.arc()))
            })
        });
        assert!(!mixed);
        drop(a);
        assert!(wa.upgrade().is_none());
        assert!(wb.upgrade().is_some());
        drop(b);
        assert!(wb.upgrade().is_none());
    }

    #[test]
    fn a_thread_keeps_the_replicas_of_two_layers_and_lets_the_third_evict() {
        let (a, b, c) = (
            Handle::new(shared()),
            Handle::new(shared()),
            Handle::new(shared()),
        );
        let weak = [a.arc(), b.arc(), c.arc()].map(Arc::downgrade);
        let counts = move || weak.each_ref().map(Weak::strong_count);
        let (ta, tb, tc) = (a.clone(), b.clone(), c.clone());
        let seen = on_another_thread(move || {
            let mut seen = Vec::new();
            // `a` and `b` in turn: one replica each, kept.
            for _ in 0..10 {
                drop(ta.clone());
                drop(tb.clone());
                seen.push(counts());
            }
            // `c` takes the place of the older one, `a`.
            drop(tc.clone());
            seen.push(counts());
            seen
        });
        assert!(seen[..10].iter().all(|&c| c == [2, 2, 1]), "{seen:?}");
        assert_eq!(seen[10], [1, 2, 2]);
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
        let worker = svc.clone();
        on_another_thread(move || drop(worker.clone()));
        drop(svc.clone());
        drop(svc);
        drop(layer);
        assert!(
            weak.upgrade().is_none(),
            "a replica kept a dropped layer alive"
        );
    }
}
