//! AIStore rules (feature `aistore`): a route that requires AIStore access bits on the
//! cluster and bucket its path names, judged by the token's AIStore claims.

use std::borrow::Cow;

use http::Method;
use percent_encoding::percent_decode_str;

use super::builder::parse_methods;
use super::pattern::{Pattern, Seg, Segs};
use crate::aistore::{Access, AisClaims, AisDenied, Bucket, normalize_provider};

/// An AIStore rule as the builder holds it.
#[derive(Debug, Clone)]
pub(super) struct RawAisRule {
    pub(super) methods: String,
    pub(super) pattern: String,
    pub(super) access: Access,
}

/// Where a rule reads the cluster id.
#[derive(Debug)]
enum ClusterFrom {
    /// The `{cluster}` segment at this position.
    Param(usize),
    /// The policy's `ais_cluster`.
    Fixed(String),
}

/// A checked AIStore rule.
#[derive(Debug)]
pub(super) struct AisRule {
    methods: Option<Vec<Method>>,
    pattern: Pattern,
    cluster: ClusterFrom,
    bucket: Option<usize>,
    provider: Option<usize>,
    access: Access,
}

/// What a matching rule said.
pub(super) enum Verdict {
    /// No AIStore rule names the target.
    Unnamed,
    /// This rule (by position) lets the caller through.
    Allowed(usize),
    /// The first rule (by position) that names the target refused, and why.
    Denied(usize, AisDenied),
}

impl AisRule {
    /// Checks one rule; `index` is its position among the AIStore rules.
    pub(super) fn parse(
        raw: RawAisRule,
        index: usize,
        cluster: Option<&str>,
    ) -> Result<Self, (String, String)> {
        let setting = format!("ais rule {index} ({} {})", raw.methods, raw.pattern);
        let fail = |why: String| (setting.clone(), why);
        let methods = parse_methods(&raw.methods).map_err(fail)?;
        let pattern = Pattern::parse(&raw.pattern).map_err(fail)?;
        // Pattern segments line up with the source's, one for one.
        let param = |name: &str| {
            let body = raw.pattern.strip_prefix('/').unwrap_or_default();
            body.split('/').position(|s| s == format!("{{{name}}}"))
        };
        let access = raw.access;
        if access.is_empty() {
            return Err(fail(
                "the rule requires no access bits (AIStore refuses empty permissions); name some, like `Access::GET`".into(),
            ));
        }
        let extra = access.without(Access::CLUSTER_SCOPE | Access::BUCKET_SCOPE);
        if !extra.is_empty() {
            return Err(fail(format!(
                "the bits {extra} are neither cluster nor bucket access, so AIStore refuses them for everyone but admins"
            )));
        }
        let bucket = param("bucket");
        if bucket.is_none() && !(access & Access::BUCKET_SCOPE).is_empty() {
            return Err(fail(format!(
                "the rule requires bucket access ({}) but its path has no `{{bucket}}` segment",
                access & Access::BUCKET_SCOPE
            )));
        }
        let cluster = match (param("cluster"), cluster) {
            (Some(at), _) => ClusterFrom::Param(at),
            (None, Some(id)) if !id.is_empty() => ClusterFrom::Fixed(id.to_owned()),
            _ => {
                return Err(fail(
                    "the rule needs a cluster: a `{cluster}` segment in its path, or the policy's `ais_cluster(..)`".into(),
                ));
            }
        };
        Ok(Self {
            methods,
            provider: param("provider"),
            pattern,
            cluster,
            bucket,
            access,
        })
    }

    /// (methods, pattern) as written, for reasons.
    pub(super) fn describe(&self) -> (String, String) {
        let methods = match &self.methods {
            None => "*".to_owned(),
            Some(ms) => ms.iter().map(Method::as_str).collect::<Vec<_>>().join(","),
        };
        (methods, self.pattern.source().to_owned())
    }

    pub(super) fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    /// Whether the rule applies to `method` (a `GET` rule also covers `HEAD`).
    fn covers(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|ms| {
            ms.contains(method) || (*method == Method::HEAD && ms.contains(&Method::GET))
        })
    }

    /// The raw path segments at each position, when the pattern matches `path`, as the
    /// policy's tries match it: `{name}` and `*` take one non-empty segment, `**` any
    /// tail, `{*rest}` a tail whose first segment is non-empty.
    fn matches<'a>(&self, path: Segs<'a>) -> Option<Vec<&'a str>> {
        let mut taken = Vec::with_capacity(self.pattern.segs().len());
        let mut rest = path;
        for seg in self.pattern.segs() {
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

    /// AIStore's check of the caller's claims for the cluster and bucket the path names
    /// (segments percent-decoded, as a handler's `Path` sees them). The provider is the
    /// `{provider}` segment, else the query's `provider` parameter (where AIStore's REST
    /// API puts it), else `ais`; aliases are resolved as AIStore's gateways resolve them.
    /// A request whose bucket another parser could read differently is refused
    /// ([`AisDenied::AmbiguousBucket`]): `provider` twice, a bad escape, `;`, an unknown
    /// provider, or a non-empty `namespace`.
    fn check(
        &self,
        claims: &AisClaims,
        segs: &[&str],
        query: Option<&str>,
    ) -> Result<(), AisDenied> {
        let decoded =
            |at: usize| -> Cow<'_, str> { percent_decode_str(segs[at]).decode_utf8_lossy() };
        let cluster = match &self.cluster {
            ClusterFrom::Param(at) => decoded(*at),
            ClusterFrom::Fixed(id) => Cow::Borrowed(id.as_str()),
        };
        let bucket = match self.bucket {
            None => None,
            Some(at) => {
                let ambiguous = |why| AisDenied::AmbiguousBucket { why };
                let mut from_query = None;
                if let Some(q) = query {
                    // Every pair is checked (one bad pair makes the query ambiguous);
                    // only what is escaped is copied.
                    for pair in query_params(q) {
                        let (k, v) = pair.ok_or(ambiguous("the query has `;` or a bad escape"))?;
                        match &*k {
                            "namespace" if !v.is_empty() => {
                                return Err(ambiguous("a namespaced bucket (namespace=)"));
                            }
                            "provider" if from_query.is_some() => {
                                return Err(ambiguous("provider= is given more than once"));
                            }
                            "provider" => from_query = Some(v),
                            _ => {}
                        }
                    }
                }
                let provider = match self.provider.map(decoded).or(from_query) {
                    None => "ais",
                    Some(p) => normalize_provider(&p).ok_or(ambiguous("an unknown provider"))?,
                };
                Some(Bucket::new(decoded(at)).with_provider(provider))
            }
        };
        claims.check(&cluster, bucket.as_ref(), self.access)
    }
}

/// Judges `path` (and the path with the URL prefix stripped) by every AIStore rule that
/// names it: the first that lets the caller through allows; otherwise the first that
/// names it refuses. The claims are read once, and only when a rule names the target.
pub(super) fn judge<'p>(
    rules: &[AisRule],
    method: &Method,
    paths: impl IntoIterator<Item = Segs<'p>> + Clone,
    query: Option<&str>,
    claims: impl FnOnce() -> Result<AisClaims, AisDenied>,
) -> Verdict {
    let mut claims = Some(claims);
    let mut read: Option<Result<AisClaims, AisDenied>> = None;
    let mut first_denial: Option<(usize, AisDenied)> = None;
    for (i, rule) in rules.iter().enumerate() {
        if !rule.covers(method) {
            continue;
        }
        for path in paths.clone() {
            let Some(segs) = rule.matches(path) else {
                continue;
            };
            let got = read.get_or_insert_with(|| (claims.take().expect("read once"))());
            let outcome = match got {
                Ok(c) => rule.check(c, &segs, query),
                Err(e) => Err(e.clone()),
            };
            match outcome {
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

/// Every `key=value` pair of the query, each decoded as a form value (`+` is a space);
/// a `None` item when the query holds `;` (Go's `url.ParseQuery` drops such pairs, so the
/// backend would read another query) or a pair has a bad escape or non-UTF-8 text.
fn query_params(query: &str) -> impl Iterator<Item = Option<(Cow<'_, str>, Cow<'_, str>)>> {
    let semicolon = query.contains(';');
    semicolon.then_some(None).into_iter().chain(
        query
            .split('&')
            .filter(move |pair| !semicolon && !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                Some((form_decode(k)?, form_decode(v)?))
            }),
    )
}

/// A form value decoded strictly: every `%` starts two hex digits, the result is UTF-8.
/// Borrowed when nothing is escaped.
fn form_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains(['%', '+']) {
        return Some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let escapes_ok = b.iter().enumerate().all(|(i, &c)| {
        c != b'%' || (b.get(i + 1..i + 3)).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !escapes_ok {
        return None;
    }
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|d| Cow::Owned(d.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str) -> AisRule {
        AisRule::parse(
            RawAisRule {
                methods: "GET".into(),
                pattern: pattern.into(),
                access: Access::GET,
            },
            0,
            Some("c"),
        )
        .unwrap()
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
    fn query_pairs_decoded_strictly() {
        let q = |s| {
            query_params(s)
                .map(|p| p.map(|(k, v)| (k.into_owned(), v.into_owned())))
                .collect::<Option<Vec<(String, String)>>>()
        };
        assert_eq!(
            q("a=1&prov%69der=s3&x"),
            Some(vec![
                ("a".into(), "1".into()),
                ("provider".into(), "s3".into()),
                ("x".into(), String::new())
            ])
        );
        assert_eq!(q("k=a+b"), Some(vec![("k".into(), "a b".into())]));
        assert_eq!(q("provider=%zz"), None);
        assert_eq!(q("provider=%4"), None);
        assert_eq!(q("provider=%ff"), None, "not UTF-8");
        assert_eq!(q("a=1;provider=aws"), None);
        assert_eq!(q(""), Some(vec![]));
    }

    #[test]
    fn head_follows_get() {
        let r = rule("/v1/{bucket}");
        assert!(r.covers(&Method::HEAD));
        assert!(!r.covers(&Method::PUT));
    }
}
