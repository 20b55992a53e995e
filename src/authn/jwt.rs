//! The one file that names `jsonwebtoken`: key construction, signature checks, signing.
//!
//! Everything else in the crate speaks our own [`Algorithm`] and [`Key`], so upgrading
//! jsonwebtoken is a change to this file alone.
//!
//! HMAC keys are the one exception to "verify through jsonwebtoken": jsonwebtoken rebuilds
//! the HMAC key schedule and copies the secret on every call, so HMAC verification uses
//! the same backend (aws-lc-rs) with a key prepared once, and a constant-time compare.

use jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::Serialize;

use crate::error::ConfigError;
use crate::keys::{Algorithm, Family};

fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    use jsonwebtoken::Algorithm as J;
    match alg {
        Algorithm::HS256 => J::HS256,
        Algorithm::HS384 => J::HS384,
        Algorithm::HS512 => J::HS512,
        Algorithm::RS256 => J::RS256,
        Algorithm::RS384 => J::RS384,
        Algorithm::RS512 => J::RS512,
        Algorithm::PS256 => J::PS256,
        Algorithm::PS384 => J::PS384,
        Algorithm::PS512 => J::PS512,
        Algorithm::ES256 => J::ES256,
        Algorithm::ES384 => J::ES384,
        Algorithm::EdDSA => J::EdDSA,
    }
}

/// A verification key, ready for the algorithm it was built for.
#[derive(Clone)]
pub(crate) enum Key {
    /// An HMAC key with its key schedule computed once.
    Hmac(Box<aws_lc_rs::hmac::Key>),
    /// A public key, verified through jsonwebtoken.
    Public(DecodingKey),
}

/// Room for the longest HMAC tag (HS512, 64 bytes) plus the decoder's length estimate.
const TAG_BUF: usize = 96;

/// Smallest RSA modulus we accept, in bits.
const MIN_RSA_BITS: usize = 2048;

fn rsa_bits(n: &[u8]) -> usize {
    let n = match n.iter().position(|&b| b != 0) {
        Some(i) => &n[i..],
        None => return 0,
    };
    n.len() * 8 - n[0].leading_zeros() as usize
}

impl Key {
    pub(crate) fn hmac(alg: Algorithm, secret: &[u8]) -> Self {
        use aws_lc_rs::hmac;
        let algorithm = match alg {
            Algorithm::HS384 => hmac::HMAC_SHA384,
            Algorithm::HS512 => hmac::HMAC_SHA512,
            _ => hmac::HMAC_SHA256,
        };
        Self::Hmac(Box::new(hmac::Key::new(algorithm, secret)))
    }

    /// RSA public key from its modulus and exponent (big-endian bytes).
    pub(crate) fn rsa_components(n: &[u8], e: &[u8]) -> Result<Self, String> {
        let bits = rsa_bits(n);
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
            ));
        }
        let e_trim: Vec<u8> = e.iter().copied().skip_while(|&b| b == 0).collect();
        if e_trim.is_empty() || e_trim == [1] || e_trim.last().is_some_and(|b| b % 2 == 0) {
            return Err("RSA public exponent must be odd and greater than 1".into());
        }
        if e_trim.len() > 8 {
            return Err("RSA public exponent is too large".into());
        }
        Ok(Self::Public(DecodingKey::from_rsa_raw_components(n, e)))
    }

    /// EC public key from its affine coordinates.
    pub(crate) fn ec_point(x: &[u8], y: &[u8]) -> Result<Self, String> {
        let mut point = Vec::with_capacity(1 + x.len() + y.len());
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        Ok(Self::Public(DecodingKey::from_ec_der(&point)))
    }

    /// Ed25519 public key.
    pub(crate) fn ed_public(x: &[u8]) -> Self {
        Self::Public(DecodingKey::from_ed_der(x))
    }

    /// A public key in PEM (SubjectPublicKeyInfo, or PKCS#1 for RSA) for `alg`.
    pub(crate) fn from_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, String> {
        let bad = |what: &str| format!("not a PEM {what} public key for {alg}");
        match alg.family() {
            Family::Hmac => Err(format!("{alg} takes a secret, not a PEM key")),
            Family::Rsa => {
                let key = DecodingKey::from_rsa_pem(pem).map_err(|_| bad("RSA"))?;
                let der = key.try_get_as_bytes().map_err(|_| bad("RSA"))?;
                let (n, e) = (DEFAULT_PROVIDER
                    .key_utils
                    .rsa_pub_components_from_public_key)(der)
                .map_err(|_| bad("RSA"))?;
                Self::rsa_components(&n, &e)
            }
            Family::Ec => {
                let key = DecodingKey::from_ec_pem(pem).map_err(|_| bad("EC"))?;
                let point = key.try_get_as_bytes().map_err(|_| bad("EC"))?;
                let want = if alg == Algorithm::ES256 { 65 } else { 97 };
                if point.len() != want || point[0] != 0x04 {
                    return Err(format!("the EC key is not on the curve of {alg}"));
                }
                Ok(Self::Public(key))
            }
            Family::Ed => {
                let key = DecodingKey::from_ed_pem(pem).map_err(|_| bad("Ed25519"))?;
                if key.try_get_as_bytes().map(<[u8]>::len).ok() != Some(32) {
                    return Err(bad("Ed25519"));
                }
                Ok(Self::Public(key))
            }
        }
    }
}

/// Checks `signature` (base64url, already checked to be canonical) over `message` with
/// `key` for `alg`. Any failure, including a key the backend cannot parse, is `false`.
pub(crate) fn verify(signature: &str, message: &[u8], key: &Key, alg: Algorithm) -> bool {
    match key {
        Key::Hmac(key) => {
            use base64::Engine;
            let mut tag = [0u8; TAG_BUF];
            // Strict base64url (no padding, canonical trailing bits); too long fails.
            match super::strict_b64().decode_slice(signature, &mut tag) {
                Ok(n) => aws_lc_rs::hmac::verify(key, message, &tag[..n]).is_ok(),
                Err(_) => false,
            }
        }
        Key::Public(key) => {
            jsonwebtoken::crypto::verify(signature, message, key, jwt_alg(alg)).unwrap_or(false)
        }
    }
}

/// Mints tokens: for development, tests, and the command-line tool.
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
    alg: Algorithm,
    kid: Option<String>,
    key: EncodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Signer {
    /// A signer with an HMAC secret. `alg` must be HS256, HS384 or HS512.
    pub fn hmac(alg: Algorithm, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        if alg.family() != Family::Hmac {
            return Err(ConfigError::new(
                "signer algorithm",
                format!("{alg} is not an HMAC algorithm; use HS256, HS384 or HS512"),
            ));
        }
        Ok(Self {
            alg,
            kid: None,
            key: EncodingKey::from_secret(secret.as_ref()),
        })
    }

    /// A signer with a private key in PEM (PKCS#8; PKCS#1 also for RSA).
    pub fn from_pem(alg: Algorithm, pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let pem = pem.as_ref();
        let key = match alg.family() {
            Family::Hmac => {
                return Err(ConfigError::new(
                    "signer key",
                    format!("{alg} takes a secret; use Signer::hmac"),
                ));
            }
            Family::Rsa => EncodingKey::from_rsa_pem(pem),
            Family::Ec => EncodingKey::from_ec_pem(pem),
            Family::Ed => EncodingKey::from_ed_pem(pem),
        }
        .map_err(|_| ConfigError::new("signer key", format!("not a PEM private key for {alg}")))?;
        Ok(Self {
            alg,
            kid: None,
            key,
        })
    }

    /// Sets the `kid` header parameter.
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm this signer uses.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Signs `claims` into a compact JWS.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, SignError> {
        let mut header = jsonwebtoken::Header::new(jwt_alg(self.alg));
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| SignError(e.to_string()))
    }

    /// Signs arbitrary bytes as `header.payload`, both given as base64url segments, and
    /// returns the base64url signature. For tests that craft unusual headers.
    pub fn sign_segments(&self, header_b64: &str, payload_b64: &str) -> Result<String, SignError> {
        let message = format!("{header_b64}.{payload_b64}");
        jsonwebtoken::crypto::sign(message.as_bytes(), &self.key, jwt_alg(self.alg))
            .map_err(|e| SignError(e.to_string()))
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
