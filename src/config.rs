//! Configuration from the environment: every FEDn name, plus `PORTCULLIS_*` names for
//! what FEDn lacks.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `FEDN_JWT_SECRET_KEY` | HMAC secret; under an asymmetric `FEDN_JWT_ALGORITHM` (RS256, ES256, EdDSA...) the PEM public key, as FEDn reads it | none |
//! | `FEDN_JWT_ALGORITHM` | the keys' algorithm (HMAC secret or PEM key) | `HS256` |
//! | `FEDN_AUTH_SCHEME` | accepted scheme name | `Bearer` |
//! | `FEDN_AUTH_WHITELIST_URL_PREFIX` | public prefixes (comma-separated); they win over the rules of the FEDn policy, the policy file and your code: a rule a prefix fully shadows is dropped with a warning naming both | none |
//! | `FEDN_AUTH_WHITELIST_URL` | same, FEDn's documented name | none |
//! | `FEDN_CUSTOM_URL_PREFIX` | routes are also served under this prefix | none |
//! | `FEDN_JWT_CUSTOM_CLAIM_KEY` / `_VALUE` | a required claim and its value | none |
//! | `PORTCULLIS_PUBLIC_KEY_FILE` | PEM public key file, for `FEDN_JWT_ALGORITHM` | none |
//! | `PORTCULLIS_JWK_SET_FILE` | static JWK set file | none |
//! | `PORTCULLIS_JWKS_URL` | remote JWK set URL (https; http for loopback), feature `jwks` | none |
//! | `PORTCULLIS_OIDC_ISSUER` | OIDC issuers, keys by discovery (comma-separated), feature `jwks` | none |
//! | `PORTCULLIS_ISSUER_PATTERN` | issuer patterns (`https://idp/realms/*`), comma-separated: keys by discovery on first use, rate-limited, feature `jwks` | none |
//! | `PORTCULLIS_AUTHRESS_ACCOUNT` | an Authress account id: accept its service clients' tokens (issuers `https://<account>.api.authress.io/v1/clients/*`, keys from each client's key set), feature `jwks` | none |
//! | `PORTCULLIS_AUTHRESS_DOMAIN` | the account's custom domain, when its service clients' tokens name it (needs `PORTCULLIS_AUTHRESS_ACCOUNT`) | none |
//! | `PORTCULLIS_JWKS_TTL_SECONDS` | remote key set TTL without `Cache-Control: max-age` | `600` |
//! | `PORTCULLIS_JWKS_COOLDOWN_SECONDS` | least time between refetches for unknown `kid`s | `30` |
//! | `PORTCULLIS_ISSUER` | required `iss` (comma-separated for several) | any |
//! | `PORTCULLIS_REQUIRE_TYP` | the `typ` every token must carry, such as `at+jwt` (case-insensitive, `application/` optional) | not checked |
//! | `PORTCULLIS_AT_JWT_ISSUERS` | issuers (comma-separated) whose tokens must carry `typ` `at+jwt` (RFC 9068), so their ID tokens are refused | none |
//! | `PORTCULLIS_INTROSPECTION_URL` | RFC 7662 introspection endpoint for opaque tokens (https; http for loopback), feature `introspection` | none |
//! | `PORTCULLIS_INTROSPECTION_ISSUER` | instead of the URL: the issuer whose metadata names the endpoint | none |
//! | `PORTCULLIS_INTROSPECTION_CLIENT_ID` / `_CLIENT_SECRET` | this service's client credentials at the endpoint | required with an endpoint |
//! | `PORTCULLIS_INTROSPECTION_AUTH` | `client_secret_basic` or `client_secret_post` | `client_secret_basic` |
//! | `PORTCULLIS_INTROSPECTION_JWT_ISSUERS` | issuers (comma-separated) whose JWTs are introspected instead of verified with keys | none |
//! | `PORTCULLIS_INTROSPECTION_OPAQUE` | `false`: only those JWTs are introspected, opaque tokens are refused | `true` |
//! | `PORTCULLIS_INTROSPECTION_CACHE_SECONDS` | longest time an active answer is cached (until the token's `exp` at most) | `60` |
//! | `PORTCULLIS_INTROSPECTION_INACTIVE_SECONDS` | how long an inactive answer is remembered | `10` |
//! | `PORTCULLIS_AUDIENCE` | required `aud` (comma-separated for several) | none: tokens carrying `aud` are refused |
//! | `PORTCULLIS_ROLE_CLAIM` | claim path of roles | `role` |
//! | `PORTCULLIS_GROUPS_CLAIM` | claim path of groups | `groups` |
//! | `PORTCULLIS_LEEWAY_SECONDS` | clock leeway, at most 300 | `60` |
//! | `PORTCULLIS_MAX_TOKEN_BYTES` | token size cap | `8192` |
//! | `PORTCULLIS_REALM` | realm in challenges | `api` |
//! | `PORTCULLIS_POLICY_FILE` | TOML policy replacing the FEDn REST policy | FEDn REST policy |
//! | `PORTCULLIS_SHADOW_POLICY_FILE` | a TOML policy decided beside the enforced one and recorded, never enforced (dry run) | none |
//! | `PORTCULLIS_INSECURE_ALLOW_SHORT_SECRET` | `true` accepts HMAC secrets under the hash size | `false` |
//! | `PORTCULLIS_TOKEN_SOURCES` | where tokens come from, in order: `authorization`, `cookie:NAME`, `header:NAME`, `query:NAME` (risky: URLs are logged) | `authorization` |
//! | `PORTCULLIS_TOKEN_CACHE_ENTRIES` | most tokens in the verified-token cache; `0` turns it off (feature `token-cache`) | `20000` |
//! | `PORTCULLIS_TOKEN_CACHE_BYTES` | most bytes in the verified-token cache | `33554432` (32 MiB) |
//! | `PORTCULLIS_PUBLIC_AUTH` | a token on a public route: `ignore`, `optional` (a valid one fills `Option<Principal>`), `strict` (an invalid one is refused) | `ignore` |
//! | `PORTCULLIS_CORS_PREFLIGHT` | `true` lets CORS preflights (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) through unauthenticated | `false` |
//! | `PORTCULLIS_UNKNOWN_TARGETS` | `pass`: your server wires the layer so that routes it does not serve answer 404/405 ([`EnvConfig::unknown_targets`]); `deny`: 403 | `deny` |
//! | `PORTCULLIS_REDIS_URL` | a revocation list shared through Redis (`redis://`, `rediss://`), feature `redis` | none |
//! | `PORTCULLIS_REDIS_KEY_PREFIX` | prefix of its Redis keys and channels | `portcullis:` |
//! | `PORTCULLIS_REDIS_RESYNC_SECONDS` | how often each replica compares its copy's version with Redis's | `1` |
//! | `PORTCULLIS_REDIS_MAX_AGE_SECONDS` | the copy's age past which tokens get 503 (fail-closed) | `10` |
//! | `PORTCULLIS_REDIS_FAIL_OPEN` | `true` answers from an older copy instead (risky) | `false` |
//! | `PORTCULLIS_REDIS_KEEP_AFTER_EXP_SECONDS` | how long an entry outlives its expiry | `300` |
//! | `PORTCULLIS_DPOP` | DPoP (RFC 9449) for every issuer: `allowed` (DPoP-bound tokens with proofs, others as bearer tokens), `required`, or `off` | `off` |
//! | `PORTCULLIS_DPOP_ISSUERS` | per-issuer modes, `issuer=mode` comma-separated (`https://id.example.com=required`) | the `PORTCULLIS_DPOP` mode |
//! | `PORTCULLIS_DPOP_PUBLIC_URL` | the URL clients address (`https://api.example.com`), compared with each proof's `htu` | none: needed unless forwarded headers are trusted |
//! | `PORTCULLIS_DPOP_TRUST_FORWARDED` | `true` reads the scheme and host from `Forwarded` / `X-Forwarded-Proto` / `X-Forwarded-Host` / `Host` (only behind a proxy that sets them) | `false` |
//! | `PORTCULLIS_DPOP_ALGORITHMS` | proof algorithms accepted (comma-separated, asymmetric only) | `ES256,ES384,EdDSA,PS256,PS384,PS512,RS256,RS384,RS512` |
//! | `PORTCULLIS_DPOP_PROOF_WINDOW_SECONDS` | how far a proof's `iat` may lie from now, at most 300 | `60` |
//! | `PORTCULLIS_DPOP_NONCE` | `true` requires server nonces (`use_dpop_nonce`, `DPoP-Nonce`) | `false` |
//! | `PORTCULLIS_DPOP_NONCE_SECRET` | a secret of at least 32 bytes for the nonces, shared by the replicas so each accepts the others' (turns nonces on) | drawn at start, per replica |
//! | `PORTCULLIS_DPOP_REPLAY_CAPACITY` | proof `jti`s remembered per replica (shared through Redis too when `PORTCULLIS_REDIS_URL` is set) | `100000` |
//! | `PORTCULLIS_CERTIFICATE_BOUND` | `true` accepts certificate-bound tokens (RFC 8705) against the TLS connection's certificate | `false` |
//! | `PORTCULLIS_CLIENT_CERT_HEADER` | a header the TLS-terminating proxy sets with the client certificate (trusted; turns certificate binding on) | none |
//! | `PORTCULLIS_CLIENT_CERT_FORMAT` | that header's format: `rfc9440` (`Client-Cert: :base64:`) or `escaped-pem` (nginx `$ssl_client_escaped_cert`) | `rfc9440` |
//!
//! Empty values count as unset, as in FEDn. Precedence: the policy file (or the FEDn REST
//! policy) first, then the FEDn variables add public prefixes, the URL prefix and the
//! required claim to it; calls you make on the builders afterwards come last.
//!
//! ```
//! use portcullis::EnvConfig;
//!
//! let vars = [("FEDN_JWT_SECRET_KEY", "0123456789abcdef0123456789abcdef"), ("FEDN_AUTH_SCHEME", "Token")];
//! let config = EnvConfig::from_lookup(|name| {
//!     vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
//! })?;
//! let layer = config.build_layer()?;
//! assert_eq!(layer.authenticator().scheme(), "Token");
//!
//! let short = EnvConfig::from_lookup(|name| (name == "FEDN_JWT_SECRET_KEY").then(|| "short".to_string()))?;
//! let err = short.build_layer().unwrap_err();
//! assert!(err.to_string().contains("FEDN_JWT_SECRET_KEY"));
//! # Ok::<(), portcullis::ConfigError>(())
//! ```

use crate::authn::pem_label;
use crate::authn::{Authenticator, AuthenticatorBuilder};
use crate::error::{ConfigError, ConfigErrorKind};
use crate::jose::{Algorithm, Family};
use crate::layer::AuthLayer;
use crate::policy::{Policy, PolicyBuilder};

/// What a server should do with routes and methods it does not serve
/// (`PORTCULLIS_UNKNOWN_TARGETS`).
///
/// The layer cannot know which routes exist, so this is the server's choice of wiring:
/// with [`Pass`](Self::Pass), guard axum routers with `Router::route_layer` (the layer then
/// wraps only matched routes, and the router answers 404 or 405 for the rest without
/// running a handler), and tonic services one by one. Answering 404 tells a caller without
/// a token which routes exist; [`Deny`](Self::Deny) (the default) answers 403 (or 401)
/// for every unserved target instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UnknownTargets {
    /// Unserved targets are refused like any target no rule names.
    #[default]
    Deny,
    /// Unserved targets answer 404/405 (HTTP) or UNIMPLEMENTED (gRPC).
    Pass,
}

/// Authenticator and policy settings read from the environment, still open to changes in
/// code before [`build_layer`](Self::build_layer).
#[derive(Debug)]
pub struct EnvConfig {
    auth: AuthenticatorBuilder,
    #[cfg(feature = "redis")]
    redis: Option<crate::revoke::RedisOptions>,
    policy: PolicyBuilder,
    public_auth: crate::layer::PublicAuth,
    cors_preflight: bool,
    unknown_targets: UnknownTargets,
    has_keys: bool,
    secret_var: bool,
    secret_pem: bool,
}

fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn read_file(kind: ConfigErrorKind, var: &str, path: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            kind,
            var,
            format!("cannot read `{path}`: {e}; point it at a readable file"),
        )
        .with_source(e)
    })
}

impl EnvConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (a variable name to its value), for tests and for
    /// other sources of configuration.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut auth = Authenticator::builder();
        let alg = match get("FEDN_JWT_ALGORITHM") {
            Some(a) => a.trim().parse::<Algorithm>().map_err(|e| {
                ConfigError::new(
                    ConfigErrorKind::Algorithm,
                    "FEDN_JWT_ALGORITHM",
                    e.to_string(),
                )
            })?,
            None => Algorithm::HS256,
        };
        let mut has_keys = false;
        let mut secret_var = false;
        let mut secret_pem = false;
        if let Some(secret) = get("FEDN_JWT_SECRET_KEY") {
            if alg.family() == Family::Hmac {
                auth = auth.hmac_secret(secret).hmac_algorithm(alg);
                secret_var = true;
            } else {
                // FEDn (PyJWT) reads the variable as the key of that algorithm: under an
                // asymmetric FEDN_JWT_ALGORITHM it holds the PEM public key.
                match pem_label(secret.as_bytes()) {
                    Some(label) if label.ends_with("PUBLIC KEY") => {
                        auth = auth.public_key_pem(alg, secret.trim());
                        secret_pem = true;
                    }
                    Some(label) => {
                        return Err(ConfigError::new(
                            ConfigErrorKind::HmacSecret,
                            "FEDN_JWT_SECRET_KEY",
                            format!(
                                "holds a PEM `{label}` block; with FEDN_JWT_ALGORITHM={alg} it must hold the PEM public key (-----BEGIN PUBLIC KEY-----), never a private key"
                            ),
                        ));
                    }
                    None => {
                        return Err(ConfigError::new(
                            ConfigErrorKind::Algorithm,
                            "FEDN_JWT_ALGORITHM",
                            format!(
                                "{alg} is not an HMAC algorithm, and FEDN_JWT_SECRET_KEY holds no PEM public key (-----BEGIN PUBLIC KEY-----) for it; for an HMAC secret use HS256, HS384 or HS512"
                            ),
                        ));
                    }
                }
            }
            has_keys = true;
        }
        if let Some(path) = get("PORTCULLIS_PUBLIC_KEY_FILE") {
            let pem = read_file(
                ConfigErrorKind::PublicKey,
                "PORTCULLIS_PUBLIC_KEY_FILE",
                &path,
            )?;
            auth = auth.public_key_pem(alg, pem);
            has_keys = true;
        }
        if let Some(path) = get("PORTCULLIS_JWK_SET_FILE") {
            auth = auth.jwk_set_json(read_file(
                ConfigErrorKind::JwkSet,
                "PORTCULLIS_JWK_SET_FILE",
                &path,
            )?);
            has_keys = true;
        }
        #[cfg(feature = "jwks")]
        {
            let mut options = crate::keys::JwksOptions::new();
            if let Some(url) = get("PORTCULLIS_JWKS_URL") {
                auth = auth.jwks_url(url.trim());
                has_keys = true;
            }
            for iss in get("PORTCULLIS_OIDC_ISSUER").iter().flat_map(|v| list(v)) {
                auth = auth.oidc_issuer(iss);
                has_keys = true;
            }
            for pattern in get("PORTCULLIS_ISSUER_PATTERN")
                .iter()
                .flat_map(|v| list(v))
            {
                auth = auth.issuer_pattern(pattern);
                has_keys = true;
            }
            match (
                get("PORTCULLIS_AUTHRESS_ACCOUNT"),
                get("PORTCULLIS_AUTHRESS_DOMAIN"),
            ) {
                (Some(account), domain) => {
                    let mut clients = crate::AuthressServiceClients::new(account.trim());
                    if let Some(d) = domain {
                        clients = clients.custom_domain(d.trim());
                    }
                    auth = auth.authress_service_clients(clients);
                    has_keys = true;
                }
                (None, Some(_)) => {
                    return Err(ConfigError::new(
                        ConfigErrorKind::RemoteKeys,
                        "PORTCULLIS_AUTHRESS_ACCOUNT",
                        "PORTCULLIS_AUTHRESS_DOMAIN is set but no account; set PORTCULLIS_AUTHRESS_ACCOUNT to the Authress account id (its service clients' tokens carry `aud` = <account id>.accounts.authress.io)",
                    ));
                }
                (None, None) => {}
            }
            let seconds = |name: &str, v: &str| {
                v.trim()
                    .parse::<u64>()
                    .map(std::time::Duration::from_secs)
                    .map_err(|_| {
                        ConfigError::new(
                            ConfigErrorKind::RemoteKeys,
                            name,
                            "not a whole number of seconds",
                        )
                    })
            };
            if let Some(v) = get("PORTCULLIS_JWKS_TTL_SECONDS") {
                options = options.ttl(seconds("PORTCULLIS_JWKS_TTL_SECONDS", &v)?);
            }
            if let Some(v) = get("PORTCULLIS_JWKS_COOLDOWN_SECONDS") {
                options = options.cooldown(seconds("PORTCULLIS_JWKS_COOLDOWN_SECONDS", &v)?);
            }
            auth = auth.jwks_options(options);
        }
        #[cfg(not(feature = "jwks"))]
        for name in [
            "PORTCULLIS_JWKS_URL",
            "PORTCULLIS_OIDC_ISSUER",
            "PORTCULLIS_AUTHRESS_ACCOUNT",
            "PORTCULLIS_JWKS_TTL_SECONDS",
            "PORTCULLIS_JWKS_COOLDOWN_SECONDS",
        ] {
            if get(name).is_some() {
                return Err(ConfigError::new(
                    ConfigErrorKind::RemoteKeys,
                    name,
                    "remote key sets need the `jwks` feature of portcullis; enable it",
                ));
            }
        }
        #[cfg(feature = "introspection")]
        if let Some(intro) = crate::introspection::from_vars(&get)? {
            auth = auth.introspection(intro);
            has_keys = true;
        }
        #[cfg(not(feature = "introspection"))]
        for name in [
            "PORTCULLIS_INTROSPECTION_URL",
            "PORTCULLIS_INTROSPECTION_ISSUER",
        ] {
            if get(name).is_some() {
                return Err(ConfigError::new(
                    ConfigErrorKind::RemoteKeys,
                    name,
                    "token introspection needs the `introspection` feature of portcullis; enable it",
                ));
            }
        }
        if let Some(typ) = get("PORTCULLIS_REQUIRE_TYP") {
            auth = auth.require_typ(typ.trim());
        }
        for iss in get("PORTCULLIS_AT_JWT_ISSUERS")
            .iter()
            .flat_map(|v| list(v))
        {
            auth = auth.require_typ_for_issuer(iss, "at+jwt");
        }
        if let Some(scheme) = get("FEDN_AUTH_SCHEME") {
            auth = auth.schemes([scheme.trim().to_owned()]);
        }
        for iss in get("PORTCULLIS_ISSUER").iter().flat_map(|v| list(v)) {
            auth = auth.issuer(iss);
        }
        for aud in get("PORTCULLIS_AUDIENCE").iter().flat_map(|v| list(v)) {
            auth = auth.audience(aud);
        }
        if let Some(c) = get("PORTCULLIS_ROLE_CLAIM") {
            auth = auth.role_claim(c.trim());
        }
        if let Some(c) = get("PORTCULLIS_GROUPS_CLAIM") {
            auth = auth.groups_claim(c.trim());
        }
        if let Some(v) = get("PORTCULLIS_LEEWAY_SECONDS") {
            let n = v.trim().parse::<u64>().map_err(|_| {
                ConfigError::new(
                    ConfigErrorKind::Claims,
                    "PORTCULLIS_LEEWAY_SECONDS",
                    "not a whole number of seconds (0 to 300)",
                )
            })?;
            auth = auth.leeway(n);
        }
        if let Some(v) = get("PORTCULLIS_MAX_TOKEN_BYTES") {
            let n = v.trim().parse::<usize>().map_err(|_| {
                ConfigError::new(
                    ConfigErrorKind::Extraction,
                    "PORTCULLIS_MAX_TOKEN_BYTES",
                    "not a whole number of bytes",
                )
            })?;
            auth = auth.max_token_bytes(n);
        }
        if let Some(r) = get("PORTCULLIS_REALM") {
            auth = auth.realm(r);
        }
        if let Some(v) = get("PORTCULLIS_INSECURE_ALLOW_SHORT_SECRET") {
            match v.trim() {
                "true" | "1" => {
                    tracing::warn!(
                        "PORTCULLIS_INSECURE_ALLOW_SHORT_SECRET is set: short HMAC secrets are accepted"
                    );
                    auth = auth.dangerous().allow_short_hmac_secret().safe();
                }
                "false" | "0" => {}
                _ => {
                    return Err(ConfigError::new(
                        ConfigErrorKind::HmacSecret,
                        "PORTCULLIS_INSECURE_ALLOW_SHORT_SECRET",
                        "use `true` or `false`",
                    ));
                }
            }
        }

        if let Some(v) = get("PORTCULLIS_TOKEN_SOURCES") {
            let sources = v
                .split(',')
                .filter(|e| !e.trim().is_empty())
                .map(crate::authn::TokenSource::parse)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    ConfigError::new(ConfigErrorKind::Extraction, "PORTCULLIS_TOKEN_SOURCES", e)
                })?;
            auth = auth.token_sources(sources);
        }
        #[cfg(feature = "token-cache")]
        {
            let mut cache = crate::authn::TokenCache::new();
            for (name, set) in [
                ("PORTCULLIS_TOKEN_CACHE_ENTRIES", 0),
                ("PORTCULLIS_TOKEN_CACHE_BYTES", 1),
            ] {
                if let Some(v) = get(name) {
                    let n = v.trim().parse::<u64>().map_err(|_| {
                        ConfigError::new(
                            ConfigErrorKind::Environment,
                            name,
                            "not a whole number (0 turns the cache off)",
                        )
                    })?;
                    cache = if set == 0 {
                        cache.max_entries(n)
                    } else {
                        cache.max_bytes(n)
                    };
                }
            }
            auth = auth.token_cache(cache);
        }
        let public_auth = match get("PORTCULLIS_PUBLIC_AUTH").as_deref().map(str::trim) {
            None | Some("ignore") => crate::layer::PublicAuth::Ignore,
            Some("optional") => crate::layer::PublicAuth::IfValid,
            Some("strict") => crate::layer::PublicAuth::Verify,
            Some(_) => {
                return Err(ConfigError::new(
                    ConfigErrorKind::Environment,
                    "PORTCULLIS_PUBLIC_AUTH",
                    "use `ignore` (the default), `optional` or `strict`",
                ));
            }
        };
        let cors_preflight = match get("PORTCULLIS_CORS_PREFLIGHT").as_deref().map(str::trim) {
            None | Some("false" | "0") => false,
            Some("true" | "1") => true,
            Some(_) => {
                return Err(ConfigError::new(
                    ConfigErrorKind::Environment,
                    "PORTCULLIS_CORS_PREFLIGHT",
                    "use `true` or `false`",
                ));
            }
        };
        let unknown_targets = match get("PORTCULLIS_UNKNOWN_TARGETS").as_deref().map(str::trim) {
            None | Some("deny") => UnknownTargets::Deny,
            Some("pass") => UnknownTargets::Pass,
            Some(_) => {
                return Err(ConfigError::new(
                    ConfigErrorKind::Environment,
                    "PORTCULLIS_UNKNOWN_TARGETS",
                    "use `deny` (the default) or `pass`",
                ));
            }
        };
        // DPoP and certificate-bound tokens (`PORTCULLIS_DPOP_*`, `PORTCULLIS_CLIENT_CERT_*`).
        let (dpop, cert) = crate::sender::from_env_lookup(get)?;
        if let Some(dpop) = dpop {
            auth = auth.dpop(dpop);
        }
        if let Some(cert) = cert {
            auth = auth.certificate_binding(cert);
        }
        #[cfg(feature = "redis")]
        let redis = crate::revoke::RedisOptions::from_lookup(get)?;
        #[cfg(not(feature = "redis"))]
        if get("PORTCULLIS_REDIS_URL").is_some() {
            return Err(ConfigError::new(
                ConfigErrorKind::Redis,
                "PORTCULLIS_REDIS_URL",
                "a revocation list shared through Redis needs the `redis` feature of portcullis; enable it",
            ));
        }

        let mut policy = match get("PORTCULLIS_POLICY_FILE") {
            Some(path) => crate::policy::builder_from_file(&path, "PORTCULLIS_POLICY_FILE")?,
            None => Policy::fedn(),
        };
        if let Some(path) = get("PORTCULLIS_SHADOW_POLICY_FILE") {
            // Decided and recorded beside the enforced policy, never enforced.
            let shadow = crate::policy::builder_from_file(&path, "PORTCULLIS_SHADOW_POLICY_FILE")?
                .build()?;
            policy = policy.shadow(shadow);
        }
        for name in ["FEDN_AUTH_WHITELIST_URL_PREFIX", "FEDN_AUTH_WHITELIST_URL"] {
            for p in get(name).iter().flat_map(|v| list(v)) {
                crate::policy::check_prefix(p)
                    .map_err(|e| ConfigError::new(ConfigErrorKind::Policy, name, e))?;
                // The operator's prefix wins over the preset's and the code's rules.
                policy = policy.public_prefix_overriding(p);
            }
        }
        if let Some(p) = get("FEDN_CUSTOM_URL_PREFIX") {
            crate::policy::check_prefix(&p).map_err(|e| {
                ConfigError::new(ConfigErrorKind::Policy, "FEDN_CUSTOM_URL_PREFIX", e)
            })?;
            policy = policy.url_prefix(p);
        }
        match (
            get("FEDN_JWT_CUSTOM_CLAIM_KEY"),
            get("FEDN_JWT_CUSTOM_CLAIM_VALUE"),
        ) {
            (Some(k), Some(v)) => policy = policy.require_claim(k, v),
            (None, None) => {}
            (Some(_), None) => {
                return Err(ConfigError::new(
                    ConfigErrorKind::Policy,
                    "FEDN_JWT_CUSTOM_CLAIM_VALUE",
                    "is unset while FEDN_JWT_CUSTOM_CLAIM_KEY is set; set both or neither",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    ConfigErrorKind::Policy,
                    "FEDN_JWT_CUSTOM_CLAIM_KEY",
                    "is unset while FEDN_JWT_CUSTOM_CLAIM_VALUE is set; set both or neither",
                ));
            }
        }
        Ok(Self {
            auth,
            #[cfg(feature = "redis")]
            redis,
            policy,
            public_auth,
            cors_preflight,
            unknown_targets,
            has_keys,
            secret_var,
            secret_pem,
        })
    }

    /// What the server should do with targets it does not serve
    /// (`PORTCULLIS_UNKNOWN_TARGETS`); see [`UnknownTargets`].
    pub fn unknown_targets(&self) -> UnknownTargets {
        self.unknown_targets
    }

    /// Whether the environment configured any key source.
    pub fn has_keys(&self) -> bool {
        self.has_keys
    }

    /// The Redis settings from `PORTCULLIS_REDIS_*` (feature `redis`), for tools that talk
    /// to the same Redis: an admin command that revokes tokens, or a
    /// [`RedisRecords`](crate::revoke::RedisRecords) store.
    #[cfg(feature = "redis")]
    pub fn redis(&self) -> Option<&crate::revoke::RedisOptions> {
        self.redis.as_ref()
    }

    /// Changes the authenticator settings in code (these come after the environment).
    pub fn map_authenticator(
        mut self,
        f: impl FnOnce(AuthenticatorBuilder) -> AuthenticatorBuilder,
    ) -> Self {
        self.auth = f(self.auth);
        self
    }

    /// Changes the policy in code (these come after the environment).
    pub fn map_policy(mut self, f: impl FnOnce(PolicyBuilder) -> PolicyBuilder) -> Self {
        self.policy = f(self.policy);
        self
    }

    /// Builds the authenticator and the policy. With `PORTCULLIS_REDIS_URL` (feature
    /// `redis`) the authenticator checks a [`RedisRevocations`](crate::revoke::RedisRevocations)
    /// list, started here without waiting for Redis (so this must run inside a tokio
    /// runtime), unless code set its own store with
    /// [`revocations`](AuthenticatorBuilder::revocations).
    pub fn build(self) -> Result<(Authenticator, Policy), ConfigError> {
        let (secret_var, secret_pem) = (self.secret_var, self.secret_pem);
        #[cfg(feature = "redis")]
        let auth = match &self.redis {
            Some(o) if !self.auth.has_revocations() => {
                // DPoP proofs' `jti`s are shared through the same Redis.
                let store = crate::revoke::RedisRevocations::start(o)?;
                let replay = store.dpop_replay();
                self.auth.revocations(store).or_dpop_replay(replay)
            }
            _ => self.auth,
        };
        #[cfg(not(feature = "redis"))]
        let auth = self.auth;
        let auth = auth.build().map_err(|e| match e.setting() {
            "hmac_secret" if secret_var => e.renamed("FEDN_JWT_SECRET_KEY"),
            "hmac_algorithm" => e.renamed("FEDN_JWT_ALGORITHM"),
            "keys" => e.renamed(
                "FEDN_JWT_SECRET_KEY (or PORTCULLIS_PUBLIC_KEY_FILE, PORTCULLIS_JWK_SET_FILE, PORTCULLIS_JWKS_URL, PORTCULLIS_OIDC_ISSUER)",
            ),
            "leeway" => e.renamed("PORTCULLIS_LEEWAY_SECONDS"),
            "scheme" => e.renamed("FEDN_AUTH_SCHEME"),
            "max_token_bytes" => e.renamed("PORTCULLIS_MAX_TOKEN_BYTES"),
            "public_key_pem" if secret_pem => e
                .renamed("FEDN_JWT_SECRET_KEY")
                .with_hint("the key's algorithm comes from FEDN_JWT_ALGORITHM"),
            "public_key_pem" => e
                .renamed("PORTCULLIS_PUBLIC_KEY_FILE")
                .with_hint("the key's algorithm comes from FEDN_JWT_ALGORITHM"),
            "jwk_set" => e.renamed("PORTCULLIS_JWK_SET_FILE"),
            "jwks_url" => e.renamed("PORTCULLIS_JWKS_URL"),
            "oidc_issuer" => e.renamed("PORTCULLIS_OIDC_ISSUER"),
            "issuer_pattern" => e.renamed("PORTCULLIS_ISSUER_PATTERN"),
            "jwks_ttl" => e.renamed("PORTCULLIS_JWKS_TTL_SECONDS"),
            "jwks_cooldown" => e.renamed("PORTCULLIS_JWKS_COOLDOWN_SECONDS"),
            "realm" => e.renamed("PORTCULLIS_REALM"),
            "token_sources" => e.renamed("PORTCULLIS_TOKEN_SOURCES"),
            "role_claim" => e.renamed("PORTCULLIS_ROLE_CLAIM"),
            "groups_claim" => e.renamed("PORTCULLIS_GROUPS_CLAIM"),
            other => match crate::sender::env_variable(other) {
                Some(var) => e.renamed(var),
                None => e,
            },
        })?;
        let policy = self.policy.build()?;
        Ok((auth, policy))
    }

    /// Builds the layer.
    pub fn build_layer(self) -> Result<AuthLayer, ConfigError> {
        let (public_auth, cors) = (self.public_auth, self.cors_preflight);
        let (auth, policy) = self.build()?;
        let layer = AuthLayer::new(auth, policy).public_auth(public_auth);
        Ok(if cors {
            layer.allow_cors_preflight()
        } else {
            layer
        })
    }
}
