//! Path patterns, prefixes, gRPC method patterns and the raw path's segments.

use http::Method;
use percent_encoding::percent_decode_str;

use crate::error::{AuthError, Reason};

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    /// Matches exactly this raw segment.
    Literal(String),
    /// `{name}` or `*`: any one non-empty segment.
    One,
    /// The rest of the path: `**` matches zero or more segments, `{*rest}` one or more
    /// (as in axum, `/files/{*rest}` does not match `/files`).
    Tail { at_least_one: bool },
}

/// A parsed path pattern such as `/api/v1/clients/{id}` or `/files/{*rest}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pattern {
    segs: Vec<Seg>,
    source: String,
    /// The `{name}` parameters and their segment positions.
    params: Vec<(String, usize)>,
}

impl Pattern {
    pub(super) fn parse(source: &str) -> Result<Self, String> {
        let body = source
            .strip_prefix('/')
            .ok_or_else(|| format!("path pattern `{source}` must start with `/`"))?;
        let mut segs = Vec::new();
        let mut params = Vec::new();
        let parts: Vec<&str> = if body.is_empty() {
            Vec::new()
        } else {
            body.split('/').collect()
        };
        for (i, part) in parts.iter().enumerate() {
            let seg = match *part {
                "*" => Seg::One,
                "**" => Seg::Tail {
                    at_least_one: false,
                },
                p if p.starts_with("{*") && p.ends_with('}') => Seg::Tail { at_least_one: true },
                p if p.starts_with('{') && p.ends_with('}') && p.len() > 2 => {
                    params.push((p[1..p.len() - 1].to_owned(), i));
                    Seg::One
                }
                p if p.contains(['{', '}', '*']) => {
                    return Err(format!(
                        "path pattern `{source}`: segment `{p}` mixes text with `{{`, `}}` or `*`; use a whole segment"
                    ));
                }
                "." | ".." => return Err(format!("path pattern `{source}` has a dot segment")),
                p => Seg::Literal(p.to_owned()),
            };
            if matches!(seg, Seg::Tail { .. }) && i + 1 != parts.len() {
                return Err(format!(
                    "path pattern `{source}`: `**` or `{{*rest}}` must be the last segment"
                ));
            }
            segs.push(seg);
        }
        Ok(Self {
            segs,
            source: source.into(),
            params,
        })
    }

    pub(super) fn source(&self) -> &str {
        &self.source
    }

    /// Whether the pattern matches the path `segs` (as the trie would).
    pub(super) fn matches(&self, mut segs: Segs<'_>) -> bool {
        for seg in &self.segs {
            match seg {
                Seg::Literal(l) => match segs.split_first() {
                    Some((s, rest)) if s == l => segs = rest,
                    _ => return false,
                },
                Seg::One => match segs.split_first() {
                    Some((s, rest)) if !s.is_empty() => segs = rest,
                    _ => return false,
                },
                Seg::Tail { at_least_one } => {
                    return !*at_least_one
                        || segs.split_first().is_some_and(|(s, _)| !s.is_empty());
                }
            }
        }
        segs.split_first().is_none()
    }

    /// The segment positions of the parameter `{name}` (more than one when the pattern
    /// names it twice).
    pub(super) fn param_index<'a>(&'a self, name: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.params
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|&(_, at)| at)
    }

    pub(super) fn segs(&self) -> &[Seg] {
        &self.segs
    }

    /// The literal segments before the first `{name}`, `*` or tail: every path the
    /// pattern matches starts with them.
    pub(super) fn leading_literals(&self) -> impl Iterator<Item = &str> {
        self.segs.iter().map_while(|s| match s {
            Seg::Literal(l) => Some(l.as_str()),
            _ => None,
        })
    }
}

/// The segments of a raw path, split lazily at `/` without allocating: `None` is the
/// root `/` (no segments), `Some("a/b")` the segments `a` and `b`, `Some("")` one empty
/// segment (the tail of `/a/`). `%2F` stays inside its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Segs<'a>(Option<&'a str>);

impl<'a> Segs<'a> {
    /// The segments of `path`, which starts with `/` (checked by [`check_path`]).
    pub(super) fn of(path: &'a str) -> Self {
        match path.strip_prefix('/') {
            None | Some("") => Self(None),
            Some(body) => Self(Some(body)),
        }
    }

    /// The path again, `/` and the segments.
    pub(super) fn as_path(self) -> String {
        let body = self.0.unwrap_or("");
        let mut path = String::with_capacity(body.len() + 1);
        path.push('/');
        path.push_str(body);
        path
    }

    /// The first segment and the rest.
    #[inline]
    pub(super) fn split_first(self) -> Option<(&'a str, Self)> {
        let body = self.0?;
        // Segments are short: a plain byte loop beats a general substring search.
        Some(match body.bytes().position(|b| b == b'/') {
            Some(at) => (&body[..at], Self(Some(&body[at + 1..]))),
            None => (body, Self(None)),
        })
    }

    /// The segments after `prefix`, when the path starts with all of them.
    pub(super) fn strip<'p>(self, prefix: impl IntoIterator<Item = &'p str>) -> Option<Self> {
        let mut rest = self;
        for want in prefix {
            let (seg, next) = rest.split_first()?;
            if seg != want {
                return None;
            }
            rest = next;
        }
        Some(rest)
    }
}

impl<'a> Iterator for Segs<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (seg, rest) = self.split_first()?;
        *self = rest;
        Some(seg)
    }
}

/// Checks a raw path (no query) without allocating: it starts with `/`, has at most
/// [`MAX_SEGMENTS`] segments, and no `.` or `..` segment, also percent-encoded or before
/// a `;` path parameter.
pub(super) fn check_path(path: &str) -> Result<(), AuthError> {
    if !path.starts_with('/') {
        return Err(AuthError::invalid_request(Reason::BadPath));
    }
    let bytes = path.as_bytes();
    let encoded = bytes.contains(&b'%');
    // Most paths: no dot and no escape, so no dot segment; and no more segments than bytes.
    if !encoded && bytes.len() <= MAX_SEGMENTS && !bytes.contains(&b'.') {
        return Ok(());
    }
    for (i, seg) in Segs::of(path).enumerate() {
        if i == MAX_SEGMENTS {
            return Err(AuthError::invalid_request(Reason::BadPath));
        }
        // A raw dot segment before a `;` parameter starts with a dot; an encoded one holds
        // a `%`. One byte compared per segment, no second scan of the path.
        if seg == "." || seg == ".." || ((encoded || seg.starts_with('.')) && has_dot_segment(seg))
        {
            return Err(AuthError::invalid_request(Reason::DotSegment));
        }
    }
    Ok(())
}

/// Most path segments a request may have; more is an invalid request.
pub(crate) const MAX_SEGMENTS: usize = 256;

/// Whether a raw segment is `.` or `..`, also percent-encoded, or holds one once an
/// encoded slash or backslash is decoded (`..%2F..`): a server behind us that decodes and
/// normalises would otherwise walk out of the matched route. A dot segment followed by a
/// path parameter (`..;x`, `.;`, `%2e%2e;x`) counts too: Tomcat, Jetty and Spring drop the
/// parameter and then walk up. Never allocates.
pub(crate) fn has_dot_segment(seg: &str) -> bool {
    if seg == "." || seg == ".." {
        return true;
    }
    if !seg.contains(['%', ';']) {
        return false;
    }
    // Pieces between decoded separators: a piece of one or two dots, up to a `;` (a path
    // parameter, raw or encoded), is a dot segment.
    let dot = |dots: usize, only_dots: bool| only_dots && (1..=2).contains(&dots);
    let mut dots = 0usize;
    let mut only_dots = true;
    let mut in_param = false;
    for b in percent_decode_str(seg) {
        match b {
            b'/' | b'\\' => {
                if !in_param && dot(dots, only_dots) {
                    return true;
                }
                dots = 0;
                only_dots = true;
                in_param = false;
            }
            _ if in_param => {}
            b';' => {
                if dot(dots, only_dots) {
                    return true;
                }
                in_param = true;
            }
            b'.' => dots += 1,
            _ => only_dots = false,
        }
    }
    !in_param && dot(dots, only_dots)
}

/// A public or URL prefix, matched on whole segments.
#[derive(Debug, Clone)]
pub(super) struct Prefix {
    segs: Vec<String>,
    source: std::sync::Arc<str>,
    /// A public prefix from the environment: it wins over rules it shadows (they are
    /// dropped with a warning) instead of failing the build.
    pub(super) overrides: bool,
}

impl Prefix {
    pub(super) fn parse(source: &str) -> Result<Self, String> {
        if !source.starts_with('/') {
            return Err(format!(
                "prefix `{source}` must start with `/`, like `/internal`"
            ));
        }
        let body = source.trim_end_matches('/');
        if body.is_empty() {
            return Err(format!(
                "prefix `{source}` would cover every route; name a path below `/`, like `/internal`"
            ));
        }
        let body = &body[1..];
        if body
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(format!("prefix `{source}` has an empty or dot segment"));
        }
        let segs = body.split('/').map(str::to_owned).collect();
        Ok(Self {
            segs,
            source: source.into(),
            overrides: false,
        })
    }

    pub(super) fn source(&self) -> &std::sync::Arc<str> {
        &self.source
    }

    pub(super) fn segs(&self) -> impl Iterator<Item = &str> + Clone {
        self.segs.iter().map(String::as_str)
    }

    /// Whether `path` (segments) is this prefix or lies below it.
    pub(super) fn covers<'p>(&self, path: impl IntoIterator<Item = &'p str>) -> bool {
        let mut path = path.into_iter();
        self.segs.iter().all(|s| path.next() == Some(s.as_str()))
    }
}

/// Checks a prefix as a public or URL prefix, for errors that name their setting.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), String> {
    Prefix::parse(prefix).map(|_| ())
}

/// A gRPC method pattern: `/pkg.Service/Method`, `/pkg.Service/*`, or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GrpcPattern {
    kind: GrpcKind,
    source: String,
}

/// What a gRPC method pattern covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum GrpcKind {
    /// `*`: every method.
    Any,
    /// `/pkg.Service/*`: the service name, `pkg.Service`.
    Service(String),
    /// `/pkg.Service/Method`: the full method name.
    Exact(String),
}

impl GrpcPattern {
    pub(super) fn parse(source: &str) -> Result<Self, String> {
        if source == "*" {
            return Ok(Self {
                kind: GrpcKind::Any,
                source: source.to_owned(),
            });
        }
        let (service, method) = split_grpc(source).ok_or_else(|| {
            format!("gRPC method pattern `{source}` must look like `/pkg.Service/Method`, `/pkg.Service/*` or `*`")
        })?;
        if service.contains('*') || (method != "*" && method.contains('*')) {
            return Err(format!(
                "gRPC method pattern `{source}`: `*` stands only for the whole method or the whole pattern"
            ));
        }
        let kind = if method == "*" {
            GrpcKind::Service(service.to_owned())
        } else {
            GrpcKind::Exact(source.to_owned())
        };
        Ok(Self {
            kind,
            source: source.to_owned(),
        })
    }

    /// `*`: every method.
    #[cfg(feature = "tonic")]
    pub(super) fn any() -> Self {
        Self {
            kind: GrpcKind::Any,
            source: "*".to_owned(),
        }
    }

    pub(super) fn source(&self) -> &str {
        &self.source
    }

    pub(super) fn kind(&self) -> &GrpcKind {
        &self.kind
    }
}

/// Splits `/pkg.Service/Method` into its two non-empty parts.
pub(super) fn split_grpc(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let ok = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '%']);
    (ok(service) && ok(method)).then_some((service, method))
}

/// An HTTP method list as rules write it: `*` for any, or capitalised names separated by
/// commas (`GET, POST`).
pub(super) fn parse_methods(methods: &str) -> Result<Option<Vec<Method>>, String> {
    let methods = methods.trim();
    if methods == "*" {
        return Ok(None);
    }
    let list = methods
        .split(',')
        .map(|m| {
            let m = m.trim();
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!(
                    "`{m}` is not an HTTP method; write it in capitals (GET, POST) or `*` for any"
                ));
            }
            Method::from_bytes(m.as_bytes()).map_err(|_| format!("`{m}` is not an HTTP method"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segs_split_lazily_like_split() {
        for path in ["/", "/a", "/a/", "/a/b", "//", "/a//b/", "/a%2Fb/c"] {
            let want: Vec<&str> = match &path[1..] {
                "" => Vec::new(),
                body => body.split('/').collect(),
            };
            assert_eq!(Segs::of(path).collect::<Vec<_>>(), want, "{path}");
        }
    }

    #[test]
    fn dot_segments_match_the_decoded_pieces() {
        let naive = |seg: &str| {
            let decoded = percent_decode_str(seg).collect::<Vec<u8>>();
            // A piece up to its first `;` (a path parameter) of one or two dots.
            let dot = |piece: &[u8]| {
                let head = piece.split(|&b| b == b';').next().unwrap_or_default();
                head == b"." || head == b".."
            };
            seg == "."
                || seg == ".."
                || seg.contains(['%', ';']) && decoded.split(|&b| b == b'/' || b == b'\\').any(dot)
        };
        for seg in [
            ".",
            "..",
            "...",
            "%2e",
            "%2E%2e",
            "%2e%2e%2e",
            ".%2F",
            "%2F..",
            "a%2F.%2Fb",
            "..%5C",
            "x%2F..x",
            "%2F%2F",
            "%",
            "%zz",
            "a.b",
            ".x%2F",
            "..;",
            "..;x",
            ".;",
            ".;x;y",
            "%2e%2e;x",
            "..%3Bx",
            "...;x",
            "a;..",
            ";..",
            "x%2F..;y",
            "..;x%2F..",
            "..x;",
        ] {
            assert_eq!(has_dot_segment(seg), naive(seg), "{seg}");
        }
    }
}
