//! Token endpoints: one HTTP client, FEDn's refresh protocol, and OAuth2 grants.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Url;

use super::environment::Environment;
use super::error::{TokenError, TokenErrorKind};
use super::refresh::{Refresh, RefreshFuture, Refreshed};
use super::token::Token;
use crate::error::{ConfigError, ConfigErrorKind};

/// The most of a token endpoint's answer that is read.
const MAX_ANSWER: usize = 64 * 1024;

/// The one client for token endpoints: rustls, no redirects (a refresh token is never
/// sent on to another URL), 5 s to connect, 10 s per request (FEDn's timeout).
fn http() -> Result<&'static reqwest::Client, TokenError> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        })
        .as_ref()
        .map_err(TokenError::unavailable)
}

/// A configured token endpoint URL: https, or http for loopback hosts (or anywhere with an
/// `dangerous_` opt-in). `sends` names the credential the request carries (`the refresh
/// token`, `the client secret`), for the error on plain http.
fn parse_url(
    kind: ConfigErrorKind,
    setting: &str,
    url: &str,
    allow_http: bool,
    sends: &str,
) -> Result<Url, ConfigError> {
    let parsed = Url::parse(url.trim()).map_err(|e| {
        ConfigError::new(
            kind,
            setting,
            format!("`{url}` is not an absolute URL ({e}); use https://host/path"),
        )
    })?;
    let loopback = match parsed.host_str() {
        Some(h) if h.eq_ignore_ascii_case("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback || allow_http => Ok(parsed),
        "http" => Err(ConfigError::new(
            kind,
            setting,
            format!(
                "`{url}` uses plain http, which would send {sends} in clear; use https (plain http is allowed for loopback hosts)"
            ),
        )),
        _ => Err(ConfigError::new(
            kind,
            setting,
            format!("`{url}` is not an https URL"),
        )),
    }
}

/// POSTs `body` and returns the status and at most [`MAX_ANSWER`] bytes of the answer.
async fn post(
    url: &Url,
    content_type: &'static str,
    body: Vec<u8>,
    basic: Option<String>,
) -> Result<(u16, Vec<u8>), TokenError> {
    let mut req = http()?
        .post(url.clone())
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::ACCEPT, "application/json")
        .body(body);
    if let Some(basic) = basic {
        let mut value = http::HeaderValue::try_from(format!("Basic {basic}"))
            .map_err(|_| TokenError::unavailable("the client credentials cannot be sent"))?;
        value.set_sensitive(true);
        req = req.header(http::header::AUTHORIZATION, value);
    }
    let mut res = req
        .send()
        .await
        .map_err(|e| TokenError::unavailable(e.without_url()))?;
    let status = res.status().as_u16();
    let mut bytes = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| TokenError::unavailable(e.without_url()))?
    {
        if bytes.len() + chunk.len() > MAX_ANSWER {
            return Err(TokenError::unavailable(format!(
                "the answer is over {MAX_ANSWER} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((status, bytes))
}

/// The token fields of an answer: `access_token` or `access`, `refresh_token` or
/// `refresh`, `expires_in`.
#[derive(serde::Deserialize)]
struct Answer {
    access_token: Option<String>,
    access: Option<String>,
    refresh_token: Option<String>,
    refresh: Option<String>,
    expires_in: Option<serde_json::Number>,
}

fn read_answer(
    status: u16,
    body: &[u8],
    refused: fn(u16) -> TokenError,
) -> Result<(Refreshed, Option<String>), TokenError> {
    match status {
        400 | 401 => return Err(refused(status)),
        200..=203 => {}
        _ => {
            return Err(TokenError::unavailable(format!(
                "the token endpoint answered {status}"
            )));
        }
    }
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|_| TokenError::unavailable("the answer is not a JSON object of tokens"))?;
    let access = answer
        .access_token
        .or(answer.access)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| TokenError::unavailable("the answer has no access token"))?;
    let expires_in = answer.expires_in.and_then(|n| {
        n.as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
    });
    let rotated = answer
        .refresh_token
        .or(answer.refresh)
        .filter(|t| !t.is_empty());
    Ok((
        Refreshed::new(Token::new(access)).expires_in(expires_in),
        rotated,
    ))
}

fn lock(m: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// FEDn's refresh protocol.
///
/// `POST <FEDN_AUTH_REFRESH_TOKEN_URI>` with JSON `{"refresh": <FEDN_AUTH_REFRESH_TOKEN>}`,
/// the new token in `access` (FEDn's clients). With [`role`](Self::role), the newer shape
/// of FEDn's token manager: `{"refresh_token": ..., "role": ...}`. Either answer may carry
/// the token as `access_token` or `access`, a new refresh token as `refresh_token` or
/// `refresh` (kept for the next refresh), and `expires_in`. 400 or 401 is
/// [`Rejected`](TokenErrorKind::Rejected); other failures are
/// [`Unavailable`](TokenErrorKind::Unavailable). Wrap it in
/// [`Refreshing`](super::Refreshing).
pub struct FednRefresh {
    url: Url,
    refresh_token: Mutex<String>,
    role: Option<String>,
}

impl fmt::Debug for FednRefresh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FednRefresh")
            .field("url", &self.url.as_str())
            .field("refresh_token", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

impl FednRefresh {
    /// The endpoint `uri` (https, or http for loopback hosts) and the refresh token.
    pub fn new(uri: &str, refresh_token: impl Into<String>) -> Result<Self, ConfigError> {
        Self::with(uri, refresh_token.into(), false)
    }

    /// Risk: the refresh token and the new tokens cross the network in clear. Like
    /// [`new`](Self::new), but plain http is allowed to any host; for development
    /// networks only. (`dangerous` marks every risky setting of the crate.)
    pub fn dangerous_plain_http(
        uri: &str,
        refresh_token: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        Self::with(uri, refresh_token.into(), true)
    }

    fn with(uri: &str, refresh_token: String, allow_http: bool) -> Result<Self, ConfigError> {
        let url = parse_url(
            ConfigErrorKind::Environment,
            "FEDN_AUTH_REFRESH_TOKEN_URI",
            uri,
            allow_http,
            "the refresh token",
        )?;
        let refresh_token = refresh_token.trim().to_owned();
        if refresh_token.is_empty() {
            return Err(ConfigError::new(
                ConfigErrorKind::Environment,
                "FEDN_AUTH_REFRESH_TOKEN",
                "is empty; set the refresh token the FEDn login gave",
            ));
        }
        Ok(Self {
            url,
            refresh_token: Mutex::new(refresh_token),
            role: None,
        })
    }

    /// Sends the newer shape, `{"refresh_token": ..., "role": role}` (FEDn's token manager
    /// uses the role `client`).
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// `FEDN_AUTH_REFRESH_TOKEN_URI` and `FEDN_AUTH_REFRESH_TOKEN` from `env`: both, or
    /// neither (`Ok(None)`).
    pub fn from_env(env: &Environment) -> Result<Option<Self>, ConfigError> {
        match (
            env.get("FEDN_AUTH_REFRESH_TOKEN_URI"),
            env.get("FEDN_AUTH_REFRESH_TOKEN"),
        ) {
            (Some(uri), Some(token)) => Self::new(&uri, token).map(Some),
            (None, None) => Ok(None),
            (Some(_), None) => Err(ConfigError::new(
                ConfigErrorKind::Environment,
                "FEDN_AUTH_REFRESH_TOKEN",
                "is unset while FEDN_AUTH_REFRESH_TOKEN_URI is set; set both or neither",
            )),
            (None, Some(_)) => Err(ConfigError::new(
                ConfigErrorKind::Environment,
                "FEDN_AUTH_REFRESH_TOKEN_URI",
                "is unset while FEDN_AUTH_REFRESH_TOKEN is set; set both or neither",
            )),
        }
    }
}

impl Refresh for FednRefresh {
    fn refresh(&self, _now: u64) -> RefreshFuture<'_> {
        Box::pin(async move {
            let refresh_token = lock(&self.refresh_token).clone();
            let body = match &self.role {
                Some(role) => serde_json::json!({"refresh_token": refresh_token, "role": role}),
                None => serde_json::json!({"refresh": refresh_token}),
            };
            let body = serde_json::to_vec(&body).map_err(TokenError::unavailable)?;
            let (status, answer) = post(&self.url, "application/json", body, None).await?;
            let (refreshed, rotated) = read_answer(status, &answer, TokenError::refresh_rejected)?;
            if let Some(rotated) = rotated {
                *lock(&self.refresh_token) = rotated;
            }
            Ok(refreshed)
        })
    }
}

/// `application/x-www-form-urlencoded` escapes (RFC 6749 appendix B).
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'*');

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, FORM),
                utf8_percent_encode(v, FORM)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

enum Grant {
    RefreshToken(Mutex<String>),
    ClientCredentials,
}

/// OAuth2 grants against a token endpoint (RFC 6749): `refresh_token` (section 6) and
/// `client_credentials` (section 4.4).
///
/// The request is a form POST; a client secret goes in HTTP Basic (section 2.3.1), or in
/// the form with [`secret_in_body`](Self::secret_in_body); a public client sends its
/// `client_id` in the form. The answer's `access_token`, `expires_in` and a rotated
/// `refresh_token` are used. 400 or 401 (`invalid_grant`, `invalid_client`) is
/// [`Rejected`](TokenErrorKind::Rejected). Wrap it in [`Refreshing`](super::Refreshing).
pub struct OAuth2 {
    url: Url,
    grant: Grant,
    client_id: String,
    client_secret: Option<String>,
    secret_in_body: bool,
    scope: Option<String>,
}

impl fmt::Debug for OAuth2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2")
            .field("url", &self.url.as_str())
            .field(
                "grant",
                &match self.grant {
                    Grant::RefreshToken(_) => "refresh_token",
                    Grant::ClientCredentials => "client_credentials",
                },
            )
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("scope", &self.scope)
            .finish()
    }
}

impl OAuth2 {
    /// The `refresh_token` grant at `token_endpoint` (https, or http for loopback hosts).
    pub fn refresh_token(
        token_endpoint: &str,
        client_id: impl Into<String>,
        refresh_token: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let url = parse_url(
            ConfigErrorKind::Other,
            "token_endpoint",
            token_endpoint,
            false,
            "the refresh token",
        )?;
        Ok(Self {
            url,
            grant: Grant::RefreshToken(Mutex::new(refresh_token.into())),
            client_id: client_id.into(),
            client_secret: None,
            secret_in_body: false,
            scope: None,
        })
    }

    /// The `client_credentials` grant at `token_endpoint` (https, or http for loopback).
    pub fn client_credentials(
        token_endpoint: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let url = parse_url(
            ConfigErrorKind::Other,
            "token_endpoint",
            token_endpoint,
            false,
            "the client secret",
        )?;
        Ok(Self {
            url,
            grant: Grant::ClientCredentials,
            client_id: client_id.into(),
            client_secret: Some(client_secret.into()),
            secret_in_body: false,
            scope: None,
        })
    }

    /// The client secret of a confidential client (for the `refresh_token` grant).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// Sends the client secret in the form (`client_secret_post`) instead of HTTP Basic.
    pub fn secret_in_body(mut self) -> Self {
        self.secret_in_body = true;
        self
    }

    /// The `scope` to ask for.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }
}

fn credentials_rejected(status: u16) -> TokenError {
    TokenError::new(
        TokenErrorKind::Rejected,
        format!(
            "client credentials refused by the token endpoint ({status}); check the client id and secret"
        ),
    )
}

impl Refresh for OAuth2 {
    fn refresh(&self, _now: u64) -> RefreshFuture<'_> {
        Box::pin(async move {
            let refresh_token = match &self.grant {
                Grant::RefreshToken(t) => Some(lock(t).clone()),
                Grant::ClientCredentials => None,
            };
            let mut pairs: Vec<(&str, &str)> = Vec::new();
            match &refresh_token {
                Some(t) => {
                    pairs.push(("grant_type", "refresh_token"));
                    pairs.push(("refresh_token", t));
                }
                None => pairs.push(("grant_type", "client_credentials")),
            }
            if let Some(scope) = &self.scope {
                pairs.push(("scope", scope));
            }
            let mut basic = None;
            match &self.client_secret {
                Some(secret) if !self.secret_in_body => {
                    let pair = format!(
                        "{}:{}",
                        utf8_percent_encode(&self.client_id, FORM),
                        utf8_percent_encode(secret, FORM)
                    );
                    basic = Some(base64::engine::general_purpose::STANDARD.encode(pair));
                }
                Some(secret) => {
                    pairs.push(("client_id", &self.client_id));
                    pairs.push(("client_secret", secret));
                }
                None => pairs.push(("client_id", &self.client_id)),
            }
            let body = form(&pairs).into_bytes();
            let (status, answer) =
                post(&self.url, "application/x-www-form-urlencoded", body, basic).await?;
            let refused = match self.grant {
                Grant::RefreshToken(_) => TokenError::refresh_rejected,
                Grant::ClientCredentials => credentials_rejected,
            };
            let (refreshed, rotated) = read_answer(status, &answer, refused)?;
            if let (Grant::RefreshToken(t), Some(rotated)) = (&self.grant, rotated) {
                *lock(t) = rotated;
            }
            Ok(refreshed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = "the refresh token";
        assert!(
            parse_url(
                ConfigErrorKind::Other,
                "s",
                "https://id.example/token",
                false,
                t
            )
            .is_ok()
        );
        assert!(
            parse_url(
                ConfigErrorKind::Other,
                "s",
                "http://127.0.0.1:8092/api/auth/refresh",
                false,
                t
            )
            .is_ok()
        );
        assert!(parse_url(ConfigErrorKind::Other, "s", "http://[::1]/t", false, t).is_ok());
        let err = parse_url(
            ConfigErrorKind::Other,
            "s",
            "http://fedn.example/t",
            false,
            t,
        )
        .unwrap_err();
        assert!(err.to_string().contains("use https"), "{err}");
        assert!(
            parse_url(
                ConfigErrorKind::Other,
                "s",
                "http://fedn.example/t",
                true,
                t
            )
            .is_ok()
        );
        assert!(parse_url(ConfigErrorKind::Other, "s", "ftp://x/t", true, t).is_err());
        assert!(parse_url(ConfigErrorKind::Other, "s", "not a url", false, t).is_err());
    }

    /// The plain-http refusal names what each grant would send in clear.
    #[test]
    fn plain_http_names_what_each_grant_sends() {
        let err = OAuth2::client_credentials("http://id.example/token", "svc", "s3cret")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("would send the client secret in clear"),
            "{err}"
        );
        assert!(!err.contains("refresh token"), "{err}");
        let err = OAuth2::refresh_token("http://id.example/token", "app", "r1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("would send the refresh token in clear"),
            "{err}"
        );
        let err = FednRefresh::new("http://fedn.example/api/auth/refresh", "r1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("would send the refresh token in clear"),
            "{err}"
        );
    }

    #[test]
    fn forms() {
        assert_eq!(
            form(&[("a", "x y&z"), ("b", "-._*~")]),
            "a=x%20y%26z&b=-._*%7E"
        );
    }

    #[test]
    fn answers() {
        let (r, rot) = read_answer(
            200,
            br#"{"access":"a","refresh":"r2"}"#,
            TokenError::refresh_rejected,
        )
        .unwrap();
        assert_eq!(r.token.secret(), "a");
        assert_eq!(rot.as_deref(), Some("r2"));
        let (r, _) = read_answer(
            200,
            br#"{"access_token":"b","expires_in":60}"#,
            TokenError::refresh_rejected,
        )
        .unwrap();
        assert_eq!((r.token.secret(), r.expires_in), ("b", Some(60)));
        let e = read_answer(401, b"", TokenError::refresh_rejected).unwrap_err();
        assert_eq!(e.kind(), TokenErrorKind::Rejected);
        assert!(
            e.to_string()
                .starts_with("refresh token invalid or expired, log in again")
        );
        assert_eq!(
            read_answer(400, b"", TokenError::refresh_rejected)
                .unwrap_err()
                .kind(),
            TokenErrorKind::Rejected
        );
        assert_eq!(
            read_answer(500, b"", TokenError::refresh_rejected)
                .unwrap_err()
                .kind(),
            TokenErrorKind::Unavailable
        );
        assert_eq!(
            read_answer(200, b"{}", TokenError::refresh_rejected)
                .unwrap_err()
                .kind(),
            TokenErrorKind::Unavailable
        );
    }
}
