//! Authress service-client access keys: the tokens they mint, and verifying them.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::error::{TokenError, TokenErrorKind};
use super::refresh::{Refresh, RefreshFuture, Refreshed, Refreshing, RefreshingBuilder};
use super::token::Token;
use crate::authn::{Authenticator, AuthenticatorBuilder};
use crate::error::{ConfigError, ConfigErrorKind};
use crate::jose::Algorithm;
use crate::signer::Signer;

/// How long a minted token lives, as the Authress SDKs mint them: 24 hours.
const LIFETIME: u64 = 24 * 60 * 60;

/// A minted token is reused until this long before it expires, as in the Authress SDKs.
const REUSE_UNTIL: Duration = Duration::from_secs(60 * 60);

/// What `encodeURIComponent` / `quote(safe='')` leave alone in a client id.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The issuer of a service client's tokens: `https://<account>.api.authress.io`, or the
/// custom domain when one is given (a domain containing `authress.io` counts as none),
/// then `/v1/clients/<client id>`.
fn issuer(account_id: &str, client_id: &str, custom_domain: Option<&str>) -> String {
    let origin = match custom_domain.map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) if !d.contains("authress.io") => {
            let d = d.trim_end_matches('/');
            if d.starts_with("http") {
                d.to_owned()
            } else if d.starts_with("localhost") {
                format!("http://{d}")
            } else {
                format!("https://{d}")
            }
        }
        _ => format!("https://{account_id}.api.authress.io"),
    };
    format!(
        "{origin}/v1/clients/{}",
        utf8_percent_encode(client_id, COMPONENT)
    )
}

/// An Authress service-client access key: `<client id>.<key id>.<account id>.<private
/// key>`, the private key being a base64 PKCS#8 Ed25519 key, as the Authress SDKs read it.
///
/// It mints the token the SDKs mint: header `{"alg": "EdDSA", "typ": "JWT", "kid": <key
/// id>}`; claims `iss` (see [`issuer`](Self::issuer)), `aud` =
/// `<account id>.accounts.authress.io`, `sub` and `client_id` = the client id, `iat` =
/// now, `exp` = now + 24 h, `scope` = `openid`. As a [`Refresh`] (or through
/// [`source`](Self::source)) a minted token is reused until an hour before it expires.
/// `Debug` never shows the private key.
///
/// ```
/// use portcullis::client::AuthressAccessKey;
///
/// // A test-only key (the one in the Authress SDKs' tests).
/// let key = AuthressAccessKey::parse(
///     "clientId.uDeF.a43706ca-9647-40e4-aeae-7dcaa54bbab3.MC4CAQAwBQYDK2VwBCIEIE99LFw2c3DCiYwrY/Qkg1nIDiagoHtdCwb88RxarVYA",
/// )?;
/// assert_eq!(key.issuer(), "https://a43706ca-9647-40e4-aeae-7dcaa54bbab3.api.authress.io/v1/clients/clientId");
/// let token = key.mint(1_700_000_000)?;
/// // Servers verify it with the service client's public key (here derived from the key).
/// let auth = key.verifier().clock(|| 1_700_000_100).build()?;
/// assert_eq!(auth.verify(&token)?.subject(), Some("clientId"));
/// assert!(!format!("{key:?}").contains("MC4C"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AuthressAccessKey {
    client_id: String,
    key_id: String,
    account_id: String,
    custom_domain: Option<String>,
    signer: Signer,
    public: [u8; 32],
}

impl fmt::Debug for AuthressAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthressAccessKey")
            .field("client_id", &self.client_id)
            .field("key_id", &self.key_id)
            .field("account_id", &self.account_id)
            .field("custom_domain", &self.custom_domain)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

fn lenient_b64() -> &'static GeneralPurpose {
    static ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    &ENGINE
}

impl AuthressAccessKey {
    /// Parses an access key. The old JSON keys (base64 JSON starting `eyJ`, RS256) are
    /// refused, as the current SDKs refuse them: create an EdDSA key instead.
    pub fn parse(access_key: &str) -> Result<Self, ConfigError> {
        let bad = |what: &str| {
            ConfigError::new(
                ConfigErrorKind::Other,
                "authress access key",
                what.to_owned(),
            )
        };
        let key = access_key.trim();
        if key.starts_with("eyJ") {
            return Err(bad(
                "is an old JSON (RS256) access key; create a new access key for the service client in Authress",
            ));
        }
        let parts: Vec<&str> = key.split('.').collect();
        let [client_id, key_id, account_id, private] = parts[..] else {
            return Err(bad(
                "is not `<client id>.<key id>.<account id>.<private key>` (four parts separated by dots)",
            ));
        };
        if [client_id, key_id, account_id, private]
            .iter()
            .any(|p| p.is_empty())
        {
            return Err(bad("has an empty part"));
        }
        let der = lenient_b64()
            .decode(private)
            .map_err(|_| bad("has a private key that is not base64"))?;
        let signer = Signer::from_der(Algorithm::EdDSA, &der)
            .map_err(|_| bad("has a private key that is not a PKCS#8 Ed25519 key"))?
            .kid(key_id);
        let public = signer
            .ed25519_public()
            .ok_or_else(|| bad("has no usable public key"))?;
        Ok(Self {
            client_id: client_id.to_owned(),
            key_id: key_id.to_owned(),
            account_id: account_id.to_owned(),
            custom_domain: None,
            signer,
            public,
        })
    }

    /// The Authress custom domain (`login.example.com` or `https://login.example.com`):
    /// the issuer becomes `https://login.example.com/v1/clients/<client id>`. A domain
    /// containing `authress.io` keeps the default issuer.
    pub fn custom_domain(mut self, domain: impl Into<String>) -> Self {
        self.custom_domain = Some(domain.into());
        self
    }

    /// The service client's id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The key's id (the `kid` of minted tokens).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The Authress account id.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The `iss` of minted tokens.
    pub fn issuer(&self) -> String {
        issuer(
            &self.account_id,
            &self.client_id,
            self.custom_domain.as_deref(),
        )
    }

    /// The `aud` of minted tokens: `<account id>.accounts.authress.io`.
    pub fn audience(&self) -> String {
        format!("{}.accounts.authress.io", self.account_id)
    }

    /// Mints a token at `now` (seconds since the Unix epoch).
    pub fn mint(&self, now: u64) -> Result<String, TokenError> {
        let claims = serde_json::json!({
            "aud": self.audience(),
            "iss": self.issuer(),
            "sub": self.client_id,
            "client_id": self.client_id,
            "iat": now,
            "exp": now + LIFETIME,
            "scope": "openid",
        });
        self.signer
            .sign(&claims)
            .map_err(|e| TokenError::new(TokenErrorKind::Invalid, e.to_string()))
    }

    /// The public key as a JWK (JSON text): `{"kty": "OKP", "crv": "Ed25519", "x": ...,
    /// "kid": <key id>, "alg": "EdDSA", "use": "sig"}`, what Authress serves for the key.
    pub fn public_jwk(&self) -> String {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.public),
            "kid": self.key_id,
            "alg": "EdDSA",
            "use": "sig",
        })
        .to_string()
    }

    /// An authenticator builder that verifies this key's tokens: its public key, issuer
    /// and audience. For development and tests, where the access key is at hand; in
    /// production give the server only the public JWK ([`AuthressClientVerifier`]).
    pub fn verifier(&self) -> AuthenticatorBuilder {
        AuthressClientVerifier::new(&self.account_id, &self.client_id)
            .with_custom_domain(self.custom_domain.clone())
            .authenticator(&self.public_jwk())
    }

    /// A [`Refreshing`] builder around this key that reuses a minted token until an hour
    /// before it expires (set the clock on it for tests).
    pub fn source_builder(self) -> RefreshingBuilder {
        Refreshing::builder(self).window(REUSE_UNTIL)
    }

    /// A token source minting with this key (see [`source_builder`](Self::source_builder)).
    pub fn source(self) -> Refreshing {
        self.source_builder().build()
    }
}

impl Refresh for AuthressAccessKey {
    fn refresh(&self, now: u64) -> RefreshFuture<'_> {
        let minted = self.mint(now).map(|t| Refreshed::new(Token::new(t)));
        Box::pin(async move { minted })
    }
}

/// The server side of an Authress service client: what its tokens must say, and its
/// public key.
///
/// ```
/// use portcullis::client::{AuthressAccessKey, AuthressClientVerifier};
///
/// let key = AuthressAccessKey::parse(
///     "sc_1.kid1.acc1.MC4CAQAwBQYDK2VwBCIEIE99LFw2c3DCiYwrY/Qkg1nIDiagoHtdCwb88RxarVYA",
/// )?;
/// let jwk = key.public_jwk(); // in production: the JWK Authress serves for the key
/// let auth = AuthressClientVerifier::new("acc1", "sc_1").authenticator(&jwk).clock(|| 1_700_000_000).build()?;
/// assert!(auth.verify(&key.mint(1_700_000_000)?).is_ok());
/// let other = AuthressClientVerifier::new("acc1", "sc_2").authenticator(&jwk).clock(|| 1_700_000_000).build()?;
/// assert!(other.verify(&key.mint(1_700_000_000)?).is_err()); // another client's issuer
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct AuthressClientVerifier {
    account_id: String,
    client_id: String,
    custom_domain: Option<String>,
}

impl AuthressClientVerifier {
    /// The service client `client_id` of the Authress account `account_id`.
    pub fn new(account_id: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            account_id: account_id.into(),
            client_id: client_id.into(),
            custom_domain: None,
        }
    }

    /// The Authress custom domain its tokens name (see
    /// [`AuthressAccessKey::custom_domain`]).
    pub fn custom_domain(self, domain: impl Into<String>) -> Self {
        self.with_custom_domain(Some(domain.into()))
    }

    fn with_custom_domain(mut self, domain: Option<String>) -> Self {
        self.custom_domain = domain;
        self
    }

    /// The `iss` its tokens carry.
    pub fn issuer(&self) -> String {
        issuer(
            &self.account_id,
            &self.client_id,
            self.custom_domain.as_deref(),
        )
    }

    /// The `aud` its tokens carry.
    pub fn audience(&self) -> String {
        format!("{}.accounts.authress.io", self.account_id)
    }

    /// An authenticator builder for its tokens: the public key `jwk` (JSON text of one
    /// Ed25519 JWK; a bad key fails at `build()`), the issuer and the audience required.
    /// Add a clock, a role claim or more keys as usual.
    pub fn authenticator(&self, jwk: &str) -> AuthenticatorBuilder {
        Authenticator::builder()
            .jwk_set_json(format!(r#"{{"keys":[{jwk}]}}"#))
            .issuer(self.issuer())
            .audience(self.audience())
    }
}

#[cfg(test)]
mod tests {
    use super::issuer;

    #[test]
    fn issuers_as_the_sdks_build_them() {
        assert_eq!(
            issuer("acc", "sc_1", None),
            "https://acc.api.authress.io/v1/clients/sc_1"
        );
        assert_eq!(
            issuer("acc", "sc_1", Some("https://acc.api.authress.io")),
            "https://acc.api.authress.io/v1/clients/sc_1"
        );
        assert_eq!(
            issuer("acc", "sc 1/x", Some("login.example.com/")),
            "https://login.example.com/v1/clients/sc%201%2Fx"
        );
        assert_eq!(
            issuer("acc", "c", Some("localhost:8080")),
            "http://localhost:8080/v1/clients/c"
        );
        assert_eq!(
            issuer("acc", "c", Some("http://a.b")),
            "http://a.b/v1/clients/c"
        );
    }
}
