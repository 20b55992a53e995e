//! The policy builder: settings collected, checked and compiled by `build()`.

use std::collections::HashMap;

use super::condition::Condition;
use super::extension::RuleFamily;
use super::parsed::{Matcher, Parsed, ParsedRule};
use super::pattern::{GrpcPattern, Pattern, Prefix, parse_methods};
use super::{Policy, Shadow, Unmatched, index};
use crate::error::{ConfigError, ConfigErrorKind};

/// A rule as the builder holds it, before checks.
#[derive(Debug, Clone)]
struct RawRule {
    /// The method list as written; `None` marks a gRPC rule.
    methods: Option<String>,
    pattern: String,
    roles: Vec<String>,
    conditions: Vec<Condition>,
    /// A dry-run rule: decided and recorded, never enforced.
    shadow: bool,
}

/// Builds a [`Policy`]. Mistakes are collected and reported by [`build`](Self::build).
#[derive(Debug, Default, Clone)]
pub struct PolicyBuilder {
    rules: Vec<RawRule>,
    grpc_public: Vec<String>,
    grpc_user_agents: Vec<(String, Vec<String>)>,
    grpc_unmatched: Unmatched,
    public: Vec<String>,
    /// Public prefixes from the environment, which win over the rules they shadow.
    public_overriding: Vec<String>,
    url_prefix: Option<String>,
    required_claims: Vec<(String, String)>,
    unmatched: Unmatched,
    inherit: HashMap<String, Vec<String>>,
    /// Rule families added by integrations, one per type.
    families: Vec<Box<dyn RuleFamily>>,
    /// Whole shadow policies.
    shadows: Vec<Policy>,
}

impl PolicyBuilder {
    /// Allows `roles` to reach `pattern` with `methods`: one method (`GET`), several
    /// separated by commas (`GET,POST`), or `*` for any. The role `*` means any valid token.
    pub fn allow<I, S>(self, methods: &str, pattern: &str, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rule(Some(methods), pattern, roles, Vec::new(), false)
    }

    /// Like [`allow`](Self::allow), and only when every one of `conditions` holds: a claim
    /// equal to a path parameter of `pattern`, a literal or a request header (see
    /// [`Condition`]). A caller whose conditions fail is refused with 403 unless another
    /// rule lets it through. [`build`](Self::build) refuses a condition that names a
    /// parameter the pattern lacks, or a claim path or header name that is not one.
    ///
    /// ```
    /// use portcullis::{Condition, Policy};
    ///
    /// let err = Policy::builder()
    ///     .allow_when("GET", "/tenants/{tenant}/reports", ["*"], [Condition::claim_equals_param("tenant", "org")])
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "rule 0 (GET /tenants/{tenant}/reports)");
    /// assert!(err.message().contains("no parameter `{org}`"), "{err}");
    /// ```
    pub fn allow_when<I, S, C>(self, methods: &str, pattern: &str, roles: I, conditions: C) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
        C: IntoIterator<Item = Condition>,
    {
        self.rule(
            Some(methods),
            pattern,
            roles,
            conditions.into_iter().collect(),
            false,
        )
    }

    /// A dry-run rule: like [`allow_when`](Self::allow_when), decided on every request it
    /// names and recorded, never enforced. Each decision is counted
    /// (`portcullis_shadow_decisions_total{result="would_allow"|"would_deny"}`, feature
    /// `metrics`) and logged at DEBUG (target `portcullis::policy`) with the rule, so you
    /// can see what a rule would do before you enforce it. The enforced rules alone decide
    /// the request. Shadow decisions are made for verified callers on routes that are not
    /// public.
    ///
    /// ```
    /// use portcullis::{Condition, Policy};
    ///
    /// let policy = Policy::builder()
    ///     .allow("GET", "/reports/**", ["staff"])
    ///     // Tomorrow's rule, tried out today:
    ///     .shadow_allow_when("GET", "/reports/**", ["analyst"], [Condition::claim_equals("plan", "pro")])
    ///     .build()?;
    /// assert_eq!(policy.shadow_count(), 1);
    /// # Ok::<(), portcullis::ConfigError>(())
    /// ```
    pub fn shadow_allow_when<I, S, C>(
        self,
        methods: &str,
        pattern: &str,
        roles: I,
        conditions: C,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
        C: IntoIterator<Item = Condition>,
    {
        self.rule(
            Some(methods),
            pattern,
            roles,
            conditions.into_iter().collect(),
            true,
        )
    }

    /// A whole dry-run policy: every request the enforced policy decides for a verified
    /// caller is also decided by `shadow`, counted and logged as for
    /// [`shadow_allow_when`](Self::shadow_allow_when), never enforced. For rolling out a
    /// new rule set: enforce the old one and watch what the new one would do.
    #[must_use]
    pub fn shadow(mut self, shadow: Policy) -> Self {
        self.shadows.push(shadow);
        self
    }

    fn rule<I, S>(
        mut self,
        methods: Option<&str>,
        pattern: &str,
        roles: I,
        conditions: Vec<Condition>,
        shadow: bool,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rules.push(RawRule {
            methods: methods.map(str::to_owned),
            pattern: pattern.to_owned(),
            roles: roles.into_iter().map(Into::into).collect(),
            conditions,
            shadow,
        });
        self
    }

    /// Adds a rule read from a policy file.
    pub(super) fn file_rule(
        self,
        methods: Option<&str>,
        pattern: &str,
        roles: Vec<String>,
        conditions: Vec<Condition>,
        shadow: bool,
    ) -> Self {
        self.rule(methods, pattern, roles, conditions, shadow)
    }

    /// Allows `roles` to call gRPC methods matching `pattern`: a full method name
    /// (`/pkg.Service/Method`), a whole service (`/pkg.Service/*`), or `*` for every method.
    /// The role `*` means any valid token.
    pub fn allow_grpc<I, S>(self, pattern: &str, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rule(None, pattern, roles, Vec::new(), false)
    }

    /// Like [`allow_grpc`](Self::allow_grpc), and only when every one of `conditions`
    /// holds: a claim equal to a literal or to a metadata entry
    /// ([`Condition::claim_equals_header`]; gRPC methods have no path parameters).
    pub fn allow_grpc_when<I, S, C>(self, pattern: &str, roles: I, conditions: C) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
        C: IntoIterator<Item = Condition>,
    {
        self.rule(
            None,
            pattern,
            roles,
            conditions.into_iter().collect(),
            false,
        )
    }

    /// The rule family of type `F` (an integration's rules and settings), added empty
    /// the first time.
    #[allow(dead_code)] // only integrations call it; a build may have none
    pub(crate) fn family_mut<F: RuleFamily + Default>(&mut self) -> &mut F {
        let at = match self
            .families
            .iter_mut()
            .position(|f| f.as_any_mut().is::<F>())
        {
            Some(at) => at,
            None => {
                self.families.push(Box::new(F::default()));
                self.families.len() - 1
            }
        };
        self.families[at]
            .as_any_mut()
            .downcast_mut()
            .expect("found by type")
    }

    /// A public gRPC method (or `/pkg.Service/*`): calls need no token.
    ///
    /// A gRPC rule whose methods are all public could never apply, so
    /// [`build`](Self::build) refuses it and names both.
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
    ///
    /// An HTTP rule under a public prefix (`GET /health/live` beside the public
    /// `/health`) could never apply, so [`build`](Self::build) refuses it and names both.
    pub fn public_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.public.push(prefix.into());
        self
    }

    /// A public prefix set by the operator outside the code (`FEDN_AUTH_WHITELIST_URL_PREFIX`,
    /// `FEDN_AUTH_WHITELIST_URL`): it wins over the rules of presets and application code.
    /// A rule it fully shadows is dropped, with one warning naming the rule and the prefix,
    /// instead of failing [`build`](Self::build) (FEDn accepts that set-up: the operator
    /// makes those routes public).
    pub(crate) fn public_prefix_overriding(mut self, prefix: impl Into<String>) -> Self {
        self.public_overriding.push(prefix.into());
        self
    }

    /// The application also serves every route under this prefix (FEDn's
    /// `FEDN_CUSTOM_URL_PREFIX`), so rules match a path both as it stands and with the
    /// prefix stripped: with the prefix `/internal`, a rule on `/api/v1/clients/add` also
    /// applies to `/internal/api/v1/clients/add`, and roles from both readings add up.
    ///
    /// Public prefixes are stricter, because the policy and the router must never read
    /// one path two ways: a path as it stands under a public prefix is public; the path
    /// with the URL prefix stripped makes it public only when no rule names a route under
    /// the URL prefix, that is when no rule's pattern starts (in its leading literal
    /// segments) with the URL prefix. With the URL prefix `/internal` and rules that
    /// never mention it, `/internal/health` is public beside the public `/health`. With
    /// the URL prefix `/api` and a rule on `/api/v1/clients/add`, the application's own
    /// routes live under `/api`, so `/api/v1/clients/` needs a token even beside the
    /// public prefix `/v1/clients`: only what is public as it stands is public.
    ///
    /// ```
    /// use portcullis::Policy;
    ///
    /// let get = &http::Method::GET;
    /// let policy = Policy::builder()
    ///     .allow("POST", "/api/v1/clients/add", ["client"])
    ///     .public_prefix("/health")
    ///     .url_prefix("/internal")
    ///     .build()?;
    /// assert!(policy.target(get, "/internal/health")?.is_public());
    ///
    /// let policy = Policy::fedn_rest().public_prefix("/v1/clients").url_prefix("/api").build()?;
    /// assert!(policy.target(get, "/v1/clients/x")?.is_public());
    /// assert!(!policy.target(get, "/api/v1/clients/")?.is_public());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// Besides malformed patterns, methods and prefixes, it refuses a rule that a public
    /// entry fully shadows (every request the rule could match is public, so the rule
    /// could never apply): an HTTP rule under a public prefix, a gRPC rule whose methods
    /// are all public. The error names the rule (`grpc rule 7 (/fedn.Control/Start)`) and
    /// the public entry.
    ///
    /// ```
    /// use portcullis::Policy;
    ///
    /// let err = Policy::builder()
    ///     .public_prefix("/health")
    ///     .allow("GET", "/health/live", ["ops"])
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "rule 0 (GET /health/live)");
    /// assert!(err.to_string().contains("public prefix `/health`"));
    /// ```
    pub fn build(mut self) -> Result<Policy, ConfigError> {
        let shadows = std::mem::take(&mut self.shadows);
        let mut parsed = self.parse()?;
        check_shadows(&mut parsed)?;
        check_extension_shadows(&mut parsed)?;
        // The dry-run rules form a policy of their own with the same settings, which
        // records only the requests its rules name.
        let (dry, enforced): (Vec<_>, Vec<_>) = std::mem::take(&mut parsed.rules)
            .into_iter()
            .partition(|r| r.shadow);
        parsed.rules = enforced;
        if !dry.is_empty() {
            let dry = parsed.with_rules(dry);
            parsed.shadow.push(Shadow {
                policy: Policy::from_index(index::compile(dry)),
                named_only: true,
            });
        }
        parsed
            .shadow
            .extend(shadows.into_iter().map(|policy| Shadow {
                policy,
                named_only: false,
            }));
        Ok(Policy::from_index(index::compile(parsed)))
    }

    fn parse(self) -> Result<Parsed, ConfigError> {
        let mut extension = Vec::new();
        for family in &self.families {
            extension.extend(family.compile()?);
        }
        let mut rules = Vec::with_capacity(self.rules.len());
        let (mut http_index, mut grpc_index) = (0, 0);
        for RawRule {
            methods,
            pattern,
            roles,
            conditions,
            shadow,
        } in self.rules
        {
            let setting = match &methods {
                Some(m) => {
                    http_index += 1;
                    format!("rule {} ({m} {pattern})", http_index - 1)
                }
                None => {
                    grpc_index += 1;
                    format!("grpc rule {} ({pattern})", grpc_index - 1)
                }
            };
            if roles.is_empty() || roles.iter().any(String::is_empty) {
                return Err(ConfigError::new(
                    ConfigErrorKind::Policy,
                    setting,
                    "a rule needs at least one non-empty role (`*` for any valid token)",
                ));
            }
            let matcher = match methods {
                Some(methods) => Matcher::Http {
                    methods: parse_methods(&methods)
                        .map_err(|e| ConfigError::new(ConfigErrorKind::Policy, &setting, e))?,
                    pattern: Pattern::parse(&pattern)
                        .map_err(|e| ConfigError::new(ConfigErrorKind::Policy, &setting, e))?,
                },
                None => Matcher::Grpc(
                    GrpcPattern::parse(&pattern)
                        .map_err(|e| ConfigError::new(ConfigErrorKind::Policy, &setting, e))?,
                ),
            };
            let any_role = roles.iter().any(|r| r == "*");
            let http_pattern = match &matcher {
                Matcher::Http { pattern, .. } => Some(pattern),
                Matcher::Grpc(_) => None,
            };
            let conditions = conditions
                .iter()
                .map(|c| c.compile(http_pattern))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ConfigError::new(ConfigErrorKind::Policy, &setting, e))?;
            rules.push(ParsedRule {
                setting,
                matcher,
                roles,
                any_role,
                conditions,
                shadow,
            });
        }
        // The prefixes written beside the rules come first, so that a rule they shadow is
        // reported even when an overriding prefix shadows it too.
        let public = self
            .public
            .iter()
            .map(|p| (p, false))
            .chain(self.public_overriding.iter().map(|p| (p, true)))
            .map(|(p, overrides)| {
                let mut prefix = Prefix::parse(p)
                    .map_err(|e| ConfigError::new(ConfigErrorKind::Policy, "public prefix", e))?;
                prefix.overrides = overrides;
                Ok(prefix)
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let url_prefix = match self.url_prefix.as_deref() {
            None | Some("") => None,
            Some(p) => Some(
                Prefix::parse(p)
                    .map_err(|e| ConfigError::new(ConfigErrorKind::Policy, "url prefix", e))?,
            ),
        };
        if self.required_claims.iter().any(|(k, _)| k.is_empty()) {
            return Err(ConfigError::new(
                ConfigErrorKind::Policy,
                "required claim",
                "the claim name is empty",
            ));
        }
        let grpc_public = self
            .grpc_public
            .iter()
            .map(|p| {
                GrpcPattern::parse(p)
                    .map_err(|e| ConfigError::new(ConfigErrorKind::Policy, "public gRPC method", e))
            })
            .collect::<Result<_, _>>()?;
        let grpc_user_agents = self
            .grpc_user_agents
            .into_iter()
            .map(|(agent, methods)| {
                let setting = format!("gRPC user agent `{agent}`");
                if agent.is_empty() || agent.contains(char::is_whitespace) {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Policy, setting,
                        "must be one non-empty word, the user agent's first",
                    ));
                }
                if methods.is_empty() {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Policy, setting,
                        "name the methods it may call without a token, like `/grpc.health.v1.Health/*`",
                    ));
                }
                let methods = methods
                    .iter()
                    .map(|m| GrpcPattern::parse(m).map_err(|e| ConfigError::new(ConfigErrorKind::Policy, &setting, e)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((agent, methods))
            })
            .collect::<Result<_, _>>()?;
        Ok(Parsed {
            rules,
            public,
            url_prefix,
            required_claims: self.required_claims,
            unmatched: self.unmatched,
            grpc_public,
            grpc_user_agents,
            grpc_unmatched: self.grpc_unmatched,
            inherit: self.inherit,
            extension,
            shadow: Vec::new(),
        })
    }
}

/// A rule fully shadowed by `prefix`: an error when the prefix was written beside it, a
/// dropped rule and a warning when the prefix came from the environment.
fn shadowed(setting: &str, prefix: &Prefix) -> Result<(), ConfigError> {
    if prefix.overrides {
        tracing::warn!(
            rule = setting,
            prefix = %prefix.source(),
            "the public prefix from the environment covers every path of this rule; the rule is dropped and those paths are public"
        );
        return Ok(());
    }
    Err(ConfigError::new(
        ConfigErrorKind::Policy,
        setting,
        format!(
            "the public prefix `{}` covers every path this rule matches, so the rule can never apply; remove the rule or the public prefix",
            prefix.source()
        ),
    ))
}

/// Refuses the first integration rule (as written) that a public prefix written beside
/// it fully shadows; drops those an environment prefix shadows.
fn check_extension_shadows(parsed: &mut Parsed) -> Result<(), ConfigError> {
    let mut keep = Vec::with_capacity(parsed.extension.len());
    for rule in &parsed.extension {
        let shadow = match parsed.shadowing_prefix(rule.pattern()) {
            Some(p) => {
                let (methods, pattern) = rule.describe();
                let (family, i) = (rule.family(), rule.index());
                shadowed(&format!("{family} rule {i} ({methods} {pattern})"), p)?;
                true
            }
            None => false,
        };
        keep.push(!shadow);
    }
    let mut keep = keep.into_iter();
    parsed.extension.retain(|_| keep.next().unwrap_or(true));
    Ok(())
}

/// Refuses the first rule (as written) that a public entry written beside it fully
/// shadows; drops those an environment prefix shadows.
fn check_shadows(parsed: &mut Parsed) -> Result<(), ConfigError> {
    let mut keep = Vec::with_capacity(parsed.rules.len());
    for rule in &parsed.rules {
        let shadow = match &rule.matcher {
            Matcher::Http { pattern, .. } => match parsed.shadowing_prefix(pattern) {
                Some(p) => {
                    shadowed(&rule.setting, p)?;
                    true
                }
                None => false,
            },
            Matcher::Grpc(pattern) => match parsed.shadowing_grpc(pattern) {
                Some(p) => {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Policy,
                        &rule.setting,
                        format!(
                            "the public gRPC method `{}` covers every method this rule names, so the rule can never apply; remove the rule or the public method",
                            p.source()
                        ),
                    ));
                }
                None => false,
            },
        };
        keep.push(!shadow);
    }
    let mut keep = keep.into_iter();
    parsed.rules.retain(|_| keep.next().unwrap_or(true));
    Ok(())
}

/// The policy of a whole-service interceptor: `roles` (compared as plain names: `*` and
/// the empty string are names like any other, and no inheritance applies) on every
/// method, or any valid token when `roles` is empty, plus the required claims.
#[cfg(feature = "tonic")]
pub(super) fn service_policy(roles: &[String], claims: &[(String, String)]) -> Policy {
    let mut parsed = Parsed {
        required_claims: claims.to_vec(),
        grpc_unmatched: Unmatched::Authenticated,
        ..Parsed::default()
    };
    if !roles.is_empty() {
        parsed.rules.push(ParsedRule {
            setting: "interceptor roles".to_owned(),
            matcher: Matcher::Grpc(GrpcPattern::any()),
            roles: roles.to_vec(),
            any_role: false,
            conditions: Vec::new(),
            shadow: false,
        });
    }
    Policy::from_index(index::compile(parsed))
}
