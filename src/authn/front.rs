//! The per-thread front of the verified-token cache: a few slots per thread, each holding
//! a shared entry and this thread's own copy of its principal, so that a hit on a hot
//! token writes nothing another thread reads or writes.
//!
//! A slot is filled on the second hit in a row of the same token in that slot through the
//! shared cache, so a stream of many tokens in turn does not churn it. A hit on a slot runs
//! the same checks as a hit on the shared cache: the full token bytes, `exp` and `nbf`, the
//! key epoch and the revocation store (by the caller), so nothing a slot holds outlives what
//! the shared entry would allow.
//!
//! Memory: at most [`SLOTS`] entries per thread that verifies tokens, each keeping its
//! shared entry alive (possibly after the shared cache evicted it) and one copy of the
//! principal; a thread's slots go with the thread.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::entry::Entry;
use crate::principal::Principal;

/// Slots per thread, direct-mapped by the token's hash.
pub(super) const SLOTS: usize = 64;

/// Tells the caches of different authenticators apart in a thread's slots.
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// A fresh cache id.
pub(super) fn new_id() -> usize {
    NEXT_ID.fetch_add(1, Relaxed)
}

struct Slot {
    cache: usize,
    hash: u64,
    entry: Arc<Entry>,
    /// This thread's own copy of the entry's principal.
    principal: Principal,
}

#[derive(Default)]
struct Front {
    slots: Vec<Option<Slot>>,
    /// Per slot: the hash of the last token that hit the shared cache there, so that a
    /// second hit in a row fills the slot.
    candidates: Vec<u64>,
}

thread_local! {
    static FRONT: RefCell<Front> = const {
        RefCell::new(Front {
            slots: Vec::new(),
            candidates: Vec::new(),
        })
    };
}

fn index(hash: u64) -> usize {
    // The hash is seeded and well mixed: its low bits pick the slot.
    (hash as usize) & (SLOTS - 1)
}

/// This thread's copy of the principal of `token` in cache `cache`, when a slot holds it
/// and `valid` accepts its entry. A slot whose entry `valid` refuses is emptied.
#[inline]
pub(super) fn get<E>(
    cache: usize,
    hash: u64,
    token: &[u8],
    valid: impl FnOnce(&Entry) -> Result<(), E>,
) -> Option<Result<Principal, E>> {
    FRONT
        .try_with(|front| {
            let mut front = front.try_borrow_mut().ok()?;
            let at = index(hash);
            let slot = front.slots.get(at)?.as_ref()?;
            if slot.cache != cache || slot.hash != hash || !slot.entry.is_token(token) {
                return None;
            }
            match valid(&slot.entry) {
                Ok(()) => Some(Ok(slot.principal.clone())),
                Err(e) => {
                    front.slots[at] = None;
                    Some(Err(e))
                }
            }
        })
        .ok()
        .flatten()
}

/// Notes a hit of the shared cache; on the second in a row of this token in its slot,
/// the slot takes the entry and a copy of its principal.
pub(super) fn note_hit(cache: usize, hash: u64, entry: &Arc<Entry>) {
    let _ = FRONT.try_with(|front| {
        let Ok(mut front) = front.try_borrow_mut() else {
            return;
        };
        if front.slots.is_empty() {
            front.slots = (0..SLOTS).map(|_| None).collect();
            front.candidates = vec![0; SLOTS];
        }
        let at = index(hash);
        if front.candidates[at] != hash {
            front.candidates[at] = hash;
            return;
        }
        front.slots[at] = Some(Slot {
            cache,
            hash,
            entry: entry.clone(),
            principal: entry.principal.own_copy(),
        });
    });
}
