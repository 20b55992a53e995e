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
    /// `{*rest}` or `**`: the rest of the path, zero or more segments.
    Tail,
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
                "**" => Seg::Tail,
                p if p.starts_with("{*") && p.ends_with('}') => Seg::Tail,
                p if p.starts_with('{') && p.ends_with('}') && p.len() > 2 => Seg::One,
                p if p.contains(['{', '}', '*']) => {
                    return Err(format!(
                        "path pattern `{source}`: segment `{p}` mixes text with `{{`, `}}` or `*`; use a whole segment"
                    ));
                }
                "." | ".." => return Err(format!("path pattern `{source}` has a dot segment")),
                p => Seg::Literal(p.to_owned()),
            };
            if seg == Seg::Tail && i + 1 != parts.len() {
                return Err(format!(
                    "path pattern `{source}`: `**` or `{{*rest}}` must be the last segment"
                ));
            }
            segs.push(seg);
        }
        Ok(Self {
            segs,
            source: source.to_owned(),
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn matches(&self, path: &[&str]) -> bool {
        let mut i = 0;
        for seg in &self.segs {
            match seg {
                Seg::Tail => return true,
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
    let segs: Vec<&str> = body.split('/').collect();
    for seg in &segs {
        if is_dot_segment(seg) {
            return Err(AuthError::invalid_request(Reason::DotSegment));
        }
    }
    Ok(segs)
}

fn is_dot_segment(seg: &str) -> bool {
    if seg.len() > 6 || !seg.starts_with(['.', '%']) {
        return false;
    }
    let decoded = percent_decode_str(seg).collect::<Vec<u8>>();
    decoded == b"." || decoded == b".."
}

/// A public prefix, matched on whole segments.
#[derive(Debug, Clone)]
pub(crate) struct Prefix {
    segs: Vec<String>,
    source: String,
}

impl Prefix {
    pub(crate) fn parse(source: &str) -> Result<Self, String> {
        let trimmed = source.trim_end_matches('/');
        let body = trimmed
            .strip_prefix('/')
            .ok_or_else(|| format!("prefix `{source}` must start with `/`"))?;
        let segs = if body.is_empty() {
            Vec::new()
        } else {
            body.split('/').map(str::to_owned).collect()
        };
        Ok(Self {
            segs,
            source: source.to_owned(),
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Whether `path` is this prefix or lies below it.
    pub(crate) fn covers(&self, path: &[&str]) -> bool {
        path.len() >= self.segs.len() && self.segs.iter().zip(path).all(|(a, b)| a == b)
    }

    /// `path` with this prefix removed, when it starts with it.
    pub(crate) fn strip<'p, 'a>(&self, path: &'p [&'a str]) -> Option<&'p [&'a str]> {
        (!self.segs.is_empty() && self.covers(path)).then(|| &path[self.segs.len()..])
    }
}
