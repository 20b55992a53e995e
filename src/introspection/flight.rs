//! One introspection per token in flight: the first request for a token starts it as a
//! task of its own, later ones wait for its answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// The running introspections, by the token's SHA-256.
pub(crate) struct Flights<T> {
    running: Mutex<HashMap<[u8; 32], watch::Receiver<Option<T>>>>,
    max: usize,
}

/// How a wait ended.
pub(crate) enum Flight<T> {
    /// The flight's answer.
    Done(T),
    /// Too many flights run already.
    Busy,
    /// The flight ended without an answer (no tokio runtime, or its task was dropped).
    Lost,
}

/// Takes a flight out of the map when its task ends, whichever way.
struct Landing<T> {
    flights: Arc<Flights<T>>,
    key: [u8; 32],
}

impl<T> Drop for Landing<T> {
    fn drop(&mut self) {
        self.flights
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    /// At most `max` flights at once.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            running: Mutex::new(HashMap::new()),
            max,
        }
    }

    /// The answer for `key`: joins the flight running for it, or starts one with `start`.
    ///
    /// `recheck` runs under the map's lock when no flight runs for `key`; an answer from
    /// it (the cache a flight filled just before it landed) is returned without a new
    /// flight. The flight's future should record its answer (in the caches) before it
    /// ends, so that a request arriving after it landed finds it there. It runs as a task
    /// of its own: a caller that goes away cancels only its wait.
    pub(crate) async fn run<F, Fut>(
        self: &Arc<Self>,
        key: [u8; 32],
        recheck: impl FnOnce() -> Option<T>,
        start: F,
    ) -> Flight<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let mut rx = {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            match running.get(&key) {
                Some(rx) => rx.clone(),
                None => {
                    if let Some(answer) = recheck() {
                        return Flight::Done(answer);
                    }
                    if running.len() >= self.max {
                        return Flight::Busy;
                    }
                    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                        return Flight::Lost;
                    };
                    let (tx, rx) = watch::channel(None);
                    running.insert(key, rx.clone());
                    let fut = start();
                    let landing = Landing {
                        flights: self.clone(),
                        key,
                    };
                    runtime.spawn(async move {
                        let answer = fut.await;
                        // Out of the map first: whoever comes next finds the caches.
                        drop(landing);
                        let _ = tx.send(Some(answer));
                    });
                    rx
                }
            }
        };
        let answer = match rx.wait_for(Option::is_some).await {
            Ok(answer) => answer.clone(),
            Err(_) => None,
        };
        answer.map_or(Flight::Lost, Flight::Done)
    }

    /// How many flights run now. For tests.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A flight for key `[1; 32]` in its own task: counts its start, waits for `gate` when
    /// given, answers `value`.
    fn spawn_run(
        flights: &Arc<Flights<u32>>,
        started: &Arc<AtomicUsize>,
        value: u32,
        gate: Option<tokio::sync::oneshot::Receiver<()>>,
    ) -> tokio::task::JoinHandle<Flight<u32>> {
        let (flights, started) = (flights.clone(), started.clone());
        tokio::spawn(async move {
            flights
                .run(
                    [1; 32],
                    || None,
                    move || async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        if let Some(gate) = gate {
                            let _ = gate.await;
                        }
                        value
                    },
                )
                .await
        })
    }

    #[tokio::test]
    async fn one_flight_per_key_and_a_bound() {
        let flights = Arc::new(Flights::<u32>::new(1));
        let started = Arc::new(AtomicUsize::new(0));
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let first = spawn_run(&flights, &started, 7, Some(wait));
        tokio::task::yield_now().await;
        while flights.len() == 0 {
            tokio::task::yield_now().await;
        }
        // Another key while one runs: over the bound of one.
        assert!(matches!(
            flights.run([2; 32], || None, || async { 0 }).await,
            Flight::Busy
        ));
        let second = spawn_run(&flights, &started, 8, None);
        tokio::task::yield_now().await;
        go.send(()).unwrap();
        assert!(matches!(first.await.unwrap(), Flight::Done(7)));
        assert!(matches!(second.await.unwrap(), Flight::Done(7)));
        assert_eq!(started.load(Ordering::SeqCst), 1);
        assert_eq!(flights.len(), 0);
        // Landed: the recheck answers.
        assert!(matches!(
            flights.run([1; 32], || Some(9), || async { 0 }).await,
            Flight::Done(9)
        ));
    }
}
