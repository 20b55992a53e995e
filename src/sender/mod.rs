//! Sender-constrained tokens: DPoP (RFC 9449) and certificate-bound tokens (RFC 8705).
//!
//! A token with a `cnf` claim is bound to a key or a certificate: the
//! [layer](crate::AuthLayer) lets it through only with proof that the caller holds it,
//! and never as a plain bearer token (401 `invalid_token`), whether or not anything here
//! is configured.
//!
//! - **DPoP** ([`DpopOptions`], [`AuthenticatorBuilder::dpop`](crate::AuthenticatorBuilder::dpop)):
//!   the client sends `Authorization: DPoP <token>` and one `DPoP` header, a proof JWT
//!   signed by its key. Every check of RFC 9449 section 4.3 runs on every request: `typ`
//!   `dpop+jwt`, an asymmetric `alg` of the allow-list, a public `jwk` in the header (no
//!   private members), the signature, `htm`, `htu` (without query and fragment, normalised),
//!   `iat` within the window, `jti` never seen (a bounded memory on this replica, and a
//!   [`SharedReplay`] store across replicas), `ath` (the access token's hash), the
//!   optional server nonce, and the token's `cnf.jkt` equal to the RFC 7638 thumbprint of
//!   the proof's key. Per issuer, DPoP is [required, allowed or off](DpopMode).
//! - **Certificate-bound tokens** ([`CertificateBinding`]): `cnf.x5t#S256` must be the
//!   SHA-256 thumbprint of the client certificate of the TLS connection (the
//!   [`ClientCertificate`] request extension), or of a certificate a trusted proxy passes
//!   in a header.
//!
//! The verified-token cache remembers the access token's verification only; a proof is
//! checked again on every request (its signature is the one cost DPoP adds). The tonic
//! [`AuthInterceptor`](crate::grpc::AuthInterceptor) sees neither the method nor the
//! connection, so it takes tokens only as plain bearer tokens: a bound token, a token
//! under the `DPoP` scheme and a token of an issuer that requires DPoP are refused there,
//! as in [`Authenticator::authenticate`](crate::Authenticator::authenticate) and
//! [`check_bearer`](crate::Authenticator::check_bearer); guard with the layer instead. A
//! shared replay store that does not answer within its timeout is a 503 on a guarded
//! route (fail-closed); on a public route the public-auth mode decides, as for any refused
//! token there.
//!
//! Refusals follow RFC 9449 section 7.1: a bad proof is 401 with
//! `WWW-Authenticate: DPoP error="invalid_dpop_proof", algs="..."` and the JSON body
//! `{"error":"invalid_dpop_proof",...}`; a missing or stale nonce is 401
//! `error="use_dpop_nonce"` with a fresh `DPoP-Nonce` header; other 401s carry a `DPoP`
//! challenge beside the `Bearer` one. The [guide](crate::guides::sender_constrained) has
//! the set-up behind proxies and with rustls.
//!
//! ```
//! use http::{Request, StatusCode};
//! use portcullis::sender::{DpopMode, DpopOptions};
//! use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer};
//! use tower::{Layer, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let secret = "0123456789abcdef0123456789abcdef";
//! let auth = Authenticator::builder()
//!     .hmac_secret(secret)
//!     .dpop(DpopOptions::new().mode(DpopMode::Allowed).public_url("https://api.example.com"))
//!     .build()?;
//! let svc = AuthLayer::new(auth, Policy::builder().allow("GET", "/me", ["*"]).build()?)
//!     .layer(tower::service_fn(|_req: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     }));
//! // A token bound to a DPoP key, sent as a bearer token: refused.
//! let token = Signer::hmac(Algorithm::HS256, secret)?.sign(&serde_json::json!({
//!     "sub": "ada", "exp": 4_000_000_000u64, "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
//! }))?;
//! let req = Request::get("/me").header("authorization", format!("Bearer {token}")).body(String::new())?;
//! let res = svc.clone().oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! let challenges: Vec<_> = res.headers().get_all("www-authenticate").iter().collect();
//! assert_eq!(challenges[0], r#"Bearer realm="api", error="invalid_token""#);
//! assert!(challenges[1].to_str()?.starts_with(r#"DPoP realm="api", algs="ES256"#));
//!
//! // The DPoP scheme without a proof: an invalid proof.
//! let req = Request::get("/me").header("authorization", format!("DPoP {token}")).body(String::new())?;
//! let res = svc.oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert!(res.headers()["www-authenticate"].to_str()?.starts_with(r#"DPoP realm="api", error="invalid_dpop_proof""#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```

mod cert;
mod env;
mod htu;
mod nonce;
mod proof;
mod replay;

use std::collections::HashMap;
use std::time::Duration;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue};

pub use cert::{CertificateBinding, CertificateHeader, ClientCertificate};
pub(crate) use env::{from_lookup as from_env_lookup, variable as env_variable};
pub use replay::SharedReplay;
#[cfg(feature = "redis")]
pub(crate) use replay::{Remembered, ReplayBackend};

use crate::error::{AuthError, AuthErrorKind, ConfigError, ConfigErrorKind};
use crate::jose::{Algorithm, Family, sha256};
use crate::principal::Principal;

/// Default proof window: `iat` may be this far in the past or the future.
pub const DEFAULT_PROOF_WINDOW: Duration = Duration::from_secs(60);
/// The largest proof window the options accept.
pub const MAX_PROOF_WINDOW: Duration = Duration::from_secs(300);
/// Default number of proof `jti`s remembered on one replica.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;
/// How long one server nonce lasts: a nonce of this window or the previous one passes.
const NONCE_WINDOW: u64 = 300;

/// Whether tokens of an issuer use DPoP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DpopMode {
    /// Every token must be DPoP-bound (`cnf.jkt`) and come with `Authorization: DPoP`
    /// and a proof; a bearer token of this issuer is refused.
    Required,
    /// DPoP-bound tokens come with proofs; tokens without `cnf` may come as bearer tokens
    /// (the default).
    #[default]
    Allowed,
    /// The `DPoP` scheme is refused for this issuer's tokens, and so are its DPoP-bound
    /// tokens (they cannot be proven here).
    Off,
}

impl DpopMode {
    /// Parses `required`, `allowed` or `off` (`PORTCULLIS_DPOP`).
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "required" => Some(Self::Required),
            "allowed" => Some(Self::Allowed),
            "off" => Some(Self::Off),
            _ => None,
        }
    }
}

/// DPoP (RFC 9449) for an [`Authenticator`](crate::Authenticator): set with
/// [`AuthenticatorBuilder::dpop`](crate::AuthenticatorBuilder::dpop), checked by the layer
/// on every request. Defaults: [`DpopMode::Allowed`] for every issuer, the asymmetric
/// algorithms ES256, ES384, EdDSA, PS256/384/512 and RS256/384/512, a proof window of
/// 60 s, 100,000 remembered `jti`s, no shared replay store, no nonces.
///
/// The URL clients address must be known: give the public URL
/// ([`public_url`](Self::public_url)), or trust the proxy's forwarded headers
/// ([`trust_forwarded_headers`](Self::trust_forwarded_headers)); `build()` refuses neither.
///
/// ```
/// use std::time::Duration;
/// use portcullis::sender::{DpopMode, DpopOptions};
/// use portcullis::{Algorithm, Authenticator};
///
/// let dpop = DpopOptions::new()
///     .mode(DpopMode::Allowed)
///     .issuer("https://id.example.com", DpopMode::Required)
///     .algorithms([Algorithm::ES256, Algorithm::EdDSA])
///     .public_url("https://api.example.com")
///     .proof_window(Duration::from_secs(30))
///     .require_nonce();
/// let auth = Authenticator::builder()
///     .hmac_secret("0123456789abcdef0123456789abcdef")
///     .dpop(dpop)
///     .build()?;
/// # Ok::<(), portcullis::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct DpopOptions {
    mode: DpopMode,
    issuers: Vec<(String, DpopMode)>,
    algorithms: Vec<Algorithm>,
    public_url: Option<String>,
    trust_forwarded: bool,
    window: Duration,
    capacity: usize,
    shared: Option<SharedReplay>,
    nonces: bool,
    nonce_secret: Option<NonceSecret>,
}

/// A nonce secret, never printed.
#[derive(Clone)]
struct NonceSecret(Vec<u8>);

impl std::fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Default for DpopOptions {
    fn default() -> Self {
        Self {
            mode: DpopMode::Allowed,
            issuers: Vec::new(),
            algorithms: vec![
                Algorithm::ES256,
                Algorithm::ES384,
                Algorithm::EdDSA,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
            ],
            public_url: None,
            trust_forwarded: false,
            window: DEFAULT_PROOF_WINDOW,
            capacity: DEFAULT_REPLAY_CAPACITY,
            shared: None,
            nonces: false,
            nonce_secret: None,
        }
    }
}

impl DpopOptions {
    /// The defaults (see the type).
    pub fn new() -> Self {
        Self::default()
    }

    /// The mode of every issuer not named with [`issuer`](Self::issuer) (default
    /// [`DpopMode::Allowed`]).
    pub fn mode(mut self, mode: DpopMode) -> Self {
        self.mode = mode;
        self
    }

    /// The mode of the tokens whose `iss` is exactly `iss`.
    pub fn issuer(mut self, iss: impl Into<String>, mode: DpopMode) -> Self {
        self.issuers.push((iss.into(), mode));
        self
    }

    /// The proof algorithms accepted (the `algs` of the challenge). Only asymmetric ones:
    /// `build()` refuses an HMAC algorithm or an empty list.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algs.into_iter().collect();
        self
    }

    /// The URL clients address, `https://api.example.com` (with an optional path
    /// prefix, `https://example.com/api`, put before the request's path): the scheme and
    /// host every proof's `htu` is compared with.
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into());
        self
    }

    /// Risk: a client that reaches the service around the proxy can name any host in
    /// these headers. Reads the scheme and host clients used from the proxy's `Forwarded`
    /// (RFC 7239), else `X-Forwarded-Proto` / `X-Forwarded-Host`, else `Host`, each time
    /// from the last element (the one the nearest proxy appended; what a client sent
    /// comes before it); use it only behind one proxy that sets or appends them on every
    /// request (`Forwarded` included, which is read first); behind a chain of proxies use
    /// [`public_url`](Self::public_url).
    pub fn trust_forwarded_headers(mut self) -> Self {
        self.trust_forwarded = true;
        self
    }

    /// How far a proof's `iat` may lie in the past or the future (default 60 s, at most
    /// 300 s). Proof `jti`s are remembered this long past their `iat`.
    pub fn proof_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How many proof `jti`s this replica remembers (default 100,000). When all are
    /// within their window, new proofs are refused rather than forgetting one.
    pub fn replay_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Remember proof `jti`s in a store every replica shares (as well as in memory), so
    /// a proof replayed at another replica is refused: `RedisRevocations::dpop_replay`
    /// (feature `redis`).
    pub fn shared_replay(mut self, store: SharedReplay) -> Self {
        self.shared = Some(store);
        self
    }

    /// The shared store, unless one is set already (the environment's Redis).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn or_shared_replay(mut self, store: SharedReplay) -> Self {
        self.shared.get_or_insert(store);
        self
    }

    /// Require server nonces (RFC 9449 section 9): a proof without a current nonce is
    /// answered 401 `use_dpop_nonce` with a `DPoP-Nonce` header, and the client retries
    /// with it. The nonces are stateless (an HMAC of a five-minute window under a secret
    /// drawn at start): nothing is stored per client, but each replica has its own
    /// secret, so a client moving to another replica is asked once more, unless the
    /// replicas share one ([`nonce_secret`](Self::nonce_secret)).
    pub fn require_nonce(mut self) -> Self {
        self.nonces = true;
        self
    }

    /// Requires server nonces like [`require_nonce`](Self::require_nonce), made with
    /// this secret (at least 32 bytes; `PORTCULLIS_DPOP_NONCE_SECRET`) instead of one
    /// drawn at start, so that every replica given it accepts the others' nonces.
    pub fn nonce_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.nonces = true;
        self.nonce_secret = Some(NonceSecret(secret.as_ref().to_vec()));
        self
    }
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK (EC, RSA or OKP), base64url: the
/// `cnf.jkt` an authorization server puts into a token bound to that key (RFC 9449
/// section 6). `None` when a required member is missing or not a string, or the key type
/// is not one of the three.
///
/// ```
/// use portcullis::sender::jwk_thumbprint;
///
/// // RFC 7638 section 3.1.
/// let jwk = serde_json::json!({
///     "kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
///     "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
/// });
/// assert_eq!(jwk_thumbprint(&jwk).as_deref(), Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
/// ```
pub fn jwk_thumbprint(jwk: &serde_json::Value) -> Option<String> {
    thumbprint_of(jwk.as_object()?)
}

/// [`jwk_thumbprint`] of a JWK already read as an object (a proof's `jwk`).
pub(crate) fn thumbprint_of(jwk: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let m = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
    // Values are written as JSON strings (escaped), as RFC 7638 section 3.2 asks.
    let j = |v: &str| serde_json::Value::from(v).to_string();
    let input = match m("kty")? {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            j(m("crv")?),
            j(m("x")?),
            j(m("y")?)
        ),
        "RSA" => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, j(m("e")?), j(m("n")?)),
        "OKP" => format!(
            r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
            j(m("crv")?),
            j(m("x")?)
        ),
        _ => return None,
    };
    Some(proof::thumbprint(&input))
}

/// The sender-constraint checks of one authenticator.
#[derive(Debug)]
pub(crate) struct SenderChecks {
    dpop: Option<Dpop>,
    cert: Option<cert::CertCheck>,
}

#[derive(Debug)]
struct Dpop {
    mode: DpopMode,
    issuers: HashMap<String, DpopMode>,
    algorithms: Vec<Algorithm>,
    /// `algs="ES256 ..."` of the challenges.
    algs: String,
    origin: htu::Origin,
    window: u64,
    local: replay::LocalReplay,
    shared: Option<SharedReplay>,
    nonces: Option<nonce::Nonces>,
}

fn config(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(ConfigErrorKind::SenderConstraints, setting, message)
}

/// The 401 for a bad proof.
fn bad_proof(detail: &'static str) -> AuthError {
    AuthError::sender(
        AuthErrorKind::InvalidToken,
        "invalid_dpop_proof",
        "Invalid DPoP proof",
        detail,
    )
}

/// The fixed message of a token refused on a `DPoP` request.
const DPOP_TOKEN: &str = "Invalid DPoP-bound token";

/// The 401 for a token that does not fit the `DPoP` request it came with.
fn bad_dpop_token(detail: &'static str) -> AuthError {
    AuthError::sender(
        AuthErrorKind::InvalidToken,
        "invalid_token",
        DPOP_TOKEN,
        detail,
    )
}

/// The 401 for a bound token without its proof of possession.
fn unproven(detail: &'static str) -> AuthError {
    AuthError::sender(
        AuthErrorKind::InvalidToken,
        "invalid_token",
        "Token requires proof of possession",
        detail,
    )
}

/// A token bound by `cnf` with no sender-constraint checks configured: refused.
pub(crate) fn unconfigured(principal: &Principal) -> Result<(), AuthError> {
    if principal.is_sender_constrained() {
        return Err(unproven(
            "bound token (cnf) and no DPoP or certificate binding configured",
        ));
    }
    Ok(())
}

/// Where only the token is at hand, with no method, URL, proof or connection to check
/// (the tonic interceptor, [`Authenticator::authenticate`](crate::Authenticator::authenticate)
/// and its kin, the compatibility endpoints): the token must be good as a plain bearer
/// token. Refused: a token bound by `cnf`, a token sent under the `DPoP` scheme
/// (`dpop_scheme`), and a token of an issuer whose DPoP mode is
/// [`Required`](DpopMode::Required).
pub(crate) fn bearer_only(
    checks: Option<&SenderChecks>,
    principal: &Principal,
    dpop_scheme: bool,
) -> Result<(), AuthError> {
    if principal.is_sender_constrained() {
        return Err(unproven(
            "bound token (cnf) where no proof of possession can be checked",
        ));
    }
    let Some(dpop) = checks.and_then(|c| c.dpop.as_ref()) else {
        return Ok(());
    };
    if dpop_scheme {
        return Err(bad_dpop_token("a DPoP proof cannot be checked here"));
    }
    if dpop.mode_of(principal) == DpopMode::Required {
        return Err(bad_dpop_token("this issuer's tokens need DPoP"));
    }
    Ok(())
}

/// Whether an `Authorization` value (or gRPC metadata) is under the `DPoP` scheme.
pub(crate) fn is_dpop_scheme(value: &[u8]) -> bool {
    value.len() > 5 && value[..4].eq_ignore_ascii_case(b"DPoP") && value[4] == b' '
}

/// Whether a request's `Authorization` header is under the `DPoP` scheme.
pub(crate) fn has_dpop_scheme(headers: &HeaderMap) -> bool {
    headers
        .get(AUTHORIZATION)
        .is_some_and(|v| is_dpop_scheme(v.as_bytes()))
}

/// What the checks read of a request.
#[derive(Clone, Copy)]
pub(crate) struct RequestView<'a> {
    pub(crate) method: &'a http::Method,
    pub(crate) uri: &'a http::Uri,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) extensions: Option<&'a http::Extensions>,
}

/// A proof `jti` to record in the shared store before the request may pass.
pub(crate) struct PendingReplay {
    store: SharedReplay,
    key: String,
    ttl: Duration,
}

impl PendingReplay {
    /// Records the `jti` in the shared store: refused when another replica (or this one,
    /// before a restart) saw it; 503 when the store does not answer.
    pub(crate) async fn confirm(self) -> Result<(), AuthError> {
        match self.store.0.remember(self.key, self.ttl).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(bad_proof("proof jti seen before by a replica (replay)")),
            Err(why) => {
                // At most one line per ten seconds while the store is away.
                static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
                if now >= last.saturating_add(10)
                    && LAST
                        .compare_exchange(
                            last,
                            now,
                            std::sync::atomic::Ordering::Relaxed,
                            std::sync::atomic::Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    tracing::warn!(target: "portcullis::sender", %why, "the shared DPoP replay store did not answer; DPoP requests to guarded routes get 503");
                }
                Err(AuthError::sender(
                    AuthErrorKind::KeysUnavailable,
                    "temporarily_unavailable",
                    "DPoP replay cache unavailable",
                    "the shared DPoP replay store did not answer",
                ))
            }
        }
    }
}

/// The scheme and credential of the `Authorization` header, when its scheme is `DPoP`.
fn dpop_credential(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("DPoP")
        .then(|| rest.trim_start_matches(' '))
}

impl SenderChecks {
    /// Checks the options; `None` when neither is given.
    pub(crate) fn build(
        dpop: Option<DpopOptions>,
        cert: Option<CertificateBinding>,
    ) -> Result<Option<Self>, ConfigError> {
        if dpop.is_none() && cert.is_none() {
            return Ok(None);
        }
        let cert = cert
            .map(cert::CertCheck::new)
            .transpose()
            .map_err(|e| config("certificate_binding", format!("{e}; name a valid header")))?;
        let dpop = dpop.map(Dpop::new).transpose()?;
        Ok(Some(Self { dpop, cert }))
    }

    /// Whether the `DPoP` scheme is accepted.
    pub(crate) fn offers_dpop(&self) -> bool {
        self.dpop.is_some()
    }

    /// Checks the sender constraints of a verified token on its request. `Ok(Some)` when
    /// the proof's `jti` must still be recorded in the shared store.
    pub(crate) fn check(
        &self,
        req: RequestView<'_>,
        principal: &Principal,
        now: u64,
    ) -> Result<Option<PendingReplay>, AuthError> {
        let bound = principal.is_sender_constrained();
        let mut proven = false;
        if bound && let Some(x5t) = principal.confirmation("x5t#S256") {
            let Some(cert) = &self.cert else {
                return Err(unproven(
                    "certificate-bound token and no certificate binding configured",
                ));
            };
            match cert.thumbprint(req.extensions, req.headers) {
                Some(t) if t == x5t => proven = true,
                Some(_) => {
                    return Err(unproven(
                        "the client certificate is not the token's cnf x5t#S256",
                    ));
                }
                None => {
                    return Err(unproven(
                        "certificate-bound token without a client certificate",
                    ));
                }
            }
        }
        let jkt = if bound {
            principal.confirmation("jkt")
        } else {
            None
        };
        let credential = self
            .dpop
            .as_ref()
            .and_then(|_| dpop_credential(req.headers));
        let Some(dpop) = &self.dpop else {
            if jkt.is_some() {
                return Err(unproven("DPoP-bound token and no DPoP configured"));
            }
            if bound && !proven {
                return Err(unproven("bound token (cnf) by a method not configured"));
            }
            return Ok(None);
        };
        let mode = dpop.mode_of(principal);
        let Some(token) = credential else {
            if jkt.is_some() {
                return Err(unproven("DPoP-bound token presented as a bearer token"));
            }
            if bound && !proven {
                return Err(unproven("bound token (cnf) by a method not configured"));
            }
            if mode == DpopMode::Required && !proven {
                return Err(bad_dpop_token("this issuer's tokens need DPoP"));
            }
            return Ok(None);
        };
        if mode == DpopMode::Off {
            return Err(bad_dpop_token("DPoP is off for this issuer"));
        }
        let Some(jkt) = jkt else {
            return Err(bad_dpop_token("the token is not DPoP-bound (no cnf.jkt)"));
        };
        dpop.check(req, token, &jkt, now)
    }

    /// Sets the `DPoP` challenge (and a `DPoP-Nonce`) of a rejection, RFC 9449 section
    /// 7.1: the only challenge for a DPoP error, a second one beside the `Bearer`
    /// challenge otherwise.
    pub(crate) fn decorate(&self, err: &AuthError, headers: &mut HeaderMap, realm: &str, now: u64) {
        let Some(dpop) = &self.dpop else { return };
        if matches!(
            err.kind(),
            AuthErrorKind::KeysUnavailable | AuthErrorKind::Misuse
        ) {
            return;
        }
        let code = err.sender_code();
        let own = matches!(code, Some("invalid_dpop_proof" | "use_dpop_nonce"))
            || err.rule_message() == Some(DPOP_TOKEN);
        let value = match code {
            Some(code) if own => {
                format!(
                    r#"DPoP realm="{realm}", error="{code}", algs="{}""#,
                    dpop.algs
                )
            }
            _ => format!(r#"DPoP realm="{realm}", algs="{}""#, dpop.algs),
        };
        let Ok(value) = HeaderValue::from_str(&value) else {
            return;
        };
        if own {
            headers.insert(WWW_AUTHENTICATE, value);
        } else {
            headers.append(WWW_AUTHENTICATE, value);
        }
        if code == Some("use_dpop_nonce")
            && let Some(nonces) = &dpop.nonces
            && let Ok(v) = HeaderValue::from_str(&nonces.current(now))
        {
            headers.insert("dpop-nonce", v);
        }
    }
}

impl Dpop {
    /// The DPoP mode for `principal`'s issuer.
    fn mode_of(&self, principal: &Principal) -> DpopMode {
        if self.issuers.is_empty() {
            return self.mode;
        }
        principal
            .issuer()
            .and_then(|iss| self.issuers.get(iss).copied())
            .unwrap_or(self.mode)
    }

    fn new(o: DpopOptions) -> Result<Self, ConfigError> {
        if o.algorithms.is_empty() || o.algorithms.iter().any(|a| a.family() == Family::Hmac) {
            return Err(config(
                "dpop.algorithms",
                "DPoP proofs need asymmetric algorithms; name some of ES256, ES384, EdDSA, PS256, RS256",
            ));
        }
        if o.window.is_zero() || o.window > MAX_PROOF_WINDOW {
            return Err(config(
                "dpop.proof_window",
                "the proof window must be between 1 s and 300 s",
            ));
        }
        if o.nonce_secret.as_ref().is_some_and(|s| s.0.len() < 32) {
            return Err(config(
                "dpop.nonce_secret",
                "the nonce secret must be at least 32 bytes; use a random one shared by the replicas",
            ));
        }
        if o.capacity == 0 {
            return Err(config(
                "dpop.replay_capacity",
                "the replay capacity must be above 0",
            ));
        }
        let fixed = match &o.public_url {
            Some(url) => Some(htu::parse_base(url).map_err(|e| config("dpop.public_url", e))?),
            None if o.trust_forwarded => None,
            None => {
                return Err(config(
                    "dpop.public_url",
                    "DPoP compares each proof's htu with the URL clients address; set the public URL (PORTCULLIS_DPOP_PUBLIC_URL) or trust the proxy's forwarded headers (PORTCULLIS_DPOP_TRUST_FORWARDED=true)",
                ));
            }
        };
        let mut algs = String::new();
        for a in &o.algorithms {
            if !algs.is_empty() {
                algs.push(' ');
            }
            algs.push_str(a.as_str());
        }
        Ok(Self {
            mode: o.mode,
            issuers: o.issuers.into_iter().collect(),
            algorithms: o.algorithms,
            algs,
            origin: htu::Origin {
                fixed,
                trust_forwarded: o.trust_forwarded,
            },
            window: o.window.as_secs().max(1),
            local: replay::LocalReplay::new(o.capacity),
            shared: o.shared,
            nonces: o
                .nonces
                .then(|| nonce::Nonces::new(NONCE_WINDOW, o.nonce_secret.map(|s| s.0))),
        })
    }

    /// RFC 9449 section 4.3, for a `DPoP` request with a DPoP-bound token.
    fn check(
        &self,
        req: RequestView<'_>,
        token: &str,
        jkt: &str,
        now: u64,
    ) -> Result<Option<PendingReplay>, AuthError> {
        let mut values = req.headers.get_all("dpop").iter();
        let value = values
            .next()
            .ok_or_else(|| bad_proof("no DPoP proof header"))?;
        if values.next().is_some() {
            return Err(bad_proof("more than one DPoP proof header"));
        }
        let text = value
            .to_str()
            .map_err(|_| bad_proof("the DPoP header is not text"))?;
        let proof = proof::verify(text, &self.algorithms).map_err(bad_proof)?;
        if proof.htm != req.method.as_str() {
            return Err(bad_proof("htm is not the request's method"));
        }
        let expected = self.origin.expected(req.uri, req.headers);
        if expected.is_none() || htu::normalize(&proof.htu) != expected {
            return Err(bad_proof("htu is not the request's URI"));
        }
        if proof.iat.saturating_add(self.window) < now
            || proof.iat > now.saturating_add(self.window)
        {
            return Err(bad_proof("iat outside the proof window"));
        }
        if let Some(nonces) = &self.nonces
            && !proof
                .nonce
                .as_deref()
                .is_some_and(|n| nonces.accepts(n, now))
        {
            return Err(AuthError::sender(
                AuthErrorKind::InvalidToken,
                "use_dpop_nonce",
                "DPoP nonce required",
                "proof without a current server nonce",
            ));
        }
        if proof.ath.as_deref() != Some(&proof::thumbprint(token)) {
            return Err(bad_proof("ath is not the access token's hash"));
        }
        if proof.jkt != jkt {
            return Err(bad_proof("the proof's key is not the token's cnf.jkt"));
        }
        // Past `iat + window` the proof is refused anyway: remember it until then.
        let until = proof.iat.saturating_add(self.window);
        let key = sha256(format!("{}\n{}", proof.jkt, proof.jti).as_bytes());
        self.local.remember(key, until, now).map_err(bad_proof)?;
        Ok(self.shared.as_ref().map(|store| PendingReplay {
            store: store.clone(),
            key: crate::jose::hex(&key),
            ttl: Duration::from_secs(until.saturating_sub(now).saturating_add(1)),
        }))
    }
}
