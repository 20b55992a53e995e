//! The `htu` comparison (RFC 9449 section 4.3, point 9): the request's URI without query
//! and fragment, both sides normalised as RFC 3986 sections 6.2.2 and 6.2.3 say (scheme
//! and host in lower case, the default port dropped, an empty path as `/`, percent-encoded
//! unreserved characters decoded and the others' hex digits in upper case).
//!
//! The layer sees only the path of a request: the scheme and host the client used come
//! from the configured public URL, or from the proxy's headers (`Forwarded`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, `Host`) only when the operator trusts them.

use http::HeaderMap;

/// Where the external scheme and host of a request come from.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    /// The public URL's scheme, host (with a non-default port) and path prefix (no
    /// trailing slash), already normalised.
    pub(super) fixed: Option<(String, String, String)>,
    /// Read `Forwarded`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Host`.
    pub(super) trust_forwarded: bool,
}

/// Parses a public base URL: `http(s)://host[:port][/prefix]`, nothing else.
pub(super) fn parse_base(url: &str) -> Result<(String, String, String), String> {
    if url.contains(['?', '#']) {
        return Err(format!(
            "`{url}` has a query or fragment; give scheme, host and optional path prefix"
        ));
    }
    let normal = normalize(url).ok_or_else(|| {
        format!("`{url}` is not an absolute http(s) URL such as https://api.example.com")
    })?;
    let (scheme, rest) = normal.split_once("://").unwrap_or(("", ""));
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    Ok((
        scheme.to_owned(),
        host.to_owned(),
        path.trim_end_matches('/').to_owned(),
    ))
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-encoding normalisation of a path (RFC 3986 section 6.2.2.1 and 6.2.2.2).
fn normalize_path(path: &str, out: &mut String) {
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            let v = h * 16 + l;
            if unreserved(v) {
                out.push(v as char);
            } else {
                out.push('%');
                out.push(char::from(b[i + 1]).to_ascii_uppercase());
                out.push(char::from(b[i + 2]).to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        out.push(b[i] as char);
        i += 1;
    }
}

/// The normal form of an absolute http(s) URI without its query and fragment, or `None`
/// when it is not one (no scheme or host, user information, another scheme).
pub(super) fn normalize(uri: &str) -> Option<String> {
    let uri = uri.split('#').next().unwrap_or("");
    let uri = uri.split('?').next().unwrap_or("");
    if !uri.is_ascii() {
        return None;
    }
    let parsed: http::Uri = uri.parse().ok()?;
    let scheme = parsed.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = parsed.authority()?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    let mut out = String::with_capacity(uri.len());
    out.push_str(&scheme);
    out.push_str("://");
    out.push_str(&authority.host().to_ascii_lowercase());
    if let Some(port) = authority.port_u16()
        && port != default_port
    {
        out.push(':');
        out.push_str(&port.to_string());
    }
    let path = parsed.path();
    if path.is_empty() {
        out.push('/');
    } else {
        normalize_path(path, &mut out);
    }
    Some(out)
}

/// The last item of a header that lists values (`a, b`, over all its lines), trimmed:
/// the one the nearest proxy added, since proxies append and a client can send the header
/// itself; `None` if absent, not text, or empty.
fn last_item<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let v = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    let last = v.rsplit(',').next()?.trim();
    (!last.is_empty()).then_some(last)
}

/// `proto` and `host` of the last element of an RFC 7239 `Forwarded` header (the one the
/// nearest proxy appended).
fn forwarded(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let Some(last) = last_item(headers, "forwarded") else {
        return (None, None);
    };
    let (mut proto, mut host) = (None, None);
    for pair in last.split(';') {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_owned();
        match k.trim().to_ascii_lowercase().as_str() {
            "proto" => proto = Some(v),
            "host" => host = Some(v),
            _ => {}
        }
    }
    (proto, host)
}

impl Origin {
    /// The normal form of the URI the client addressed, without query: scheme and host
    /// from the configuration (or trusted proxy headers), then the prefix and `uri`'s path.
    pub(super) fn expected(&self, uri: &http::Uri, headers: &HeaderMap) -> Option<String> {
        let (mut scheme, mut host, prefix) = match &self.fixed {
            Some((s, h, p)) => (Some(s.clone()), Some(h.clone()), p.as_str()),
            None => (None, None, ""),
        };
        if self.trust_forwarded {
            let (f_proto, f_host) = forwarded(headers);
            let proto = f_proto.or_else(|| last_item(headers, "x-forwarded-proto").map(Into::into));
            let fwd_host = f_host
                .or_else(|| last_item(headers, "x-forwarded-host").map(Into::into))
                .or_else(|| last_item(headers, "host").map(Into::into))
                .or_else(|| uri.authority().map(|a| a.as_str().to_owned()));
            if proto.is_some() {
                scheme = proto;
            }
            if fwd_host.is_some() {
                host = fwd_host;
            }
            if scheme.is_none() {
                scheme = uri.scheme_str().map(Into::into);
            }
        }
        let (scheme, host) = (scheme?, host?);
        normalize(&format!("{scheme}://{host}{prefix}{}", uri.path()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        for (a, b) in [
            (
                "HTTPS://API.Example.COM:443/a/b?x=1#f",
                "https://api.example.com/a/b",
            ),
            ("http://h:80", "http://h/"),
            ("http://h:8080/%7euser/%2f%41", "http://h:8080/~user/%2FA"),
        ] {
            assert_eq!(normalize(a).as_deref(), Some(b), "{a}");
        }
        for bad in ["/relative", "ftp://h/x", "https://u:p@h/x", "https://h/é"] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn forwarded_headers_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        headers.insert("x-forwarded-host", "evil.example".parse().unwrap());
        let uri: http::Uri = "/r?q".parse().unwrap();
        let fixed = Origin {
            fixed: Some(parse_base("https://api.example.com/base/").unwrap()),
            trust_forwarded: false,
        };
        assert_eq!(
            fixed.expected(&uri, &headers).as_deref(),
            Some("https://api.example.com/base/r")
        );
        let trusted = Origin {
            fixed: None,
            trust_forwarded: true,
        };
        assert_eq!(
            trusted.expected(&uri, &headers).as_deref(),
            Some("https://evil.example/r")
        );
        // Proxies append: the last element is the nearest proxy's, whatever the client
        // put before it.
        headers.insert(
            "x-forwarded-host",
            "evil.example, api.example.com".parse().unwrap(),
        );
        assert_eq!(
            trusted.expected(&uri, &headers).as_deref(),
            Some("https://api.example.com/r")
        );
        headers.insert(
            "forwarded",
            r#"for=6.6.6.6;proto=https;host=evil.example, for=1.2.3.4;proto=http;host="Api.Example:8443""#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            trusted.expected(&uri, &headers).as_deref(),
            Some("http://api.example:8443/r")
        );
    }
}
