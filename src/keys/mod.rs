//! Keys: algorithms, static key sets, and JWK set loading with the rules of
//! shared/SECURITY.md K6.
//!
//! The algorithm always comes from the key, never from the token: a token is accepted only
//! when its `alg` equals the algorithm of the key that verifies it.
//!
//! ```
//! use portcullis::{Algorithm, Authenticator};
//!
//! assert_eq!("ES256".parse::<Algorithm>().unwrap(), Algorithm::ES256);
//! assert!("none".parse::<Algorithm>().is_err());
//! // A JWK set that mixes `oct` and asymmetric keys is refused when building.
//! let mixed = r#"{"keys":[
//!   {"kty":"oct","alg":"HS256","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
//!   {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
//! assert!(Authenticator::builder().jwk_set_json(mixed).build().is_err());
//! ```

mod jwk;
#[cfg(feature = "jwks")]
mod remote;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

pub(crate) use jwk::parse_jwk_set;
#[cfg(feature = "reqwest-client")]
pub use remote::JwksClient;
#[cfg(feature = "jwks")]
pub use remote::JwksOptions;
#[cfg(feature = "jwks")]
pub(crate) use remote::{Pending, RemoteBuilder, RemoteKeys};

/// Without the `jwks` feature no verification ever waits for keys: this has no values.
#[cfg(not(feature = "jwks"))]
pub(crate) enum Pending {}

#[cfg(not(feature = "jwks"))]
impl Pending {
    pub(crate) async fn wait(self) {
        match self {}
    }
}

use crate::authn::jwt::Key;

/// A signature algorithm we verify. `none`, ES512 and the encryption algorithms are not
/// among them, on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA on Ed25519.
    EdDSA,
}

/// The family of an algorithm, which decides what key it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

impl Algorithm {
    /// Every algorithm, in a stable order.
    pub const ALL: [Algorithm; 12] = [
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    /// The name used in the JOSE `alg` header parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    pub(crate) fn family(self) -> Family {
        match self {
            Self::HS256 | Self::HS384 | Self::HS512 => Family::Hmac,
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                Family::Rsa
            }
            Self::ES256 | Self::ES384 => Family::Ec,
            Self::EdDSA => Family::Ed,
        }
    }

    /// The shortest HMAC secret we accept without the `dangerous` opt-in: the hash size.
    pub(crate) fn min_hmac_len(self) -> usize {
        match self {
            Self::HS384 => 48,
            Self::HS512 => 64,
            _ => 32,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown or unsupported algorithm name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgorithm(String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unsupported algorithm `{}`; use one of HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA",
            self.0.chars().take(16).collect::<String>()
        )
    }
}

impl std::error::Error for UnknownAlgorithm {}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// Names compare exactly, as JOSE says: `hs256` is not `HS256`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

/// One verification key with the algorithm it is for.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) key: Key,
}

/// The keys of one issuer (or of a static configuration), indexed by `kid`.
#[derive(Clone, Default)]
pub(crate) struct KeySet {
    keys: Vec<VerifyingKey>,
    by_kid: HashMap<String, usize>,
}

/// Why no key was chosen for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selection {
    NoKey,
    Ambiguous,
    WrongAlgorithm,
}

impl KeySet {
    pub(crate) fn push(&mut self, key: VerifyingKey) -> Result<(), String> {
        if let Some(kid) = &key.kid {
            if self.by_kid.contains_key(kid) {
                return Err("two keys share one `kid`; give every key its own kid".into());
            }
            self.by_kid.insert(kid.clone(), self.keys.len());
        }
        self.keys.push(key);
        Ok(())
    }

    pub(crate) fn into_keys(self) -> impl Iterator<Item = VerifyingKey> {
        self.keys.into_iter()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// An algorithm for which two keys have no kid (no token could choose between them).
    pub(crate) fn ambiguous_without_kid(&self) -> Option<Algorithm> {
        let mut seen = Vec::new();
        for key in self.keys.iter().filter(|k| k.kid.is_none()) {
            if seen.contains(&key.alg) {
                return Some(key.alg);
            }
            seen.push(key.alg);
        }
        None
    }

    /// Whether a key of the set has this `kid`.
    #[cfg(feature = "jwks")]
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// The set without the kid-less keys of any algorithm that has several of them (no
    /// token could choose between those), and the algorithms whose keys were dropped.
    #[cfg(feature = "jwks")]
    pub(crate) fn without_ambiguous(self) -> (KeySet, Vec<Algorithm>) {
        let mut dropped = Vec::new();
        while let Some(alg) = self.ambiguous_without_kid_excluding(&dropped) {
            dropped.push(alg);
        }
        if dropped.is_empty() {
            return (self, dropped);
        }
        let mut set = KeySet::default();
        for key in self.keys {
            if key.kid.is_none() && dropped.contains(&key.alg) {
                continue;
            }
            // Kids were unique in `self`, so this cannot fail.
            let _ = set.push(key);
        }
        (set, dropped)
    }

    #[cfg(feature = "jwks")]
    fn ambiguous_without_kid_excluding(&self, skip: &[Algorithm]) -> Option<Algorithm> {
        let mut seen = Vec::new();
        for key in self.keys.iter().filter(|k| k.kid.is_none()) {
            if skip.contains(&key.alg) {
                continue;
            }
            if seen.contains(&key.alg) {
                return Some(key.alg);
            }
            seen.push(key.alg);
        }
        None
    }

    pub(crate) fn has_hmac(&self) -> bool {
        self.keys.iter().any(|k| k.alg.family() == Family::Hmac)
    }

    pub(crate) fn has_asymmetric(&self) -> bool {
        self.keys.iter().any(|k| k.alg.family() != Family::Hmac)
    }

    /// Chooses the key for a token: by `kid` when the token names one we hold, else the one
    /// key without a kid for that algorithm. The key's algorithm must equal the token's.
    pub(crate) fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<&VerifyingKey, Selection> {
        if let Some(&i) = kid.and_then(|kid| self.by_kid.get(kid)) {
            let key = &self.keys[i];
            return if key.alg == alg {
                Ok(key)
            } else {
                Err(Selection::WrongAlgorithm)
            };
        }
        let mut found = None;
        for key in &self.keys {
            // A token that names a kid we do not hold may still match a key without one.
            if kid.is_some() && key.kid.is_some() {
                continue;
            }
            if key.alg == alg {
                if found.is_some() {
                    return Err(Selection::Ambiguous);
                }
                found = Some(key);
            }
        }
        found.ok_or(
            if self.keys.iter().any(|k| k.alg.family() == alg.family()) {
                Selection::WrongAlgorithm
            } else {
                Selection::NoKey
            },
        )
    }
}
