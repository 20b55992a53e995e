//! The authenticator's builder: every setting with its default, checked by `build()`.

use std::sync::Arc;

use super::{
    Authenticator, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, Inner, MAX_LEEWAY, MAX_TOKEN_BYTES_CAP,
};
use crate::answer::Answers;
use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, ConfigErrorKind};
use crate::jose::{Algorithm, Family, Key};
#[cfg(feature = "jwks")]
use crate::keys::{JwksOptions, RemoteBuilder};
use crate::keys::{KeySet, VerifyingKey, parse_jwk_set};
use crate::principal::ClaimPath;

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
    check_audience: bool,
    token_sources: Vec<super::TokenSource>,
    #[cfg(feature = "token-cache")]
    token_cache: super::TokenCache,
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
    typ_by_issuer: Vec<(String, String)>,
    crit: Vec<String>,
    clock: Arc<dyn Clock>,
    allow_short_hmac: bool,
    require_exp: bool,
    #[cfg(feature = "jwks")]
    remote: RemoteBuilder,
    revocations: Option<Arc<dyn super::RevocationStore>>,
    dpop: Option<crate::sender::DpopOptions>,
    certificate_binding: Option<crate::sender::CertificateBinding>,
    #[cfg(feature = "introspection")]
    introspection: Option<crate::introspection::Introspection>,
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
            typ_by_issuer: Vec::new(),
            crit: Vec::new(),
            clock: Arc::new(SystemClock),
            allow_short_hmac: false,
            require_exp: true,
            check_audience: true,
            token_sources: vec![super::TokenSource::Authorization],
            #[cfg(feature = "token-cache")]
            token_cache: super::TokenCache::default(),
            #[cfg(feature = "jwks")]
            remote: RemoteBuilder::default(),
            revocations: None,
            dpop: None,
            certificate_binding: None,
            #[cfg(feature = "introspection")]
            introspection: None,
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

    /// Adds the keys of a static JWK set (`{"keys": [...]}`): `use` must be `sig`,
    /// `key_ops` must include `verify`, kty, crv and alg must agree, RSA keys need 2048
    /// bits and e > 1; unknown kty are skipped; a duplicate `kid`, or `oct` keys mixed with
    /// asymmetric ones, refuse the set. A key without `alg` verifies exactly the algorithms
    /// of its type and size (RSA: every RS* and PS*; EC: its curve's; OKP: EdDSA; oct:
    /// the HS* its length allows), one algorithm per token, never HMAC from a public key.
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

    /// Accepts tokens of every issuer matching `pattern` (`PORTCULLIS_ISSUER_PATTERN`;
    /// feature `jwks`): `https://idp.example.com/realms/*` (a Keycloak realm per tenant),
    /// `https://login.microsoftonline.com/*/v2.0` (Entra ID). The scheme and host match
    /// exactly, `*` stands for one whole segment (letters, digits, `-._~`); https only, or
    /// http for loopback hosts. Each issuer's keys come from its OIDC discovery on its first
    /// token, and the issuer named in an unverified token is the attacker's choice, so:
    /// discoveries of new issuers are rate-limited for all patterns together, a failed one
    /// is remembered, and only issuers that delivered keys are cached (bounded). See
    /// [`TenantOptions`](crate::TenantOptions) for the numbers. When issuers are listed
    /// with [`issuer`](Self::issuer), matching issuers are accepted too.
    #[cfg(feature = "jwks")]
    pub fn issuer_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.remote.issuer_pattern(pattern.into());
        self
    }

    /// Accepts the tokens of every issuer matching an integration's pattern, judged by its
    /// rule: where their keys are, what their tokens must carry, which issuers matching no
    /// pattern it refuses ([`IssuerRule`](crate::keys::IssuerRule)). Issuers are fetched
    /// and cached as with [`issuer_pattern`](Self::issuer_pattern).
    #[cfg(feature = "jwks")]
    pub(crate) fn issuer_pattern_with(mut self, rule: Arc<dyn crate::keys::IssuerRule>) -> Self {
        self.remote.issuer_rule(rule);
        self
    }

    /// Limits of [`issuer_pattern`](Self::issuer_pattern): capacity, idle time, discovery
    /// rate, failure memory (feature `jwks`). Default [`TenantOptions::default`](crate::TenantOptions).
    #[cfg(feature = "jwks")]
    pub fn tenant_options(mut self, options: crate::TenantOptions) -> Self {
        self.remote.tenant_options(options);
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

    /// Where tokens come from, tried in this order (`PORTCULLIS_TOKEN_SOURCES`). Default:
    /// the `Authorization` header alone. See [`TokenSource`](super::TokenSource).
    pub fn token_sources<I: IntoIterator<Item = super::TokenSource>>(mut self, sources: I) -> Self {
        self.token_sources = sources.into_iter().collect();
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
    /// several), `PORTCULLIS_AUDIENCE`. Default: none, and then a token that carries `aud`
    /// is refused (it was minted for some service, and this one does not know its name);
    /// opt out with [`dangerous`](Self::dangerous)`().allow_unchecked_audience()`.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// The claim path roles are read from; dots walk nested objects
    /// (`realm_access.roles`), and only nested objects: a top-level member literally named
    /// `realm_access.roles` is never read (a user who can set their own attributes could
    /// otherwise pick their roles). Write a dot inside a member name as `\.`, as in
    /// `https://example\.com/roles`. The claim may be a string (one role), an array of
    /// strings, or, when the path ends in `scope` or `scp`, a space-delimited string (OAuth
    /// scopes). A string under any other name is one role: `"super admin"` is not `admin`.
    /// Other types give no roles. Default `role` (FEDn).
    pub fn role_claim(mut self, path: impl Into<String>) -> Self {
        self.role_claim = path.into();
        self
    }

    /// The claim path groups are read from, with the same path rules as
    /// [`role_claim`](Self::role_claim). Default `groups`.
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

    /// Requires the `typ` header of the tokens whose `iss` is `issuer` to name the media
    /// type `typ` (`PORTCULLIS_AT_JWT_ISSUERS` for `at+jwt`): RFC 9068 access tokens
    /// carry `typ: at+jwt`, so an ID token of the same issuer, with the same claims, is
    /// refused as an access token (401 `invalid_token`). Media types compare
    /// case-insensitively and a `typ` without `/` stands for `application/...`
    /// (RFC 7515 section 4.1.9): `at+jwt`, `application/at+jwt` and `AT+JWT` are one.
    /// Checked after the signature and claims, so a token must verify first. Other
    /// issuers' tokens are not checked unless [`require_typ`](Self::require_typ) asks for
    /// every token. Default: none.
    ///
    /// ```
    /// use base64::Engine;
    /// use portcullis::{Algorithm, Authenticator, Signer};
    /// use serde_json::json;
    ///
    /// let secret = "0123456789abcdef0123456789abcdef";
    /// let auth = Authenticator::builder()
    ///     .hmac_secret(secret)
    ///     .require_typ_for_issuer("https://as.example", "at+jwt")
    ///     .build()?;
    /// let claims = json!({"iss": "https://as.example", "sub": "ada", "exp": 4_000_000_000u64});
    /// let signer = Signer::hmac(Algorithm::HS256, secret)?;
    /// let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    /// let mint = |typ: &str| {
    ///     let (h, p) = (b64(json!({"alg": "HS256", "typ": typ})), b64(claims.clone()));
    ///     signer.sign_segments(&h, &p).map(|s| format!("{h}.{p}.{s}"))
    /// };
    /// assert!(auth.verify(&mint("application/at+jwt")?).is_ok());
    /// assert!(auth.verify(&mint("AT+JWT")?).is_ok());
    /// // An ID token of the same issuer with the same claims:
    /// assert_eq!(auth.verify(&mint("JWT")?).unwrap_err().status(), 401);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn require_typ_for_issuer(
        mut self,
        issuer: impl Into<String>,
        typ: impl Into<String>,
    ) -> Self {
        self.typ_by_issuer.push((issuer.into(), typ.into()));
        self
    }

    /// Token introspection (RFC 7662; feature `introspection`): tokens that are not JWTs,
    /// and JWTs of the issuers it names, are checked by the authorization server's
    /// introspection endpoint instead of by keys, and the active answers cached. See
    /// [`introspection`](crate::introspection) for what it guarantees. It can be the only
    /// key source. Default: none (a token that is not a JWT is refused as malformed).
    #[cfg(feature = "introspection")]
    pub fn introspection(mut self, introspection: crate::introspection::Introspection) -> Self {
        self.introspection = Some(introspection);
        self
    }

    /// Declares a `crit` header parameter name your application understands and checks
    /// itself, through [`Principal::header`](crate::Principal::header). Default: none, so any token with `crit` is
    /// refused.
    pub fn understand_crit(mut self, name: impl Into<String>) -> Self {
        self.crit.push(name.into());
        self
    }

    /// The verified-token cache (feature `token-cache`, default): on with 20,000 tokens and
    /// 32 MiB at most; [`TokenCache::off`](super::TokenCache::off) turns it off. See
    /// [`TokenCache`](super::TokenCache) for what it guarantees.
    #[cfg(feature = "token-cache")]
    pub fn token_cache(mut self, cache: super::TokenCache) -> Self {
        self.token_cache = cache;
        self
    }

    /// The revocation list every accepted token is checked against, after its signature
    /// and claims and on every hit of the verified-token cache: a revoked token gets 401
    /// `invalid_token` with the message `Token revoked`, and a store that cannot tell
    /// (a shared list whose copy is too old, failing closed) 503 with
    /// `Revocation list unavailable`. Default: none, no token is refused as revoked. See
    /// [`revoke`](crate::revoke) for the stores (in memory; shared through Redis with
    /// the `redis` feature).
    pub fn revocations(mut self, store: impl super::RevocationStore) -> Self {
        self.revocations = Some(Arc::new(store));
        self
    }

    /// Whether a revocation store is set.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn has_revocations(&self) -> bool {
        self.revocations.is_some()
    }

    /// Accepts DPoP (RFC 9449): the `DPoP` authorization scheme beside the others, and
    /// proofs checked by the layer on every request, per issuer
    /// [required, allowed or off](crate::sender::DpopMode). Off by default; DPoP-bound
    /// tokens (`cnf.jkt`) are refused without it. See [`sender`](crate::sender).
    pub fn dpop(mut self, options: crate::sender::DpopOptions) -> Self {
        self.dpop = Some(options);
        self
    }

    /// Shares `store` as the DPoP replay store when DPoP is on and has none yet.
    #[cfg(feature = "redis")]
    pub(crate) fn or_dpop_replay(mut self, store: crate::sender::SharedReplay) -> Self {
        self.dpop = self.dpop.take().map(|d| d.or_shared_replay(store));
        self
    }

    /// Accepts certificate-bound tokens (RFC 8705, `cnf.x5t#S256`), checked by the layer
    /// against the client certificate. Off by default; such tokens are refused without
    /// it. See [`sender`](crate::sender).
    pub fn certificate_binding(mut self, binding: crate::sender::CertificateBinding) -> Self {
        self.certificate_binding = Some(binding);
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
        #[cfg(feature = "introspection")]
        let no_remote = no_remote && self.introspection.is_none();
        if self.sources.is_empty() && no_remote {
            return Err(ConfigError::new(
                ConfigErrorKind::Keys,
                "keys",
                "no key source is configured; set an HMAC secret (FEDN_JWT_SECRET_KEY), a PEM public key, a JWK set, a JWK set URL (PORTCULLIS_JWKS_URL) or an OIDC issuer (PORTCULLIS_OIDC_ISSUER) (turning authentication off takes an explicit setting)",
            ));
        }
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::new(
                ConfigErrorKind::Claims,
                "leeway",
                format!(
                    "{} s is more than the {MAX_LEEWAY} s cap; use a smaller leeway",
                    self.leeway
                ),
            ));
        }
        if self.schemes.is_empty() || self.schemes.iter().any(|s| !is_token(s)) {
            return Err(ConfigError::new(
                ConfigErrorKind::Extraction,
                "scheme",
                "scheme names must be non-empty HTTP tokens such as `Bearer` or `Token`",
            ));
        }
        if self.max_token_bytes == 0 || self.max_token_bytes > MAX_TOKEN_BYTES_CAP {
            return Err(ConfigError::new(
                ConfigErrorKind::Extraction,
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
                ConfigErrorKind::Extraction,
                "realm",
                "must be non-empty visible ASCII or spaces, without `\"` or `\\`",
            ));
        }
        let bad_typ = |t: &str| t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic());
        if self.typ.as_deref().is_some_and(bad_typ) {
            return Err(ConfigError::new(
                ConfigErrorKind::Claims,
                "require_typ",
                "a media type such as `at+jwt` (visible ASCII, not empty)",
            ));
        }
        // An introspected JWT is judged by the authorization server's answer, which says
        // nothing of the token's `typ`: a required type could never be checked for it.
        #[cfg(feature = "introspection")]
        if let Some(i) = &self.introspection {
            if let Some(iss) = i
                .issuers
                .iter()
                .find(|iss| self.typ_by_issuer.iter().any(|(t, _)| t == *iss))
            {
                return Err(ConfigError::new(
                    ConfigErrorKind::Claims,
                    "require_typ_for_issuer",
                    format!(
                        "`{iss}`'s JWTs are introspected (`Introspection::issuer`), and an introspection answer does not show the token's `typ`; verify that issuer's tokens with its keys to require at+jwt, or drop the required type"
                    ),
                ));
            }
            if self.typ.is_some() && !i.issuers.is_empty() {
                return Err(ConfigError::new(
                    ConfigErrorKind::Claims,
                    "require_typ",
                    "JWTs of introspected issuers (`Introspection::issuer`) are judged by the introspection answer, which does not show `typ`; require the type per issuer (`require_typ_for_issuer`) for the issuers verified with keys",
                ));
            }
        }
        for (i, (iss, typ)) in self.typ_by_issuer.iter().enumerate() {
            if bad_typ(typ) {
                return Err(ConfigError::new(
                    ConfigErrorKind::Claims,
                    "require_typ_for_issuer",
                    format!("the type for `{iss}` must be a media type such as `at+jwt`"),
                ));
            }
            if self.typ_by_issuer[..i]
                .iter()
                .any(|(other, _)| other == iss)
            {
                return Err(ConfigError::new(
                    ConfigErrorKind::Claims,
                    "require_typ_for_issuer",
                    format!("`{iss}` is given a required type twice; name each issuer once"),
                ));
            }
        }
        let mut keys = KeySet::default();
        for source in std::mem::take(&mut self.sources) {
            match source {
                KeySource::Hmac(secret) => {
                    if let Some(block) = pem_label(&secret) {
                        return Err(ConfigError::new(
                            ConfigErrorKind::HmacSecret,
                            "hmac_secret",
                            format!(
                                "the {} secret looks like a PEM block ({block}), not an HMAC secret; for a public key set its algorithm (FEDN_JWT_ALGORITHM=RS256, ES256, EdDSA...) or use public_key_pem",
                                self.hmac_alg
                            ),
                        ));
                    }
                    if self.hmac_alg.family() != Family::Hmac {
                        return Err(ConfigError::new(
                            ConfigErrorKind::Algorithm,
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
                            ConfigErrorKind::HmacSecret,
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
                            kid: None,
                            key: Key::hmac(&[self.hmac_alg], &secret),
                        },
                        ConfigErrorKind::HmacSecret,
                        "hmac_secret",
                    )?;
                }
                KeySource::Pem { alg, pem, kid } => {
                    let key = Key::from_pem(alg, &pem).map_err(|e| {
                        ConfigError::new(ConfigErrorKind::PublicKey, "public_key_pem", e)
                    })?;
                    push(
                        &mut keys,
                        VerifyingKey { kid, key },
                        ConfigErrorKind::PublicKey,
                        "public_key_pem",
                    )?;
                }
                KeySource::JwkSet(json) => {
                    let min = self.allow_short_hmac.then_some(1);
                    let (set, skipped) = parse_jwk_set(json.as_bytes(), true, min)
                        .map_err(|e| ConfigError::new(ConfigErrorKind::JwkSet, "jwk_set", e))?;
                    for s in &skipped {
                        tracing::warn!(index = s.index, why = %s.why, "JWK set: key skipped");
                    }
                    if set.is_empty() {
                        let why = skipped
                            .first()
                            .map(|s| s.why.as_str())
                            .unwrap_or("the set is empty");
                        return Err(ConfigError::new(
                            ConfigErrorKind::JwkSet,
                            "jwk_set",
                            format!("no usable key in the set ({why})"),
                        ));
                    }
                    for key in set.into_keys() {
                        push(&mut keys, key, ConfigErrorKind::JwkSet, "jwk_set")?;
                    }
                }
            }
        }
        if let Some(alg) = keys.ambiguous_without_kid() {
            return Err(ConfigError::new(
                ConfigErrorKind::Keys,
                "keys",
                format!(
                    "several {alg} keys have no `kid`, so no token could choose between them; give each key a kid"
                ),
            ));
        }
        if keys.has_hmac() && keys.has_asymmetric() {
            return Err(ConfigError::new(
                ConfigErrorKind::Keys,
                "keys",
                "HMAC secrets and public keys are mixed; use one kind per authenticator",
            ));
        }
        #[cfg(feature = "introspection")]
        let introspection = super::introspected::build(
            self.introspection.take(),
            self.token_cache.is_on(),
            &mut self.issuers,
            &mut self.remote,
            self.clock.clone(),
        )?;
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
        // A required type for an issuer no token can come from would never be checked:
        // with the accepted issuers listed (bound and introspected ones included by now)
        // and no issuer pattern that could admit others, it must be one of them.
        #[cfg(feature = "jwks")]
        let patterns = remote.as_ref().is_some_and(|r| r.tenants.is_some());
        #[cfg(not(feature = "jwks"))]
        let patterns = false;
        if !self.issuers.is_empty()
            && !patterns
            && let Some((iss, _)) = self
                .typ_by_issuer
                .iter()
                .find(|(iss, _)| !self.issuers.contains(iss))
        {
            return Err(ConfigError::new(
                ConfigErrorKind::Claims,
                "require_typ_for_issuer",
                format!(
                    "`{iss}` is not one of the accepted issuers, so its type would never be checked; spell it exactly as the tokens' `iss`"
                ),
            ));
        }
        let role_claim = ClaimPath::parse(&self.role_claim);
        let groups_claim = ClaimPath::parse(&self.groups_claim);
        for (setting, path) in [("role_claim", &role_claim), ("groups_claim", &groups_claim)] {
            if path.names().iter().any(String::is_empty) {
                return Err(ConfigError::new(
                    ConfigErrorKind::Claims,
                    setting,
                    "a claim path needs non-empty member names between its dots, like `realm_access.roles`",
                ));
            }
        }
        let split_roles = matches!(role_claim.last(), "scope" | "scp");
        // The issuer rules' refusals are answered from precomputed answers, like the table.
        #[cfg(feature = "jwks")]
        let refusals: Vec<&'static str> = remote
            .as_ref()
            .and_then(|r| r.tenants.as_ref())
            .map(|t| t.refusal_messages().collect())
            .unwrap_or_default();
        #[cfg(not(feature = "jwks"))]
        let refusals: [&'static str; 0] = [];
        if self.token_sources.is_empty() {
            return Err(ConfigError::new(
                ConfigErrorKind::Extraction,
                "token_sources",
                "no token source; use at least `authorization` (the default)",
            ));
        }
        let sender =
            crate::sender::SenderChecks::build(self.dpop.take(), self.certificate_binding.take())?;
        if sender.as_ref().is_some_and(|s| s.offers_dpop())
            && !self.schemes.iter().any(|s| s.eq_ignore_ascii_case("DPoP"))
        {
            self.schemes.push("DPoP".to_owned());
        }
        for source in &self.token_sources {
            source
                .check()
                .map_err(|e| ConfigError::new(ConfigErrorKind::Extraction, "token_sources", e))?;
        }
        Ok(Authenticator {
            inner: Arc::new(Inner {
                answers: Arc::new(Answers::new(&self.schemes[0], &self.realm, &refusals)),
                split_roles,
                keys,
                scheme_word: match &*self.schemes {
                    [one] => super::token::SchemeWord::new(one),
                    _ => None,
                },
                schemes: self.schemes,
                max_token_bytes: self.max_token_bytes,
                leeway: self.leeway,
                issuers: self.issuers,
                audiences: self.audiences,
                check_audience: self.check_audience,
                role_claim,
                groups_claim,
                typ: self.typ,
                typ_by_issuer: self.typ_by_issuer,
                crit: self.crit,
                require_exp: self.require_exp,
                clock: self.clock,
                sources: self.token_sources.into_boxed_slice(),
                #[cfg(feature = "jwks")]
                remote,
                #[cfg(feature = "token-cache")]
                cache: self.token_cache.build(),
                revocations: self.revocations,
                sender: sender.map(Arc::new),
                #[cfg(feature = "introspection")]
                introspection,
            }),
        })
    }
}

/// The label of a PEM block (`PUBLIC KEY`, `RSA PRIVATE KEY`...) when `secret` is one.
pub(crate) fn pem_label(secret: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(secret).ok()?.trim_start();
    let rest = text.strip_prefix("-----BEGIN ")?;
    let label = rest.split("-----").next()?;
    Some(label.chars().take(32).collect())
}

fn push(
    keys: &mut KeySet,
    key: VerifyingKey,
    kind: ConfigErrorKind,
    setting: &str,
) -> Result<(), ConfigError> {
    keys.push(key)
        .map_err(|e| ConfigError::new(kind, setting, e))
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

    /// Risk: a token minted for another service (its `aud` names that service) is taken
    /// as one for you, so any service the issuer serves can replay its tokens here.
    /// Accepts tokens that carry `aud` although no audience is configured. Without it
    /// such tokens are refused (RFC 7519 section 4.1.3: a recipient that does not identify
    /// itself with a value in `aud` must reject the token); the better fix is
    /// [`audience`](AuthenticatorBuilder::audience) (`PORTCULLIS_AUDIENCE`).
    pub fn allow_unchecked_audience(mut self) -> Self {
        self.inner.check_audience = false;
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
