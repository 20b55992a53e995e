//! Authentication: read the token from a request and verify it.
//!
//! [`Authenticator::verify`] runs the cheap checks first (size, shape, strict base64url,
//! header parameters, algorithm, key id), then the signature, then the claims, and only
//! then builds the [`Principal`]. The token is decoded once into one buffer, the header
//! and claims are read from it in place, and only the subject, roles and groups are
//! copied out.
//!
//! ```
//! use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
//! use portcullis::{Algorithm, AuthErrorKind, Authenticator, Signer};
//!
//! let secret = "0123456789abcdef0123456789abcdef";
//! let auth = Authenticator::builder().hmac_secret(secret).build()?;
//! let token = Signer::hmac(Algorithm::HS256, secret)?
//!     .sign(&serde_json::json!({"sub": "ada", "role": "client", "exp": 4_000_000_000u64}))?;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("bearer  {token}"))?);
//! assert_eq!(auth.authenticate(&headers)?.roles(), ["client"]);
//!
//! headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer"));
//! assert_eq!(auth.authenticate(&headers).unwrap_err().kind(), AuthErrorKind::InvalidRequest);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
#[cfg(feature = "token-cache")]
mod cache;
mod claims;
#[cfg(feature = "token-cache")]
mod entry;
#[cfg(feature = "token-cache")]
mod front;
#[cfg(feature = "introspection")]
mod introspected;
mod revocation;
mod token;
mod verify;

pub use token::TokenSource;

use std::sync::Arc;

use http::HeaderMap;

pub(crate) use builder::pem_label;
pub use builder::{AuthenticatorBuilder, DangerousAuthenticatorBuilder};
#[cfg(feature = "token-cache")]
pub use cache::TokenCache;
pub(crate) use revocation::signing_input;
pub use revocation::{RevocationStore, TokenRef, Verdict};
pub(crate) use verify::Step;

use crate::answer::Answers;
use crate::clock::Clock;
use crate::error::{AuthError, Reason};
#[cfg(feature = "jwks")]
use crate::keys::RemoteKeys;
use crate::keys::{KeySet, Mode};
use crate::principal::{ClaimPath, Principal};

/// Default leeway for `exp`, `nbf` and `iat`, in seconds.
pub const DEFAULT_LEEWAY: u64 = 60;
/// The largest leeway the builder accepts, in seconds.
pub const MAX_LEEWAY: u64 = 300;
/// Default cap on the size of a token, in bytes, checked before any decoding.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The largest token size cap the builder accepts, in bytes.
pub const MAX_TOKEN_BYTES_CAP: usize = 64 * 1024;

/// The 401 for a token an issuer rule refused, with the rule's message.
#[cfg(feature = "jwks")]
fn refused(r: crate::keys::IssuerRefusal) -> AuthError {
    AuthError::invalid_token(Reason::IssuerRule {
        message: r.message,
        detail: r.detail,
    })
}

fn malformed(what: &'static str) -> AuthError {
    AuthError::invalid_token(Reason::Malformed(what))
}

/// Verifies tokens and turns them into a [`Principal`].
///
/// Cheap to clone (one `Arc`), `Send + Sync`. Build it with [`Authenticator::builder`].
///
/// With remote key sets (feature `jwks`), [`verify`](Self::verify) answers from the keys
/// already loaded and never waits on the network, while
/// [`verify_async`](Self::verify_async) may wait for a fetch (first load, an unknown
/// `kid`); the layer uses the async path only when a fetch is due.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    answers: Arc<Answers>,
    split_roles: bool,
    keys: KeySet,
    schemes: Vec<String>,
    /// The one scheme as a word, when there is one of at most 8 bytes (the common shape).
    scheme_word: Option<token::SchemeWord>,
    max_token_bytes: usize,
    leeway: u64,
    issuers: Vec<String>,
    audiences: Vec<String>,
    check_audience: bool,
    role_claim: ClaimPath,
    groups_claim: ClaimPath,
    typ: Option<String>,
    /// (issuer, required `typ`) pairs: RFC 9068 typing per issuer.
    typ_by_issuer: Vec<(String, String)>,
    crit: Vec<String>,
    require_exp: bool,
    clock: Arc<dyn Clock>,
    sources: Box<[TokenSource]>,
    #[cfg(feature = "jwks")]
    remote: Option<RemoteKeys>,
    #[cfg(feature = "token-cache")]
    cache: Option<cache::Cache>,
    revocations: Option<Arc<dyn RevocationStore>>,
    /// DPoP and certificate-bound tokens, when configured.
    sender: Option<Arc<crate::sender::SenderChecks>>,
    #[cfg(feature = "introspection")]
    introspection: Option<introspected::Introspected>,
}

/// The remote key set that verified a token, and its key epoch at the time: a token
/// remembered under an older epoch must be verified again.
#[derive(Clone)]
#[cfg_attr(not(feature = "token-cache"), allow(dead_code))]
pub(crate) struct KeyEpoch {
    #[cfg(feature = "jwks")]
    set: Arc<crate::keys::RemoteSet>,
    #[cfg(feature = "jwks")]
    epoch: u64,
}

impl KeyEpoch {
    #[cfg_attr(not(feature = "token-cache"), allow(dead_code))]
    /// Whether what the set verified still holds: the same key epoch, and keys that still
    /// serve (a due refresh starts in the background).
    fn is_current(&self) -> bool {
        #[cfg(feature = "jwks")]
        return self.set.epoch() == self.epoch && self.set.still_serves();
        #[cfg(not(feature = "jwks"))]
        true
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.inner.keys.len())
            .field("remote_key_sets", &{
                #[cfg(feature = "jwks")]
                let n = self.inner.remote.as_ref().map_or(0, RemoteKeys::len);
                #[cfg(not(feature = "jwks"))]
                let n = 0;
                n
            })
            .field("schemes", &self.inner.schemes)
            .field("issuers", &self.inner.issuers)
            .field("audiences", &self.inner.audiences)
            .field("role_claim", &self.inner.role_claim)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Starts a builder with the safe defaults.
    pub fn builder() -> AuthenticatorBuilder {
        AuthenticatorBuilder::default()
    }

    /// Whether tokens of more than one issuer can pass: several required issuers, several
    /// issuers with their own keys (OIDC issuers, issuer key sets), an issuer pattern, or
    /// introspected tokens beside tokens verified with keys.
    /// Then `sub` alone does not name a user: see
    /// [`Authorizer::issuers_of`](crate::Authorizer::issuers_of).
    pub fn accepts_several_issuers(&self) -> bool {
        if self.inner.issuers.len() > 1 {
            return true;
        }
        #[cfg(feature = "jwks")]
        if let Some(remote) = &self.inner.remote
            && (remote.by_issuer.len() > 1 || remote.tenants.is_some())
        {
            return true;
        }
        // Introspected tokens beside tokens verified with keys, or answers of several
        // issuers.
        #[cfg(feature = "introspection")]
        if let Some(i) = &self.inner.introspection
            && (i.introspector.answer_issuers().len() > 1
                || !self.inner.keys.is_empty()
                || self.inner.remote.is_some())
        {
            return true;
        }
        false
    }

    /// The scheme named in challenges and in "Invalid token scheme, expected ...".
    pub fn scheme(&self) -> &str {
        &self.inner.schemes[0]
    }

    /// The realm named in challenges.
    pub fn realm(&self) -> &str {
        self.inner.answers.realm()
    }

    /// The `WWW-Authenticate` value for `err` with this authenticator's scheme and realm.
    pub fn challenge(&self, err: &AuthError) -> Option<String> {
        err.www_authenticate(self.scheme(), self.realm())
    }

    /// The audiences a token must name (empty: none configured).
    pub(crate) fn audiences(&self) -> &[String] {
        &self.inner.audiences
    }

    /// Every issuer named in the configuration: the required ones, those bound to a key
    /// source of their own (OIDC issuers, issuer key sets) and those whose introspection
    /// answers are accepted, sorted, each once. Issuer
    /// patterns name no issuer.
    pub(crate) fn named_issuers(&self) -> Vec<String> {
        let mut all = self.inner.issuers.clone();
        #[cfg(feature = "jwks")]
        if let Some(remote) = &self.inner.remote {
            all.extend(remote.by_issuer.keys().cloned());
        }
        #[cfg(feature = "introspection")]
        if let Some(i) = &self.inner.introspection {
            all.extend(i.introspector.answer_issuers().iter().cloned());
        }
        all.sort();
        all.dedup();
        all
    }

    /// Where tokens are read from, in order.
    pub(crate) fn token_sources(&self) -> &[TokenSource] {
        &self.inner.sources
    }

    /// The sender-constraint checks (DPoP, certificate binding), when configured.
    pub(crate) fn sender(&self) -> Option<&crate::sender::SenderChecks> {
        self.inner.sender.as_deref()
    }

    /// Now, by this authenticator's clock (Unix seconds).
    pub(crate) fn now(&self) -> u64 {
        self.inner.clock.now()
    }

    /// The precomputed answers (scheme and realm) of this authenticator.
    pub(crate) fn answers(&self) -> &Arc<Answers> {
        &self.inner.answers
    }

    /// Reads the token from the configured header sources ([`TokenSource`]; `Authorization`
    /// by default) and verifies it with the keys already loaded (see
    /// [`verify`](Self::verify)). Query sources need the query string: see
    /// [`authenticate_request`](Self::authenticate_request).
    ///
    /// These `authenticate` methods see headers, not the request's method, URL or
    /// connection, so they check no proof of possession: a sender-constrained token
    /// (`cnf`, DPoP or certificate-bound) is refused (401), and with DPoP configured so are
    /// a token under the `DPoP` scheme and a token of an issuer that requires DPoP
    /// ([`check_bearer`](Self::check_bearer)). The layer checks proofs.
    /// [`verify`](Self::verify) reads the token alone: a caller that uses its principal
    /// as a bearer token asks [`check_bearer`](Self::check_bearer).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let token = self.token_from_request(headers, None)?;
        self.bearer_only(self.verify(token)?, headers)
    }

    /// Reads the token from the configured sources of a request (headers, cookies and,
    /// when configured, the query string) and verifies it with the keys already loaded.
    pub fn authenticate_request(
        &self,
        parts: &http::request::Parts,
    ) -> Result<Principal, AuthError> {
        let token = self.token_from_request(&parts.headers, parts.uri.query())?;
        self.bearer_only(self.verify(token)?, &parts.headers)
    }

    /// Reads the token like [`authenticate`](Self::authenticate) and verifies it, waiting
    /// for remote keys when a fetch is due (see [`verify_async`](Self::verify_async)).
    pub async fn authenticate_async(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let token = self.token_from_request(headers, None)?;
        self.bearer_only(self.verify_async(token).await?, headers)
    }

    /// Whether `principal`, verified from the token of a request with `headers`, may be
    /// used as a plain bearer token where no proof of possession can be checked (code
    /// that calls [`verify`](Self::verify) itself). Refused with 401: a token bound by
    /// `cnf` (DPoP or certificate-bound, RFC 7800), and with
    /// [`dpop`](crate::AuthenticatorBuilder::dpop) configured, a token sent under the
    /// `DPoP` scheme or a token of an issuer whose mode is
    /// [`Required`](crate::sender::DpopMode::Required).
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
    /// use portcullis::{Algorithm, Authenticator, Signer};
    ///
    /// let secret = "0123456789abcdef0123456789abcdef";
    /// let auth = Authenticator::builder().hmac_secret(secret).build()?;
    /// let signer = Signer::hmac(Algorithm::HS256, secret)?;
    /// let bound = signer.sign(&serde_json::json!({"sub": "ada", "exp": 4_000_000_000u64, "cnf": {"jkt": "x"}}))?;
    /// let mut headers = HeaderMap::new();
    /// headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {bound}"))?);
    /// let principal = auth.verify(&bound)?;
    /// assert_eq!(auth.check_bearer(&principal, &headers).unwrap_err().status(), 401);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_bearer(
        &self,
        principal: &Principal,
        headers: &HeaderMap,
    ) -> Result<(), AuthError> {
        crate::sender::bearer_only(
            self.sender(),
            principal,
            crate::sender::has_dpop_scheme(headers),
        )
    }

    /// The principal, when its token is good as a plain bearer token.
    fn bearer_only(&self, p: Principal, headers: &HeaderMap) -> Result<Principal, AuthError> {
        self.check_bearer(&p, headers)?;
        Ok(p)
    }

    /// The layer's first try: answers at once, or says a fetch is due.
    pub(crate) fn authenticate_or_fetch(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Principal, Step> {
        let credential = self.credential_from_request(headers, query)?;
        self.verify_credential(credential, Mode::Wait)
    }

    /// The layer's path after a wait: verifies, waiting for remote keys when a fetch is due.
    pub(crate) async fn authenticate_parts_async(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let token = self.token_from_request(headers, query)?;
        self.verify_async(token).await
    }

    /// Verifies a token: format, header, key, signature, then claims.
    ///
    /// It never waits: with remote key sets it answers from the keys already loaded (503
    /// before the first load; stale keys within the stale age) and starts any due fetch in
    /// the background when a tokio runtime is present. Use
    /// [`verify_async`](Self::verify_async) to wait for keys.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_mode(token, Mode::Kick)
            .map_err(Step::into_error)
    }

    /// Verifies a token like [`verify`](Self::verify), but when a remote key set must be
    /// fetched first (the first load, or an unknown `kid` outside the cooldown) it waits
    /// for that fetch, shared with every other request that needs it. A set whose TTL is
    /// over but whose keys are still usable is refreshed in the background instead: the
    /// request does not wait. Without remote key sets it never waits. Dropping the future
    /// cancels the wait, never the fetch.
    pub async fn verify_async(&self, token: &str) -> Result<Principal, AuthError> {
        match self.verify_mode(token, Mode::Wait) {
            Ok(p) => Ok(p),
            Err(Step::Fail(e)) => Err(e),
            Err(Step::Fetch(pending)) => {
                pending.wait().await;
                self.verify_mode(token, Mode::Never)
                    .map_err(Step::into_error)
            }
            #[cfg(feature = "introspection")]
            Err(Step::Introspect) => self.introspect(token).await,
            #[cfg(not(feature = "introspection"))]
            Err(step @ Step::Introspect) => Err(step.into_error()),
        }
    }

    /// Verifies only the JWS layer (format, header parameters, key, signature) and returns
    /// the payload bytes, without reading them as claims. For JWS that are not JWTs, and
    /// for signature-level test vectors.
    pub fn verify_signature(&self, token: &str) -> Result<Vec<u8>, AuthError> {
        let seg = self.segments(token)?;
        let (buf, header_len, _) = self.check_jws(seg, Mode::Kick).map_err(Step::into_error)?;
        Ok(buf[header_len..].to_vec())
    }

    /// How many issuers found through issuer patterns have their keys held now. For tests.
    #[cfg(feature = "jwks")]
    #[doc(hidden)]
    pub fn tenant_count(&self) -> u64 {
        self.inner
            .remote
            .as_ref()
            .and_then(|r| r.tenants.as_ref())
            .map_or(0, crate::keys::Tenants::len)
    }

    /// Fetches every remote key set now and reports the first that has no usable keys,
    /// naming its setting and the fetch error (feature `jwks`). Call it once at start to
    /// fail fast on a wrong URL; without it keys load on first use. Concurrent calls and
    /// requests share one fetch per set.
    #[cfg(feature = "jwks")]
    pub async fn load_keys(&self) -> Result<(), crate::UnavailableError> {
        let Some(remote) = &self.inner.remote else {
            return Ok(());
        };
        for set in remote.all() {
            set.load().await;
            let (usable, error) = set.status();
            if !usable {
                return Err(crate::UnavailableError::new(
                    set.setting(),
                    format!(
                        "no keys from `{}`: {}",
                        set.name(),
                        error.as_deref().unwrap_or("the fetch did not run")
                    ),
                ));
            }
        }
        Ok(())
    }
}
