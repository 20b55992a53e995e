//! Deciding: which roles may reach which routes.
//!
//! A [`Policy`] maps roles to (methods, path pattern) pairs, lists public prefixes that
//! skip authentication, names required claims, and says what happens to a route no rule
//! names. Every [`Decision`] carries its reason.
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
//! // Dot segments, plain or percent-encoded, are an invalid request (400).
//! assert!(policy.target(&http::Method::GET, "/api/%2e%2e/admin").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod fedn;
mod file;
mod pattern;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use http::Method;
use serde_json::Value;

use crate::error::{AuthError, ConfigError, Reason};
use crate::principal::Principal;
pub(crate) use pattern::has_dot_segment;
use pattern::{GrpcPattern, Pattern, Prefix, split_grpc, split_path};

/// What a policy does with a route that no rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Unmatched {
    /// Refuse it with 403 (the default: nothing is reachable unless a rule says so).
    #[default]
    Deny,
    /// Let any valid token through (FEDn's gRPC behaviour).
    Authenticated,
}

/// What a rule matches: HTTP methods and a path pattern, or a gRPC method pattern.
#[derive(Debug, Clone)]
enum Matcher {
    Http {
        methods: Option<Vec<Method>>,
        pattern: Pattern,
    },
    Grpc(GrpcPattern),
}

#[derive(Debug, Clone)]
struct Rule {
    /// Position among the rules of its kind (HTTP or gRPC), as written.
    index: usize,
    matcher: Matcher,
    /// The roles as written, for reasons.
    roles: Vec<String>,
    /// The roles that satisfy the rule once inheritance is applied.
    granted_by: BTreeSet<String>,
    any_role: bool,
}

impl Rule {
    fn matches(&self, target: &Target<'_>) -> bool {
        match (&self.matcher, &target.kind) {
            (
                Matcher::Http { methods, pattern },
                TargetKind::Http {
                    method,
                    full,
                    strip,
                },
            ) => {
                let method_ok = match methods {
                    None => true,
                    Some(ms) => ms
                        .iter()
                        .any(|m| m == *method || (*m == Method::GET && **method == Method::HEAD)),
                };
                method_ok
                    && (pattern.matches(full) || strip.is_some_and(|n| pattern.matches(&full[n..])))
            }
            (Matcher::Grpc(pattern), TargetKind::Grpc { method }) => pattern.matches(method),
            _ => false,
        }
    }

    /// (methods, pattern) as written, for reasons.
    fn describe(&self) -> (String, String) {
        match &self.matcher {
            Matcher::Http { methods, pattern } => (
                match methods {
                    None => "*".to_owned(),
                    Some(ms) => ms.iter().map(Method::as_str).collect::<Vec<_>>().join(","),
                },
                pattern.source().to_owned(),
            ),
            Matcher::Grpc(pattern) => ("gRPC".to_owned(), pattern.source().to_owned()),
        }
    }
}

/// Roles to routes, public prefixes and required claims. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rules: Vec<Rule>,
    public: Vec<Prefix>,
    url_prefix: Option<Prefix>,
    required_claims: Vec<(String, String)>,
    unmatched: Unmatched,
    grpc_public: Vec<GrpcPattern>,
    /// User agents and the methods they may call without a token.
    grpc_user_agents: Vec<(String, Vec<GrpcPattern>)>,
    grpc_unmatched: Unmatched,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("rules", &self.inner.rules.len())
            .field(
                "public",
                &self
                    .inner
                    .public
                    .iter()
                    .map(Prefix::source)
                    .collect::<Vec<_>>(),
            )
            .field("unmatched", &self.inner.unmatched)
            .field(
                "public_grpc",
                &self
                    .inner
                    .grpc_public
                    .iter()
                    .map(GrpcPattern::source)
                    .collect::<Vec<_>>(),
            )
            .field(
                "grpc_user_agents",
                &self
                    .inner
                    .grpc_user_agents
                    .iter()
                    .map(|(a, m)| (a, m.iter().map(GrpcPattern::source).collect::<Vec<_>>()))
                    .collect::<Vec<_>>(),
            )
            .field("unmatched_grpc", &self.inner.grpc_unmatched)
            .finish_non_exhaustive()
    }
}

/// A request target checked against the policy: method and path segments.
#[derive(Debug)]
pub struct Target<'a> {
    kind: TargetKind<'a>,
    /// The public prefix or method pattern that covers the target, if any.
    public: Option<Arc<str>>,
}

#[derive(Debug)]
enum TargetKind<'a> {
    Http {
        method: &'a Method,
        /// The path as sent, split at `/`.
        full: Vec<&'a str>,
        /// How many leading segments the URL prefix takes, when the path starts with it.
        strip: Option<usize>,
    },
    Grpc {
        /// The full method name, `/pkg.Service/Method`.
        method: &'a str,
    },
}

impl Target<'_> {
    /// Whether a public prefix (or public gRPC method) covers the target, so it needs no
    /// token.
    pub fn is_public(&self) -> bool {
        self.public.is_some()
    }

    /// Whether this is a gRPC method rather than an HTTP route.
    pub fn is_grpc(&self) -> bool {
        matches!(self.kind, TargetKind::Grpc { .. })
    }
}

/// Why a request was allowed or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecisionReason {
    /// A public prefix covers the route.
    Public {
        /// The prefix as configured.
        prefix: String,
    },
    /// A rule allowed it.
    Rule {
        /// Position of the rule among the policy's HTTP rules, or among its gRPC rules.
        index: usize,
        /// The rule's method list (`*` for any).
        methods: String,
        /// The rule's path pattern.
        pattern: String,
        /// The caller's role that satisfied it (`*` for a rule open to any valid token).
        role: String,
    },
    /// No rule names the route and the policy lets any valid token through.
    UnmatchedAuthenticated,
    /// No rule names the route and the policy refuses it.
    UnmatchedDenied,
    /// Rules name the route but the caller holds none of their roles.
    MissingRole {
        /// The roles that would have been allowed.
        needs: Vec<String>,
    },
    /// A required claim is missing or different.
    RequiredClaim {
        /// The claim's name (its value is never reported).
        key: String,
    },
}

impl fmt::Display for DecisionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Public { prefix } => write!(f, "public prefix `{prefix}`"),
            Self::Rule {
                index,
                methods,
                pattern,
                role,
            } => {
                write!(f, "rule {index} ({methods} {pattern}) allows role `{role}`")
            }
            Self::UnmatchedAuthenticated => {
                f.write_str("no rule names this route; any valid token passes")
            }
            Self::UnmatchedDenied => {
                f.write_str("no rule names this route; unmatched routes are denied")
            }
            Self::MissingRole { needs } => write!(
                f,
                "no role of the caller is named by the rules for this route (needs one of: {})",
                needs.join(", ")
            ),
            Self::RequiredClaim { key } => {
                write!(f, "required claim `{key}` is missing or different")
            }
        }
    }
}

/// The outcome of a policy check, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    allowed: bool,
    reason: DecisionReason,
}

impl Decision {
    /// Whether the request may go on.
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// Which rule allowed it, or why nothing did.
    pub fn reason(&self) -> &DecisionReason {
        &self.reason
    }

    /// The decision as a result: a refusal becomes a 403 [`AuthError`].
    pub fn into_result(self) -> Result<DecisionReason, AuthError> {
        if self.allowed {
            Ok(self.reason)
        } else {
            Err(match &self.reason {
                DecisionReason::RequiredClaim { key } => AuthError::new(
                    crate::AuthErrorKind::Forbidden,
                    Reason::RequiredClaim(key.clone()),
                ),
                other => AuthError::forbidden_because(other.to_string()),
            })
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            if self.allowed { "allowed" } else { "denied" },
            self.reason
        )
    }
}

impl Policy {
    /// Starts an empty builder: no rules, no public prefixes, unmatched routes denied.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    /// Reads a policy from TOML text; see [`Policy::from_toml_file`] for the format.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        file::parse(text, "policy")?.build()
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
    ///
    /// unmatched_grpc = "authenticated"          # gRPC methods no rule names; default "deny"
    /// public_grpc = ["/grpc.health.v1.Health/*"]
    /// [[grpc_user_agent]]                       # off unless listed
    /// agent = "grpc_health_probe"
    /// methods = ["/grpc.health.v1.Health/*"]
    /// [[grpc]]
    /// roles = ["client"]
    /// method = "/fedn.Combiner/TaskStream"      # or "/pkg.Service/*", or "*"
    /// ```
    pub fn from_toml_file(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        builder_from_file(&path.as_ref().display().to_string())?.build()
    }

    /// Checks the request path (dot segments give 400) and finds whether it is public.
    pub fn target<'a>(&self, method: &'a Method, path: &'a str) -> Result<Target<'a>, AuthError> {
        let full = split_path(path)?;
        let strip = self
            .inner
            .url_prefix
            .as_ref()
            .and_then(|p| p.strip_len(&full));
        let stripped = strip.map(|n| &full[n..]);
        let public = self
            .inner
            .public
            .iter()
            .find(|p| p.covers(&full) || stripped.is_some_and(|s| p.covers(s)))
            .map(|p| p.source().clone());
        Ok(Target {
            kind: TargetKind::Http {
                method,
                full,
                strip,
            },
            public,
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
        if split_grpc(path).is_none() {
            return Err(AuthError::invalid_request(Reason::BadPath));
        }
        let inner = &self.inner;
        let public = inner
            .grpc_public
            .iter()
            .find(|p| p.matches(path))
            .map(|p| Arc::from(p.source()))
            .or_else(|| {
                let agent = user_agent?.split(' ').next()?;
                inner
                    .grpc_user_agents
                    .iter()
                    .find(|(a, methods)| a == agent && methods.iter().any(|m| m.matches(path)))
                    .map(|(a, _)| Arc::from(format!("user-agent {a}")))
            });
        Ok(Target {
            kind: TargetKind::Grpc { method: path },
            public,
        })
    }

    /// Decides for a verified caller.
    pub fn decide(&self, principal: &Principal, target: &Target<'_>) -> Decision {
        if let Some(d) = self.public_decision(target) {
            return d;
        }
        for (key, want) in &self.inner.required_claims {
            if !claim_matches(principal, key, want) {
                return Decision {
                    allowed: false,
                    reason: DecisionReason::RequiredClaim { key: key.clone() },
                };
            }
        }
        self.decide_roles(&principal.roles().collect::<Vec<_>>(), target)
    }

    fn public_decision(&self, target: &Target<'_>) -> Option<Decision> {
        target.public.as_ref().map(|prefix| Decision {
            allowed: true,
            reason: DecisionReason::Public {
                prefix: prefix.to_string(),
            },
        })
    }

    /// The layer's fast path: the same answer as [`decide`](Self::decide), without
    /// building a reason when the request is allowed.
    pub(crate) fn authorize(
        &self,
        principal: &Principal,
        target: &Target<'_>,
    ) -> Result<(), AuthError> {
        if target.public.is_some() {
            return Ok(());
        }
        let claims_ok = self
            .inner
            .required_claims
            .iter()
            .all(|(key, want)| claim_matches(principal, key, want));
        if claims_ok && self.allows(principal.roles(), target) {
            return Ok(());
        }
        self.decide(principal, target).into_result().map(|_| ())
    }

    fn unmatched_for(&self, target: &Target<'_>) -> Unmatched {
        if target.is_grpc() {
            self.inner.grpc_unmatched
        } else {
            self.inner.unmatched
        }
    }

    /// Whether some rule naming the target lets one of `roles` through (or none names it
    /// and unmatched targets are open to any valid token).
    fn allows<'r>(
        &self,
        roles: impl Iterator<Item = &'r str> + Clone,
        target: &Target<'_>,
    ) -> bool {
        let mut named = false;
        for rule in &self.inner.rules {
            if !rule.matches(target) {
                continue;
            }
            if rule.any_role || roles.clone().any(|r| rule.granted_by.contains(r)) {
                return true;
            }
            named = true;
        }
        !named && self.unmatched_for(target) == Unmatched::Authenticated
    }

    /// Decides from roles alone (no required claims): for explaining and testing.
    pub fn decide_roles<S: AsRef<str>>(&self, roles: &[S], target: &Target<'_>) -> Decision {
        if let Some(d) = self.public_decision(target) {
            return d;
        }
        let mut named = false;
        let mut needs = BTreeSet::new();
        for rule in &self.inner.rules {
            let hit = rule.matches(target);
            if !hit {
                continue;
            }
            named = true;
            let role = if rule.any_role {
                Some("*")
            } else {
                roles
                    .iter()
                    .map(AsRef::as_ref)
                    .find(|r| rule.granted_by.contains(*r))
            };
            if let Some(role) = role {
                let (methods, pattern) = rule.describe();
                return Decision {
                    allowed: true,
                    reason: DecisionReason::Rule {
                        index: rule.index,
                        methods,
                        pattern,
                        role: role.to_owned(),
                    },
                };
            }
            needs.extend(rule.roles.iter().cloned());
        }
        match (named, self.unmatched_for(target)) {
            (true, _) => Decision {
                allowed: false,
                reason: DecisionReason::MissingRole {
                    needs: needs.into_iter().collect(),
                },
            },
            (false, Unmatched::Authenticated) => Decision {
                allowed: true,
                reason: DecisionReason::UnmatchedAuthenticated,
            },
            (false, Unmatched::Deny) => Decision {
                allowed: false,
                reason: DecisionReason::UnmatchedDenied,
            },
        }
    }
}

/// Builds a [`Policy`]. Mistakes are collected and reported by [`build`](Self::build).
#[derive(Debug, Default, Clone)]
pub struct PolicyBuilder {
    /// (methods, pattern, roles); methods `None` marks a gRPC rule.
    rules: Vec<(Option<String>, String, Vec<String>)>,
    grpc_public: Vec<String>,
    grpc_user_agents: Vec<(String, Vec<String>)>,
    grpc_unmatched: Unmatched,
    public: Vec<String>,
    url_prefix: Option<String>,
    required_claims: Vec<(String, String)>,
    unmatched: Unmatched,
    inherit: HashMap<String, Vec<String>>,
}

impl PolicyBuilder {
    /// Allows `roles` to reach `pattern` with `methods`: one method (`GET`), several
    /// separated by commas (`GET,POST`), or `*` for any. The role `*` means any valid token.
    pub fn allow<I, S>(mut self, methods: &str, pattern: &str, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rules.push((
            Some(methods.to_owned()),
            pattern.to_owned(),
            roles.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// Allows `roles` to call gRPC methods matching `pattern`: a full method name
    /// (`/pkg.Service/Method`), a whole service (`/pkg.Service/*`), or `*` for every method.
    /// The role `*` means any valid token.
    pub fn allow_grpc<I, S>(mut self, pattern: &str, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rules.push((
            None,
            pattern.to_owned(),
            roles.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// A public gRPC method (or `/pkg.Service/*`): calls need no token.
    pub fn public_grpc(mut self, pattern: impl Into<String>) -> Self {
        self.grpc_public.push(pattern.into());
        self
    }

    /// Lets callers whose user agent's first word is `agent` call `methods` (gRPC method
    /// patterns) without a token, as FEDn does for `grpc_health_probe` on the health
    /// service. Off unless configured. Any client can claim any user agent, so list only
    /// methods that are harmless to expose: an empty list is refused, and FEDn's own
    /// allow-list (which opens every method) is deliberately not reproduced.
    ///
    /// ```
    /// use portcullis::Policy;
    ///
    /// let policy = Policy::builder()
    ///     .grpc_user_agent("grpc_health_probe", ["/grpc.health.v1.Health/*"])
    ///     .build()?;
    /// let probe = Some("grpc_health_probe grpc-go/1.70");
    /// assert!(policy.grpc_target("/grpc.health.v1.Health/Check", probe)?.is_public());
    /// assert!(!policy.grpc_target("/pkg.Admin/Stats", probe)?.is_public());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn grpc_user_agent<I, S>(mut self, agent: impl Into<String>, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.grpc_user_agents
            .push((agent.into(), methods.into_iter().map(Into::into).collect()));
        self
    }

    /// What to do with gRPC methods no rule names. Default [`Unmatched::Deny`];
    /// FEDn's gRPC policy uses [`Unmatched::Authenticated`].
    pub fn unmatched_grpc(mut self, unmatched: Unmatched) -> Self {
        self.grpc_unmatched = unmatched;
        self
    }

    /// A public prefix: requests under it skip authentication. Matched on whole
    /// segments: `/internal` covers `/internal` and `/internal/x`, not `/internalx`.
    pub fn public_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.public.push(prefix.into());
        self
    }

    /// The application also serves every route under this prefix (FEDn's
    /// `FEDN_CUSTOM_URL_PREFIX`), so rules and public prefixes match with or without it.
    pub fn url_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.url_prefix = Some(prefix.into());
        self
    }

    /// Requires the claim `key` (a dotted path) to be a string equal to `value`, or an array
    /// containing it. Missing or different: 403.
    pub fn require_claim(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.required_claims.push((key.into(), value.into()));
        self
    }

    /// What to do with routes no rule names. Default [`Unmatched::Deny`].
    pub fn unmatched(mut self, unmatched: Unmatched) -> Self {
        self.unmatched = unmatched;
        self
    }

    /// Role inheritance: `role` also holds every role in `includes` (transitively).
    /// Off by default.
    pub fn inherit<I, S>(mut self, role: impl Into<String>, includes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inherit
            .entry(role.into())
            .or_default()
            .extend(includes.into_iter().map(Into::into));
        self
    }

    /// Checks every rule and builds the policy.
    pub fn build(self) -> Result<Policy, ConfigError> {
        // Which roles grant role r: r itself and every role whose closure holds r.
        let closure = |start: &str| {
            let mut seen = BTreeSet::new();
            let mut stack = vec![start.to_owned()];
            while let Some(r) = stack.pop() {
                if seen.insert(r.clone()) {
                    stack.extend(self.inherit.get(&r).into_iter().flatten().cloned());
                }
            }
            seen
        };
        let closures: Vec<(String, BTreeSet<String>)> = self
            .inherit
            .keys()
            .map(|k| (k.clone(), closure(k)))
            .collect();
        let mut rules = Vec::with_capacity(self.rules.len());
        let (mut http_index, mut grpc_index) = (0, 0);
        for (methods, pattern, roles) in self.rules {
            let (index, setting) = match &methods {
                Some(m) => {
                    http_index += 1;
                    (
                        http_index - 1,
                        format!("rule {} ({m} {pattern})", http_index - 1),
                    )
                }
                None => {
                    grpc_index += 1;
                    (
                        grpc_index - 1,
                        format!("grpc rule {} ({pattern})", grpc_index - 1),
                    )
                }
            };
            if roles.is_empty() || roles.iter().any(String::is_empty) {
                return Err(ConfigError::new(
                    setting,
                    "a rule needs at least one non-empty role (`*` for any valid token)",
                ));
            }
            let matcher = match methods {
                Some(methods) => Matcher::Http {
                    methods: parse_methods(&methods).map_err(|e| ConfigError::new(&setting, e))?,
                    pattern: Pattern::parse(&pattern).map_err(|e| ConfigError::new(&setting, e))?,
                },
                None => Matcher::Grpc(
                    GrpcPattern::parse(&pattern).map_err(|e| ConfigError::new(&setting, e))?,
                ),
            };
            let mut granted_by: BTreeSet<String> = roles.iter().cloned().collect();
            for role in &roles {
                for (holder, reach) in &closures {
                    if reach.contains(role) {
                        granted_by.insert(holder.clone());
                    }
                }
            }
            let any_role = roles.iter().any(|r| r == "*");
            rules.push(Rule {
                index,
                matcher,
                roles,
                granted_by,
                any_role,
            });
        }
        let public = self
            .public
            .iter()
            .map(|p| Prefix::parse(p).map_err(|e| ConfigError::new("public prefix", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let url_prefix = match self.url_prefix.as_deref() {
            None | Some("") => None,
            Some(p) => Some(Prefix::parse(p).map_err(|e| ConfigError::new("url prefix", e))?),
        };
        for (k, _) in &self.required_claims {
            if k.is_empty() {
                return Err(ConfigError::new(
                    "required claim",
                    "the claim name is empty",
                ));
            }
        }
        Ok(Policy {
            inner: Arc::new(Inner {
                rules,
                public,
                url_prefix,
                required_claims: self.required_claims,
                unmatched: self.unmatched,
                grpc_public: self
                    .grpc_public
                    .iter()
                    .map(|p| {
                        GrpcPattern::parse(p).map_err(|e| ConfigError::new("public gRPC method", e))
                    })
                    .collect::<Result<_, _>>()?,
                grpc_user_agents: self
                    .grpc_user_agents
                    .into_iter()
                    .map(|(agent, methods)| {
                        let setting = format!("gRPC user agent `{agent}`");
                        if agent.is_empty() || agent.contains(char::is_whitespace) {
                            return Err(ConfigError::new(setting, "must be one non-empty word, the user agent's first"));
                        }
                        if methods.is_empty() {
                            return Err(ConfigError::new(setting, "name the methods it may call without a token, like `/grpc.health.v1.Health/*`"));
                        }
                        let methods = methods
                            .iter()
                            .map(|m| GrpcPattern::parse(m).map_err(|e| ConfigError::new(&setting, e)))
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok((agent, methods))
                    })
                    .collect::<Result<_, _>>()?,
                grpc_unmatched: self.grpc_unmatched,
            }),
        })
    }
}

/// Checks a prefix as a public or URL prefix, for errors that name their setting.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), String> {
    Prefix::parse(prefix).map(|_| ())
}

/// A required claim holds: a string equal to `want`, or an array containing it.
pub(crate) fn claim_matches(principal: &Principal, key: &str, want: &str) -> bool {
    match principal.claim(key) {
        Some(Value::String(s)) => s == want,
        Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(want)),
        _ => false,
    }
}

/// A builder from a TOML policy file, for the environment configuration.
pub(crate) fn builder_from_file(path: &str) -> Result<PolicyBuilder, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            "PORTCULLIS_POLICY_FILE",
            format!("cannot read `{path}`: {e}"),
        )
    })?;
    file::parse(&text, path)
}

fn parse_methods(methods: &str) -> Result<Option<Vec<Method>>, String> {
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
