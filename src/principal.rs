//! The verified caller.
//!
//! A [`Principal`] is made only by [`Authenticator`](crate::Authenticator) after a token
//! verified; the layer puts it into the request extensions. Cloning is cheap (one `Arc`).
//!
//! ```
//! use portcullis::{Authenticator, Signer, Algorithm};
//! use serde_json::json;
//!
//! let secret = "a-dev-secret-of-at-least-32-bytes!!";
//! let auth = Authenticator::builder().hmac_secret(secret).build()?;
//! let token = Signer::hmac(Algorithm::HS256, secret)?
//!     .sign(&json!({"sub": "ada", "role": "admin", "exp": 4_000_000_000u64}))?;
//! let principal = auth.verify(&token)?;
//! assert_eq!(principal.subject(), Some("ada"));
//! assert!(principal.has_role("admin"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The caller whose token verified: subject, roles, groups and all claims.
#[derive(Clone)]
pub struct Principal {
    inner: Arc<Inner>,
}

/// The scheme and realm of the authenticator that made a principal, for challenges in
/// extractor rejections.
#[derive(Debug)]
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) struct Challenge {
    pub(crate) scheme: String,
    pub(crate) realm: String,
}

struct Inner {
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    challenge: Arc<Challenge>,
    subject: Option<String>,
    roles: Vec<String>,
    groups: Vec<String>,
    claims: Map<String, Value>,
    header: Map<String, Value>,
}

impl Principal {
    pub(crate) fn new(
        challenge: Arc<Challenge>,
        subject: Option<String>,
        roles: Vec<String>,
        groups: Vec<String>,
        claims: Map<String, Value>,
        header: Map<String, Value>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                challenge,
                subject,
                roles,
                groups,
                claims,
                header,
            }),
        }
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn challenge(&self) -> &Challenge {
        &self.inner.challenge
    }

    /// The `sub` claim, when it is a string.
    pub fn subject(&self) -> Option<&str> {
        self.inner.subject.as_deref()
    }

    /// The roles read from the configured role claim (default `role`).
    pub fn roles(&self) -> &[String] {
        &self.inner.roles
    }

    /// Whether the caller holds exactly this role (case-sensitive).
    pub fn has_role(&self, role: &str) -> bool {
        self.inner.roles.iter().any(|r| r == role)
    }

    /// The groups read from the configured groups claim (default `groups`).
    pub fn groups(&self) -> &[String] {
        &self.inner.groups
    }

    /// All claims of the verified token.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.inner.claims
    }

    /// The verified token's JOSE header parameters (`alg`, `kid`, `typ`, and any `crit`
    /// parameters you declared with `understand_crit`, for you to check).
    pub fn header(&self) -> &Map<String, Value> {
        &self.inner.header
    }

    /// One claim, by a dotted path such as `realm_access.roles`.
    pub fn claim(&self, path: &str) -> Option<&Value> {
        claim_at(&self.inner.claims, path)
    }

    /// The claims deserialized into your own type.
    pub fn claims_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.inner.claims)
    }
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Claim values may be personal data; only names are printed.
        f.debug_struct("Principal")
            .field("subject", &self.inner.subject)
            .field("roles", &self.inner.roles)
            .field("groups", &self.inner.groups)
            .field("claims", &self.inner.claims.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Walks a dotted path through nested objects. A path segment that names a member
/// containing a dot is tried whole first, so `https://example.com/roles` works too.
pub(crate) fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// Reads a list of strings from a claim: a string (one item, or split on spaces when
/// `split`), or an array of strings. Any other type yields nothing, never an error.
pub(crate) fn strings_at(claims: &Map<String, Value>, path: &str, split: bool) -> Vec<String> {
    match claim_at(claims, path) {
        Some(Value::String(s)) if !split => {
            if s.is_empty() {
                Vec::new()
            } else {
                vec![s.clone()]
            }
        }
        Some(Value::String(s)) => s
            .split(' ')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}
