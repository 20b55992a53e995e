//! Reading the token from a request.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::Authenticator;
use crate::error::{AuthError, Reason};

/// The bytes of token68 before its padding: `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" /
/// "/"` (RFC 9110 section 11.2).
/// Whether `b` may appear in a token68 credential before its `=` padding: ALPHA, DIGIT
/// and `-._~+/` (RFC 9110 section 11.2). Branch-free, so a whole chunk is checked at once.
#[inline(always)]
fn token68_byte(b: u8) -> bool {
    // `| 0x20` folds upper case onto lower case; no other byte lands on `a..=z`.
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter
        | digit
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// Whether every byte is a token68 byte: 32 bytes a step without an early exit, which the
/// compiler turns into vector compares (a byte-at-a-time table walk cost about 2.6 % of a
/// loaded server's time on 700-byte tokens).
fn is_token68(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(32);
    for chunk in &mut chunks {
        if !chunk.iter().fold(true, |ok, &b| ok & token68_byte(b)) {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| token68_byte(b))
}

/// Where a token may come from, tried in the configured order
/// ([`AuthenticatorBuilder::token_sources`](crate::AuthenticatorBuilder::token_sources);
/// `PORTCULLIS_TOKEN_SOURCES=authorization,cookie:access_token,header:X-Amz-Security-Token,query:token`).
///
/// The first source that holds a credential is used; the others are not read. In each,
/// one credential only: two `Authorization` headers, two cookies of the name, two
/// headers of the name or two query parameters of the name are an invalid request (400).
/// Cookie, header and query values are the bare token (no scheme).
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use portcullis::{Algorithm, Authenticator, Signer, TokenSource};
///
/// let secret = "0123456789abcdef0123456789abcdef";
/// let auth = Authenticator::builder()
///     .hmac_secret(secret)
///     .token_sources([TokenSource::Authorization, TokenSource::cookie("access_token")])
///     .build()?;
/// let token = Signer::hmac(Algorithm::HS256, secret)?
///     .sign(&serde_json::json!({"sub": "ada", "exp": 4_000_000_000u64}))?;
/// let mut headers = HeaderMap::new();
/// headers.insert("cookie", HeaderValue::from_str(&format!("theme=dark; access_token={token}"))?);
/// assert_eq!(auth.authenticate(&headers)?.subject(), Some("ada"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: <scheme> <token>` (the default, and FEDn's). gRPC metadata
    /// `authorization` is the same entry.
    Authorization,
    /// A cookie of this name (`cookie:NAME`), as browsers send it.
    Cookie(String),
    /// A header of this name holding the bare token (`header:NAME`), such as the S3-style
    /// `X-Amz-Security-Token`.
    Header(String),
    /// Risk: URLs end up in access logs, browser history and `Referer` headers, so a
    /// token in the query string leaks where a header does not; use it only where a client
    /// cannot send a header (browser WebSockets), with short-lived tokens. A query
    /// parameter of this name (`query:NAME`). Off unless configured.
    Query(String),
}

impl TokenSource {
    /// A cookie source.
    pub fn cookie(name: impl Into<String>) -> Self {
        Self::Cookie(name.into())
    }

    /// A custom header source.
    pub fn header(name: impl Into<String>) -> Self {
        Self::Header(name.into())
    }

    /// A query parameter source; read its risk on [`TokenSource::Query`] first.
    pub fn query(name: impl Into<String>) -> Self {
        Self::Query(name.into())
    }

    /// Parses one entry of `PORTCULLIS_TOKEN_SOURCES`: `authorization`, `cookie:NAME`,
    /// `header:NAME` or `query:NAME`.
    pub(crate) fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        match entry.split_once(':') {
            None if entry.eq_ignore_ascii_case("authorization") => Ok(Self::Authorization),
            Some((kind, name)) if !name.trim().is_empty() => match kind.trim() {
                "cookie" => Ok(Self::Cookie(name.trim().to_owned())),
                "header" => Ok(Self::Header(name.trim().to_owned())),
                "query" => Ok(Self::Query(name.trim().to_owned())),
                _ => Err(format!(
                    "`{entry}`: use authorization, cookie:NAME, header:NAME or query:NAME"
                )),
            },
            _ => Err(format!(
                "`{entry}`: use authorization, cookie:NAME, header:NAME or query:NAME"
            )),
        }
    }

    /// Checks the name: an HTTP token for cookies and headers (and a valid header name),
    /// no `&`, `=` or `%` for query parameters.
    pub(crate) fn check(&self) -> Result<(), String> {
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        match self {
            Self::Authorization => Ok(()),
            Self::Cookie(n) if token(n) => Ok(()),
            Self::Header(n) if http::HeaderName::from_bytes(n.as_bytes()).is_ok() => {
                if n.eq_ignore_ascii_case("authorization") || n.eq_ignore_ascii_case("cookie") {
                    Err(format!(
                        "header `{n}` is read by its own source; use authorization or cookie:NAME"
                    ))
                } else {
                    Ok(())
                }
            }
            Self::Query(n) if !n.is_empty() && !n.contains(['&', '=', '%', '#']) => Ok(()),
            other => Err(format!("{other:?}: not a valid name")),
        }
    }
}

/// Whether a bare token (from a cookie, header or query) has only the bytes of a compact
/// JWS.
fn bare_token(value: &[u8]) -> bool {
    !value.is_empty()
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Authenticator {
    /// Whether the request carries a credential in any configured source.
    pub(crate) fn has_credential(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        self.inner.sources.iter().any(|s| match s {
            TokenSource::Authorization => headers.contains_key(AUTHORIZATION),
            TokenSource::Cookie(name) => cookie(headers, name).is_some(),
            TokenSource::Header(name) => headers.contains_key(name.as_str()),
            TokenSource::Query(name) => query.is_some_and(|q| param(q, name).is_some()),
        })
    }

    /// Reads the token from the configured sources in order (see [`TokenSource`]),
    /// without verifying it. `query` is the request's query string, for query sources.
    pub fn token_from_request<'r>(
        &self,
        headers: &'r HeaderMap,
        query: Option<&'r str>,
    ) -> Result<&'r str, AuthError> {
        self.token_from_sources(&self.inner.sources, headers, query)
    }

    /// The credential of the configured sources, with every check but its format's
    /// (one credential, its scheme, its size): the layer asks the verified-token cache with
    /// it first, and checks the format only on a miss, since a cached token passed it.
    pub(crate) fn credential_from_request<'r>(
        &self,
        headers: &'r HeaderMap,
        query: Option<&'r str>,
    ) -> Result<Credential<'r>, AuthError> {
        self.credential_from_sources(&self.inner.sources, headers, query)
    }

    /// Reads the token like [`token_from_request`](Self::token_from_request), but from
    /// `sources` instead of the configured ones: for an endpoint that takes its token from
    /// elsewhere than the rest of the service (a web client that sends an `access_token`
    /// cookie), with the same keys, checks and answers. The first source that holds a
    /// credential is used. An empty list finds nothing (missing credentials); a source
    /// whose name the builder would refuse simply never matches.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue};
    /// use portcullis::{AuthErrorKind, Authenticator, TokenSource};
    ///
    /// let auth = Authenticator::builder().hmac_secret("0123456789abcdef0123456789abcdef").build()?;
    /// let mut headers = HeaderMap::new();
    /// headers.insert("cookie", HeaderValue::from_static("access_token=a.b.c"));
    /// // The configured source (Authorization) finds nothing; the cookie source does.
    /// let err = auth.token_from_request(&headers, None).unwrap_err();
    /// assert_eq!(err.kind(), AuthErrorKind::MissingCredentials);
    /// let sources = [TokenSource::cookie("access_token"), TokenSource::Authorization];
    /// assert_eq!(auth.token_from_sources(&sources, &headers, None)?, "a.b.c");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn token_from_sources<'r>(
        &self,
        sources: &[TokenSource],
        headers: &'r HeaderMap,
        query: Option<&'r str>,
    ) -> Result<&'r str, AuthError> {
        self.credential_from_sources(sources, headers, query)?
            .checked()
    }

    /// [`token_from_sources`](Self::token_from_sources) without the format check.
    fn credential_from_sources<'r>(
        &self,
        sources: &[TokenSource],
        headers: &'r HeaderMap,
        query: Option<&'r str>,
    ) -> Result<Credential<'r>, AuthError> {
        // Only the default source: the one header, as before.
        if let [TokenSource::Authorization] = sources {
            return self.credential_from_headers(headers);
        }
        let mut first_miss = None;
        for source in sources {
            let found = match source {
                TokenSource::Authorization => match self.credential_from_headers(headers) {
                    Err(e) if e.kind() == crate::AuthErrorKind::MissingCredentials => {
                        first_miss.get_or_insert(e);
                        continue;
                    }
                    other => return other,
                },
                TokenSource::Cookie(name) => match cookie(headers, name) {
                    None => continue,
                    Some(Err(())) => {
                        return Err(AuthError::invalid_request(Reason::DuplicateHeader));
                    }
                    Some(Ok(v)) => v,
                },
                TokenSource::Header(name) => {
                    let mut values = headers.get_all(name.as_str()).iter();
                    let Some(v) = values.next() else { continue };
                    if values.next().is_some() {
                        return Err(AuthError::invalid_request(Reason::DuplicateHeader));
                    }
                    v.as_bytes()
                }
                TokenSource::Query(name) => match query.and_then(|q| param(q, name)) {
                    None => continue,
                    Some(Err(())) => {
                        return Err(AuthError::invalid_request(Reason::DuplicateHeader));
                    }
                    Some(Ok(v)) => v.as_bytes(),
                },
            };
            if found.is_empty() {
                return Err(AuthError::invalid_request(Reason::EmptyCredential));
            }
            if found.len() > self.inner.max_token_bytes {
                return Err(AuthError::invalid_request(Reason::TooLarge));
            }
            return Ok(Credential {
                bytes: found,
                format: Format::Bare,
            });
        }
        Err(first_miss.unwrap_or_else(AuthError::missing))
    }

    /// Reads the token from the `Authorization` header alone, without verifying it:
    /// `<scheme> 1*SP <token68>`, the scheme compared case-insensitively. No header, or
    /// another scheme, is missing credentials (401); the right scheme with an empty or
    /// malformed credential, two headers, or a token over the size cap is an invalid
    /// request (400).
    pub fn token_from_headers<'h>(&self, headers: &'h HeaderMap) -> Result<&'h str, AuthError> {
        self.credential_from_headers(headers)?.checked()
    }

    fn credential_from_headers<'h>(
        &self,
        headers: &'h HeaderMap,
    ) -> Result<Credential<'h>, AuthError> {
        // A map whose every name has one value (`len` counts values, `keys_len` names)
        // holds no second `Authorization`. A few such headers are read in turn, which
        // costs less than hashing the name; more, or repeated names, are looked up.
        let value = if headers.len() == headers.keys_len() && headers.len() <= 8 {
            headers
                .iter()
                .find_map(|(name, value)| (name == AUTHORIZATION).then_some(value))
        } else {
            let mut values = headers.get_all(AUTHORIZATION).iter();
            let value = values.next();
            if values.next().is_some() {
                return Err(AuthError::invalid_request(Reason::DuplicateHeader));
            }
            value
        };
        let value = value.ok_or_else(AuthError::missing)?;
        self.credential_from_value(value.as_bytes())
    }

    /// Parses one credential value, as found in an `Authorization` header or gRPC metadata.
    pub fn token_from_value<'v>(&self, value: &'v [u8]) -> Result<&'v str, AuthError> {
        self.credential_from_value(value)?.checked()
    }

    /// [`token_from_value`](Self::token_from_value) without the token68 check.
    pub(crate) fn credential_from_value<'v>(
        &self,
        value: &'v [u8],
    ) -> Result<Credential<'v>, AuthError> {
        // Longest scheme plus separator plus the cap: refuse before looking further.
        if value.len() > self.inner.max_token_bytes.saturating_add(64) {
            return Err(AuthError::invalid_request(Reason::TooLarge));
        }
        // The common shape first: the one scheme, one space, the token. The general
        // reading below gives the same answer for it.
        if let Some(word) = &self.inner.scheme_word {
            let n = word.len;
            if let Some((&b' ', token)) = value.get(n..).and_then(<[u8]>::split_first)
                && token.first().is_some_and(|&b| b != b' ' && b != b'\t')
                && token.len() <= self.inner.max_token_bytes
                && word.matches(value)
            {
                return Ok(Credential {
                    bytes: token,
                    format: Format::Token68,
                });
            }
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
        Ok(Credential {
            bytes: token,
            format: Format::Token68,
        })
    }
}

/// A scheme of at most 8 bytes held as one little-endian word, so that the common shape
/// (`<scheme> <token>`) is told in one compare: ASCII letters match in either case, every
/// other byte exactly, as `eq_ignore_ascii_case` would.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SchemeWord {
    len: usize,
    /// The scheme in lower case, zero past its end.
    lower: u64,
    /// 0x20 on each letter's byte: OR-ing it folds an upper-case letter to lower case.
    fold: u64,
    /// 0xff on each of the scheme's bytes.
    keep: u64,
}

impl SchemeWord {
    pub(crate) fn new(scheme: &str) -> Option<Self> {
        if scheme.is_empty() || scheme.len() > 8 {
            return None;
        }
        let (mut lower, mut fold, mut keep) = ([0u8; 8], [0u8; 8], [0u8; 8]);
        for (i, b) in scheme.bytes().enumerate() {
            lower[i] = b.to_ascii_lowercase();
            fold[i] = if b.is_ascii_alphabetic() { 0x20 } else { 0 };
            keep[i] = 0xff;
        }
        Some(Self {
            len: scheme.len(),
            lower: u64::from_le_bytes(lower),
            fold: u64::from_le_bytes(fold),
            keep: u64::from_le_bytes(keep),
        })
    }

    /// Whether `value` starts with the scheme, in any case. A value shorter than 8
    /// bytes is read byte by byte.
    #[inline]
    fn matches(&self, value: &[u8]) -> bool {
        match value.first_chunk::<8>() {
            Some(w) => (u64::from_le_bytes(*w) | self.fold) & self.keep == self.lower,
            None => {
                let lower = self.lower.to_le_bytes();
                value.len() >= self.len
                    && value[..self.len]
                        .iter()
                        .zip(lower)
                        .all(|(&b, l)| b.to_ascii_lowercase() == l)
            }
        }
    }
}

/// Which format a credential must have, by where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The credential of an `Authorization` header (or gRPC metadata): token68.
    Token68,
    /// A cookie, header or query value: letters, digits, `-`, `_` and `.` only.
    Bare,
    /// Handed over as text (`verify`): only the JWS checks apply.
    Text,
}

/// A credential found in a request, checked but for its format.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Credential<'r> {
    pub(crate) bytes: &'r [u8],
    pub(crate) format: Format,
}

impl<'r> Credential<'r> {
    /// A token handed over as text.
    pub(crate) fn text(token: &'r str) -> Self {
        Self {
            bytes: token.as_bytes(),
            format: Format::Text,
        }
    }

    /// The credential as a token, once its format is checked.
    pub(crate) fn checked(self) -> Result<&'r str, AuthError> {
        let ok = match self.format {
            Format::Token68 => {
                // token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
                let body_end = self
                    .bytes
                    .iter()
                    .rposition(|&b| b != b'=')
                    .map_or(0, |i| i + 1);
                body_end != 0 && is_token68(&self.bytes[..body_end])
            }
            Format::Bare => bare_token(self.bytes),
            Format::Text => true,
        };
        if !ok {
            return Err(AuthError::invalid_request(Reason::MalformedHeader));
        }
        // ASCII by now, or text already.
        std::str::from_utf8(self.bytes)
            .map_err(|_| AuthError::invalid_request(Reason::MalformedHeader))
    }
}

/// The value of the cookie `name` in the request's `Cookie` headers: `None` when absent,
/// `Err` when sent twice.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<Result<&'h [u8], ()>> {
    let mut found = None;
    for value in headers.get_all(http::header::COOKIE) {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if &pair[..eq] != name.as_bytes() {
                continue;
            }
            if found.is_some() {
                return Some(Err(()));
            }
            let mut v = &pair[eq + 1..];
            if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
                v = &v[1..v.len() - 1];
            }
            found = Some(v);
        }
    }
    found.map(Ok)
}

/// The value of the query parameter `name`: `None` when absent, `Err` when sent twice.
fn param<'q>(query: &'q str, name: &str) -> Option<Result<&'q str, ()>> {
    let mut found = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != name {
            continue;
        }
        if found.is_some() {
            return Some(Err(()));
        }
        found = Some(v);
    }
    found.map(Ok)
}

#[cfg(test)]
mod tests {
    use super::{SchemeWord, is_token68, token68_byte};
    use crate::{AuthErrorKind, Authenticator};

    #[test]
    fn a_scheme_word_matches_as_eq_ignore_ascii_case_does() {
        for scheme in ["Bearer", "Token", "DPoP", "x-1.Y_z", "A", "12345678"] {
            let word = SchemeWord::new(scheme).unwrap();
            // Every byte at every place of the scheme, in values shorter and longer than 8.
            for tail in ["", " t", " a.b.c-long-token"] {
                for at in 0..scheme.len() {
                    for b in 0..=255u8 {
                        let mut v = scheme.as_bytes().to_vec();
                        v[at] = b;
                        v.extend_from_slice(tail.as_bytes());
                        let want = v[..scheme.len()].eq_ignore_ascii_case(scheme.as_bytes());
                        assert_eq!(word.matches(&v), want, "{scheme:?} {v:?}");
                    }
                }
            }
            assert!(!word.matches(&scheme.as_bytes()[..scheme.len() - 1]));
        }
        assert!(SchemeWord::new("TooLongScheme").is_none());
    }

    #[test]
    fn the_common_shape_and_the_general_reading_agree() {
        let auth = Authenticator::builder()
            .hmac_secret("0123456789abcdef0123456789abcdef")
            .max_token_bytes(64)
            .build()
            .unwrap();
        let long = format!("Bearer {}", "a".repeat(65));
        let edge = format!("Bearer {}", "a".repeat(64));
        let cases: &[(&str, Result<&str, AuthErrorKind>)] = &[
            ("Bearer abc", Ok("abc")),
            ("bearer abc", Ok("abc")),
            ("BEARER abc", Ok("abc")),
            ("Bearer   abc", Ok("abc")),
            ("Bearer \tabc", Ok("\tabc")),
            ("Bearer\tabc", Err(AuthErrorKind::InvalidRequest)),
            ("Bearer  \tabc", Ok("\tabc")),
            ("Bearer", Err(AuthErrorKind::InvalidRequest)),
            ("Bearer ", Err(AuthErrorKind::InvalidRequest)),
            ("Bearer    ", Err(AuthErrorKind::InvalidRequest)),
            ("Bearerx abc", Err(AuthErrorKind::MissingCredentials)),
            ("Token abc", Err(AuthErrorKind::MissingCredentials)),
            ("Beare abc", Err(AuthErrorKind::MissingCredentials)),
            (long.as_str(), Err(AuthErrorKind::InvalidRequest)),
            (edge.as_str(), Ok(&edge[7..])),
        ];
        for (value, want) in cases {
            let got = auth
                .credential_from_value(value.as_bytes())
                .map(|c| std::str::from_utf8(c.bytes).unwrap().to_owned())
                .map_err(|e| e.kind());
            assert_eq!(got, want.map(str::to_owned), "{value:?}");
        }
        // A wrong scheme is its own answer row, naming the one expected.
        let wrong = auth.credential_from_value(b"Token abc").unwrap_err();
        assert!(
            wrong.message().contains("expected Bearer"),
            "{}",
            wrong.message()
        );
        let many = Authenticator::builder()
            .hmac_secret("0123456789abcdef0123456789abcdef")
            .schemes(["Bearer", "Token"])
            .build()
            .unwrap();
        for value in ["Token abc", "bearer abc"] {
            let c = many.credential_from_value(value.as_bytes()).unwrap();
            assert_eq!(c.bytes, b"abc");
        }
    }

    #[test]
    fn a_second_authorization_fails_whatever_other_headers_repeat() {
        use http::HeaderMap;
        use http::header::{ACCEPT, AUTHORIZATION};
        let auth = Authenticator::builder()
            .hmac_secret("0123456789abcdef0123456789abcdef")
            .build()
            .unwrap();
        let read = |pairs: &[(http::HeaderName, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(name, value.parse().unwrap());
            }
            auth.credential_from_headers(&headers)
                .map(|c| c.bytes.to_vec())
                .map_err(|e| e.kind())
        };
        let one = (AUTHORIZATION, "Bearer abc");
        let accept = (ACCEPT, "text/plain");
        assert_eq!(read(std::slice::from_ref(&one)), Ok(b"abc".to_vec()));
        assert_eq!(
            read(&[accept.clone(), one.clone(), accept.clone()]),
            Ok(b"abc".to_vec())
        );
        for pairs in [
            vec![one.clone(), one.clone()],
            vec![
                accept.clone(),
                accept.clone(),
                one.clone(),
                (AUTHORIZATION, "Basic x"),
            ],
        ] {
            assert_eq!(
                read(&pairs),
                Err(AuthErrorKind::InvalidRequest),
                "{pairs:?}"
            );
        }
        // More headers than are read in turn: the same answers.
        let many: Vec<(http::HeaderName, &'static str)> = (0..12)
            .map(|i| {
                (
                    http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
                    "v",
                )
            })
            .collect();
        let with = |extra: &[(http::HeaderName, &'static str)]| [many.as_slice(), extra].concat();
        assert_eq!(read(&with(std::slice::from_ref(&one))), Ok(b"abc".to_vec()));
        assert_eq!(
            read(&with(&[one.clone(), one.clone()])),
            Err(AuthErrorKind::InvalidRequest)
        );
        assert_eq!(read(&many), Err(AuthErrorKind::MissingCredentials));
        assert_eq!(read(&[accept]), Err(AuthErrorKind::MissingCredentials));
    }

    #[test]
    fn token68_bytes_are_exactly_alpha_digit_and_six_marks() {
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(token68_byte(b), want, "byte {b:#04x}");
        }
    }

    #[test]
    fn one_bad_byte_anywhere_fails_the_whole_value() {
        let good = b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl-_~+/".repeat(5);
        assert!(is_token68(&good));
        assert!(is_token68(b""));
        for at in 0..good.len() {
            for bad in [b' ', b'=', b'%', b'\0', 0x80, 0xff, b'@', b'[', b'`', b'{'] {
                let mut v = good.clone();
                v[at] = bad;
                assert!(!is_token68(&v), "byte {bad:#04x} at {at}");
            }
        }
    }
}
