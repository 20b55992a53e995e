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

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

thread_local! {
    /// This thread's last second: the system times `[start, end)` that read as `secs`.
    /// Empty at first, so the first reading works it out.
    static SECOND: Cell<(SystemTime, SystemTime, u64)> =
        const { Cell::new((UNIX_EPOCH, UNIX_EPOCH, 0)) };
}

impl Clock for SystemClock {
    /// The system time in whole seconds. Within the second this thread read last, two
    /// comparisons tell it; any other time (the next second, or the clock set back or
    /// forward) is worked out again, so the answer is always the system clock's.
    #[inline]
    fn now(&self) -> u64 {
        let now = SystemTime::now();
        SECOND.with(|second| {
            let (start, end, secs) = second.get();
            if start <= now && now < end {
                return secs;
            }
            let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let start = UNIX_EPOCH + Duration::from_secs(secs);
            if let Some(end) = start.checked_add(Duration::from_secs(1)) {
                second.set((start, end, secs));
            }
            secs
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Clock, SystemClock};
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn the_system_clock_reads_whole_seconds_of_system_time() {
        for _ in 0..1_000 {
            let before = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let ours = SystemClock.now();
            let after = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!(
                before <= ours && ours <= after,
                "{before} <= {ours} <= {after}"
            );
        }
    }
}
