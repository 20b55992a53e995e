//! Minting tokens, for development and tests.
//!
//! ```
//! use portcullis::{Algorithm, Authenticator, Signer};
//!
//! let secret = "0123456789abcdef0123456789abcdef";
//! let token = Signer::hmac(Algorithm::HS256, secret)?
//!     .kid("k1")
//!     .sign(&serde_json::json!({"sub": "svc", "exp": 4_000_000_000u64}))?;
//! let auth = Authenticator::builder().hmac_secret(secret).build()?;
//! assert_eq!(auth.verify(&token)?.subject(), Some("svc"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::Serialize;

use crate::error::{ConfigError, ConfigErrorKind};
use crate::jose::{Algorithm, SigningKey};

/// Mints tokens: for development and tests.
///
/// The header is `{"alg": ..., "typ": "JWT"}` plus `kid` when set; the claims are any
/// serializable value.
///
/// ```
/// use portcullis::{Algorithm, Authenticator, Signer};
///
/// let secret = "0123456789abcdef0123456789abcdef";
/// let token = Signer::hmac(Algorithm::HS256, secret)?
///     .sign(&serde_json::json!({"sub": "svc", "exp": 4_000_000_000u64}))?;
/// let auth = Authenticator::builder().hmac_secret(secret).build()?;
/// assert_eq!(auth.verify(&token)?.subject(), Some("svc"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Signer {
    kid: Option<String>,
    key: SigningKey,
    /// The public JWK, for a generated key.
    jwk: Option<serde_json::Value>,
    /// The Ed25519 public key, for signers made from DER.
    ed_public: Option<[u8; 32]>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.key.algorithm())
            .field("kid", &self.kid)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Signer {
    /// A signer with an HMAC secret. `alg` must be HS256, HS384 or HS512.
    pub fn hmac(alg: Algorithm, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let key = SigningKey::hmac(alg, secret.as_ref())
            .map_err(|e| ConfigError::new(ConfigErrorKind::Algorithm, "signer algorithm", e))?;
        Ok(Self {
            kid: None,
            key,
            jwk: None,
            ed_public: None,
        })
    }

    /// A signer with a private key in PEM (PKCS#8; PKCS#1 also for RSA).
    pub fn from_pem(alg: Algorithm, pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let key = SigningKey::from_pem(alg, pem.as_ref())
            .map_err(|e| ConfigError::new(ConfigErrorKind::SigningKey, "signer key", e))?;
        Ok(Self {
            kid: None,
            key,
            jwk: None,
            ed_public: None,
        })
    }

    /// A fresh key pair for `alg` (feature `test-util`, for tests): RSA keys are 2048
    /// bits, HMAC secrets the hash size. The signer names a random `kid`, and
    /// [`public_jwk`](Self::public_jwk) and [`jwk_set_json`](Self::jwk_set_json) give the
    /// verifying side.
    ///
    /// ```
    /// use portcullis::{Algorithm, Authenticator, Signer};
    ///
    /// let signer = Signer::generate(Algorithm::RS256)?;
    /// let auth = Authenticator::builder().jwk_set_json(signer.jwk_set_json()).build()?;
    /// let token = signer.sign(&serde_json::json!({"sub": "ada", "exp": 4_000_000_000u64}))?;
    /// assert_eq!(auth.verify(&token)?.subject(), Some("ada"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "test-util")]
    pub fn generate(alg: Algorithm) -> Result<Self, ConfigError> {
        let mut id = [0u8; 8];
        aws_lc_free_random(&mut id);
        let kid = crate::jose::hex(&id);
        let (key, jwk) = crate::jose::generate(alg, &kid)
            .map_err(|e| ConfigError::new(ConfigErrorKind::SigningKey, "signer key", e))?;
        Ok(Self {
            kid: Some(kid),
            key,
            jwk: Some(jwk),
            ed_public: None,
        })
    }

    /// The public JWK of a generated key (`None` for keys given as PEM or secrets).
    pub fn public_jwk(&self) -> Option<&serde_json::Value> {
        self.jwk.as_ref()
    }

    /// A JWK set (`{"keys": [...]}`) with the public key of a generated signer, or an
    /// empty set for other signers.
    pub fn jwk_set_json(&self) -> String {
        serde_json::json!({"keys": self.jwk.iter().collect::<Vec<_>>()}).to_string()
    }

    /// A signer with an Ed25519 private key in PKCS#8 DER (v1, or v2 whose public key
    /// matches). `alg` must be EdDSA: the other algorithms take PEM ([`from_pem`](Self::from_pem)).
    ///
    /// ```
    /// use portcullis::{Algorithm, Signer};
    ///
    /// // A PKCS#8 v1 Ed25519 key (test only), as `openssl genpkey -algorithm ED25519 -outform DER` writes it.
    /// let der = [
    ///     0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ///     1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    ///     17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
    /// ];
    /// let signer = Signer::from_der(Algorithm::EdDSA, der)?;
    /// assert_eq!(signer.algorithm(), Algorithm::EdDSA);
    /// assert!(Signer::from_der(Algorithm::ES256, der).is_err());
    /// assert!(Signer::from_der(Algorithm::EdDSA, [0u8; 48]).is_err());
    /// # Ok::<(), portcullis::ConfigError>(())
    /// ```
    pub fn from_der(alg: Algorithm, der: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        if alg != Algorithm::EdDSA {
            return Err(ConfigError::new(
                ConfigErrorKind::SigningKey,
                "signer key",
                format!("{alg} keys are read from PEM (Signer::from_pem); DER is for EdDSA"),
            ));
        }
        let (key, public) = SigningKey::ed25519_from_der(der.as_ref())
            .map_err(|e| ConfigError::new(ConfigErrorKind::SigningKey, "signer key", e))?;
        Ok(Self {
            kid: None,
            key,
            jwk: None,
            ed_public: Some(public),
        })
    }

    /// The Ed25519 public key of a signer made by [`from_der`](Self::from_der).
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn ed25519_public(&self) -> Option<[u8; 32]> {
        self.ed_public
    }

    /// Sets the `kid` header parameter.
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm this signer uses.
    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }

    /// Signs `claims` into a compact JWS.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, SignError> {
        self.key
            .sign(self.kid.as_deref(), claims)
            .map_err(SignError)
    }

    /// Signs arbitrary bytes as `header.payload`, both given as base64url segments, and
    /// returns the base64url signature. For tests that craft unusual headers.
    pub fn sign_segments(&self, header_b64: &str, payload_b64: &str) -> Result<String, SignError> {
        let message = format!("{header_b64}.{payload_b64}");
        self.key.sign_bytes(message.as_bytes()).map_err(SignError)
    }
}

/// Signing failed (for example, the key does not fit the algorithm).
#[derive(Debug, Clone)]
pub struct SignError(String);

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "signing failed: {}", self.0)
    }
}

impl std::error::Error for SignError {}

/// Random bytes for key ids of generated keys.
#[cfg(feature = "test-util")]
fn aws_lc_free_random(out: &mut [u8]) {
    use std::hash::{BuildHasher, Hasher};
    // Uniqueness, not secrecy: a kid only tells keys apart.
    for chunk in out.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        );
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}
