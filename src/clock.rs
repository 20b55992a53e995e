//! The clock: seconds since the Unix epoch, injectable for tests.
//!
//! ```
//! use portcullis::{Algorithm, AuthErrorKind, Authenticator, Signer};
//!
//! let secret = "0123456789abcdef0123456789abcdef";
//! let token = Signer::hmac(Algorithm::HS256, secret)?
//!     .sign(&serde_json::json!({"sub": "ada", "exp": 1_000u64}))?;
//! // At t = 900 the token is valid; at t = 2000 (past exp + 60 s leeway) it has expired.
//! let at = |now: u64| Authenticator::builder().hmac_secret(secret).clock(move || now).build();
//! assert!(at(900)?.verify(&token).is_ok());
//! assert!(at(2_000)?.verify(&token).unwrap_err().is_expired());
//! # let _ = AuthErrorKind::InvalidToken;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time, in seconds since the Unix epoch.
///
/// The default reads the system clock. Tests inject their own; any
/// `Fn() -> u64 + Send + Sync` closure is a clock.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
}

impl<F: Fn() -> u64 + Send + Sync + 'static> Clock for F {
    fn now(&self) -> u64 {
        self()
    }
}

/// The system clock.
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}
