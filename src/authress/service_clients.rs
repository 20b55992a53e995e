//! Authress service-client tokens, server side: the issuer pattern
//! `https://<domain>/v1/clients/*`, keys from each client's own key set, and the checks
//! Authress's SDKs make before they trust such a token, as an issuer rule of the core.

use std::sync::Arc;

use reqwest::Url;

use crate::AuthenticatorBuilder;
use crate::error::{ConfigError, ConfigErrorKind};
use crate::keys::{IssuerKeys, IssuerRefusal, IssuerRule, Unmatched, check_url};

/// The setting errors about service clients name.
const SETTING: &str = "authress_service_clients";

/// A service-client issuer (`<origin>/v1/clients/<id>`) on a host that is no configured
/// Authress domain.
const FOREIGN_ISSUER: IssuerRefusal = IssuerRefusal {
    message: "Token issuer is not the configured Authress domain",
    detail: "service-client token: the issuer's host is not the configured Authress domain",
};

/// A service-client token whose `sub` is not the client id of its issuer.
const OTHER_SUBJECT: IssuerRefusal = IssuerRefusal {
    message: "Token sub is not the service client of its issuer",
    detail: "service-client token: sub is not the client id in the issuer's path",
};

/// A service-client token without `kid`.
const NO_KID: IssuerRefusal = IssuerRefusal {
    message: "Token has no kid",
    detail: "service-client token: no kid in the header",
};

/// Accepts the tokens of every service client of one Authress account
/// ([`authress_service_clients`](crate::AuthenticatorBuilder::authress_service_clients),
/// feature `jwks`, `PORTCULLIS_AUTHRESS_ACCOUNT` and `PORTCULLIS_AUTHRESS_DOMAIN`).
///
/// A service client's access key mints EdDSA tokens (the Authress SDKs'
/// `get_client_token()` / `getToken()`) whose `iss` is `<domain>/v1/clients/<client id>`,
/// `sub` the client id, `aud` `<account id>.accounts.authress.io`, and whose header names
/// the access key in `kid`. The domain is `https://<account id>.api.authress.io`, or the
/// account's custom domain when the SDK was given one.
///
/// What is checked, each refusal a 401 `invalid_token` with its own message:
///
/// - The issuer is the pattern `<domain>/v1/clients/*` (one plain segment): each client is
///   an issuer of its own, its keys fetched on first use from
///   `<iss>/.well-known/openid-configuration/jwks` (where the Authress SDKs' own verifiers
///   read them) into the multi-tenant issuer cache ([`TenantOptions`](crate::TenantOptions):
///   bounded, rate-limited, failures remembered). Its tokens are verified with those keys
///   only.
/// - A token whose `iss` has the service-client shape (`<origin>/v1/clients/<id>`) but
///   another origin is refused before any fetch: `Token issuer is not the configured
///   Authress domain`.
/// - A token of the domain without `kid` is refused before any fetch: `Token has no kid`.
/// - After the signature: `sub` must equal the client id in the issuer's path
///   (`Token sub is not the service client of its issuer`), and `aud` must name
///   `<account id>.accounts.authress.io` (or an audience configured with
///   [`audience`](crate::AuthenticatorBuilder::audience)).
/// - The token's roles and groups are never read: a service client signs its own tokens
///   with its access key, so they would be its own word. Grant it access in the access
///   records, by its client id (`sub`).
///
/// ```
/// use portcullis::{Algorithm, AuthErrorKind, Authenticator, AuthressServiceClients, Signer};
///
/// let auth = Authenticator::builder()
///     .authress_service_clients(AuthressServiceClients::new("acc1"))
///     .build()?;
/// // A service-client token of another host is refused before any key is fetched.
/// let token = Signer::hmac(Algorithm::HS256, [7u8; 32])?.kid("k1").sign(&serde_json::json!({
///     "iss": "https://acc1.api.authress.example/v1/clients/sc_1",
///     "sub": "sc_1", "aud": "acc1.accounts.authress.io", "exp": 4_000_000_000u64,
/// }))?;
/// let err = auth.verify(&token).unwrap_err();
/// assert_eq!(err.kind(), AuthErrorKind::InvalidToken);
/// assert_eq!(err.message(), "Token issuer is not the configured Authress domain");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthressServiceClients {
    account_id: String,
    domain: Option<String>,
}

impl AuthressServiceClients {
    /// The service clients of the Authress account `account_id`, whose tokens name
    /// `https://<account id>.api.authress.io/v1/clients/<client id>`.
    pub fn new(account_id: impl Into<String>) -> Self {
        Self {
            account_id: account_id.into(),
            domain: None,
        }
    }

    /// The account's custom domain (`login.example.com` or `https://login.example.com`):
    /// the issuers become `https://login.example.com/v1/clients/<client id>`, as the SDKs
    /// mint them when given that domain. `http` only for loopback hosts (tests). A domain
    /// containing `.authress.io` keeps the default issuer, as the SDKs do.
    pub fn custom_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The `aud` the tokens carry: `<account id>.accounts.authress.io`.
    pub fn audience(&self) -> String {
        format!("{}.accounts.authress.io", self.account_id.trim())
    }

    /// The origin of the issuers (`https://<account id>.api.authress.io`, or the custom
    /// domain's), checked: https, or http for loopback hosts.
    pub(crate) fn origin(&self, allow_http: bool) -> Result<String, ConfigError> {
        let account = self.account_id.trim();
        let ok_account = !account.is_empty()
            && account
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok_account {
            return Err(ConfigError::new(
                ConfigErrorKind::RemoteKeys,
                SETTING,
                "the Authress account id must be non-empty letters, digits, `-` or `_` (the `acc_...` id of the account)",
            ));
        }
        let origin = match self
            .domain
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty() && !d.contains(".authress.io"))
        {
            Some(d) => {
                let d = d.trim_end_matches('/');
                if d.starts_with("http://") || d.starts_with("https://") {
                    d.to_owned()
                } else {
                    format!("https://{d}")
                }
            }
            None => format!("https://{account}.api.authress.io"),
        };
        let bad = |why: String| {
            ConfigError::new(
                ConfigErrorKind::RemoteKeys,
                SETTING,
                format!("custom domain `{origin}` {why}"),
            )
        };
        let url = Url::parse(&origin).map_err(|e| bad(format!("is not a host name ({e})")))?;
        check_url(&url, allow_http).map_err(bad)?;
        if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
            return Err(bad("must be a host (and port) only, without a path".into()));
        }
        Ok(url.origin().ascii_serialization())
    }
}

impl AuthenticatorBuilder {
    /// Accepts the tokens of the service clients of an Authress account, the ones their
    /// access keys mint (`PORTCULLIS_AUTHRESS_ACCOUNT`, `PORTCULLIS_AUTHRESS_DOMAIN`;
    /// feature `jwks`): issuers `<domain>/v1/clients/*`, each client's keys from its own
    /// key set through the issuer cache of [`issuer_pattern`](Self::issuer_pattern), and the
    /// domain, `sub` and `kid` checks that [`AuthressServiceClients`](crate::AuthressServiceClients)
    /// lists. Repeat it for several accounts or domains.
    pub fn authress_service_clients(self, clients: AuthressServiceClients) -> Self {
        let audience = clients.audience();
        self.issuer_pattern_with(Arc::new(ServiceClients { clients, audience }))
    }
}

/// The issuer rule of one account's service clients.
#[derive(Debug)]
struct ServiceClients {
    clients: AuthressServiceClients,
    /// `<account id>.accounts.authress.io`.
    audience: String,
}

impl IssuerRule for ServiceClients {
    fn setting(&self) -> &'static str {
        SETTING
    }

    fn pattern(&self, allow_http: bool) -> Result<String, ConfigError> {
        Ok(format!("{}/v1/clients/*", self.clients.origin(allow_http)?))
    }

    /// Where the Authress SDKs' verifiers read a service client's keys.
    fn keys(&self, iss: &str) -> IssuerKeys {
        let base = iss.trim_end_matches('/');
        IssuerKeys::KeySet(format!("{base}/.well-known/openid-configuration/jwks"))
    }

    /// Service clients name their key; refused before any fetch.
    fn check_header(&self, kid: Option<&str>) -> Result<(), IssuerRefusal> {
        if kid.is_some() { Ok(()) } else { Err(NO_KID) }
    }

    /// Its `sub` is the client id of its issuer.
    fn check_claims(&self, iss: &str, sub: Option<&str>) -> Result<(), IssuerRefusal> {
        match service_client_shape(iss) {
            Some((_, client)) if sub == Some(client) => Ok(()),
            _ => Err(OTHER_SUBJECT),
        }
    }

    /// Its `aud` is the account's (or a configured audience).
    fn audience(&self) -> Option<&str> {
        Some(&self.audience)
    }

    /// A service client signs its own tokens with its access key: whatever roles or
    /// groups it writes into them are its own claim, never a grant. Its access comes
    /// from the access records, by its `sub`.
    fn reads_roles(&self) -> bool {
        false
    }

    /// A service-client issuer on a host we were not told to trust.
    fn unmatched(&self, iss: &str, origin: &str) -> Unmatched {
        match service_client_shape(iss) {
            Some((o, _)) if o == origin => Unmatched::Own,
            Some(_) => Unmatched::Foreign(FOREIGN_ISSUER),
            None => Unmatched::Unrelated,
        }
    }

    fn messages(&self) -> &'static [&'static str] {
        &[
            FOREIGN_ISSUER.message,
            OTHER_SUBJECT.message,
            NO_KID.message,
        ]
    }
}

/// The origin and client id of an issuer of the service-client shape
/// `<origin>/v1/clients/<client id>` (one non-empty segment, as the Authress SDKs'
/// verifiers match it; one trailing `/` allowed, as issuer patterns allow it), or `None`.
fn service_client_shape(iss: &str) -> Option<(&str, &str)> {
    let rest = iss
        .strip_prefix("https://")
        .or_else(|| iss.strip_prefix("http://"))?;
    let host_end = rest.find('/')?;
    let origin_len = iss.len() - rest.len() + host_end;
    let (origin, path) = iss.split_at(origin_len);
    let client = path.strip_prefix("/v1/clients/")?;
    let client = client.strip_suffix('/').unwrap_or(client);
    (!client.is_empty() && !client.contains(['/', '?', '#'])).then_some((origin, client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(
            service_client_shape("https://a.api.authress.io/v1/clients/sc_1"),
            Some(("https://a.api.authress.io", "sc_1"))
        );
        assert_eq!(
            service_client_shape("https://a/v1/clients/sc_1/"),
            Some(("https://a", "sc_1"))
        );
        assert_eq!(
            service_client_shape("http://127.0.0.1:9/v1/clients/c"),
            Some(("http://127.0.0.1:9", "c"))
        );
        for no in [
            "https://a/v1/clients/",
            "https://a/v1/clients//",
            "https://a/v1/clients/x/y",
            "https://a/v1/clients/x//",
            "https://a/v2/clients/x",
            "https://a",
            "ftp://a/v1/clients/x",
            "https://a/v1/clients/x?y",
        ] {
            assert_eq!(service_client_shape(no), None, "{no}");
        }
    }

    #[test]
    fn origins() {
        let o = |c: AuthressServiceClients| c.origin(false);
        assert_eq!(
            o(AuthressServiceClients::new("acc")).unwrap(),
            "https://acc.api.authress.io"
        );
        assert_eq!(
            o(AuthressServiceClients::new("acc").custom_domain("Login.Example.com/")).unwrap(),
            "https://login.example.com"
        );
        assert_eq!(
            o(AuthressServiceClients::new("acc").custom_domain("https://acc.api.authress.io"))
                .unwrap(),
            "https://acc.api.authress.io"
        );
        assert_eq!(
            o(AuthressServiceClients::new("acc").custom_domain("http://127.0.0.1:8080")).unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(
            o(AuthressServiceClients::new("acc").custom_domain("http://login.example")).is_err()
        );
        assert!(o(AuthressServiceClients::new("acc").custom_domain("https://x/path")).is_err());
        assert!(o(AuthressServiceClients::new("")).is_err());
        assert!(o(AuthressServiceClients::new("a.b")).is_err());
    }
}
