//! AIStore rules (feature `aistore`): a route that requires AIStore access bits on the
//! cluster and bucket its path names, judged by the token's AIStore claims. They reach
//! the route policy through its rule families (`PolicyBuilder::allow_ais`,
//! `PolicyBuilder::ais_cluster`, the policy file's `[[ais]]` and `ais_cluster`).

use std::any::Any;
use std::borrow::Cow;
use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use serde::Deserialize;

use super::{Access, AisClaims, AisDenied, Bucket, normalize_provider};
use crate::error::{ConfigError, ConfigErrorKind};
use crate::policy::{
    FileSection, Refusal, RouteCheck, RouteRequest, RouteRule, RouteShape, RuleFamily,
};
use crate::{PolicyBuilder, Principal};

/// The family's name: settings and reasons read `ais rule 0 (GET /v1/{bucket})`.
const FAMILY: &str = "ais";

/// An AIStore rule as the builder holds it.
#[derive(Debug, Clone)]
struct RawAisRule {
    methods: String,
    pattern: String,
    access: Access,
}

/// The AIStore rules and cluster of one builder.
#[derive(Debug, Clone, Default)]
struct AisRules {
    rules: Vec<RawAisRule>,
    cluster: Option<String>,
}

impl RuleFamily for AisRules {
    fn compile(&self) -> Result<Vec<RouteRule>, ConfigError> {
        self.rules
            .iter()
            .enumerate()
            .map(|(i, raw)| AisRule::parse(raw, i, self.cluster.as_deref()))
            .collect()
    }

    fn clone_family(&self) -> Box<dyn RuleFamily> {
        Box::new(self.clone())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl PolicyBuilder {
    /// Allows any caller whose AIStore claims grant `access` on the cluster and bucket
    /// the path names (feature `aistore`), by AIStore's own check
    /// ([`AisClaims::check`](crate::aistore::AisClaims::check)).
    ///
    /// `methods` are as in [`allow`](Self::allow) (a `GET` rule also covers `HEAD`), and
    /// `pattern` names the request's parts with these segments:
    /// - `{cluster}`: the cluster id; without it, the policy's
    ///   [`ais_cluster`](Self::ais_cluster) (the cluster this service fronts);
    /// - `{bucket}`: the bucket's name, needed when `access` has bucket bits;
    /// - `{provider}`: the bucket's provider; without it, the query's `provider`
    ///   parameter, where AIStore's REST API puts it (the layer passes the query on, see
    ///   [`Target::with_query`](crate::Target::with_query)); without either, `ais`.
    ///   AIStore's aliases (`s3`, `gs`, ...) are resolved.
    ///
    /// Segments are percent-decoded, as a handler's `Path` sees them; the bucket is in
    /// the global namespace. A request whose bucket another parser could read another way
    /// is refused ([`AisDenied::AmbiguousBucket`](crate::aistore::AisDenied::AmbiguousBucket)):
    /// `provider` given twice, a bad escape or `;` in the query, an unknown provider, or a
    /// non-empty `namespace`. Matching itself never reads the query. A target named by an
    /// AIStore rule is named like any other:
    /// the caller passes with a role one of the ordinary rules for it gives, or with the
    /// AIStore access one of the AIStore rules for it requires; the unmatched default
    /// no longer applies to it. When nothing lets the caller through and an AIStore rule
    /// names the target, the decision's reason is that rule's refusal
    /// ([`RouteReason::ExtensionDenied`](crate::RouteReason::ExtensionDenied) with
    /// the family `ais`, whose [`Refusal::detail`](crate::Refusal::detail) is the
    /// [`AisDenied`]), answered 403.
    ///
    /// [`build`](Self::build) refuses a rule that can never pass for a caller who is not
    /// an admin: no bits, bits outside both scopes, bucket bits without `{bucket}`, no
    /// cluster.
    ///
    /// ```
    /// use portcullis::Policy;
    /// use portcullis::aistore::Access;
    ///
    /// let policy = Policy::builder()
    ///     .allow_ais("GET", "/v1/objects/{bucket}/{*object}", Access::GET)
    ///     .allow_ais("PUT", "/v1/objects/{bucket}/{*object}", Access::PUT)
    ///     .allow_ais("GET", "/v1/clusters/{cluster}/buckets", Access::LIST_BUCKETS)
    ///     .ais_cluster("Q8XCZ")
    ///     .build()?;
    ///
    /// let err = Policy::builder().allow_ais("GET", "/v1/buckets", Access::GET).build().unwrap_err();
    /// assert_eq!(err.setting(), "ais rule 0 (GET /v1/buckets)");
    /// assert!(err.to_string().contains("no `{bucket}` segment"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allow_ais(mut self, methods: &str, pattern: &str, access: Access) -> Self {
        self.family_mut::<AisRules>().rules.push(RawAisRule {
            methods: methods.to_owned(),
            pattern: pattern.to_owned(),
            access,
        });
        self
    }

    /// The cluster id (AIStore's cluster UUID) that AIStore rules without a `{cluster}`
    /// segment check against (feature `aistore`): the cluster this service fronts, as an
    /// AIStore gateway checks against its own. No default.
    pub fn ais_cluster(mut self, id: impl Into<String>) -> Self {
        self.family_mut::<AisRules>().cluster = Some(id.into());
        self
    }
}

/// Where a rule reads the cluster id.
#[derive(Debug)]
enum ClusterFrom {
    /// The `{cluster}` segment at this position.
    Param(usize),
    /// The policy's `ais_cluster`.
    Fixed(String),
}

/// The check of one AIStore rule.
#[derive(Debug)]
struct AisRule {
    cluster: ClusterFrom,
    bucket: Option<usize>,
    provider: Option<usize>,
    access: Access,
}

impl AisRule {
    /// Checks one rule; `index` is its position among the AIStore rules.
    fn parse(
        raw: &RawAisRule,
        index: usize,
        cluster: Option<&str>,
    ) -> Result<RouteRule, ConfigError> {
        let shape = RouteShape::parse(FAMILY, index, &raw.methods, &raw.pattern)?;
        let fail = |why: String| ConfigError::new(ConfigErrorKind::Policy, shape.setting(), why);
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
        let bucket = shape.param("bucket");
        if bucket.is_none() && !(access & Access::BUCKET_SCOPE).is_empty() {
            return Err(fail(format!(
                "the rule requires bucket access ({}) but its path has no `{{bucket}}` segment",
                access & Access::BUCKET_SCOPE
            )));
        }
        let cluster = match (shape.param("cluster"), cluster) {
            (Some(at), _) => ClusterFrom::Param(at),
            (None, Some(id)) if !id.is_empty() => ClusterFrom::Fixed(id.to_owned()),
            _ => {
                return Err(fail(
                    "the rule needs a cluster: a `{cluster}` segment in its path, or the policy's `ais_cluster(..)`".into(),
                ));
            }
        };
        let provider = shape.param("provider");
        Ok(shape.with_check(Self {
            cluster,
            bucket,
            provider,
            access,
        }))
    }

    /// AIStore's check of the caller's claims for the cluster and bucket the path names
    /// (segments percent-decoded, as a handler's `Path` sees them). The provider is the
    /// `{provider}` segment, else the query's `provider` parameter (where AIStore's REST
    /// API puts it), else `ais`; aliases are resolved as AIStore's gateways resolve them.
    /// A request whose bucket another parser could read differently is refused
    /// ([`AisDenied::AmbiguousBucket`]): `provider` twice, a bad escape, `;`, an unknown
    /// provider, or a non-empty `namespace`.
    fn check_claims(
        &self,
        claims: &AisClaims,
        request: &RouteRequest<'_>,
    ) -> Result<(), AisDenied> {
        let decoded = |at: usize| -> Cow<'_, str> {
            percent_decode_str(request.segment(at)).decode_utf8_lossy()
        };
        let cluster = match &self.cluster {
            ClusterFrom::Param(at) => decoded(*at),
            ClusterFrom::Fixed(id) => Cow::Borrowed(id.as_str()),
        };
        let bucket = match self.bucket {
            None => None,
            Some(at) => {
                let ambiguous = |why| AisDenied::AmbiguousBucket { why };
                let mut from_query = None;
                if let Some(q) = request.query() {
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

impl RouteCheck for AisRule {
    /// Reads the caller's AIStore claims and checks them; a refusal carries the
    /// [`AisDenied`] as its detail.
    fn check(&self, principal: &Principal, request: &RouteRequest<'_>) -> Result<(), Refusal> {
        AisClaims::from_principal(principal)
            .and_then(|claims| self.check_claims(&claims, request))
            .map_err(|denied| Refusal::new(denied.to_string()).with_detail(denied))
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

/// The policy file's AIStore keys: `ais_cluster = "<id>"` and `[[ais]]` rules, whose
/// `access` holds AIStore's names (`ro`, `GET`...).
pub(crate) const POLICY_FILE_SECTION: FileSection = FileSection {
    keys: &["ais_cluster", "ais"],
    read: read_file_section,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    #[serde(default)]
    methods: Option<Vec<String>>,
    path: String,
    access: Vec<String>,
}

fn read_file_section(
    mut b: PolicyBuilder,
    mut values: BTreeMap<String, toml::Value>,
    origin: &str,
) -> Result<PolicyBuilder, ConfigError> {
    let invalid =
        |key: &str, why: String| ConfigError::at(ConfigErrorKind::Policy, origin, key, why);
    if let Some(id) = values.remove("ais_cluster") {
        let id =
            String::deserialize(id).map_err(|e| invalid("ais_cluster", e.message().to_owned()))?;
        b = b.ais_cluster(id);
    }
    let rules = match values.remove("ais") {
        None => Vec::new(),
        Some(v) => {
            Vec::<FileRule>::deserialize(v).map_err(|e| invalid("ais", e.message().to_owned()))?
        }
    };
    for (i, rule) in rules.into_iter().enumerate() {
        let methods = rule.methods.map_or_else(|| "*".to_owned(), |m| m.join(","));
        let access = rule
            .access
            .join(",")
            .parse::<Access>()
            .map_err(|e| invalid(&format!("ais[{i}].access"), e.to_string()))?;
        b = b.allow_ais(&methods, &rule.path, access);
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
