//! Resource and action (permission) strings: validation and matching.
//!
//! Both are prefix patterns over segments, with `*` standing for any one segment:
//! resources split at `/` and compare case-sensitively, actions split at `:` and compare
//! case-insensitively.

use std::borrow::Cow;
use std::sync::Arc;

/// One segment of a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    /// Exactly this text.
    Lit(Box<str>),
    /// `*`: any one segment.
    Any,
}

impl Seg {
    fn matches(&self, segment: &str) -> bool {
        match self {
            Seg::Lit(l) => &**l == segment,
            Seg::Any => true,
        }
    }
}

/// A validated permission as written in a role, lowercased: `documents:read`,
/// `documents:*`, `documents` or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Action {
    text: Arc<str>,
    segs: Vec<Seg>,
}

impl Action {
    /// Checks the action rules: not empty, no empty segment, `*` only as a whole segment,
    /// no whitespace or control characters.
    pub(super) fn parse(source: &str) -> Result<Self, String> {
        check_action(source)?;
        let text: Arc<str> = source.to_lowercase().into();
        let segs = text
            .split(':')
            .map(|s| {
                if s == "*" {
                    Seg::Any
                } else {
                    Seg::Lit(s.into())
                }
            })
            .collect();
        Ok(Self { text, segs })
    }

    /// The permission, lowercased.
    pub(super) fn text(&self) -> &Arc<str> {
        &self.text
    }

    /// Whether this grant covers the requested action (already lowercased and checked):
    /// every segment of the grant matches the request's segment at the same place, and
    /// the request may go on below (`documents` covers `documents:read`).
    pub(super) fn covers(&self, requested: &str) -> bool {
        let mut req = requested.split(':');
        self.segs
            .iter()
            .all(|g| req.next().is_some_and(|r| g.matches(r)))
    }
}

fn check_action(source: &str) -> Result<(), String> {
    if source.is_empty() {
        return Err("a permission must not be empty".to_owned());
    }
    if source.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "permission `{}` has whitespace or a control character",
            source.escape_debug()
        ));
    }
    for seg in source.split(':') {
        if seg.is_empty() {
            return Err(format!(
                "permission `{source}` has an empty segment (`::`, or `:` at an end)"
            ));
        }
        if seg.contains('*') && seg != "*" {
            return Err(format!(
                "permission `{source}`: `*` must be a whole segment, as in `documents:*`"
            ));
        }
    }
    Ok(())
}

/// A requested permission, lowercased only when it has to be.
pub(super) fn requested_action(permission: &str) -> Option<Cow<'_, str>> {
    check_action(permission).ok()?;
    if permission.chars().any(char::is_uppercase) || !permission.is_ascii() {
        Some(Cow::Owned(permission.to_lowercase()))
    } else {
        Some(Cow::Borrowed(permission))
    }
}

/// A validated resource grant: `/documents/*`, `/organizations/*/documents`, `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Resource {
    /// Normalized: a leading `/`, no trailing `/`; `*` for everything.
    text: Arc<str>,
    segs: Vec<Seg>,
}

impl Resource {
    /// Checks the resource rules: no empty segment, no `.` or `..` segment, `*` only as a
    /// whole segment, no `{name}` segment (write `*`), no control characters. A leading
    /// slash is optional and a trailing slash ignored; `*` and `/` cover everything, and
    /// `/*` is one segment of any name (with everything below it); the root is not covered.
    pub(super) fn parse(source: &str) -> Result<Self, String> {
        if source.chars().any(char::is_control) {
            return Err(format!(
                "resource `{}` has a control character",
                source.escape_debug()
            ));
        }
        if source == "*" || source == "/" {
            return Ok(Self {
                text: "*".into(),
                segs: Vec::new(),
            });
        }
        let body = trim_slashes(source);
        if body.is_empty() {
            return Err("a resource must not be empty (write `*` for everything)".to_owned());
        }
        let mut segs = Vec::new();
        for seg in body.split('/') {
            segs.push(match seg {
                "" => {
                    return Err(format!("resource `{source}` has an empty segment (`//`)"));
                }
                "*" => Seg::Any,
                s if is_dot_segment(s) => {
                    return Err(format!("resource `{source}` has a `.` or `..` segment"));
                }
                s if s.contains('*') => {
                    return Err(format!(
                        "resource `{source}`: `*` must be a whole segment, as in `/documents/*`"
                    ));
                }
                s if s.starts_with('{') && s.ends_with('}') => {
                    return Err(format!(
                        "resource `{source}`: segment `{s}` looks like a route parameter; write `*` for any one segment"
                    ));
                }
                s => Seg::Lit(s.into()),
            });
        }
        Ok(Self {
            text: format!("/{body}").into(),
            segs,
        })
    }

    /// The grant, normalized (`*` for everything).
    pub(super) fn text(&self) -> &Arc<str> {
        &self.text
    }

    pub(super) fn segs(&self) -> &[Seg] {
        &self.segs
    }
}

/// Strips one leading and one trailing slash.
fn trim_slashes(s: &str) -> &str {
    let s = s.strip_prefix('/').unwrap_or(s);
    s.strip_suffix('/').unwrap_or(s)
}

/// `.` and `..`, also percent-encoded (`%2e`, `.%2E`, ...), or hidden behind an encoded
/// slash or backslash (`..%2Fsecret`): the same rule the route policy applies.
fn is_dot_segment(s: &str) -> bool {
    crate::policy::has_dot_segment(s)
}

/// Splits a requested resource into segments, or `None` when it is not a valid path:
/// an empty or dot segment. The root (`/` or the empty string) has no segments.
pub(super) fn requested_resource(resource: &str) -> Option<Vec<&str>> {
    if resource.chars().any(char::is_control) {
        return None;
    }
    let body = trim_slashes(resource);
    if body.is_empty() {
        // `` and `/` are the root; `//` is an empty segment.
        return (resource.len() <= 1).then(Vec::new);
    }
    let segs: Vec<&str> = body.split('/').collect();
    if segs.iter().any(|s| s.is_empty() || is_dot_segment(s)) {
        return None;
    }
    Some(segs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions() {
        let a = Action::parse("Documents:*").unwrap();
        assert_eq!(&**a.text(), "documents:*");
        assert!(a.covers("documents:read"));
        assert!(a.covers("documents:read:meta"));
        assert!(!a.covers("documents"));
        for bad in ["", ":", "a::b", "a:", ":a", "a*", "a:b*", "a b", "a\tb"] {
            assert!(Action::parse(bad).is_err(), "{bad:?}");
            assert!(requested_action(bad).is_none(), "{bad:?}");
        }
        assert_eq!(
            requested_action("Documents:Read").unwrap(),
            "documents:read"
        );
    }

    #[test]
    fn resources() {
        assert_eq!(
            &**Resource::parse("documents/").unwrap().text(),
            "/documents"
        );
        assert_eq!(&**Resource::parse("/").unwrap().text(), "*");
        for bad in [
            "",
            "//",
            "/a//b",
            "/a/./b",
            "/a/..",
            "/a/%2E%2e",
            "/a*",
            "/{id}",
            "/a\n",
        ] {
            assert!(Resource::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(requested_resource("a/b/").unwrap(), ["a", "b"]);
        assert_eq!(requested_resource("/").unwrap(), Vec::<&str>::new());
        for bad in ["/a//b", "/a/../b", "/a/%2e", "//"] {
            assert!(requested_resource(bad).is_none(), "{bad:?}");
        }
        assert!(!is_dot_segment("..."));
        assert!(!is_dot_segment("%2"));
    }
}
