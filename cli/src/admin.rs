//! The revocation list `serve` checks and `POST /admin/revoke` writes to (the library's
//! [`AdminApi`](portcullis::revoke::AdminApi)): Redis-shared with `PORTCULLIS_REDIS_URL`,
//! else this process's own.

use portcullis::revoke::{AdminStore, MemoryRevocations, RedisRevocations};
use portcullis::{ConfigError, EnvConfig};

/// The revocation list the served authenticator checks.
#[derive(Clone)]
pub(crate) enum Store {
    /// Shared by every replica through Redis.
    Redis(RedisRevocations),
    /// This process's own.
    Memory(MemoryRevocations),
}

impl Store {
    /// The list for `config` (Redis when `PORTCULLIS_REDIS_URL` is set, started without
    /// waiting; must run inside the runtime), set as the authenticator's store.
    pub(crate) fn for_config(config: EnvConfig) -> Result<(EnvConfig, Self), ConfigError> {
        let store = match config.redis() {
            Some(o) => Self::Redis(RedisRevocations::start(o)?),
            None => Self::Memory(MemoryRevocations::new()),
        };
        let config = match &store {
            Self::Redis(r) => {
                let r = r.clone();
                config.map_authenticator(|b| b.revocations(r))
            }
            Self::Memory(m) => {
                let m = m.clone();
                config.map_authenticator(|b| b.revocations(m))
            }
        };
        Ok((config, store))
    }

    /// Waits until the list answers: a Redis copy's first sync (until then every token
    /// gets 503 `Revocation list unavailable`, fail-closed); at once in memory. Logs once
    /// while it waits.
    pub(crate) async fn first_sync(&self) {
        let Self::Redis(r) = self else { return };
        let mut warned = false;
        while r.status().age.is_none() {
            if !warned {
                tracing::warn!(
                    "the revocation list has not synced with Redis yet: /readyz answers 503"
                );
                warned = true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Store {
    /// The library's handle on the same list, for [`AdminApi`](portcullis::revoke::AdminApi).
    pub(crate) fn admin_store(&self) -> AdminStore {
        match self {
            Self::Redis(r) => r.clone().into(),
            Self::Memory(m) => m.clone().into(),
        }
    }
}
