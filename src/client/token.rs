//! The bearer credential and how found values become one.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A bearer token to send: the secret and, when known, when it expires.
///
/// `Debug` prints `<redacted>` for the secret; nothing in this module logs or displays it.
/// A token that is a JWT carries its `exp` claim as [`expires_at`](Self::expires_at),
/// read without verifying the signature (the client only uses it to refresh in time;
/// the server verifies).
///
/// ```
/// use portcullis::client::Token;
///
/// // header {"alg":"none"}, claims {"exp":1700000000}: only the claims are read.
/// let jwt = "eyJhbGciOiJub25lIn0.eyJleHAiOjE3MDAwMDAwMDB9.c2ln";
/// let token = Token::new(jwt);
/// assert_eq!(token.expires_at(), Some(1_700_000_000));
/// assert_eq!(token.secret(), jwt);
/// assert!(!format!("{token:?}").contains("eyJ"));
/// assert_eq!(Token::new("opaque-api-key").expires_at(), None);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    secret: Arc<str>,
    expires_at: Option<u64>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Token {
    /// A token with this secret; its expiry is the `exp` claim when the secret is a JWT.
    pub fn new(secret: impl Into<String>) -> Self {
        let secret: String = secret.into();
        let expires_at = jwt_exp(&secret);
        Self {
            secret: secret.into(),
            expires_at,
        }
    }

    /// Sets when the token expires (seconds since the Unix epoch), or that it is not known.
    pub fn with_expires_at(mut self, expires_at: Option<u64>) -> Self {
        self.expires_at = expires_at;
        self
    }

    /// The secret, to put in a header. Keep it out of logs.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// When the token expires, in seconds since the Unix epoch, when known.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// Whether the token can still be sent at `now`: its expiry is unknown or later.
    pub(crate) fn usable_at(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|exp| now < exp)
    }
}

/// The `exp` claim of a JWT, read without checking anything else.
fn jwt_exp(secret: &str) -> Option<u64> {
    let mut parts = secret.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    #[derive(serde::Deserialize)]
    struct Exp {
        exp: Option<serde_json::Number>,
    }
    let exp = serde_json::from_slice::<Exp>(&bytes).ok()?.exp?;
    exp.as_u64()
        .or_else(|| exp.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// A value found in the environment, a file or an argument, as FEDn's clients read
/// `FEDN_AUTH_TOKEN`: surrounding whitespace dropped, and a leading scheme word
/// (`Bearer xyz`, `Token xyz`) dropped, so the layer can add its own scheme.
pub(crate) fn normalise(value: &str) -> Result<&str, &'static str> {
    let mut words = value.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (None, _, _) => Err("is empty"),
        (Some(token), None, _) => Ok(token),
        (Some(_scheme), Some(token), None) => Ok(token),
        _ => Err("holds more than a scheme and a token"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_fedn() {
        assert_eq!(normalise("xyz"), Ok("xyz"));
        assert_eq!(normalise("  Bearer xyz\n"), Ok("xyz"));
        assert_eq!(normalise("Token xyz"), Ok("xyz"));
        assert!(normalise("   ").is_err());
        assert!(normalise("a b c").is_err());
    }

    #[test]
    fn exp_only_from_well_formed_jwts() {
        let claims = URL_SAFE_NO_PAD.encode(br#"{"exp":12.5}"#);
        assert_eq!(jwt_exp(&format!("h.{claims}.s")), Some(12));
        assert_eq!(jwt_exp(&format!("h.{claims}.s.x")), None);
        assert_eq!(jwt_exp("not-a-jwt"), None);
        let neg = URL_SAFE_NO_PAD.encode(br#"{"exp":-1}"#);
        assert_eq!(jwt_exp(&format!("h.{neg}.s")), None);
        let text = URL_SAFE_NO_PAD.encode(br#"{"exp":"soon"}"#);
        assert_eq!(jwt_exp(&format!("h.{text}.s")), None);
    }
}
