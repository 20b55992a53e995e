//! Deciding: which roles may reach which routes.
//!
//! A [`Policy`] maps roles to (methods, path pattern) pairs, lists public prefixes that
//! skip authentication, names required claims, and says what happens to a route no rule
//! names. Every [`RouteDecision`] carries its reason.
//!
//! Patterns: exact segments, `{name}` or `*` for one segment, `{*rest}` or `**` for the
//! tail. Matching works on the raw path split at `/` (a `%2F` stays inside its segment);
//! the query is never part of it. A `GET` rule also covers `HEAD`. The role `*` in a rule
//! means any valid token.
//!
//! ```
//! use portcullis::{Policy, Unmatched};
//!
//! let policy = Policy::builder()
//!     .allow("POST", "/api/v1/clients/add", ["client"])
//!     .allow("*", "/**", ["admin"])
//!     .allow("GET", "/me", ["*"])
//!     .public_prefix("/health")
//!     .unmatched(Unmatched::Deny)
//!     .build()?;
//!
//! let target = policy.target(&http::Method::GET, "/health/live")?;
//! assert!(target.is_public());
//!
//! let target = policy.target(&http::Method::GET, "/api/v1/clients/")?;
//! let decision = policy.decide_roles(&["client"], &target);
//! assert!(!decision.is_allowed());
//! assert_eq!(decision.reason().to_string(), "no role of the caller is named by the rules for this route (needs one of: admin)");
//!
//! // Dot segments, plain or percent-encoded, are an invalid request (400); so is a dot
//! // segment before a path parameter, which Tomcat, Jetty and Spring walk up from.
//! assert!(policy.target(&http::Method::GET, "/api/%2e%2e/admin").is_err());
//! assert!(policy.target(&http::Method::GET, "/api/..;x/admin").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A path has at most 256 segments, and `{name}` and `*` never match an empty segment
//! (`/items/` is not `/items/{id}`); `{*rest}` needs at least one non-empty segment,
//! `**` takes zero or more. A target that rules name needs a role one of them gives
//! (roles add up, none takes access away); other targets get the [`Unmatched`] default.
//! `build()` refuses a rule that a public entry fully shadows (an HTTP rule under a
//! public prefix, a gRPC rule on public methods only), since it could never apply; see
//! [`PolicyBuilder::url_prefix`] for how the URL prefix reads rules and public prefixes.
//!
//! `build()` compiles the rules into an index (segment tries per method, gRPC method
//! maps, roles as bits), so a decision walks the path once, whatever the number of
//! rules, and an allowed request costs no allocation (for policies naming up to 256
//! roles). Reasons are built only when asked for ([`Policy::decide`]) or when a request
//! is refused.

mod builder;
mod children;
mod condition;
mod decision;
// The extension points serve the integrations, each behind a feature of its own: a
// build with none of them calls part of them from nowhere.
#[allow(dead_code)]
mod extension;
mod fedn;
mod file;
mod index;
mod parsed;
mod pattern;
mod roles;
mod target;
mod trie;

use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use http::Method;

use crate::error::{AuthError, ConfigError, Reason};
use crate::principal::{ClaimPath, Principal};
pub use builder::PolicyBuilder;
pub use condition::Condition;
pub use decision::{RouteDecision, RouteReason, Unmatched};
pub use extension::Refusal;
#[allow(unused_imports)]
pub(crate) use extension::{RouteCheck, RouteRequest, RouteRule, RouteShape, RuleFamily};
pub(crate) use file::FileSection;
pub(crate) use file::builder_from_file;
use index::GrpcMap;
use pattern::{Prefix, Segs, check_path, split_grpc};
pub(crate) use pattern::{check_prefix, has_dot_segment};
use roles::Roles;
pub use target::Target;
use target::TargetKind;
use trie::{Entry, HttpIndex, PrefixNode, Rule, min_some};

/// Roles to routes, public prefixes and required claims. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Inner>,
}

/// The compiled policy (see `index.rs`).
#[derive(Debug)]
struct Inner {
    http_rules: Vec<Rule>,
    grpc_rules: Vec<Rule>,
    roles: Roles,
    http: HttpIndex,
    grpc: GrpcMap<Entry>,
    public: PrefixNode,
    /// Public prefixes as configured, by position.
    public_sources: Vec<Arc<str>>,
    url_prefix: Option<Prefix>,
    /// Whether the path with the URL prefix stripped may make a request public.
    public_when_stripped: bool,
    /// (name as written, its path, the value it must have).
    required_claims: Vec<(String, ClaimPath, String)>,
    unmatched: Unmatched,
    grpc_public: GrpcMap<u32>,
    grpc_public_sources: Vec<Arc<str>>,
    grpc_user_agents: Vec<UserAgent>,
    grpc_unmatched: Unmatched,
    /// The integrations' rules, family by family, each in the order written.
    extension: Vec<extension::RouteRule>,
    /// Dry-run policies: decided and recorded, never enforced.
    shadow: Vec<Shadow>,
    /// Some condition reads a request header: a refusal's reason is worked out at once,
    /// while the headers are there.
    reasons_read_headers: bool,
    /// The claims the conditions compare.
    claim_set: crate::principal::ClaimSet,
}

/// A dry-run policy beside the enforced one.
#[derive(Debug)]
struct Shadow {
    policy: Policy,
    /// Records only the requests its rules name (dry-run rules); a whole shadow policy
    /// records every decision.
    named_only: bool,
}

/// A user agent and the methods it may call without a token.
#[derive(Debug)]
struct UserAgent {
    agent: String,
    /// `user-agent <agent>`, the public reason.
    label: Arc<str>,
    methods: GrpcMap<u32>,
    /// The method patterns as configured.
    sources: Vec<String>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Policy")
            .field("rules", &(inner.http_rules.len() + inner.grpc_rules.len()))
            .field("public", &inner.public_sources)
            .field("unmatched", &inner.unmatched)
            .field("public_grpc", &inner.grpc_public_sources)
            .field(
                "grpc_user_agents",
                &inner
                    .grpc_user_agents
                    .iter()
                    .map(|a| (&a.agent, &a.sources))
                    .collect::<Vec<_>>(),
            )
            .field("unmatched_grpc", &inner.grpc_unmatched)
            .finish_non_exhaustive()
    }
}

/// The caller's roles as the policy reads them. The one place that knows the shape of
/// `Principal::roles`.
fn principal_roles(principal: &Principal) -> impl Iterator<Item = &str> {
    principal.roles()
}

impl Policy {
    /// Starts an empty builder: no rules, no public prefixes, unmatched routes denied.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    fn from_index(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The policy of a whole-service interceptor: `roles` on every method (compared as
    /// plain names, no inheritance), or any valid token when `roles` is empty, plus the
    /// required claims. Decide with [`Target::any_grpc_method`].
    #[cfg(feature = "tonic")]
    pub(crate) fn for_service(roles: &[String], claims: &[(String, String)]) -> Self {
        builder::service_policy(roles, claims)
    }

    /// Reads a policy from TOML text; see [`Policy::from_toml_file`] for the format.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        file::parse(text, "policy", crate::POLICY_FILE_SECTIONS)?.build()
    }

    /// Reads a policy file (TOML):
    ///
    /// ```toml
    /// unmatched = "deny"            # or "authenticated"; default "deny"
    /// public = ["/health"]          # public prefixes, matched on whole segments
    /// url_prefix = "/internal"      # rules match with or without it
    /// [required_claims]             # each must equal (or, for arrays, contain) the value
    /// tenant = "acme"
    /// [inherit]                     # role inheritance: admin includes client
    /// admin = ["client"]
    /// [[rule]]
    /// roles = ["client"]
    /// methods = ["POST"]            # optional; default any method
    /// path = "/api/v1/clients/add"
    /// [[rule]]                      # conditions: all must hold (see `Condition`)
    /// roles = ["*"]
    /// methods = ["GET"]
    /// path = "/tenants/{tenant}/reports"
    /// when = [{ claim = "tenant", equals_param = "tenant" },   # a path parameter
    ///         { claim = "plan", equals = "pro" },              # a literal
    ///         { claim = "org", equals_header = "x-org" }]      # a header (gRPC: metadata)
    /// [[rule]]                      # a dry-run rule: recorded, never enforced
    /// roles = ["analyst"]
    /// path = "/reports/**"
    /// shadow = true
    ///
    /// unmatched_grpc = "authenticated"          # gRPC methods no rule names; default "deny"
    /// public_grpc = ["/grpc.health.v1.Health/*"]
    /// [[grpc_user_agent]]                       # off unless listed
    /// agent = "grpc_health_probe"
    /// methods = ["/grpc.health.v1.Health/*"]
    /// [[grpc]]
    /// roles = ["client"]
    /// method = "/fedn.Combiner/TaskStream"      # or "/pkg.Service/*", or "*"
    ///
    /// ```
    ///
    /// Integrations add their own sections (see their modules). The file is checked as [`PolicyBuilder::build`] checks the builder; see
    /// [`PolicyBuilder::url_prefix`] for how the URL prefix reads public prefixes.
    pub fn from_toml_file(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        builder_from_file(
            &path.as_ref().display().to_string(),
            "PORTCULLIS_POLICY_FILE",
        )?
        .build()
    }

    /// Checks the request path (dot segments, also percent-encoded or before a `;` path
    /// parameter, and more than 256 segments give 400) and
    /// finds whether it is public. Allocates nothing.
    pub fn target<'a>(&self, method: &'a Method, path: &'a str) -> Result<Target<'a>, AuthError> {
        self.request_target(method, path, None, None)
    }

    /// [`target`](Self::target) with the request's query and headers, built in one go
    /// (the layer's path).
    #[inline(always)]
    pub(crate) fn request_target<'a>(
        &self,
        method: &'a Method,
        path: &'a str,
        query: Option<&'a str>,
        headers: Option<&'a http::HeaderMap>,
    ) -> Result<Target<'a>, AuthError> {
        check_path(path)?;
        let inner = &self.inner;
        let full = Segs::of(path);
        let stripped = inner.url_prefix.as_ref().and_then(|p| full.strip(p.segs()));
        let mut hit = inner.public.first_covering(full);
        if inner.public_when_stripped
            && let Some(s) = stripped
        {
            hit = min_some(hit, inner.public.first_covering(s));
        }
        Ok(Target {
            kind: TargetKind::Http {
                method,
                full,
                stripped,
            },
            public: hit.map(|i| inner.public_sources[i as usize].clone()),
            query,
            headers,
        })
    }

    /// Checks a gRPC request: `path` is the full method name (`/pkg.Service/Method`, the
    /// HTTP/2 `:path`), `user_agent` the `user-agent` metadata. Public methods, and callers
    /// whose user agent's first word is on the allow-list, need no token.
    pub fn grpc_target<'a>(
        &self,
        path: &'a str,
        user_agent: Option<&str>,
    ) -> Result<Target<'a>, AuthError> {
        let Some((service, _)) = split_grpc(path) else {
            return Err(AuthError::invalid_request(Reason::BadPath));
        };
        let inner = &self.inner;
        let public = inner
            .grpc_public
            .first(path, service)
            .map(|i| inner.grpc_public_sources[i as usize].clone())
            .or_else(|| {
                let agent = user_agent?.split(' ').next()?;
                inner
                    .grpc_user_agents
                    .iter()
                    .find(|a| a.agent == agent && a.methods.first(path, service).is_some())
                    .map(|a| a.label.clone())
            });
        Ok(Target {
            kind: TargetKind::Grpc {
                method: path,
                service,
            },
            public,
            query: None,
            headers: None,
        })
    }

    /// Decides for a verified caller: public targets pass, then every required claim
    /// must hold, then the rules decide from the caller's roles.
    pub fn decide(&self, principal: &Principal, target: &Target<'_>) -> RouteDecision {
        if let Some(d) = public_decision(target) {
            return d;
        }
        if let Some(key) = self.failed_claim(principal) {
            return RouteDecision::deny(RouteReason::RequiredClaim {
                key: key.to_owned(),
            });
        }
        let decision = self.explain(Some(principal), principal_roles(principal), target);
        self.extension_decision(principal, target, &decision)
            .unwrap_or(decision)
    }

    /// Decides from roles alone (no required claims, no integration rules): for explaining and
    /// testing.
    ///
    /// A target that rules name is allowed by the first of them (as written) that one of
    /// `roles` satisfies, and the reason names that rule and the first such role in
    /// `roles`; when none does, the reason lists every role those rules name, sorted.
    ///
    /// Rules with [conditions](Condition) need a verified caller's claims: here they never
    /// apply, and a target only they name is refused with the condition as the reason.
    pub fn decide_roles<S: AsRef<str>>(&self, roles: &[S], target: &Target<'_>) -> RouteDecision {
        self.explain(None, roles.iter().map(AsRef::as_ref), target)
    }

    /// How many dry-run policies this policy records beside its own decisions: one for its
    /// dry-run rules ([`PolicyBuilder::shadow_allow_when`], `shadow = true` in a file), one
    /// for each [`PolicyBuilder::shadow`].
    pub fn shadow_count(&self) -> usize {
        self.inner.shadow.len()
    }

    /// The layer's path: the same answer as [`decide`](Self::decide), without building a
    /// reason (or allocating) when the request is allowed.
    pub(crate) fn authorize(
        &self,
        principal: &Principal,
        target: &Target<'_>,
    ) -> Result<(), AuthError> {
        if target.public.is_some() {
            return Ok(());
        }
        if !self.inner.shadow.is_empty() {
            self.record_shadows(principal, target);
        }
        self.enforce(principal, target)
    }

    /// Decides each dry-run policy for this request and records what it would do.
    #[cold]
    fn record_shadows(&self, principal: &Principal, target: &Target<'_>) {
        for shadow in &self.inner.shadow {
            let decision = shadow.policy.decide(principal, target);
            if shadow.named_only
                && matches!(
                    decision.reason,
                    RouteReason::UnmatchedAuthenticated | RouteReason::UnmatchedDenied
                )
            {
                continue;
            }
            let allowed = decision.is_allowed();
            crate::metrics::shadow_decision(allowed);
            tracing::debug!(
                target: "portcullis::policy",
                result = if allowed { "would_allow" } else { "would_deny" },
                reason = %decision.reason,
                "shadow decision (not enforced)"
            );
        }
    }

    /// The enforced decision, without building a reason when the request is allowed.
    fn enforce(&self, principal: &Principal, target: &Target<'_>) -> Result<(), AuthError> {
        if self.failed_claim(principal).is_none() {
            let (admitted, named) = self.admits(principal, target);
            if admitted {
                return Ok(());
            }
            match self.extension_allows(principal, target) {
                Some(true) => return Ok(()),
                None if !named && self.unmatched_for(target) == Unmatched::Authenticated => {
                    return Ok(());
                }
                _ => {}
            }
        }
        if self.inner.reasons_read_headers || self.failed_claim(principal).is_some() {
            return self.decide(principal, target).into_result().map(|_| ());
        }
        // Refused: the reason (which rule, which roles) is worked out when someone reads
        // it, from what the decision read.
        let (policy, principal, target) =
            (self.clone(), principal.clone(), target.to_owned_target());
        Err(AuthError::forbidden_deferred(move || {
            match target.target(&policy) {
                Some(t) => policy.decide(&principal, &t).reason().to_string(),
                None => "denied".to_owned(),
            }
        }))
    }

    /// What the layer runs after authentication, for benchmarks only; not part of the
    /// supported API.
    #[doc(hidden)]
    pub fn authorize_for_bench(
        &self,
        principal: &Principal,
        target: &Target<'_>,
    ) -> Result<(), AuthError> {
        self.authorize(principal, target)
    }

    /// The required-claims half of a decision: `Ok` when the caller holds every claim the
    /// policy requires ([`require_claim`](PolicyBuilder::require_claim),
    /// `FEDN_JWT_CUSTOM_CLAIM_KEY`/`_VALUE`), else the 403 [`decide`](Self::decide) gives
    /// (its message names the claim). For endpoints that decide access themselves but
    /// must still honour the policy's required claims.
    ///
    /// ```
    /// use portcullis::{Algorithm, AuthErrorKind, Authenticator, Policy, Signer};
    ///
    /// let secret = "0123456789abcdef0123456789abcdef";
    /// let auth = Authenticator::builder().hmac_secret(secret).build()?;
    /// let policy = Policy::builder().require_claim("project", "p1").build()?;
    /// let signer = Signer::hmac(Algorithm::HS256, secret)?;
    /// let ours = auth.verify(&signer.sign(&serde_json::json!({"sub": "ada", "project": "p1", "exp": 4_000_000_000u64}))?)?;
    /// let theirs = auth.verify(&signer.sign(&serde_json::json!({"sub": "bob", "project": "p2", "exp": 4_000_000_000u64}))?)?;
    /// assert!(policy.check_required_claims(&ours).is_ok());
    /// assert_eq!(policy.check_required_claims(&theirs).unwrap_err().kind(), AuthErrorKind::Forbidden);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_required_claims(&self, principal: &Principal) -> Result<(), AuthError> {
        match self.failed_claim(principal) {
            None => Ok(()),
            Some(key) => RouteDecision::deny(RouteReason::RequiredClaim {
                key: key.to_owned(),
            })
            .into_result()
            .map(|_| ()),
        }
    }

    /// A policy for endpoints of your own beside a guarded app (an admin or a
    /// compatibility endpoint): this policy's required claims, and every route and gRPC
    /// method open to any verified caller. Route rules, public prefixes and the URL prefix
    /// are left out. Give it to [`AuthLayer::with_policy`](crate::AuthLayer::with_policy)
    /// to guard such endpoints with the same keys, claims and answers as the app.
    ///
    /// ```
    /// use portcullis::{Algorithm, Authenticator, Policy, Signer};
    ///
    /// let secret = "0123456789abcdef0123456789abcdef";
    /// let auth = Authenticator::builder().hmac_secret(secret).build()?;
    /// let signer = Signer::hmac(Algorithm::HS256, secret)?;
    /// let app = Policy::builder().allow("GET", "/reports", ["staff"]).require_claim("tenant", "t1").build()?;
    /// let any = app.required_claims_only();
    /// let target = any.target(&http::Method::POST, "/admin/anything")?;
    /// let ada = auth.verify(&signer.sign(&serde_json::json!({"sub": "ada", "tenant": "t1", "exp": 4_000_000_000u64}))?)?;
    /// assert!(any.decide(&ada, &target).is_allowed());
    /// let bob = auth.verify(&signer.sign(&serde_json::json!({"sub": "bob", "tenant": "t2", "exp": 4_000_000_000u64}))?)?;
    /// assert!(!any.decide(&bob, &target).is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn required_claims_only(&self) -> Policy {
        let mut open = Policy::builder()
            .unmatched(Unmatched::Authenticated)
            .unmatched_grpc(Unmatched::Authenticated);
        for (key, _, want) in &self.inner.required_claims {
            open = open.require_claim(key, want);
        }
        // The claims were checked when this policy was built.
        open.build()
            .expect("a policy of checked required claims and no rules always builds")
    }

    /// The first required claim the caller fails, if any.
    fn failed_claim(&self, principal: &Principal) -> Option<&str> {
        self.inner
            .required_claims
            .iter()
            .find(|(_, path, want)| !principal.claim_is(path, want))
            .map(|(key, _, _)| key.as_str())
    }

    fn unmatched_for(&self, target: &Target<'_>) -> Unmatched {
        if target.is_grpc() {
            self.inner.grpc_unmatched
        } else {
            self.inner.unmatched
        }
    }

    /// Calls `f` with every index entry whose rules match `target`, until it breaks.
    /// Calls `f` with every index entry whose rules match `target`, and the path segments
    /// it matched (`None` for gRPC), until it breaks.
    fn each_entry<'t, F>(&self, target: &Target<'t>, mut f: F) -> ControlFlow<()>
    where
        F: FnMut(&Entry, Option<Segs<'t>>) -> ControlFlow<()>,
    {
        let inner = &self.inner;
        match &target.kind {
            TargetKind::Http {
                method,
                full,
                stripped,
            } => {
                for trie in inner.http.tries(method) {
                    trie.walk(*full, &mut |e| f(e, Some(*full)))?;
                    if let Some(s) = stripped {
                        trie.walk(*s, &mut |e| f(e, Some(*s)))?;
                    }
                }
            }
            TargetKind::Grpc { method, service } => {
                for e in inner.grpc.lookup(Some((method, service))) {
                    f(e, None)?;
                }
            }
            TargetKind::GrpcAnyMethod => {
                for e in inner.grpc.lookup(None) {
                    f(e, None)?;
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// The rules of `target`'s kind.
    fn rules_of(&self, target: &Target<'_>) -> &[Rule] {
        if target.is_grpc() {
            &self.inner.grpc_rules
        } else {
            &self.inner.http_rules
        }
    }

    /// The first condition of `rule` that fails for `principal` on `target` (matched at
    /// `segs`), if any; every condition fails without a principal.
    fn failed_condition<'r>(
        &self,
        rule: &'r Rule,
        principal: Option<&Principal>,
        segs: Option<Segs<'_>>,
        target: &Target<'_>,
    ) -> Option<&'r condition::Compiled> {
        // A path that carries the URL prefix has two readings; a rule that matches both
        // must meet its conditions in both, so that a parameter never binds to the prefix
        // in one reading and to the routed segment in the other.
        let other = match (&target.kind, segs) {
            (
                TargetKind::Http {
                    full,
                    stripped: Some(s),
                    ..
                },
                Some(this),
            ) => {
                let other = if this == *full { *s } else { *full };
                rule.matcher
                    .as_ref()
                    .is_some_and(|m| m.matches(other))
                    .then_some(other)
            }
            _ => None,
        };
        rule.conditions.iter().find(|c| match principal {
            Some(p) => {
                !c.holds(p, &self.inner.claim_set, segs, target.headers)
                    || other.is_some_and(|o| {
                        !c.holds(p, &self.inner.claim_set, Some(o), target.headers)
                    })
            }
            None => true,
        })
    }

    /// Whether some rule naming the target lets one of `roles` through, and whether any
    /// rule names it (meaningful when none admits). Allocation-free while the policy
    /// names at most 256 roles.
    fn admits(&self, principal: &Principal, target: &Target<'_>) -> (bool, bool) {
        let mask = self.inner.roles.mask_of(principal, principal_roles);
        let mut named = false;
        let admitted = self
            .each_entry(target, |e, segs| {
                if e.admits(&mask) {
                    return ControlFlow::Break(());
                }
                if e.has_conditional() {
                    let rules = self.rules_of(target);
                    let admitted = e.conditional().any(|id| {
                        let rule = &rules[id as usize];
                        (rule.any_role || rule.granted.intersects(&mask))
                            && self
                                .failed_condition(rule, Some(principal), segs, target)
                                .is_none()
                    });
                    if admitted {
                        return ControlFlow::Break(());
                    }
                }
                named = true;
                ControlFlow::Continue(())
            })
            .is_break();
        (admitted, named)
    }

    /// Whether the integrations' rules that name the target let the caller through;
    /// `None` when none names it.
    fn extension_allows(&self, principal: &Principal, target: &Target<'_>) -> Option<bool> {
        match self.extension_verdict(principal, target) {
            extension::Verdict::Unnamed => None,
            extension::Verdict::Allowed(_) => Some(true),
            extension::Verdict::Denied(..) => Some(false),
        }
    }

    fn extension_verdict(&self, principal: &Principal, target: &Target<'_>) -> extension::Verdict {
        let TargetKind::Http {
            method,
            full,
            stripped,
        } = &target.kind
        else {
            return extension::Verdict::Unnamed;
        };
        if self.inner.extension.is_empty() {
            return extension::Verdict::Unnamed;
        }
        let paths = std::iter::once(*full).chain(*stripped);
        extension::judge(
            &self.inner.extension,
            principal,
            method,
            paths,
            target.query,
        )
    }

    /// The decision when integration rules name the target and no ordinary rule let the
    /// caller through; `None` keeps the ordinary decision.
    fn extension_decision(
        &self,
        principal: &Principal,
        target: &Target<'_>,
        decision: &RouteDecision,
    ) -> Option<RouteDecision> {
        if decision.is_allowed() && decision.reason != RouteReason::UnmatchedAuthenticated {
            return None;
        }
        let describe = |i: usize| {
            let rule = &self.inner.extension[i];
            let (methods, pattern) = rule.describe();
            (rule.family(), rule.index(), methods, pattern)
        };
        match self.extension_verdict(principal, target) {
            extension::Verdict::Unnamed => None,
            extension::Verdict::Allowed(i) => {
                let (family, index, methods, pattern) = describe(i);
                Some(RouteDecision::allow(RouteReason::Extension {
                    family,
                    index,
                    methods,
                    pattern,
                }))
            }
            extension::Verdict::Denied(i, refusal) => {
                let (family, index, methods, pattern) = describe(i);
                Some(RouteDecision::deny(RouteReason::ExtensionDenied {
                    family,
                    index,
                    methods,
                    pattern,
                    refusal,
                }))
            }
        }
    }

    /// The decision from roles, with its reason.
    fn explain<'r>(
        &self,
        principal: Option<&Principal>,
        roles: impl IntoIterator<Item = &'r str>,
        target: &Target<'_>,
    ) -> RouteDecision {
        if let Some(d) = public_decision(target) {
            return d;
        }
        let inner = &self.inner;
        // The caller's roles in their order, with their bits.
        let roles: Vec<(&str, Option<u32>)> =
            roles.into_iter().map(|r| (r, inner.roles.id(r))).collect();
        let mut hits = Vec::new();
        let _ = self.each_entry(target, |e, segs| {
            hits.extend(e.rules().map(|id| (id, segs)));
            ControlFlow::Continue(())
        });
        // By rule; a rule matched both with and without the URL prefix keeps the first.
        hits.sort_by_key(|&(id, _)| id);
        hits.dedup_by_key(|&mut (id, _)| id);
        let rules = self.rules_of(target);
        let mut needs = Vec::new();
        let mut failed = None;
        for &(id, segs) in &hits {
            let rule = &rules[id as usize];
            let role = if rule.any_role {
                Some("*")
            } else {
                roles
                    .iter()
                    .find(|(_, bit)| bit.is_some_and(|b| rule.granted.contains(b)))
                    .map(|(r, _)| *r)
            };
            if role.is_some()
                && let Some(c) = self.failed_condition(rule, principal, segs, target)
            {
                failed.get_or_insert((id, c));
                continue;
            }
            if let Some(role) = role {
                let (methods, pattern) = rule.describe(target.is_grpc());
                return RouteDecision::allow(RouteReason::Rule {
                    index: id as usize,
                    methods,
                    pattern,
                    role: role.to_owned(),
                });
            }
            needs.extend(rule.own.ids().map(|b| inner.roles.name(b)));
        }
        if let Some((id, c)) = failed {
            let (methods, pattern) = rules[id as usize].describe(target.is_grpc());
            return RouteDecision::deny(RouteReason::Condition {
                index: id as usize,
                methods,
                pattern,
                condition: c.text.clone(),
            });
        }
        match (hits.is_empty(), self.unmatched_for(target)) {
            (false, _) => {
                needs.sort_unstable();
                needs.dedup();
                RouteDecision::deny(RouteReason::MissingRole {
                    needs: needs.into_iter().map(str::to_owned).collect(),
                })
            }
            (true, Unmatched::Authenticated) => {
                RouteDecision::allow(RouteReason::UnmatchedAuthenticated)
            }
            (true, Unmatched::Deny) => RouteDecision::deny(RouteReason::UnmatchedDenied),
        }
    }
}

fn public_decision(target: &Target<'_>) -> Option<RouteDecision> {
    target.public.as_ref().map(|prefix| {
        RouteDecision::allow(RouteReason::Public {
            prefix: prefix.to_string(),
        })
    })
}
