//! Path patterns and request targets.

use percent_encoding::percent_decode_str;

use crate::error::{AuthError, Reason};

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// Matches exactly this raw segment.
    Literal(String),
    /// `{name}` or `*`: any one segment.
    One,
    /// The rest of the path: `**` matches zero or more segments, `{*rest}` one or more
    /// (as in axum, `/files/{*rest}` does not match `/files`).
    Tail { at_least_one: bool },
}

/// A parsed path pattern such as `/api/v1/clients/{id}` or `/files/{*rest}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    segs: Vec<Seg>,
    source: String,
}

impl Pattern {
    pub(crate) fn parse(source: &str) -> Result<Self, String> {
        let body = source
            .strip_prefix('/')
            .ok_or_else(|| format!("path pattern `{source}` must start with `/`"))?;
        let mut segs = Vec::new();
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
                p if p.starts_with('{') && p.ends_with('}') && p.len() > 2 => Seg::One,
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
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn matches(&self, path: &[&str]) -> bool {
        let mut i = 0;
        for seg in &self.segs {
            match seg {
                Seg::Tail { at_least_one } => {
                    return !at_least_one || path.get(i).is_some_and(|s| !s.is_empty());
                }
                Seg::One => {
                    // One segment means a non-empty one: `/items/{id}` does not open `/items/`.
                    if path.get(i).is_none_or(|s| s.is_empty()) {
                        return false;
                    }
                }
                Seg::Literal(lit) => {
                    if path.get(i) != Some(&lit.as_str()) {
                        return false;
                    }
                }
            }
            i += 1;
        }
        i == path.len()
    }
}

/// Splits a raw path (no query) into segments. `%2F` stays inside its segment. A `.` or
/// `..` segment, also percent-encoded, is an invalid request.
pub(crate) fn split_path(path: &str) -> Result<Vec<&str>, AuthError> {
    let body = path
        .strip_prefix('/')
        .ok_or_else(|| AuthError::invalid_request(Reason::BadPath))?;
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let mut segs = Vec::with_capacity(8);
    for seg in body.split('/') {
        if segs.len() == MAX_SEGMENTS {
            return Err(AuthError::invalid_request(Reason::BadPath));
        }
        if has_dot_segment(seg) {
            return Err(AuthError::invalid_request(Reason::DotSegment));
        }
        segs.push(seg);
    }
    Ok(segs)
}

/// Most path segments a request may have; more is an invalid request.
pub(crate) const MAX_SEGMENTS: usize = 256;

/// Whether a raw segment is `.` or `..`, also percent-encoded, or holds one once an
/// encoded slash or backslash is decoded (`..%2F..`): a server behind us that decodes and
/// normalises would otherwise walk out of the matched route.
pub(crate) fn has_dot_segment(seg: &str) -> bool {
    if seg == "." || seg == ".." {
        return true;
    }
    if !seg.contains('%') {
        return false;
    }
    let decoded = percent_decode_str(seg).collect::<Vec<u8>>();
    decoded
        .split(|&b| b == b'/' || b == b'\\')
        .any(|piece| piece == b"." || piece == b"..")
}

/// A public prefix, matched on whole segments.
#[derive(Debug, Clone)]
pub(crate) struct Prefix {
    segs: Vec<String>,
    source: std::sync::Arc<str>,
}

impl Prefix {
    pub(crate) fn parse(source: &str) -> Result<Self, String> {
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
        })
    }

    pub(crate) fn source(&self) -> &std::sync::Arc<str> {
        &self.source
    }

    /// Whether `path` is this prefix or lies below it.
    pub(crate) fn covers(&self, path: &[&str]) -> bool {
        path.len() >= self.segs.len() && self.segs.iter().zip(path).all(|(a, b)| a == b)
    }

    /// How many leading segments of `path` this prefix takes, when it starts with it.
    pub(crate) fn strip_len(&self, path: &[&str]) -> Option<usize> {
        self.covers(path).then_some(self.segs.len())
    }
}

/// A gRPC method pattern: `/pkg.Service/Method`, `/pkg.Service/*`, or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GrpcPattern {
    kind: GrpcKind,
    source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GrpcKind {
    Any,
    /// The service part with both slashes: `/pkg.Service/`.
    Service(String),
    Exact(String),
}

impl GrpcPattern {
    pub(crate) fn parse(source: &str) -> Result<Self, String> {
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
            GrpcKind::Service(format!("/{service}/"))
        } else {
            GrpcKind::Exact(source.to_owned())
        };
        Ok(Self {
            kind,
            source: source.to_owned(),
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn matches(&self, method: &str) -> bool {
        match &self.kind {
            GrpcKind::Any => true,
            GrpcKind::Service(prefix) => method.starts_with(prefix.as_str()),
            GrpcKind::Exact(m) => m == method,
        }
    }
}

/// Splits `/pkg.Service/Method` into its two non-empty parts.
pub(crate) fn split_grpc(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let ok = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '%']);
    (ok(service) && ok(method)).then_some((service, method))
}
