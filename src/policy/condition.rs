//! Conditions on rules: a claim bound to a path parameter, a literal or a request header
//! ([`Condition`]), checked at `build()` and evaluated without allocating.

use std::fmt;

use http::{HeaderMap, HeaderName};
use percent_encoding::percent_decode_str;

use super::pattern::{Pattern, Segs};
use crate::principal::{ClaimPath, ClaimSet, Principal};

/// A condition on a rule: every condition of a rule must hold for the rule to let a
/// caller through. Each compares a claim of the verified token with something of the
/// request:
///
/// - [`claim_equals_param`](Self::claim_equals_param): a path parameter of the rule's
///   pattern (`{tenant}` in `/tenants/{tenant}/reports`), percent-decoded;
/// - [`claim_equals`](Self::claim_equals): a literal;
/// - [`claim_equals_header`](Self::claim_equals_header): a request header (for gRPC
///   rules, a metadata entry), sent exactly once.
///
/// A claim that is a string must equal the value; a claim that is an array holds when it
/// contains it; a missing claim, or one of another type, fails the condition. Claim names
/// are paths as in [`Principal::claim`] (`org.id`, `\.` for a dot in a name).
///
/// A rule whose conditions fail is refused with 403 `insufficient_scope` unless another
/// rule lets the caller through (rules add up); the decision's reason names the rule and
/// the condition, never a claim's or the request's value.
///
/// ```
/// use axum::{Router, body::Body, routing::get};
/// use portcullis::{Algorithm, AuthLayer, Authenticator, Condition, Policy, Signer};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let secret = "0123456789abcdef0123456789abcdef";
/// let auth = Authenticator::builder().hmac_secret(secret).build()?;
/// // A caller reads the reports of its own tenant only.
/// let policy = Policy::builder()
///     .allow_when("GET", "/tenants/{tenant}/reports", ["*"], [Condition::claim_equals_param("tenant", "tenant")])
///     .build()?;
/// let app = Router::new()
///     .route("/tenants/{tenant}/reports", get(|| async { "reports" }))
///     .layer(AuthLayer::new(auth, policy));
/// let token = Signer::hmac(Algorithm::HS256, secret)?
///     .sign(&serde_json::json!({"sub": "ada", "tenant": "acme", "exp": 4_000_000_000u64}))?;
/// let get = |path: &str| http::Request::get(path)
///     .header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap();
/// assert_eq!(app.clone().oneshot(get("/tenants/acme/reports")).await?.status(), 200);
/// assert_eq!(app.oneshot(get("/tenants/globex/reports")).await?.status(), 403);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    claim: String,
    operand: Operand,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    Param(String),
    Value(String),
    Header(String),
}

impl Condition {
    /// The claim at `claim` equals the path parameter `param` of the rule's pattern
    /// (`{param}`; HTTP rules only). `build()` refuses a parameter the pattern lacks.
    pub fn claim_equals_param(claim: impl Into<String>, param: impl Into<String>) -> Self {
        Self {
            claim: claim.into(),
            operand: Operand::Param(param.into()),
        }
    }

    /// The claim at `claim` equals `value`.
    pub fn claim_equals(claim: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            claim: claim.into(),
            operand: Operand::Value(value.into()),
        }
    }

    /// The claim at `claim` equals the request header `header` (gRPC: the metadata entry),
    /// which must be sent exactly once. `build()` refuses a name that is not a header name.
    pub fn claim_equals_header(claim: impl Into<String>, header: impl Into<String>) -> Self {
        Self {
            claim: claim.into(),
            operand: Operand::Header(header.into()),
        }
    }

    /// Checks the condition against its rule and compiles it; the error says what to fix.
    pub(super) fn compile(&self, pattern: Option<&Pattern>) -> Result<Compiled, String> {
        let names_ok = !self.claim.is_empty()
            && ClaimPath::parse(&self.claim)
                .names()
                .iter()
                .all(|n| !n.is_empty());
        if !names_ok {
            return Err(format!(
                "condition {self}: `{}` is not a claim path; write member names joined by dots, like `tenant` or `org.id`",
                self.claim
            ));
        }
        let check = match &self.operand {
            Operand::Value(v) => Check::Value(v.clone()),
            Operand::Header(h) => match HeaderName::try_from(h.trim()) {
                Ok(name) => Check::Header(name),
                Err(_) => {
                    return Err(format!(
                        "condition {self}: `{h}` is not a header name; write one like `x-tenant`"
                    ));
                }
            },
            Operand::Param(p) => {
                let Some(pattern) = pattern else {
                    return Err(format!(
                        "condition {self}: a gRPC rule has no path parameters; compare with a claim, a value or a metadata entry"
                    ));
                };
                let mut at = pattern.param_index(p);
                match (at.next(), at.next()) {
                    (Some(at), None) => Check::Segment(at),
                    (None, _) => {
                        return Err(format!(
                            "condition {self}: the pattern `{}` has no parameter `{{{p}}}`; name one of its `{{...}}` segments",
                            pattern.source()
                        ));
                    }
                    (Some(_), Some(_)) => {
                        return Err(format!(
                            "condition {self}: the pattern `{}` names `{{{p}}}` twice; give each segment its own name",
                            pattern.source()
                        ));
                    }
                }
            }
        };
        Ok(Compiled {
            claim: ClaimPath::parse(&self.claim),
            at: 0,
            check,
            text: self.to_string(),
        })
    }
}

/// Says the condition without any value from a request or token: ``claim `tenant` =
/// path parameter {tenant}``.
impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.operand {
            Operand::Param(p) => write!(f, "claim `{}` = path parameter {{{p}}}", self.claim),
            Operand::Value(v) => write!(f, "claim `{}` = {v:?}", self.claim),
            Operand::Header(h) => write!(f, "claim `{}` = header `{h}`", self.claim),
        }
    }
}

/// A checked condition, ready to evaluate.
#[derive(Debug)]
pub(super) struct Compiled {
    pub(super) claim: ClaimPath,
    /// The claim's position in the policy's [`ClaimSet`], set when the policy compiles.
    pub(super) at: usize,
    check: Check,
    /// The condition in words, for reasons.
    pub(super) text: String,
}

#[derive(Debug)]
enum Check {
    /// The path segment at this position of the matched path.
    Segment(usize),
    Value(String),
    Header(HeaderName),
}

impl Compiled {
    /// Whether it compares with a request header.
    pub(super) fn reads_headers(&self) -> bool {
        matches!(self.check, Check::Header(_))
    }

    /// Whether the condition holds for `principal` on a request with the matched path
    /// `segs` (`None` for gRPC) and `headers`. Allocation-free unless the segment is
    /// percent-encoded.
    pub(super) fn holds(
        &self,
        principal: &Principal,
        set: &ClaimSet,
        segs: Option<Segs<'_>>,
        headers: Option<&HeaderMap>,
    ) -> bool {
        match &self.check {
            Check::Value(v) => principal.set_claim_equals(set, self.at, v),
            Check::Segment(at) => {
                let Some(raw) = segs.and_then(|mut s| s.nth(*at)) else {
                    return false;
                };
                if raw.is_empty() {
                    return false;
                }
                if !raw.bytes().any(|b| b == b'%') {
                    return principal.set_claim_equals(set, self.at, raw);
                }
                match percent_decode_str(raw).decode_utf8() {
                    Ok(value) => {
                        !value.is_empty() && principal.set_claim_equals(set, self.at, &value)
                    }
                    Err(_) => false,
                }
            }
            Check::Header(name) => {
                let Some(headers) = headers else {
                    return false;
                };
                let mut values = headers.get_all(name).iter();
                match (values.next(), values.next()) {
                    (Some(v), None) => v.to_str().is_ok_and(|v| {
                        !v.is_empty() && principal.set_claim_equals(set, self.at, v)
                    }),
                    _ => false,
                }
            }
        }
    }
}
