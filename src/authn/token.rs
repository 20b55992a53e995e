//! Reading the token from a request.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::Authenticator;
use crate::error::{AuthError, Reason};

/// The bytes of token68 before its padding: `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" /
/// "/"` (RFC 9110 section 11.2).
const TOKEN68: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    t
};

impl Authenticator {
    /// Reads the token from the `Authorization` header without verifying it:
    /// `<scheme> 1*SP <token68>`, the scheme compared case-insensitively. No header, or
    /// another scheme, is missing credentials (401); the right scheme with an empty or
    /// malformed credential, two headers, or a token over the size cap is an invalid
    /// request (400).
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
            return Err(AuthError::wrong_scheme(self.inner.answers.scheme()));
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
        let token68 = token[..body_end].iter().all(|&b| TOKEN68[usize::from(b)]);
        if body_end == 0 || !token68 {
            return Err(AuthError::invalid_request(Reason::MalformedHeader));
        }
        // All bytes are ASCII by now.
        std::str::from_utf8(token).map_err(|_| AuthError::invalid_request(Reason::MalformedHeader))
    }
}
