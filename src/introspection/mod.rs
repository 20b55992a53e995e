//! Opaque tokens by introspection (RFC 7662), feature `introspection`.
//!
//! A token that is not a JWT (not three base64url segments), or a JWT whose `iss` is
//! configured as introspected, is sent to the authorization server's introspection
//! endpoint; an active answer becomes a [`Principal`](crate::Principal) like a JWT's claims
//! (roles from the configured claim path, a `scope` path split at spaces), with `iss` and
//! `aud` checked like a JWT's. The answer is the authority: a JWT sent to introspection is
//! not verified locally, its payload is read only to find its `iss`.
//!
//! What this module guarantees:
//!
//! - The endpoint comes from configuration, or from the `introspection_endpoint` of the
//!   issuer's metadata (`/.well-known/openid-configuration`, else RFC 8414's
//!   `/.well-known/oauth-authorization-server`), whose `issuer` must equal the configured
//!   one. `https`, or `http` for loopback hosts (or anywhere with
//!   [`allow_http_key_urls`](crate::DangerousAuthenticatorBuilder::allow_http_key_urls)).
//! - The client authenticates with `client_secret_basic` (default) or
//!   `client_secret_post` (RFC 6749 section 2.3.1), or with `private_key_jwt` (RFC 7523)
//!   signed by a [`Signer`](crate::Signer); the secret never appears in `Debug`.
//! - The remote key sets' HTTP client is reused: its timeouts ([`JwksOptions`](crate::JwksOptions),
//!   2 s connect, 5 s in all by default), no redirects; an answer counts only with status
//!   200, a JSON object of at most 64 KiB with a boolean `active`.
//! - An active answer is cached in the verified-token cache until the token's `exp`, at
//!   most [`max_cache`](Introspection::max_cache) (default 60 s), and a hit is the same
//!   path as a cached JWT's: the revocation store is asked on every hit. An inactive
//!   answer is remembered for [`inactive_cache`](Introspection::inactive_cache) (default
//!   10 s) in a bounded negative cache of its own.
//! - One request per token in flight: concurrent first requests for one token wait for
//!   the same introspection. At most [`max_in_flight`](Introspection::max_in_flight)
//!   introspections run at once (default 256); beyond that, and whenever the endpoint
//!   cannot answer (down, slow, not 200, not JSON), the answer is 503 (`UNAVAILABLE`,
//!   `Token introspection unavailable`): fail-closed, never a pass.
//! - The token is never logged; logs name the endpoint and what failed.
//! - The layer waits for introspection on its async path; [`Authenticator::verify`]
//!   never waits, so it answers introspected tokens from the cache only (503 otherwise,
//!   with the introspection started in the background when a tokio runtime is present):
//!   use [`verify_async`](crate::Authenticator::verify_async).
//!
//! [`Authenticator::verify`]: crate::Authenticator::verify
//!
//! ```
//! use std::time::Duration;
//! use portcullis::{AuthErrorKind, Authenticator};
//! use portcullis::introspection::{ClientAuth, Introspection};
//!
//! let auth = Authenticator::builder()
//!     .introspection(
//!         // Nothing listens on port 9 here: the endpoint is down.
//!         Introspection::new("http://127.0.0.1:9/introspect", "resource-server", "s3cret")
//!             .client_auth(ClientAuth::ClientSecretPost)
//!             .max_cache(Duration::from_secs(30)),
//!     )
//!     .build()?;
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let err = rt.block_on(auth.verify_async("2YotnFZFEjr1zCsicMWpAA")).unwrap_err();
//! assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
//! assert_eq!(err.status(), 503);
//! assert_eq!(err.message(), "Token introspection unavailable");
//!
//! // Plain http is for loopback only.
//! let err = Authenticator::builder()
//!     .introspection(Introspection::new("http://as.example/introspect", "rs", "s3cret"))
//!     .build()
//!     .unwrap_err();
//! assert_eq!(err.setting(), "introspection");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod env;
mod flight;

use std::fmt;
use std::time::Duration;

pub(crate) use client::{Answer, Introspector};
pub(crate) use env::from_vars;
pub(crate) use flight::{Flight, Flights};

/// Default longest time an active answer is cached.
const DEFAULT_MAX_CACHE: Duration = Duration::from_secs(60);
/// Default time an inactive answer is remembered.
const DEFAULT_INACTIVE_CACHE: Duration = Duration::from_secs(10);
/// Default most introspections running at once.
const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// Longest cache bound the builder accepts (the verified-token cache's own bound).
const MAX_CACHE_CAP: Duration = Duration::from_secs(3600);

/// How the resource server authenticates to the introspection endpoint (RFC 7662
/// section 2.1; the methods of RFC 6749 section 2.3.1 and RFC 8414's
/// `introspection_endpoint_auth_methods_supported`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic`: `Authorization: Basic` with the form-encoded client id and
    /// secret. The default (RFC 6749 requires servers to support it).
    #[default]
    ClientSecretBasic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// `private_key_jwt` (RFC 7523 section 2.2, OpenID Connect Core section 9): a
    /// short-lived JWT signed with the client's private key
    /// ([`Introspection::private_key`]), `iss` and `sub` the client id, `aud` the
    /// endpoint's URL, a fresh `jti`, valid for 60 s. No secret is sent.
    PrivateKeyJwt,
}

impl ClientAuth {
    /// Parses an RFC 8414 method name: `client_secret_basic`, `client_secret_post` (also
    /// `basic` and `post`; `PORTCULLIS_INTROSPECTION_AUTH`) or `private_key_jwt`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "client_secret_basic" | "basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" | "post" => Some(Self::ClientSecretPost),
            "private_key_jwt" => Some(Self::PrivateKeyJwt),
            _ => None,
        }
    }

    /// The RFC 8414 name: `client_secret_basic` or `client_secret_post`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// Where the introspection endpoint is.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    /// Configured.
    Url(String),
    /// The `introspection_endpoint` of this issuer's metadata.
    Discover(String),
}

/// Settings of token introspection (RFC 7662), given to
/// [`AuthenticatorBuilder::introspection`](crate::AuthenticatorBuilder::introspection).
/// See the [module docs](self) for what it guarantees.
#[derive(Clone)]
pub struct Introspection {
    pub(crate) endpoint: Endpoint,
    pub(crate) client_id: String,
    pub(crate) secret: String,
    pub(crate) auth: ClientAuth,
    pub(crate) issuers: Vec<String>,
    pub(crate) opaque: bool,
    pub(crate) max_cache: Duration,
    pub(crate) inactive_cache: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) key: Option<crate::Signer>,
}

impl fmt::Debug for Introspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspection")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("secret", &"<redacted>")
            .field("client_auth", &self.auth)
            .field("issuers", &self.issuers)
            .field("opaque_tokens", &self.opaque)
            .field("max_cache", &self.max_cache)
            .field("inactive_cache", &self.inactive_cache)
            .field("max_in_flight", &self.max_in_flight)
            .field("private_key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Introspection {
    fn with(endpoint: Endpoint, client_id: String, secret: String) -> Self {
        Self {
            endpoint,
            client_id,
            secret,
            auth: ClientAuth::default(),
            issuers: Vec::new(),
            opaque: true,
            max_cache: DEFAULT_MAX_CACHE,
            inactive_cache: DEFAULT_INACTIVE_CACHE,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            key: None,
        }
    }

    /// Introspection at `endpoint` (`PORTCULLIS_INTROSPECTION_URL`) as the client
    /// `client_id` with `secret` (`PORTCULLIS_INTROSPECTION_CLIENT_ID`,
    /// `PORTCULLIS_INTROSPECTION_CLIENT_SECRET`). Tokens that are not JWTs are
    /// introspected; see [`issuer`](Self::issuer) for JWTs.
    pub fn new(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        Self::with(
            Endpoint::Url(endpoint.into()),
            client_id.into(),
            secret.into(),
        )
    }

    /// Introspection at the `introspection_endpoint` of `issuer`'s metadata
    /// (`PORTCULLIS_INTROSPECTION_ISSUER`), read on first use: `<issuer>/.well-known/
    /// openid-configuration`, else `/.well-known/oauth-authorization-server` (RFC 8414).
    /// The document's `issuer` must equal `issuer`, and an answer's `iss`, when present,
    /// must be it (or one of [`issuer`](Self::issuer)'s).
    pub fn discover(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        Self::with(
            Endpoint::Discover(issuer.into()),
            client_id.into(),
            secret.into(),
        )
    }

    /// How the client authenticates (`PORTCULLIS_INTROSPECTION_AUTH`). Default
    /// [`ClientAuth::ClientSecretBasic`].
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Authenticates with `private_key_jwt`, assertions signed by `key` (an asymmetric
    /// key: RS*, PS*, ES256, ES384 or EdDSA, with the `kid` the authorization server
    /// knows it by); the secret given to [`new`](Self::new) is then not used (pass `""`).
    pub fn private_key(mut self, key: crate::Signer) -> Self {
        self.key = Some(key);
        self.auth = ClientAuth::PrivateKeyJwt;
        self
    }

    /// Also introspects the JWTs whose `iss` is `issuer` (call again for several;
    /// `PORTCULLIS_INTROSPECTION_JWT_ISSUERS`), instead of verifying them with keys. The
    /// payload is read only to find `iss`; the answer decides. An answer's `iss`, when
    /// present, must then be one of these issuers (or the discovered one); an answer
    /// without `iss` names the JWT's own `iss`. Default: no JWT is introspected.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Whether tokens that are not JWTs (not three base64url segments) are introspected.
    /// Default `true`; `false` sends only the JWTs of [`issuer`](Self::issuer) and refuses
    /// opaque tokens as malformed (401).
    pub fn opaque_tokens(mut self, on: bool) -> Self {
        self.opaque = on;
        self
    }

    /// Longest time an active answer is cached (`PORTCULLIS_INTROSPECTION_CACHE_SECONDS`):
    /// the entry lives until the answer's `exp` (without leeway), at most this long, so a
    /// token the authorization server revokes is refused here at most this much later
    /// (revocations through [`revocations`](crate::AuthenticatorBuilder::revocations)
    /// apply at once). Default 60 s; 1 s to 1 h.
    pub fn max_cache(mut self, bound: Duration) -> Self {
        self.max_cache = bound;
        self
    }

    /// How long an inactive answer is remembered, so that a client retrying a dead token
    /// costs no request (`PORTCULLIS_INTROSPECTION_INACTIVE_SECONDS`). Default 10 s; 0
    /// turns it off; at most 1 h.
    pub fn inactive_cache(mut self, time: Duration) -> Self {
        self.inactive_cache = time;
        self
    }

    /// Most introspections running at once (distinct tokens; one token has at most one).
    /// Beyond it a new token gets 503 until one finishes: a flood of random tokens costs
    /// the authorization server at most this many requests at a time. Default 256.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// The issuers whose answers are accepted: those of [`issuer`](Self::issuer), and the
    /// discovered one.
    pub(crate) fn answer_issuers(&self) -> Vec<String> {
        let mut all = self.issuers.clone();
        if let Endpoint::Discover(iss) = &self.endpoint
            && !all.contains(iss)
        {
            all.push(iss.clone());
        }
        all
    }

    /// Checks the numbers; the URL is checked when the client is built.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.client_id.is_empty() {
            return Err("the client id is empty; set the id the authorization server registered for this resource server".into());
        }
        match (&self.key, self.auth) {
            (None, ClientAuth::PrivateKeyJwt) => {
                return Err("private_key_jwt needs the client's private key; give it with private_key(Signer)".into());
            }
            (Some(key), ClientAuth::PrivateKeyJwt)
                if key.algorithm().as_str().starts_with("HS") =>
            {
                return Err("private_key_jwt needs an asymmetric key (RS*, PS*, ES256, ES384, EdDSA), not an HMAC secret".into());
            }
            (Some(_), ClientAuth::PrivateKeyJwt) => {}
            (Some(_), _) => {
                return Err("a private key is set but the client authenticates with a secret; use client_auth(ClientAuth::PrivateKeyJwt)".into());
            }
            (None, _) if self.secret.is_empty() => {
                return Err("the client secret is empty; set the secret the authorization server issued, or use private_key(...)".into());
            }
            (None, _) => {}
        }
        if self.max_cache < Duration::from_secs(1) || self.max_cache > MAX_CACHE_CAP {
            return Err("max_cache must be between 1 s and 1 h".into());
        }
        if self.inactive_cache > MAX_CACHE_CAP {
            return Err("inactive_cache must be at most 1 h".into());
        }
        if self.max_in_flight == 0 {
            return Err("max_in_flight must be at least 1".into());
        }
        if !self.opaque && self.issuers.is_empty() {
            return Err("neither opaque tokens nor any JWT issuer is introspected; keep opaque_tokens(true) or name an issuer".into());
        }
        Ok(())
    }
}
