//! Where records live: the [`RecordStore`] trait and the in-memory [`MemoryStore`].

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::index::Compiled;
use super::set::RecordSet;
use crate::error::ConfigError;

/// A source of access records for an [`Authorizer`](crate::Authorizer).
///
/// [`snapshot`](Self::snapshot) runs once per decision, so it must not block or do I/O:
/// a store whose records live elsewhere (a database) loads them into a [`RecordSet`] in
/// the background and hands out the latest one here, the way [`MemoryStore`] does. That
/// keeps network calls off the decision path.
///
/// ```
/// use portcullis::{Authorizer, MemoryStore, RecordSet, RecordStore};
///
/// /// Records refreshed from a database by a background job.
/// struct Database { latest: MemoryStore }
///
/// impl RecordStore for Database {
///     fn snapshot(&self) -> RecordSet { self.latest.snapshot() }
/// }
///
/// let db = Database { latest: MemoryStore::new(RecordSet::empty()) };
/// let authz = Authorizer::from_store(db);
/// assert!(!authz.authorize_user("ada", "/documents/A", "documents:read").is_allowed());
/// ```
pub trait RecordStore: Send + Sync + 'static {
    /// The record set to decide with now. Must not block and must not do I/O.
    fn snapshot(&self) -> RecordSet;
}

/// The default store: one [`RecordSet`] in memory, replaced atomically.
///
/// Readers never block and never wait for a writer: a decision loads the current set
/// without a lock and keeps using it to the end, so it sees the old set or the new one,
/// never a mix. Cheap to clone (one `Arc`); clones share the set.
///
/// ```
/// use portcullis::{Authorizer, MemoryStore, Record, RecordSet, Statement};
///
/// let grant = |resource: &str| {
///     RecordSet::builder()
///         .role("reader", ["documents:read"])
///         .record(Record::new("r").statement(
///             Statement::new().roles(["reader"]).resources([resource]).users(["ada"]),
///         ))
///         .build()
/// };
/// let store = MemoryStore::new(grant("/documents/A")?);
/// let authz = Authorizer::from_store(store.clone());
/// assert!(authz.authorize_user("ada", "/documents/A", "documents:read").is_allowed());
///
/// store.replace(grant("/documents/B")?);
/// assert!(!authz.authorize_user("ada", "/documents/A", "documents:read").is_allowed());
/// assert!(authz.authorize_user("ada", "/documents/B", "documents:read").is_allowed());
/// # Ok::<(), portcullis::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    current: Arc<ArcSwap<Compiled>>,
}

impl MemoryStore {
    /// A store holding `records`.
    pub fn new(records: RecordSet) -> Self {
        Self {
            current: Arc::new(ArcSwap::new(records.inner)),
        }
    }

    /// Swaps in a new record set. Decisions already running finish with the old one.
    pub fn replace(&self, records: RecordSet) {
        self.current.store(records.inner);
    }

    /// Reads the file again ([`RecordSet::from_file`]) and swaps it in. On any error the
    /// current set stays and the error names the file, line and field.
    pub fn reload_from_file(&self, path: impl AsRef<Path>) -> Result<(), ConfigError> {
        let records = RecordSet::from_file(path)?;
        self.replace(records);
        Ok(())
    }
}

impl RecordStore for MemoryStore {
    fn snapshot(&self) -> RecordSet {
        RecordSet {
            inner: self.current.load_full(),
        }
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MemoryStore")
            .field(&self.snapshot())
            .finish()
    }
}

#[cfg(feature = "watch")]
pub use watch::FileWatch;

#[cfg(feature = "watch")]
mod watch {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use super::MemoryStore;
    use crate::access::file;

    /// A running file watcher from [`MemoryStore::watch_file`]. Dropping it stops the
    /// watcher, so keep it for as long as the file should be watched.
    #[must_use = "the watch stops when this handle is dropped; keep it for as long as the file should be watched"]
    #[derive(Debug)]
    pub struct FileWatch {
        task: tokio::task::JoinHandle<()>,
    }

    impl FileWatch {
        /// Stops the watcher.
        pub fn stop(self) {}
    }

    impl Drop for FileWatch {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// What identifies a version of the file: its content. Timestamps and sizes miss a
    /// same-size rewrite within the timestamp's granularity; record files are small.
    /// `None` while the file cannot be read (an editor replacing it, say).
    fn read(path: &Path) -> Option<Arc<[u8]>> {
        std::fs::read(path).ok().map(Arc::from)
    }

    impl MemoryStore {
        /// Feature `watch`: polls `path` every `every` (at least 10 ms) on the current
        /// tokio runtime and swaps in each new version that is valid. An invalid version is
        /// logged at warn level with its file, line and field, and the current set stays.
        /// While the file cannot be read (removed, say) the current set stays and the
        /// watch goes on: the next readable version is loaded.
        ///
        /// A version is noticed by its content. The store is not loaded from the file at
        /// start: build it with [`RecordSet::from_file`](crate::RecordSet::from_file).
        /// This call reads the file once, to learn the version the store holds; after
        /// that each read and parse runs on tokio's blocking thread pool
        /// (`spawn_blocking`), never on a runtime worker. Should one of them fail
        /// unexpectedly (a panic), that is logged at warn level, the current set stays and
        /// the watch goes on.
        ///
        /// The watch runs until the returned [`FileWatch`] is dropped or stopped.
        ///
        /// # Panics
        ///
        /// Outside a tokio runtime, as `tokio::spawn` does.
        #[must_use = "the watch stops when the returned FileWatch is dropped; keep it for as long as the file should be watched"]
        pub fn watch_file(&self, path: impl Into<PathBuf>, every: Duration) -> FileWatch {
            let path = path.into();
            let store = self.clone();
            let every = every.max(Duration::from_millis(10));
            // The version present now is the one the store holds (or is about to).
            let mut seen = read(&path);
            let task = tokio::spawn(async move {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    let p = path.clone();
                    let now = match tokio::task::spawn_blocking(move || read(&p)).await {
                        Ok(Some(now)) => now,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!(file = %path.display(), error = %e, "access records: reading the file failed; keeping the current ones");
                            continue;
                        }
                    };
                    if seen.as_ref() == Some(&now) {
                        continue;
                    }
                    // Noticed once, even if its parse fails.
                    seen = Some(now.clone());
                    let p = path.clone();
                    let parsed =
                        tokio::task::spawn_blocking(move || file::parse_file_bytes(&p, &now)).await;
                    match parsed {
                        Ok(Ok(records)) => {
                            store.replace(records);
                            tracing::info!(file = %path.display(), "access records reloaded");
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "access records not reloaded; keeping the current ones");
                        }
                        Err(e) => {
                            tracing::warn!(file = %path.display(), error = %e, "access records: parsing the file failed; keeping the current ones");
                        }
                    }
                }
            });
            FileWatch { task }
        }
    }
}
