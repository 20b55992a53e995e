//! The one file that names `jsonwebtoken` and `aws-lc-rs`: prepared verification keys,
//! signature checks, and signing.
//!
//! Verification keys are prepared once, when a key is loaded: an HMAC key schedule, or a
//! parsed public key (aws-lc-rs `ParsedPublicKey`) for RSA, RSA-PSS, ECDSA and EdDSA. A
//! check then decodes the signature onto the stack and runs the math; it never parses a
//! key, boxes a verifier or allocates. Signing (for tests and development tools) goes
//! through jsonwebtoken.

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::Serialize;

use super::{Algorithm, Family, strict_b64};

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

/// The aws-lc-rs parameters of a public-key algorithm (RSA keys of 2048 to 8192 bits).
fn public_params(alg: Algorithm) -> Option<&'static dyn sig::VerificationAlgorithm> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        // JWS carries ECDSA signatures as fixed-width r || s (RFC 7518 section 3.4).
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &sig::ED25519,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => return None,
    })
}

fn rsa_params(alg: Algorithm) -> Option<&'static sig::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// One prepared key for one algorithm.
#[derive(Clone)]
enum Prepared {
    /// An HMAC key with its key schedule computed once.
    Hmac(Box<hmac::Key>),
    /// A parsed public key.
    Public(ParsedPublicKey),
}

/// A verification key, prepared for each algorithm it may verify (one, or several for a
/// JWK without `alg`: every RSA algorithm for an RSA key, the HMAC algorithms a secret's
/// length allows). A token still names one algorithm, which must be among them.
#[derive(Clone)]
pub(crate) struct Key {
    prepared: Box<[(Algorithm, Prepared)]>,
}

/// Room for the longest signature we verify (RSA 8192 bits: 1024 bytes) plus the
/// decoder's length estimate.
const SIG_BUF: usize = 1040;

/// Smallest RSA modulus we accept, in bits.
const MIN_RSA_BITS: usize = 2048;

fn rsa_bits(n: &[u8]) -> usize {
    let n = match n.iter().position(|&b| b != 0) {
        Some(i) => &n[i..],
        None => return 0,
    };
    n.len() * 8 - n[0].leading_zeros() as usize
}

fn hmac_algorithm(alg: Algorithm) -> hmac::Algorithm {
    match alg {
        Algorithm::HS384 => hmac::HMAC_SHA384,
        Algorithm::HS512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    }
}

impl Key {
    /// An HMAC key for each of `algs` (all HMAC algorithms).
    pub(crate) fn hmac(algs: &[Algorithm], secret: &[u8]) -> Self {
        let prepared = algs
            .iter()
            .map(|&alg| {
                (
                    alg,
                    Prepared::Hmac(Box::new(hmac::Key::new(hmac_algorithm(alg), secret))),
                )
            })
            .collect();
        Self { prepared }
    }

    /// The algorithms this key verifies.
    pub(crate) fn algorithms(&self) -> impl Iterator<Item = Algorithm> + '_ {
        self.prepared.iter().map(|(alg, _)| *alg)
    }

    /// Whether `other` is the same key: the same algorithms and, for public keys, the same
    /// encoded key. (HMAC keys compare by algorithms alone: they are only ever static, and
    /// static keys never change.)
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    pub(crate) fn same_as(&self, other: &Key) -> bool {
        self.prepared.len() == other.prepared.len()
            && self
                .prepared
                .iter()
                .zip(other.prepared.iter())
                .all(|((a, pa), (b, pb))| {
                    a == b
                        && match (pa, pb) {
                            (Prepared::Public(x), Prepared::Public(y)) => x.as_ref() == y.as_ref(),
                            (Prepared::Hmac(_), Prepared::Hmac(_)) => true,
                            _ => false,
                        }
                })
    }

    /// Whether this key verifies `alg`.
    pub(crate) fn supports(&self, alg: Algorithm) -> bool {
        self.prepared.iter().any(|(a, _)| *a == alg)
    }

    /// RSA public key from its modulus and exponent (big-endian bytes), for each of `algs`
    /// (all RSA algorithms).
    pub(crate) fn rsa_components(n: &[u8], e: &[u8], algs: &[Algorithm]) -> Result<Self, String> {
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
        let n_trim = &n[n.len() - bits.div_ceil(8)..];
        let components = RsaPublicKeyComponents {
            n: n_trim,
            e: &e_trim[..],
        };
        let prepared = algs
            .iter()
            .map(|&alg| {
                let params =
                    rsa_params(alg).ok_or_else(|| format!("{alg} is not an RSA algorithm"))?;
                let key = components
                    .to_parsed_public_key(params)
                    .map_err(|e| format!("not a usable RSA public key ({e})"))?;
                Ok((alg, Prepared::Public(key)))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { prepared })
    }

    /// EC public key from its affine coordinates, for `alg` (ES256 or ES384).
    pub(crate) fn ec_point(alg: Algorithm, x: &[u8], y: &[u8]) -> Result<Self, String> {
        let mut point = Vec::with_capacity(1 + x.len() + y.len());
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        Self::public(alg, &point, "the EC point is not on the curve")
    }

    /// Ed25519 public key (32 bytes).
    pub(crate) fn ed_public(x: &[u8]) -> Result<Self, String> {
        Self::public(Algorithm::EdDSA, x, "not an Ed25519 public key")
    }

    fn public(alg: Algorithm, bytes: &[u8], what: &str) -> Result<Self, String> {
        let params = public_params(alg).ok_or_else(|| format!("{alg} takes a secret"))?;
        let key = ParsedPublicKey::new(params, bytes).map_err(|_| what.to_owned())?;
        Ok(Self {
            prepared: Box::new([(alg, Prepared::Public(key))]),
        })
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
                Self::rsa_components(&n, &e, &[alg])
            }
            Family::Ec => {
                let key = DecodingKey::from_ec_pem(pem).map_err(|_| bad("EC"))?;
                let point = key.try_get_as_bytes().map_err(|_| bad("EC"))?;
                let want = if alg == Algorithm::ES256 { 65 } else { 97 };
                if point.len() != want || point[0] != 0x04 {
                    return Err(format!("the EC key is not on the curve of {alg}"));
                }
                Self::public(
                    alg,
                    point,
                    &format!("the EC key is not on the curve of {alg}"),
                )
            }
            Family::Ed => {
                let key = DecodingKey::from_ed_pem(pem).map_err(|_| bad("Ed25519"))?;
                let x = key.try_get_as_bytes().map_err(|_| bad("Ed25519"))?;
                if x.len() != 32 {
                    return Err(bad("Ed25519"));
                }
                Self::public(alg, x, &bad("Ed25519"))
            }
        }
    }

    /// Checks `signature` (base64url) over `message` for `alg`. Any failure (a signature
    /// that is not strict base64url, too long, or wrong; an algorithm this key does not
    /// verify) is `false`.
    pub(crate) fn verify(&self, signature: &str, message: &[u8], alg: Algorithm) -> bool {
        use base64::Engine;
        let Some((_, prepared)) = self.prepared.iter().find(|(a, _)| *a == alg) else {
            return false;
        };
        let mut buf = [0u8; SIG_BUF];
        // Strict base64url (no padding, canonical trailing bits); too long fails.
        let Ok(n) = strict_b64().decode_slice(signature, &mut buf) else {
            return false;
        };
        let signature = &buf[..n];
        match prepared {
            Prepared::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
            Prepared::Public(key) => key.verify_sig(message, signature).is_ok(),
        }
    }
}

/// SHA-256 of `data` (the revocation list keys exact tokens by the hash of their signing
/// input).
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// HMAC-SHA-256 of `data` under `key` (stateless DPoP nonces).
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// `N` bytes from the system's secure random generator.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The system generator does not fail on a working system; a zeroed secret would
    // only make nonces guessable, never accept a bad proof, so failure is not fatal.
    let _ = aws_lc_rs::rand::fill(&mut out);
    out
}

/// A private key for minting tokens.
#[derive(Clone)]
pub(crate) struct SigningKey {
    alg: Algorithm,
    key: EncodingKey,
}

impl SigningKey {
    /// An HMAC signing key; `alg` must be an HMAC algorithm.
    pub(crate) fn hmac(alg: Algorithm, secret: &[u8]) -> Result<Self, String> {
        if alg.family() != Family::Hmac {
            return Err(format!(
                "{alg} is not an HMAC algorithm; use HS256, HS384 or HS512"
            ));
        }
        Ok(Self {
            alg,
            key: EncodingKey::from_secret(secret),
        })
    }

    /// A private key in PEM (PKCS#8; PKCS#1 also for RSA) for `alg`.
    pub(crate) fn from_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, String> {
        let key = match alg.family() {
            Family::Hmac => return Err(format!("{alg} takes a secret; use Signer::hmac")),
            Family::Rsa => EncodingKey::from_rsa_pem(pem),
            Family::Ec => EncodingKey::from_ec_pem(pem),
            Family::Ed => EncodingKey::from_ed_pem(pem),
        }
        .map_err(|_| format!("not a PEM private key for {alg}"))?;
        Ok(Self { alg, key })
    }

    /// An Ed25519 private key in PKCS#8 DER (v1, as `openssl genpkey` and service-client
    /// access keys carry it, or v2 with the public key, which must match), with its public
    /// key (32 bytes). Only EdDSA: the other algorithms take PEM.
    pub(crate) fn ed25519_from_der(der: &[u8]) -> Result<(Self, [u8; 32]), String> {
        use aws_lc_rs::signature::KeyPair;
        let pair = sig::Ed25519KeyPair::from_pkcs8(der)
            .map_err(|_| "not a PKCS#8 DER Ed25519 private key".to_owned())?;
        let public: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| "not a PKCS#8 DER Ed25519 private key".to_owned())?;
        let key = Self {
            alg: Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(der),
        };
        Ok((key, public))
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Signs `claims` into a compact JWS with the header `{"alg", "typ": "JWT"}` and `kid`.
    pub(crate) fn sign<T: Serialize>(
        &self,
        kid: Option<&str>,
        claims: &T,
    ) -> Result<String, String> {
        let mut header = jsonwebtoken::Header::new(jwt_alg(self.alg));
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| e.to_string())
    }

    /// Signs `message` and returns the base64url signature.
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> Result<String, String> {
        jsonwebtoken::crypto::sign(message, &self.key, jwt_alg(self.alg)).map_err(|e| e.to_string())
    }
}

/// A fresh key pair for `alg` (feature `test-util`): the signing key and the public key as
/// a JWK object with `kty`, `alg`, `use`, `kid` and the key members.
#[cfg(feature = "test-util")]
pub(crate) fn generate(
    alg: Algorithm,
    kid: &str,
) -> Result<(SigningKey, serde_json::Value), String> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
    use base64::Engine;
    let b64 = |b: &[u8]| strict_b64().encode(b);
    let failed = |what: &str| format!("cannot generate a {what} key for {alg}");
    let (key, members) = match alg.family() {
        Family::Hmac => {
            let mut secret = vec![0u8; alg.min_hmac_len()];
            aws_lc_rs::rand::fill(&mut secret).map_err(|_| failed("random"))?;
            let key = SigningKey::hmac(alg, &secret)?;
            (key, serde_json::json!({"kty": "oct", "k": b64(&secret)}))
        }
        Family::Rsa => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| failed("RSA"))?;
            let der = pair.as_der().map_err(|_| failed("RSA"))?;
            let parsed = RsaKeyPair::from_pkcs8(der.as_ref()).map_err(|_| failed("RSA"))?;
            let public = RsaPublicKeyComponents::<Vec<u8>>::from(parsed.public_key());
            let pem = pem("PRIVATE KEY", der.as_ref());
            let key = SigningKey::from_pem(alg, pem.as_bytes())?;
            (
                key,
                serde_json::json!({"kty": "RSA", "n": b64(&public.n), "e": b64(&public.e)}),
            )
        }
        Family::Ec => {
            let (signing, crv, half) = if alg == Algorithm::ES256 {
                (&sig::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
            } else {
                (&sig::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
            };
            let pair = EcdsaKeyPair::generate(signing).map_err(|_| failed("EC"))?;
            let der = pair.to_pkcs8v1().map_err(|_| failed("EC"))?;
            let point = pair.public_key().as_ref();
            let key = SigningKey {
                alg,
                key: EncodingKey::from_ec_der(der.as_ref()),
            };
            let (x, y) = point[1..].split_at(half);
            (
                key,
                serde_json::json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)}),
            )
        }
        Family::Ed => {
            let pair = Ed25519KeyPair::generate().map_err(|_| failed("Ed25519"))?;
            let der = pair.to_pkcs8v1().map_err(|_| failed("Ed25519"))?;
            let key = SigningKey {
                alg,
                key: EncodingKey::from_ed_der(der.as_ref()),
            };
            let x = pair.public_key().as_ref().to_vec();
            (
                key,
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&x)}),
            )
        }
    };
    let mut jwk = members;
    jwk["alg"] = alg.as_str().into();
    jwk["use"] = "sig".into();
    jwk["kid"] = kid.into();
    Ok((key, jwk))
}

#[cfg(feature = "test-util")]
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Fills `out` with random bytes from the crypto backend; `false` when it cannot.
#[cfg_attr(not(feature = "introspection"), allow(dead_code))]
pub(crate) fn fill_random(out: &mut [u8]) -> bool {
    aws_lc_rs::rand::fill(out).is_ok()
}
