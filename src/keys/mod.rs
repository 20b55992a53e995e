//! Keys: static key sets, JWK set loading, and remote key sets.
//!
//! The algorithm always comes from the key, never from the token: a token is accepted only
//! when its `alg` is one the key that verifies it was loaded for. A key names its
//! algorithm (`alg`), or, for a JWK without `alg`, verifies exactly the algorithms of its
//! type and size: every RS* and PS* algorithm for an RSA key, the curve's one for EC,
//! EdDSA for Ed25519, and the HS* algorithms an `oct` secret is long enough for. HMAC is
//! never accepted from an asymmetric key.
//!
//! JWK sets are loaded by these rules: `use` must be `sig`, `key_ops` must include
//! `verify`, `kty`, `crv` and `alg` must agree, RSA keys need 2048 bits and an odd
//! exponent above 1, a duplicate `kid` refuses the whole set, an unknown `kty` skips only
//! that key, private members are never read.
//!
//! This module reports its own results ([`Lookup`]); the verifier above it turns them
//! into answers.
//!
//! ```
//! use portcullis::{Algorithm, Authenticator};
//!
//! // A JWK set that mixes `oct` and asymmetric keys is refused when building.
//! let mixed = r#"{"keys":[
//!   {"kty":"oct","alg":"HS256","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
//!   {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
//! assert!(Authenticator::builder().jwk_set_json(mixed).build().is_err());
//! # let _ = Algorithm::HS256;
//! ```

mod jwk;
#[cfg(feature = "jwks")]
mod remote;

use std::collections::HashMap;

pub(crate) use jwk::parse_jwk_set;
#[cfg(feature = "reqwest-client")]
pub use remote::JwksClient;
#[cfg(feature = "jwks")]
pub use remote::JwksOptions;
#[cfg(feature = "jwks")]
pub use remote::TenantOptions;
#[cfg(feature = "jwks")]
pub(crate) use remote::{
    IssuerKeys, IssuerRefusal, IssuerRule, Pending, RemoteBuilder, RemoteKeys, RemoteSet, Tenants,
    Unmatched, check_url,
};

use crate::jose::{Algorithm, Family, Key};

/// Without the `jwks` feature no verification ever waits for keys: this has no values.
#[cfg(not(feature = "jwks"))]
pub(crate) enum Pending {}

#[cfg(not(feature = "jwks"))]
impl Pending {
    pub(crate) async fn wait(self) {
        match self {}
    }
}

/// Whether a key look-up may wait for a remote key set to be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Ask the caller to wait for a needed fetch (the async path).
    Wait,
    /// Start a needed fetch in the background and answer from what is loaded (the sync
    /// path).
    Kick,
    /// Answer from what is loaded (the second pass of the async path, after its wait).
    Never,
}

/// Why a key look-up gave no key.
pub(crate) enum Lookup {
    /// No key of the set fits the token.
    NoKey(Selection),
    /// No usable keys are loaded (never loaded, or past the stale age).
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    Unavailable,
    /// Keys must be fetched first (only with remote key sets, in [`Mode::Wait`]).
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    Fetch(Pending),
}

impl From<Selection> for Lookup {
    fn from(s: Selection) -> Self {
        Self::NoKey(s)
    }
}

/// One verification key: its `kid`, and the key prepared for its algorithms.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<String>,
    pub(crate) key: Key,
}

impl VerifyingKey {
    fn family(&self) -> Option<Family> {
        self.key.algorithms().next().map(Algorithm::family)
    }

    /// Checks the signature of a token whose header names `alg`.
    pub(crate) fn verify(&self, signature: &str, message: &[u8], alg: Algorithm) -> bool {
        self.key.verify(signature, message, alg)
    }
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

    /// An algorithm that two keys without a kid both verify (no token could choose
    /// between them), skipping the algorithms in `skip`.
    fn shared_without_kid(&self, skip: &[Algorithm]) -> Option<Algorithm> {
        let mut seen: Vec<Algorithm> = Vec::new();
        for key in self.keys.iter().filter(|k| k.kid.is_none()) {
            for alg in key.key.algorithms() {
                if skip.contains(&alg) {
                    continue;
                }
                if seen.contains(&alg) {
                    return Some(alg);
                }
                seen.push(alg);
            }
        }
        None
    }

    /// An algorithm for which two keys have no kid (no token could choose between them).
    pub(crate) fn ambiguous_without_kid(&self) -> Option<Algorithm> {
        self.shared_without_kid(&[])
    }

    /// Whether a key of the set has this `kid`.
    #[cfg(feature = "jwks")]
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// The set without the kid-less keys that share an algorithm with another kid-less
    /// key (no token could choose between them), and the algorithms concerned.
    #[cfg(feature = "jwks")]
    pub(crate) fn without_ambiguous(self) -> (KeySet, Vec<Algorithm>) {
        let mut dropped = Vec::new();
        while let Some(alg) = self.shared_without_kid(&dropped) {
            dropped.push(alg);
        }
        if dropped.is_empty() {
            return (self, dropped);
        }
        let mut set = KeySet::default();
        for key in self.keys {
            if key.kid.is_none() && key.key.algorithms().any(|a| dropped.contains(&a)) {
                continue;
            }
            // Kids were unique in `self`, so this cannot fail.
            let _ = set.push(key);
        }
        (set, dropped)
    }

    /// Whether every key of `old` is still here, unchanged (by `kid`, or, for keys without
    /// one, by key): then nothing `old` verified would now be refused for a missing key.
    #[cfg(feature = "jwks")]
    pub(crate) fn keeps_every_key_of(&self, old: &KeySet) -> bool {
        old.keys.iter().all(|k| match &k.kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .is_some_and(|&i| self.keys[i].key.same_as(&k.key)),
            None => self
                .keys
                .iter()
                .any(|n| n.kid.is_none() && n.key.same_as(&k.key)),
        })
    }

    pub(crate) fn has_hmac(&self) -> bool {
        self.keys.iter().any(|k| k.family() == Some(Family::Hmac))
    }

    pub(crate) fn has_asymmetric(&self) -> bool {
        self.keys
            .iter()
            .any(|k| k.family().is_some_and(|f| f != Family::Hmac))
    }

    /// Chooses the key for a token: by `kid` when the token names one we hold, else the one
    /// key without a kid that verifies `alg`. The key must verify the token's `alg`.
    pub(crate) fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<&VerifyingKey, Selection> {
        if let Some(&i) = kid.and_then(|kid| self.by_kid.get(kid)) {
            let key = &self.keys[i];
            return if key.key.supports(alg) {
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
            if key.key.supports(alg) {
                if found.is_some() {
                    return Err(Selection::Ambiguous);
                }
                found = Some(key);
            }
        }
        found.ok_or(
            if self.keys.iter().any(|k| k.family() == Some(alg.family())) {
                Selection::WrongAlgorithm
            } else {
                Selection::NoKey
            },
        )
    }
}
