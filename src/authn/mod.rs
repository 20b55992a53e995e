//! Authentication: read the token from a request and verify it.
//!
//! [`Authenticator::verify`] runs the cheap checks first (size, shape, strict base64url,
//! header parameters, algorithm, key id), then the signature, then the claims, and only
//! then builds the [`Principal`].
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

pub(crate) mod json;
pub(crate) mod jwt;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::HeaderMap;
use http::header::AUTHORIZATION;
use serde_json::{Map, Value};

use crate::error::{AuthError, ConfigError, Reason};
use crate::keys::{Algorithm, Family, KeySet, Pending, Selection, VerifyingKey, parse_jwk_set};
#[cfg(feature = "jwks")]
use crate::keys::{JwksOptions, RemoteBuilder, RemoteKeys};
use crate::principal::{Challenge, Principal, strings_at};

pub use jwt::{SignError, Signer};

/// Strict base64url: no padding, no whitespace, canonical trailing bits.
pub(crate) fn strict_b64() -> &'static GeneralPurpose {
    static ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(false),
    );
    &ENGINE
}

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

struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// Default leeway for `exp`, `nbf` and `iat`, in seconds.
pub const DEFAULT_LEEWAY: u64 = 60;
/// The largest leeway the builder accepts, in seconds.
pub const MAX_LEEWAY: u64 = 300;
/// Default cap on the size of a token, in bytes, checked before any decoding.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The largest token size cap the builder accepts, in bytes.
pub const MAX_TOKEN_BYTES_CAP: usize = 64 * 1024;
/// Longest `kid` we look up; longer ones are refused.
const MAX_KID_LEN: usize = 256;
/// Latest NumericDate we accept (9999-12-31T23:59:59Z).
const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// Whether key selection may wait for a remote key set to be fetched.
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

/// Why verification stopped before an answer.
pub(crate) enum Step {
    /// The answer is this error.
    Fail(AuthError),
    /// Keys must be fetched first (only with remote key sets, in [`Mode::Wait`]).
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    Fetch(Pending),
}

impl From<AuthError> for Step {
    fn from(e: AuthError) -> Self {
        Self::Fail(e)
    }
}

impl Step {
    /// The answer of a path that cannot wait.
    pub(crate) fn into_error(self) -> AuthError {
        match self {
            Self::Fail(e) => e,
            // Only `Mode::Wait` asks for a fetch; answer as if no keys were loaded.
            Self::Fetch(_) => AuthError::keys_unavailable(),
        }
    }
}

/// The 401 for a token no key fits.
pub(crate) fn no_key_error(e: Selection) -> AuthError {
    AuthError::invalid_token(Reason::NoKey(match e {
        Selection::NoKey => "no key for this token",
        Selection::Ambiguous => "several keys fit and the token names no kid",
        Selection::WrongAlgorithm => "the token's alg is not the key's",
    }))
}

/// Verifies tokens and turns them into a [`Principal`].
///
/// Cheap to clone (one `Arc`), `Send + Sync`. Build it with [`Authenticator::builder`].
///
/// With remote key sets (feature `jwks`), [`verify`](Self::verify) answers from the keys
/// already loaded and never waits on the network, while
/// [`verify_async`](Self::verify_async) may wait for a fetch (first load, end of the TTL,
/// an unknown `kid`); the layer uses the async path only when a fetch is due.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    challenge: Arc<Challenge>,
    split_roles: bool,
    keys: KeySet,
    schemes: Vec<String>,
    realm: String,
    max_token_bytes: usize,
    leeway: u64,
    issuers: Vec<String>,
    audiences: Vec<String>,
    role_claim: String,
    groups_claim: String,
    typ: Option<String>,
    crit: Vec<String>,
    require_exp: bool,
    clock: Arc<dyn Clock>,
    #[cfg(feature = "jwks")]
    remote: Option<RemoteKeys>,
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

enum KeySource {
    Hmac(Vec<u8>),
    Pem {
        alg: Algorithm,
        pem: Vec<u8>,
        kid: Option<String>,
    },
    JwkSet(String),
}

/// Builds an [`Authenticator`]. Every setting documents its default.
pub struct AuthenticatorBuilder {
    sources: Vec<KeySource>,
    hmac_alg: Algorithm,
    schemes: Vec<String>,
    realm: String,
    max_token_bytes: usize,
    leeway: u64,
    issuers: Vec<String>,
    audiences: Vec<String>,
    role_claim: String,
    groups_claim: String,
    typ: Option<String>,
    crit: Vec<String>,
    clock: Arc<dyn Clock>,
    allow_short_hmac: bool,
    require_exp: bool,
    #[cfg(feature = "jwks")]
    remote: RemoteBuilder,
}

impl std::fmt::Debug for AuthenticatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticatorBuilder")
            .field("key_sources", &self.sources.len())
            .field("schemes", &self.schemes)
            .finish_non_exhaustive()
    }
}

impl Default for AuthenticatorBuilder {
    fn default() -> Self {
        Self {
            sources: Vec::new(),
            hmac_alg: Algorithm::HS256,
            schemes: vec!["Bearer".to_owned()],
            realm: "api".to_owned(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            leeway: DEFAULT_LEEWAY,
            issuers: Vec::new(),
            audiences: Vec::new(),
            role_claim: "role".to_owned(),
            groups_claim: "groups".to_owned(),
            typ: None,
            crit: Vec::new(),
            clock: Arc::new(SystemClock),
            allow_short_hmac: false,
            require_exp: true,
            #[cfg(feature = "jwks")]
            remote: RemoteBuilder::default(),
        }
    }
}

impl AuthenticatorBuilder {
    /// Adds an HMAC secret (FEDn's `FEDN_JWT_SECRET_KEY`). Its algorithm is set by
    /// [`hmac_algorithm`](Self::hmac_algorithm), HS256 by default. A secret shorter than
    /// the hash (32 bytes for HS256) is refused unless [`dangerous`](Self::dangerous)
    /// allows it.
    pub fn hmac_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.sources.push(KeySource::Hmac(secret.as_ref().to_vec()));
        self
    }

    /// The algorithm of the HMAC secret (FEDn's `FEDN_JWT_ALGORITHM`). Default HS256.
    /// Tokens signed with any other algorithm are refused.
    pub fn hmac_algorithm(mut self, alg: Algorithm) -> Self {
        self.hmac_alg = alg;
        self
    }

    /// Adds a public key in PEM for `alg` (RS*, PS*, ES256, ES384 or EdDSA).
    pub fn public_key_pem(mut self, alg: Algorithm, pem: impl AsRef<[u8]>) -> Self {
        self.sources.push(KeySource::Pem {
            alg,
            pem: pem.as_ref().to_vec(),
            kid: None,
        });
        self
    }

    /// Adds a public key in PEM for `alg`, selected by tokens whose header names `kid`.
    pub fn public_key_pem_with_kid(
        mut self,
        alg: Algorithm,
        pem: impl AsRef<[u8]>,
        kid: impl Into<String>,
    ) -> Self {
        self.sources.push(KeySource::Pem {
            alg,
            pem: pem.as_ref().to_vec(),
            kid: Some(kid.into()),
        });
        self
    }

    /// Adds the keys of a static JWK set (`{"keys": [...]}`), loaded by the rules of
    /// SECURITY.md K6: `use` must be `sig`, `key_ops` must include `verify`, kty, crv and
    /// alg must agree, RSA keys need 2048 bits and e > 1; unknown kty are skipped; a
    /// duplicate `kid`, or `oct` keys mixed with asymmetric ones, refuse the set.
    pub fn jwk_set_json(mut self, json: impl Into<String>) -> Self {
        self.sources.push(KeySource::JwkSet(json.into()));
        self
    }

    /// Adds a remote JWK set for every token whose `iss` has no key source of its own
    /// (`PORTCULLIS_JWKS_URL`; feature `jwks`). `https`, or `http` for loopback hosts. It
    /// cannot be combined with static keys (bind it to its issuer with
    /// [`issuer_jwks_url`](Self::issuer_jwks_url) instead). Fetching, caching and refresh
    /// follow [`JwksOptions`]; keys are fetched on first use, or by
    /// [`Authenticator::load_keys`].
    #[cfg(feature = "jwks")]
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.remote.jwks_url(url.into());
        self
    }

    /// Adds a remote JWK set for the tokens whose `iss` equals `issuer` (feature `jwks`).
    /// The token's `iss` picks this set in O(1); no other key verifies those tokens, and
    /// this set verifies no other token. `iss` is still checked as usual.
    #[cfg(feature = "jwks")]
    pub fn issuer_jwks_url(mut self, issuer: impl Into<String>, url: impl Into<String>) -> Self {
        self.remote.issuer_jwks_url(issuer.into(), url.into());
        self
    }

    /// Adds an OpenID Connect issuer (`PORTCULLIS_OIDC_ISSUER`; feature `jwks`): its keys
    /// come from the `jwks_uri` of `<issuer>/.well-known/openid-configuration`, whose
    /// `issuer` must equal this one exactly. Tokens whose `iss` equals `issuer` use these
    /// keys and no others, as with [`issuer_jwks_url`](Self::issuer_jwks_url).
    #[cfg(feature = "jwks")]
    pub fn oidc_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.remote.oidc_issuer(issuer.into());
        self
    }

    /// Settings of the remote key sets: TTL, cooldown, stale age, timeouts, caps. Default
    /// [`JwksOptions::default`].
    #[cfg(feature = "jwks")]
    pub fn jwks_options(mut self, options: JwksOptions) -> Self {
        self.remote.options(options);
        self
    }

    /// The HTTP client for remote key sets, when you need a proxy, a custom CA or mTLS
    /// (feature `reqwest-client`). Default: a client this crate builds (rustls with the
    /// platform's roots, no redirects, the timeouts of [`JwksOptions`]). One client serves
    /// every remote set of the authenticator.
    #[cfg(feature = "reqwest-client")]
    pub fn jwks_client(mut self, client: crate::keys::JwksClient) -> Self {
        self.remote.client(client);
        self
    }

    /// Replaces the accepted scheme names (default `Bearer`; FEDn's `FEDN_AUTH_SCHEME`).
    /// They compare case-insensitively. The first one is named in challenges.
    pub fn schemes<I, S>(mut self, schemes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.schemes = schemes.into_iter().map(Into::into).collect();
        self
    }

    /// The realm named in `WWW-Authenticate`. Default `api`.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// Cap on the token size in bytes, checked before any decoding. Default 8 KiB.
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = max;
        self
    }

    /// Leeway for `exp`, `nbf` and `iat`. Default 60 s; more than 300 s is refused.
    pub fn leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds;
        self
    }

    /// Requires `iss` to equal this issuer (call again to accept several). Default: any.
    /// When a list is set, the issuers of [`issuer_jwks_url`](Self::issuer_jwks_url) and
    /// [`oidc_issuer`](Self::oidc_issuer) are accepted too (their keys verify only tokens
    /// that name them).
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuers.push(iss.into());
        self
    }

    /// Requires `aud` (a string or an array) to hold this audience (call again to accept
    /// several). Default: `aud` is not checked.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// The claim path roles are read from; dots walk nested objects
    /// (`realm_access.roles`). The claim may be a string (one role), an array of strings,
    /// or, when the path ends in `scope` or `scp`, a space-delimited string (OAuth
    /// scopes). A string under any other name is one role: `"super admin"` is not `admin`.
    /// Default `role` (FEDn).
    pub fn role_claim(mut self, path: impl Into<String>) -> Self {
        self.role_claim = path.into();
        self
    }

    /// The claim path groups are read from. Default `groups`.
    pub fn groups_claim(mut self, path: impl Into<String>) -> Self {
        self.groups_claim = path.into();
        self
    }

    /// Requires the `typ` header to equal this (case-insensitively, with or without the
    /// `application/` prefix), for explicit typing such as `at+jwt` (RFC 9068). Default:
    /// `typ` is not checked.
    pub fn require_typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Declares a `crit` header parameter name your application understands and checks
    /// itself, through [`Principal::header`]. Default: none, so any token with `crit` is
    /// refused.
    pub fn understand_crit(mut self, name: impl Into<String>) -> Self {
        self.crit.push(name.into());
        self
    }

    /// Injects the clock used for `exp`, `nbf` and `iat`. Default: the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Options that weaken security. Each one's documentation starts with its risk.
    pub fn dangerous(self) -> DangerousAuthenticatorBuilder {
        DangerousAuthenticatorBuilder { inner: self }
    }

    /// Checks the configuration and builds the authenticator.
    pub fn build(mut self) -> Result<Authenticator, ConfigError> {
        #[cfg(feature = "jwks")]
        let no_remote = self.remote.is_empty();
        #[cfg(not(feature = "jwks"))]
        let no_remote = true;
        if self.sources.is_empty() && no_remote {
            return Err(ConfigError::new(
                "keys",
                "no key source is configured; set an HMAC secret (FEDN_JWT_SECRET_KEY), a PEM public key, a JWK set, a JWK set URL (PORTCULLIS_JWKS_URL) or an OIDC issuer (PORTCULLIS_OIDC_ISSUER) (turning authentication off takes an explicit setting)",
            ));
        }
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::new(
                "leeway",
                format!(
                    "{} s is more than the {MAX_LEEWAY} s cap; use a smaller leeway",
                    self.leeway
                ),
            ));
        }
        if self.schemes.is_empty() || self.schemes.iter().any(|s| !is_token(s)) {
            return Err(ConfigError::new(
                "scheme",
                "scheme names must be non-empty HTTP tokens such as `Bearer` or `Token`",
            ));
        }
        if self.max_token_bytes == 0 || self.max_token_bytes > MAX_TOKEN_BYTES_CAP {
            return Err(ConfigError::new(
                "max_token_bytes",
                format!("must be between 1 and {MAX_TOKEN_BYTES_CAP} bytes"),
            ));
        }
        if self.realm.is_empty()
            || !self
                .realm
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(ConfigError::new(
                "realm",
                "must be non-empty visible ASCII or spaces, without `\"` or `\\`",
            ));
        }
        let mut keys = KeySet::default();
        for source in std::mem::take(&mut self.sources) {
            match source {
                KeySource::Hmac(secret) => {
                    if self.hmac_alg.family() != Family::Hmac {
                        return Err(ConfigError::new(
                            "hmac_algorithm",
                            format!(
                                "{} is not an HMAC algorithm; an HMAC secret needs HS256, HS384 or HS512 (FEDN_JWT_ALGORITHM)",
                                self.hmac_alg
                            ),
                        ));
                    }
                    let min = self.hmac_alg.min_hmac_len();
                    if secret.is_empty() || (secret.len() < min && !self.allow_short_hmac) {
                        return Err(ConfigError::new(
                            "hmac_secret",
                            format!(
                                "the {} secret is {} bytes; it must be at least {min} bytes (32 bytes for HS256). Use a longer random secret, or opt in with .dangerous().allow_short_hmac_secret() (PORTCULLIS_INSECURE_ALLOW_SHORT_SECRET=true)",
                                self.hmac_alg,
                                secret.len()
                            ),
                        ));
                    }
                    push(
                        &mut keys,
                        VerifyingKey {
                            alg: self.hmac_alg,
                            kid: None,
                            key: jwt::Key::hmac(self.hmac_alg, &secret),
                        },
                        "hmac_secret",
                    )?;
                }
                KeySource::Pem { alg, pem, kid } => {
                    let key = jwt::Key::from_pem(alg, &pem)
                        .map_err(|e| ConfigError::new("public_key_pem", e))?;
                    push(&mut keys, VerifyingKey { alg, kid, key }, "public_key_pem")?;
                }
                KeySource::JwkSet(json) => {
                    let min = self.allow_short_hmac.then_some(1);
                    let (set, skipped) = parse_jwk_set(json.as_bytes(), true, min)
                        .map_err(|e| ConfigError::new("jwk_set", e))?;
                    for s in &skipped {
                        tracing::warn!(index = s.index, why = %s.why, "JWK set: key skipped");
                    }
                    if set.is_empty() {
                        let why = skipped
                            .first()
                            .map(|s| s.why.as_str())
                            .unwrap_or("the set is empty");
                        return Err(ConfigError::new(
                            "jwk_set",
                            format!("no usable key in the set ({why})"),
                        ));
                    }
                    for key in set.into_keys() {
                        push(&mut keys, key, "jwk_set")?;
                    }
                }
            }
        }
        if let Some(alg) = keys.ambiguous_without_kid() {
            return Err(ConfigError::new(
                "keys",
                format!(
                    "several {alg} keys have no `kid`, so no token could choose between them; give each key a kid"
                ),
            ));
        }
        if keys.has_hmac() && keys.has_asymmetric() {
            return Err(ConfigError::new(
                "keys",
                "HMAC secrets and public keys are mixed; use one kind per authenticator",
            ));
        }
        #[cfg(feature = "jwks")]
        let remote = {
            // Tokens of a bound issuer carry that `iss`: accept it wherever issuers are
            // listed.
            if !self.issuers.is_empty() {
                let bound: Vec<String> = self.remote.bound_issuers().map(str::to_owned).collect();
                for iss in bound {
                    if !self.issuers.contains(&iss) {
                        self.issuers.push(iss);
                    }
                }
            }
            std::mem::take(&mut self.remote).build(self.clock.clone(), !keys.is_empty())?
        };
        Ok(Authenticator {
            inner: Arc::new(Inner {
                split_roles: {
                    let last = self.role_claim.rsplit('.').next().unwrap_or("");
                    last == "scope" || last == "scp"
                },
                challenge: Arc::new(Challenge {
                    scheme: self.schemes[0].clone(),
                    realm: self.realm.clone(),
                }),
                keys,
                schemes: self.schemes,
                realm: self.realm,
                max_token_bytes: self.max_token_bytes,
                leeway: self.leeway,
                issuers: self.issuers,
                audiences: self.audiences,
                role_claim: self.role_claim,
                groups_claim: self.groups_claim,
                typ: self.typ,
                crit: self.crit,
                require_exp: self.require_exp,
                clock: self.clock,
                #[cfg(feature = "jwks")]
                remote,
            }),
        })
    }
}

fn push(keys: &mut KeySet, key: VerifyingKey, setting: &str) -> Result<(), ConfigError> {
    keys.push(key).map_err(|e| ConfigError::new(setting, e))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Settings that weaken security, reached through [`AuthenticatorBuilder::dangerous`].
pub struct DangerousAuthenticatorBuilder {
    inner: AuthenticatorBuilder,
}

impl std::fmt::Debug for DangerousAuthenticatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl DangerousAuthenticatorBuilder {
    /// Risk: a short HMAC secret can be brute-forced offline from any one token.
    /// Accepts HMAC secrets shorter than the hash size (but never empty ones).
    pub fn allow_short_hmac_secret(mut self) -> Self {
        self.inner.allow_short_hmac = true;
        self
    }

    /// Risk: a token without `exp` never expires; a leaked one works forever.
    /// Accepts tokens that carry no `exp` (an `exp` that is present is still checked).
    pub fn allow_missing_exp(mut self) -> Self {
        self.inner.require_exp = false;
        self
    }

    /// Risk: a key set fetched over plain http can be replaced by anyone on the path, who
    /// then mints tokens you accept. Allows `http` key set and issuer URLs on any host
    /// (without it, only loopback hosts may use http).
    #[cfg(feature = "jwks")]
    pub fn allow_http_key_urls(mut self) -> Self {
        self.inner.remote.allow_http();
        self
    }

    /// Back to the safe settings.
    pub fn safe(self) -> AuthenticatorBuilder {
        self.inner
    }

    /// Checks the configuration and builds the authenticator.
    pub fn build(self) -> Result<Authenticator, ConfigError> {
        self.inner.build()
    }
}

/// The header parameters we look at, after the strict parse.
struct Header<'a> {
    alg: Algorithm,
    kid: Option<&'a str>,
}

impl Authenticator {
    /// Starts a builder with the safe defaults.
    pub fn builder() -> AuthenticatorBuilder {
        AuthenticatorBuilder::default()
    }

    /// The scheme named in challenges and in "Invalid token scheme, expected ...".
    pub fn scheme(&self) -> &str {
        &self.inner.schemes[0]
    }

    /// The realm named in challenges.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The `WWW-Authenticate` value for `err` with this authenticator's scheme and realm.
    pub fn challenge(&self, err: &AuthError) -> Option<String> {
        err.www_authenticate(self.scheme(), &self.inner.realm)
    }

    /// Reads the token from the `Authorization` header and verifies it with the keys
    /// already loaded (see [`verify`](Self::verify)).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let token = self.token_from_headers(headers)?;
        self.verify(token)
    }

    /// Reads the token from the `Authorization` header and verifies it, waiting for remote
    /// keys when a fetch is due (see [`verify_async`](Self::verify_async)).
    pub async fn authenticate_async(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let token = self.token_from_headers(headers)?;
        self.verify_async(token).await
    }

    /// The layer's first try: answers at once, or says a fetch is due.
    pub(crate) fn authenticate_or_fetch(&self, headers: &HeaderMap) -> Result<Principal, Step> {
        let token = self.token_from_headers(headers)?;
        self.verify_mode(token, Mode::Wait)
    }

    /// Reads the token from the `Authorization` header (SPEC section 1) without verifying
    /// it: `<scheme> 1*SP <token68>`, the scheme compared case-insensitively.
    pub fn token_from_headers<'h>(&self, headers: &'h HeaderMap) -> Result<&'h str, AuthError> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let value = values.next().ok_or_else(AuthError::missing)?;
        if values.next().is_some() {
            return Err(AuthError::invalid_request(Reason::DuplicateHeader));
        }
        self.token_from_value(value.as_bytes())
    }

    /// Parses one credential value, as found in an `Authorization` header or gRPC metadata.
    pub fn token_from_value<'v>(&self, value: &'v [u8]) -> Result<&'v str, AuthError> {
        // Longest scheme plus separator plus the cap: refuse before looking further.
        if value.len() > self.inner.max_token_bytes.saturating_add(64) {
            return Err(AuthError::invalid_request(Reason::TooLarge));
        }
        let sep = value.iter().position(|&b| b == b' ' || b == b'\t');
        let scheme = &value[..sep.unwrap_or(value.len())];
        let known = self
            .inner
            .schemes
            .iter()
            .any(|s| s.as_bytes().eq_ignore_ascii_case(scheme));
        if !known {
            return Err(AuthError::wrong_scheme(self.scheme()));
        }
        let Some(sep) = sep else {
            return Err(AuthError::invalid_request(Reason::EmptyCredential));
        };
        let rest = &value[sep..];
        let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
        if rest[..start].contains(&b'\t') || rest[0] == b'\t' {
            return Err(AuthError::invalid_request(Reason::MalformedHeader));
        }
        let token = &rest[start..];
        if token.is_empty() {
            return Err(AuthError::invalid_request(Reason::EmptyCredential));
        }
        if token.len() > self.inner.max_token_bytes {
            return Err(AuthError::invalid_request(Reason::TooLarge));
        }
        // token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
        let body_end = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
        let token68 = token[..body_end]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
        if body_end == 0 || !token68 {
            return Err(AuthError::invalid_request(Reason::MalformedHeader));
        }
        // All bytes are ASCII by now.
        std::str::from_utf8(token).map_err(|_| AuthError::invalid_request(Reason::MalformedHeader))
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
    /// fetched first (first load, end of the TTL, an unknown `kid` outside the cooldown) it
    /// waits for that fetch, shared with every other request that needs it. Without remote
    /// key sets it never waits. Dropping the future cancels the wait, never the fetch.
    pub async fn verify_async(&self, token: &str) -> Result<Principal, AuthError> {
        match self.verify_mode(token, Mode::Wait) {
            Ok(p) => Ok(p),
            Err(Step::Fail(e)) => Err(e),
            Err(Step::Fetch(pending)) => {
                pending.wait().await;
                self.verify_mode(token, Mode::Never)
                    .map_err(Step::into_error)
            }
        }
    }

    fn verify_mode(&self, token: &str, mode: Mode) -> Result<Principal, Step> {
        let (header, payload, claims) = self.check_jws(token, mode)?;
        let claims = match claims {
            Some(claims) => claims,
            None => json::object(&payload)
                .map_err(|e| AuthError::invalid_token(Reason::Malformed(e)))?,
        };
        self.check_claims(&claims)?;
        let inner = &self.inner;
        let subject = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
        let roles = strings_at(&claims, &inner.role_claim, inner.split_roles);
        let groups = strings_at(&claims, &inner.groups_claim, false);
        Ok(Principal::new(
            inner.challenge.clone(),
            subject,
            roles,
            groups,
            claims,
            header,
        ))
    }

    /// Verifies only the JWS layer (format, header parameters, key, signature) and returns
    /// the payload bytes, without reading them as claims. For JWS that are not JWTs, and
    /// for signature-level test vectors.
    pub fn verify_signature(&self, token: &str) -> Result<Vec<u8>, AuthError> {
        self.check_jws(token, Mode::Kick)
            .map(|(_, payload, _)| payload)
            .map_err(Step::into_error)
    }

    /// Fetches every remote key set now and reports the first that has no usable keys,
    /// naming its setting and the fetch error (feature `jwks`). Call it once at start to
    /// fail fast on a wrong URL; without it keys load on first use. Concurrent calls and
    /// requests share one fetch per set.
    #[cfg(feature = "jwks")]
    pub async fn load_keys(&self) -> Result<(), ConfigError> {
        let Some(remote) = &self.inner.remote else {
            return Ok(());
        };
        for set in remote.all() {
            set.load().await;
            let (usable, error) = set.status();
            if !usable {
                return Err(ConfigError::new(
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

    /// Checks the JWS layer and returns the header parameters, the payload bytes, and the
    /// claims when they were parsed already (to pick the issuer's keys).
    #[allow(clippy::type_complexity)]
    fn check_jws(
        &self,
        token: &str,
        mode: Mode,
    ) -> Result<(Map<String, Value>, Vec<u8>, Option<Map<String, Value>>), Step> {
        let malformed = |what| AuthError::invalid_token(Reason::Malformed(what));
        if token.len() > self.inner.max_token_bytes {
            return Err(AuthError::invalid_request(Reason::TooLarge).into());
        }
        let bytes = token.as_bytes();
        if !bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(malformed("not compact base64url segments").into());
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("not three segments").into());
        };
        if h64.is_empty() || p64.is_empty() || s64.is_empty() {
            return Err(malformed("empty segment").into());
        }
        let b64 = strict_b64();
        let header_bytes = b64
            .decode(h64)
            .map_err(|_| malformed("header is not strict base64url"))?;
        let header_map = json::object(&header_bytes).map_err(malformed)?;
        let header = self.check_header(&header_map)?;
        // jsonwebtoken decodes the signature with the same strict engine (no padding,
        // canonical trailing bits), so a non-canonical signature fails verification.
        let signed = &token[..h64.len() + 1 + p64.len()];
        // Claims parsed early, when the token's `iss` had to pick its issuer's keys.
        #[cfg_attr(not(feature = "jwks"), allow(unused_mut))]
        let mut parsed: Option<(Vec<u8>, Map<String, Value>)> = None;
        #[cfg(feature = "jwks")]
        let snapshot;
        #[cfg(feature = "jwks")]
        let mut remote_set = None;
        #[cfg(feature = "jwks")]
        if let Some(remote) = &self.inner.remote {
            // The token's `iss` picks its issuer's keys (a map look-up), so the claims are
            // read before the signature; `iss` is checked again with the other claims.
            let mut by_issuer = None;
            if !remote.by_issuer.is_empty() {
                let payload = b64
                    .decode(p64)
                    .map_err(|_| malformed("payload is not strict base64url"))?;
                let claims = json::object(&payload).map_err(malformed)?;
                by_issuer = claims
                    .get("iss")
                    .and_then(Value::as_str)
                    .and_then(|iss| remote.by_issuer.get(iss));
                parsed = Some((payload, claims));
            }
            remote_set = by_issuer.or(remote.any.as_ref());
        }
        #[cfg(not(feature = "jwks"))]
        let _ = mode;
        #[cfg(feature = "jwks")]
        let key = match remote_set {
            Some(set) => {
                snapshot = set.snapshot();
                set.select(&snapshot, header.kid, header.alg, mode)?
            }
            None => self
                .inner
                .keys
                .select(header.kid, header.alg)
                .map_err(no_key_error)?,
        };
        #[cfg(not(feature = "jwks"))]
        let key = self
            .inner
            .keys
            .select(header.kid, header.alg)
            .map_err(no_key_error)?;
        if !jwt::verify(s64, signed.as_bytes(), &key.key, key.alg) {
            return Err(AuthError::invalid_token(Reason::BadSignature).into());
        }
        Ok(match parsed {
            Some((payload, claims)) => (header_map, payload, Some(claims)),
            None => {
                let payload = b64
                    .decode(p64)
                    .map_err(|_| malformed("payload is not strict base64url"))?;
                (header_map, payload, None)
            }
        })
    }

    fn check_header<'h>(&self, header: &'h Map<String, Value>) -> Result<Header<'h>, AuthError> {
        let bad_alg = |what| AuthError::invalid_token(Reason::BadAlgorithm(what));
        let malformed = |what| AuthError::invalid_token(Reason::Malformed(what));
        let alg = match header.get("alg") {
            Some(Value::String(s)) => s
                .parse::<Algorithm>()
                .map_err(|_| bad_alg("none, unknown or unsupported"))?,
            Some(_) => return Err(bad_alg("alg is not a string")),
            None => return Err(bad_alg("no alg")),
        };
        for name in ["enc", "zip"] {
            if header.contains_key(name) {
                return Err(malformed("encrypted or compressed token (JWE)"));
            }
        }
        if let Some(cty) = header.get("cty") {
            let cty = cty
                .as_str()
                .ok_or_else(|| malformed("cty is not a string"))?;
            if cty.eq_ignore_ascii_case("JWT") || cty.eq_ignore_ascii_case("application/jwt") {
                return Err(malformed("nested token (cty JWT)"));
            }
        }
        match header.get("b64") {
            None | Some(Value::Bool(true)) => {}
            Some(_) => return Err(malformed("unencoded payload (b64)")),
        }
        if let Some(crit) = header.get("crit") {
            let names = crit
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| malformed("crit is not a non-empty array"))?;
            for name in names {
                let name = name
                    .as_str()
                    .ok_or_else(|| malformed("crit holds a non-string"))?;
                if !self.inner.crit.iter().any(|c| c == name) || !header.contains_key(name) {
                    return Err(malformed("crit names a parameter we do not understand"));
                }
            }
        }
        if let Some(want) = &self.inner.typ {
            let typ = header
                .get("typ")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("typ missing"))?;
            let typ = strip_application(typ);
            if !typ.eq_ignore_ascii_case(strip_application(want)) {
                return Err(malformed("typ is not the required type"));
            }
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) if k.len() <= MAX_KID_LEN => Some(k.as_str()),
            Some(_) => return Err(malformed("kid is not a short string")),
        };
        Ok(Header { alg, kid })
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        let inner = &self.inner;
        let claim = |what| AuthError::invalid_token(Reason::Claim(what));
        let now = inner.clock.now();
        let leeway = inner.leeway;
        match claims.get("exp") {
            Some(v) => {
                let exp = numeric_date(v).ok_or_else(|| claim("exp is not a NumericDate"))?;
                if exp.saturating_add(leeway) < now {
                    return Err(AuthError::invalid_token(Reason::Expired));
                }
            }
            None if inner.require_exp => return Err(claim("exp missing")),
            None => {}
        }
        if let Some(v) = claims.get("nbf") {
            let nbf = numeric_date(v).ok_or_else(|| claim("nbf is not a NumericDate"))?;
            if nbf > now.saturating_add(leeway) {
                return Err(claim("not valid yet (nbf)"));
            }
        }
        if let Some(v) = claims.get("iat") {
            let iat = numeric_date(v).ok_or_else(|| claim("iat is not a NumericDate"))?;
            if iat > now.saturating_add(leeway) {
                return Err(claim("issued in the future (iat)"));
            }
        }
        for name in ["sub", "jti"] {
            if claims.get(name).is_some_and(|v| !v.is_string()) {
                return Err(claim("sub or jti is not a string"));
            }
        }
        match claims.get("iss") {
            Some(Value::String(iss))
                if !inner.issuers.is_empty() && !inner.issuers.iter().any(|i| i == iss) =>
            {
                return Err(claim("iss does not match"));
            }
            Some(Value::String(_)) => {}
            Some(_) => return Err(claim("iss is not a string")),
            None if !inner.issuers.is_empty() => return Err(claim("iss missing")),
            None => {}
        }
        let aud_ok = |a: &str| inner.audiences.iter().any(|x| x == a);
        match claims.get("aud") {
            Some(Value::String(a)) if !inner.audiences.is_empty() && !aud_ok(a) => {
                return Err(claim("aud does not match"));
            }
            Some(Value::String(_)) => {}
            Some(Value::Array(items)) => {
                let mut any = false;
                for item in items {
                    let a = item
                        .as_str()
                        .ok_or_else(|| claim("aud holds a non-string"))?;
                    any |= aud_ok(a);
                }
                if !inner.audiences.is_empty() && !any {
                    return Err(claim("aud does not match"));
                }
            }
            Some(_) => return Err(claim("aud is not a string or an array of strings")),
            None if !inner.audiences.is_empty() => return Err(claim("aud missing")),
            None => {}
        }
        Ok(())
    }
}

fn strip_application(typ: &str) -> &str {
    match typ.get(..12) {
        Some(p) if p.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    }
}

/// A NumericDate: a non-negative JSON number no later than year 9999, fractions floored.
fn numeric_date(v: &Value) -> Option<u64> {
    let n = v.as_number()?;
    if let Some(u) = n.as_u64() {
        return (u as f64 <= MAX_NUMERIC_DATE).then_some(u);
    }
    let f = n.as_f64()?;
    (f.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(&f)).then_some(f as u64)
}
