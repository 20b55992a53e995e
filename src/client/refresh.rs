//! Sources that refresh: proactive refresh before expiry, single-flight, no retry loops.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::{TokenError, TokenErrorKind};
use super::provider::{RenewFuture, TokenFuture, TokenProvider};
use super::token::Token;
use crate::clock::{Clock, SystemClock};

/// The future of [`Refresh::refresh`].
pub type RefreshFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Refreshed, TokenError>> + Send + 'a>>;

/// A way to get a new token: a token endpoint's protocol, or local minting. Implement it
/// for your own protocol; [`Refreshing`] adds the timing, sharing and backoff.
///
/// Answer [`Rejected`](TokenErrorKind::Rejected) when the credentials were refused (the
/// refresh is then never tried again) and [`Unavailable`](TokenErrorKind::Unavailable)
/// for failures worth a later retry. An implementation that gets a new refresh token
/// (rotation) keeps it for its next call.
pub trait Refresh: Send + Sync + 'static {
    /// Gets a new token; `now` is the source's clock, in seconds since the Unix epoch.
    fn refresh(&self, now: u64) -> RefreshFuture<'_>;
}

/// A new token from a [`Refresh`], with the lifetime the endpoint gave (`expires_in`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Refreshed {
    /// The new token.
    pub token: Token,
    /// Seconds the token is valid for, as the endpoint said; used when the token carries
    /// no `exp` claim.
    pub expires_in: Option<u64>,
}

impl Refreshed {
    /// A new token; its expiry is its `exp` claim, if any.
    pub fn new(token: Token) -> Self {
        Self {
            token,
            expires_in: None,
        }
    }

    /// Sets the lifetime the endpoint gave.
    pub fn expires_in(mut self, seconds: Option<u64>) -> Self {
        self.expires_in = seconds;
        self
    }
}

/// The default refresh window: a token is refreshed when it has less than this left.
pub const DEFAULT_REFRESH_WINDOW: Duration = Duration::from_secs(30);

/// A source that keeps a token fresh through a [`Refresh`].
///
/// - Proactive: a token is refreshed when less than the window (default 30 s, FEDn's
///   buffer) is left before its expiry (its `exp` claim, else the endpoint's
///   `expires_in`); the window is at most half the token's lifetime, so short-lived tokens
///   are not refreshed on every call. A token whose expiry is unknown is refreshed only
///   when the server refuses it ([`TokenProvider::renew`]).
/// - Single-flight: callers that need a refresh at the same time share one.
/// - A refresh refused by the endpoint ([`Rejected`](TokenErrorKind::Rejected): HTTP 400
///   or 401, "refresh token invalid or expired, log in again") is final: no further
///   request is made, and callers get the current token while it lasts, then that error.
/// - Network and server failures back off (1 s, doubling, at most 60 s, by the source's
///   clock): meanwhile callers get the current token while it lasts, else the last error,
///   without a request.
///
/// Cheap to clone (one `Arc` inside); clones share the token.
#[derive(Clone)]
pub struct Refreshing {
    inner: Arc<Inner>,
}

struct Inner {
    refresher: Box<dyn Refresh>,
    clock: Arc<dyn Clock>,
    window: u64,
    min_backoff: u64,
    max_backoff: u64,
    gate: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    current: Option<Current>,
    /// Set when the endpoint refused the credentials: no more requests.
    refused: Option<TokenError>,
    failures: u32,
    retry_at: u64,
    last_error: Option<TokenError>,
}

#[derive(Clone)]
struct Current {
    token: Token,
    /// When to refresh: expiry minus the window, `None` for unknown expiry.
    refresh_at: Option<u64>,
}

impl fmt::Debug for Refreshing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Refreshing")
            .field("token", &state.current.as_ref().map(|c| &c.token))
            .field("window", &self.inner.window)
            .field("refused", &state.refused.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Refreshing`].
#[must_use]
pub struct RefreshingBuilder {
    refresher: Box<dyn Refresh>,
    initial: Option<Token>,
    clock: Arc<dyn Clock>,
    window: Duration,
    min_backoff: Duration,
    max_backoff: Duration,
}

impl fmt::Debug for RefreshingBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshingBuilder")
            .field("initial", &self.initial)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl RefreshingBuilder {
    /// The token to use until it needs a refresh (FEDn's `FEDN_AUTH_TOKEN`). Default: none,
    /// so the first call refreshes.
    pub fn initial_token(mut self, token: Option<Token>) -> Self {
        self.initial = token;
        self
    }

    /// How long before expiry to refresh. Default [`DEFAULT_REFRESH_WINDOW`] (30 s).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The clock (seconds since the Unix epoch); default the system clock. Tests move it.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The backoff after a failed refresh: `min` after the first failure, doubling up to
    /// `max`. Default 1 s to 60 s.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    /// The source.
    pub fn build(self) -> Refreshing {
        let window = self.window.as_secs();
        let now = self.clock.now();
        let current = self.initial.map(|token| current(token, None, now, window));
        Refreshing {
            inner: Arc::new(Inner {
                refresher: self.refresher,
                clock: self.clock,
                window,
                min_backoff: self.min_backoff.as_secs().max(1),
                max_backoff: self.max_backoff.as_secs().max(1),
                gate: tokio::sync::Mutex::new(()),
                state: Mutex::new(State {
                    current,
                    ..State::default()
                }),
            }),
        }
    }
}

/// The token with its refresh time: expiry minus the window, the window at most half the
/// lifetime seen from `now`.
fn current(token: Token, expires_in: Option<u64>, now: u64, window: u64) -> Current {
    let token = match (token.expires_at(), expires_in) {
        (None, Some(secs)) => token.with_expires_at(Some(now.saturating_add(secs))),
        _ => token,
    };
    let refresh_at = token.expires_at().map(|exp| {
        let window = window.min(exp.saturating_sub(now) / 2);
        exp.saturating_sub(window)
    });
    Current { token, refresh_at }
}

impl Refreshing {
    /// A builder around `refresher`.
    pub fn builder(refresher: impl Refresh) -> RefreshingBuilder {
        RefreshingBuilder {
            refresher: Box::new(refresher),
            initial: None,
            clock: Arc::new(SystemClock),
            window: DEFAULT_REFRESH_WINDOW,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }

    /// A source around `refresher` with the defaults.
    pub fn new(refresher: impl Refresh) -> Self {
        Self::builder(refresher).build()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current token when it needs no refresh at `now`.
    fn fresh(&self, now: u64) -> Option<Token> {
        let state = self.state();
        let c = state.current.as_ref()?;
        c.refresh_at
            .is_none_or(|at| now < at)
            .then(|| c.token.clone())
    }

    /// Without a refresh: the current token while it lasts, else why there is none.
    fn fallback(&self, now: u64, err: TokenError) -> Result<Token, TokenError> {
        let state = self.state();
        match state.current.as_ref().filter(|c| c.token.usable_at(now)) {
            Some(c) => Ok(c.token.clone()),
            None => Err(err),
        }
    }

    /// Refreshes (the gate is held by the caller) unless refused or backing off; returns
    /// the new token, or the error that stopped it.
    async fn refresh_now(&self) -> Result<Token, TokenError> {
        let now = self.inner.clock.now();
        {
            let state = self.state();
            if let Some(refused) = &state.refused {
                return Err(refused.clone());
            }
            if now < state.retry_at {
                let err = state
                    .last_error
                    .clone()
                    .unwrap_or_else(|| TokenError::unavailable("backing off"));
                return Err(TokenError::new(
                    err.kind(),
                    format!("{err}; next attempt in {} s", state.retry_at - now),
                ));
            }
        }
        let result = self.inner.refresher.refresh(now).await;
        let now = self.inner.clock.now();
        let mut state = self.state();
        match result {
            Ok(got) => {
                let c = current(got.token, got.expires_in, now, self.inner.window);
                let token = c.token.clone();
                state.current = Some(c);
                state.failures = 0;
                state.retry_at = 0;
                state.last_error = None;
                Ok(token)
            }
            Err(e) if e.kind() == TokenErrorKind::Rejected => {
                // Log-safe: the error never holds a token or a refresh token.
                tracing::warn!(target: "portcullis::client", "token refresh refused, not retrying: {e}");
                state.refused = Some(e.clone());
                Err(e)
            }
            Err(e) => {
                let shift = state.failures.min(16);
                let wait = self
                    .inner
                    .min_backoff
                    .saturating_mul(1 << shift)
                    .min(self.inner.max_backoff);
                state.failures = state.failures.saturating_add(1);
                state.retry_at = now.saturating_add(wait);
                tracing::warn!(target: "portcullis::client", "token refresh failed, next attempt in {wait} s: {e}");
                state.last_error = Some(e.clone());
                Err(e)
            }
        }
    }
}

impl TokenProvider for Refreshing {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            if let Some(token) = self.fresh(self.inner.clock.now()) {
                return Ok(token);
            }
            let _gate = self.inner.gate.lock().await;
            // Another caller may have refreshed while this one waited.
            if let Some(token) = self.fresh(self.inner.clock.now()) {
                return Ok(token);
            }
            match self.refresh_now().await {
                Ok(token) => Ok(token),
                Err(e) => self.fallback(self.inner.clock.now(), e),
            }
        })
    }

    fn renew<'a>(&'a self, rejected: &'a Token) -> RenewFuture<'a> {
        Box::pin(async move {
            let _gate = self.inner.gate.lock().await;
            let current = self.state().current.as_ref().map(|c| c.token.clone());
            if let Some(token) = current.filter(|t| t.secret() != rejected.secret()) {
                // Refreshed by another caller since `rejected` was handed out.
                return Ok(Some(token));
            }
            self.refresh_now().await.map(Some)
        })
    }
}
