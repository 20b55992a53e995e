//! Stateless DPoP nonces (RFC 9449 section 9): the index of a time window and an HMAC of
//! it under a secret drawn when the authenticator is built. A nonce of the current or the
//! previous window is accepted; nothing is stored per client.

use base64::Engine;

use crate::jose::{hmac_sha256, random, strict_b64};

/// Nonces of one authenticator.
pub(super) struct Nonces {
    secret: Vec<u8>,
    /// Seconds per window.
    window: u64,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("secret", &"<redacted>")
            .field("window", &self.window)
            .finish()
    }
}

impl Nonces {
    /// Nonces of `window` seconds under `secret`, or a secret drawn now.
    pub(super) fn new(window: u64, secret: Option<Vec<u8>>) -> Self {
        Self {
            secret: secret.unwrap_or_else(|| random::<32>().to_vec()),
            window: window.max(1),
        }
    }

    fn make(&self, index: u64) -> String {
        let tag = hmac_sha256(&self.secret, &index.to_be_bytes());
        let mut raw = [0u8; 24];
        raw[..8].copy_from_slice(&index.to_be_bytes());
        raw[8..].copy_from_slice(&tag[..16]);
        strict_b64().encode(raw)
    }

    /// The nonce to hand out at `now`.
    pub(super) fn current(&self, now: u64) -> String {
        self.make(now / self.window)
    }

    /// Whether `nonce` is one of ours from this window or the previous one.
    pub(super) fn accepts(&self, nonce: &str, now: u64) -> bool {
        let mut raw = [0u8; 24];
        if strict_b64().decode_slice(nonce, &mut raw) != Ok(24) {
            return false;
        }
        let mut index = [0u8; 8];
        index.copy_from_slice(&raw[..8]);
        let index = u64::from_be_bytes(index);
        let current = now / self.window;
        if index != current && index.saturating_add(1) != current {
            return false;
        }
        let tag = hmac_sha256(&self.secret, &index.to_be_bytes());
        // Constant time: every byte is compared.
        tag[..16]
            .iter()
            .zip(&raw[8..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_and_previous_window_only() {
        let n = Nonces::new(300, None);
        let t = 1_700_000_000;
        let nonce = n.current(t);
        assert!(n.accepts(&nonce, t));
        assert!(n.accepts(&nonce, t + 300));
        assert!(!n.accepts(&nonce, t + 600));
        assert!(!n.accepts(&nonce, t - 300));
        assert!(!Nonces::new(300, None).accepts(&nonce, t), "another secret");
        let shared = || Nonces::new(300, Some(b"a secret shared by every replica!".to_vec()));
        assert!(
            shared().accepts(&shared().current(t), t),
            "replicas sharing a secret"
        );
        assert!(!n.accepts("not-a-nonce", t));
    }
}
