//! Route rules added from outside the role tables: an integration's rule family (a
//! matcher, the methods and path pattern, and a checker over the principal and the
//! request target), compiled by `PolicyBuilder::build` and judged after the roles.
//!
//! The core knows nothing of any family: a family keeps its own settings in the builder
//! ([`RuleFamily`], found by type), compiles them into [`RouteRule`]s, and refuses with a
//! [`Refusal`] that carries a message (and, for the family's own callers, a typed
//! detail).

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::Method;

use super::pattern::parse_methods;
use super::pattern::{Pattern, Seg, Segs};
use crate::error::{ConfigError, ConfigErrorKind};
use crate::principal::Principal;

/// Why a rule added by an integration refused a request: a fixed or built message, and
/// optionally the integration's own typed reason ([`detail`](Self::detail)).
///
/// Two refusals are equal when their messages are.
#[derive(Clone)]
pub struct Refusal {
    message: Cow<'static, str>,
    detail: Option<Arc<dyn Any + Send + Sync>>,
}

impl Refusal {
    /// A refusal with this message (lowercase, no value from the request or the token).
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            message: message.into(),
            detail: None,
        }
    }

    /// The same refusal carrying the integration's typed reason.
    pub fn with_detail<T: Any + Send + Sync>(mut self, detail: T) -> Self {
        self.detail = Some(Arc::new(detail));
        self
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The integration's typed reason, when it attached one of type `T`.
    pub fn detail<T: Any>(&self) -> Option<&T> {
        self.detail.as_deref()?.downcast_ref()
    }
}

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refusal")
            .field("message", &self.message)
            .field("detail", &self.detail.is_some())
            .finish()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl PartialEq for Refusal {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for Refusal {}

/// What a rule's checker sees of the request: the raw path segments its pattern matched
/// (one per pattern segment before a tail), and the query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteRequest<'a> {
    segments: &'a [&'a str],
    query: Option<&'a str>,
}

impl<'a> RouteRequest<'a> {
    /// The raw (percent-encoded) path segment at `at`, a position in the rule's pattern.
    pub(crate) fn segment(&self, at: usize) -> &'a str {
        self.segments[at]
    }

    /// The request's query (without `?`), when the layer passed it on.
    pub(crate) fn query(&self) -> Option<&'a str> {
        self.query
    }
}

/// The check of one rule: whether the caller passes for this request.
pub(crate) trait RouteCheck: fmt::Debug + Send + Sync + 'static {
    fn check(&self, principal: &Principal, request: &RouteRequest<'_>) -> Result<(), Refusal>;
}

/// An integration's rules as the builder holds them until `build()`: found by type, so
/// each family's setters (in its own module) reach their settings.
pub(crate) trait RuleFamily: fmt::Debug + Send + Sync + 'static {
    /// The checked rules, in the order written.
    fn compile(&self) -> Result<Vec<RouteRule>, ConfigError>;
    fn clone_family(&self) -> Box<dyn RuleFamily>;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl Clone for Box<dyn RuleFamily> {
    fn clone(&self) -> Self {
        self.clone_family()
    }
}

/// A rule's methods and pattern, checked, before its checker is attached.
#[derive(Debug)]
pub(crate) struct RouteShape {
    family: &'static str,
    index: usize,
    setting: String,
    methods: Option<Vec<Method>>,
    pattern: Pattern,
}

impl RouteShape {
    /// Checks the methods (as in `allow`) and the pattern of the rule at `index` of
    /// `family`; errors name the setting `<family> rule <index> (<methods> <pattern>)`.
    pub(crate) fn parse(
        family: &'static str,
        index: usize,
        methods: &str,
        pattern: &str,
    ) -> Result<Self, ConfigError> {
        let setting = format!("{family} rule {index} ({methods} {pattern})");
        let methods = parse_methods(methods)
            .map_err(|e| ConfigError::new(ConfigErrorKind::Policy, &setting, e))?;
        let pattern = Pattern::parse(pattern)
            .map_err(|e| ConfigError::new(ConfigErrorKind::Policy, &setting, e))?;
        Ok(Self {
            family,
            index,
            setting,
            methods,
            pattern,
        })
    }

    /// The rule as written, for errors.
    pub(crate) fn setting(&self) -> &str {
        &self.setting
    }

    /// The position of the `{name}` segment in the pattern.
    pub(crate) fn param(&self, name: &str) -> Option<usize> {
        let body = self.pattern.source().strip_prefix('/').unwrap_or_default();
        body.split('/').position(|s| s == format!("{{{name}}}"))
    }

    /// The rule, judged by `check`.
    pub(crate) fn with_check(self, check: impl RouteCheck) -> RouteRule {
        RouteRule {
            shape: self,
            check: Box::new(check),
        }
    }
}

/// A checked rule of some family, ready to judge.
#[derive(Debug)]
pub(crate) struct RouteRule {
    shape: RouteShape,
    check: Box<dyn RouteCheck>,
}

impl RouteRule {
    /// The family's name (`<family> rule 0 (...)`).
    pub(super) fn family(&self) -> &'static str {
        self.shape.family
    }

    /// The position of the rule among its family's rules.
    pub(super) fn index(&self) -> usize {
        self.shape.index
    }

    /// (methods, pattern) as written, for reasons.
    pub(super) fn describe(&self) -> (String, String) {
        let methods = match &self.shape.methods {
            None => "*".to_owned(),
            Some(ms) => ms.iter().map(Method::as_str).collect::<Vec<_>>().join(","),
        };
        (methods, self.shape.pattern.source().to_owned())
    }

    pub(super) fn pattern(&self) -> &Pattern {
        &self.shape.pattern
    }

    /// Whether the rule applies to `method` (a `GET` rule also covers `HEAD`).
    fn covers(&self, method: &Method) -> bool {
        self.shape.methods.as_ref().is_none_or(|ms| {
            ms.contains(method) || (*method == Method::HEAD && ms.contains(&Method::GET))
        })
    }

    /// The raw path segments at each position, when the pattern matches `path`, as the
    /// policy's tries match it: `{name}` and `*` take one non-empty segment, `**` any
    /// tail, `{*rest}` a tail whose first segment is non-empty.
    fn matches<'a>(&self, path: Segs<'a>) -> Option<Vec<&'a str>> {
        let mut taken = Vec::with_capacity(self.shape.pattern.segs().len());
        let mut rest = path;
        for seg in self.shape.pattern.segs() {
            match seg {
                Seg::Tail {
                    at_least_one: false,
                } => return Some(taken),
                Seg::Tail { at_least_one: true } => {
                    let (first, _) = rest.split_first()?;
                    return (!first.is_empty()).then_some(taken);
                }
                Seg::Literal(lit) => {
                    let (s, next) = rest.split_first()?;
                    if s != lit {
                        return None;
                    }
                    taken.push(s);
                    rest = next;
                }
                Seg::One => {
                    let (s, next) = rest.split_first()?;
                    if s.is_empty() {
                        return None;
                    }
                    taken.push(s);
                    rest = next;
                }
            }
        }
        rest.split_first().is_none().then_some(taken)
    }
}

/// What the rules that name a target said.
pub(super) enum Verdict {
    /// No such rule names the target.
    Unnamed,
    /// This rule (by position in the policy's list) lets the caller through.
    Allowed(usize),
    /// The first rule (by position) that names the target refused, and why.
    Denied(usize, Refusal),
}

/// Judges `path` (and the path with the URL prefix stripped) by every rule that names
/// it: the first that lets the caller through allows; otherwise the first that names it
/// refuses.
pub(super) fn judge<'p>(
    rules: &[RouteRule],
    principal: &Principal,
    method: &Method,
    paths: impl IntoIterator<Item = Segs<'p>> + Clone,
    query: Option<&str>,
) -> Verdict {
    let mut first_denial: Option<(usize, Refusal)> = None;
    for (i, rule) in rules.iter().enumerate() {
        if !rule.covers(method) {
            continue;
        }
        for path in paths.clone() {
            let Some(segments) = rule.matches(path) else {
                continue;
            };
            let request = RouteRequest {
                segments: &segments,
                query,
            };
            match rule.check.check(principal, &request) {
                Ok(()) => return Verdict::Allowed(i),
                Err(e) => {
                    first_denial.get_or_insert((i, e));
                }
            }
        }
    }
    match first_denial {
        Some((i, e)) => Verdict::Denied(i, e),
        None => Verdict::Unnamed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Never;

    impl RouteCheck for Never {
        fn check(&self, _: &Principal, _: &RouteRequest<'_>) -> Result<(), Refusal> {
            Err(Refusal::new("never"))
        }
    }

    fn rule(pattern: &str) -> RouteRule {
        RouteShape::parse("test", 0, "GET", pattern)
            .unwrap()
            .with_check(Never)
    }

    #[test]
    fn matching_takes_segments_like_the_tries() {
        let r = rule("/v1/{bucket}/{*obj}");
        assert_eq!(r.matches(Segs::of("/v1/b/x/y")), Some(vec!["v1", "b"]));
        assert_eq!(r.matches(Segs::of("/v1/b")), None);
        assert_eq!(r.matches(Segs::of("/v1/b/")), None);
        assert_eq!(r.matches(Segs::of("/v1//x")), None);
        let r = rule("/v1/{bucket}");
        assert_eq!(r.matches(Segs::of("/v1/b")), Some(vec!["v1", "b"]));
        assert_eq!(r.matches(Segs::of("/v1/b/c")), None);
        let r = rule("/v1/{bucket}/**");
        assert_eq!(r.matches(Segs::of("/v1/b")), Some(vec!["v1", "b"]));
    }

    #[test]
    fn head_follows_get() {
        let r = rule("/v1/{bucket}");
        assert!(r.covers(&Method::HEAD));
        assert!(!r.covers(&Method::PUT));
    }

    #[test]
    fn params_by_position_and_refusals_by_message() {
        let shape = RouteShape::parse("test", 2, "GET", "/v1/{cluster}/x/{bucket}").unwrap();
        assert_eq!(
            shape.setting(),
            "test rule 2 (GET /v1/{cluster}/x/{bucket})"
        );
        assert_eq!(shape.param("cluster"), Some(1));
        assert_eq!(shape.param("bucket"), Some(3));
        assert_eq!(shape.param("provider"), None);
        let r = Refusal::new("no").with_detail(7u8);
        assert_eq!(r.detail::<u8>(), Some(&7));
        assert_eq!(r.detail::<u16>(), None);
        assert_eq!(r, Refusal::new("no"));
    }
}
