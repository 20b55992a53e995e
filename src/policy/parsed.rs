//! The policy's settings once checked: what `build()` hands to the index compiler.

use std::collections::HashMap;

use http::Method;

use super::Unmatched;
use super::extension::RouteRule;
use super::pattern::{GrpcKind, GrpcPattern, Pattern, Prefix};

/// What a checked rule matches.
#[derive(Debug)]
pub(super) enum Matcher {
    Http {
        methods: Option<Vec<Method>>,
        pattern: Pattern,
    },
    Grpc(GrpcPattern),
}

/// A checked rule.
#[derive(Debug)]
pub(super) struct ParsedRule {
    /// The rule as written, with its position: `rule 3 (GET /x)`, `grpc rule 0 (*)`.
    pub(super) setting: String,
    pub(super) matcher: Matcher,
    /// The roles as written.
    pub(super) roles: Vec<String>,
    /// The rule is open to any valid token.
    pub(super) any_role: bool,
    /// Conditions that must all hold for the rule to apply.
    pub(super) conditions: Vec<super::condition::Compiled>,
    /// A dry-run rule.
    pub(super) shadow: bool,
}

/// Checked settings, ready to compile.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub(super) rules: Vec<ParsedRule>,
    pub(super) public: Vec<Prefix>,
    pub(super) url_prefix: Option<Prefix>,
    pub(super) required_claims: Vec<(String, String)>,
    pub(super) unmatched: Unmatched,
    pub(super) grpc_public: Vec<GrpcPattern>,
    pub(super) grpc_user_agents: Vec<(String, Vec<GrpcPattern>)>,
    pub(super) grpc_unmatched: Unmatched,
    pub(super) inherit: HashMap<String, Vec<String>>,
    /// The rules of the integrations' families, in the order the families were added.
    pub(super) extension: Vec<RouteRule>,
    /// Shadow policies: decided and recorded, never enforced.
    pub(super) shadow: Vec<super::Shadow>,
}

impl Parsed {
    /// The same settings (public prefixes, URL prefix, required claims, inheritance,
    /// defaults) with `rules` instead: a dry-run policy beside this one.
    pub(super) fn with_rules(&self, rules: Vec<ParsedRule>) -> Self {
        Self {
            rules,
            public: self.public.clone(),
            url_prefix: self.url_prefix.clone(),
            required_claims: self.required_claims.clone(),
            unmatched: self.unmatched,
            grpc_public: self.grpc_public.clone(),
            grpc_user_agents: self.grpc_user_agents.clone(),
            grpc_unmatched: self.grpc_unmatched,
            inherit: self.inherit.clone(),
            extension: Vec::new(),
            shadow: Vec::new(),
        }
    }

    /// Whether the path with the URL prefix stripped may make a request public: only when
    /// no HTTP rule names a route under the URL prefix as written (its leading literal
    /// segments start with the prefix), so that a path under the prefix is never also a
    /// real route of the application that the stripped reading would open.
    pub(super) fn public_when_stripped(&self) -> bool {
        let Some(url) = &self.url_prefix else {
            return false;
        };
        !self
            .extension
            .iter()
            .any(|r| url.covers(r.pattern().leading_literals()))
            && !self.rules.iter().any(|r| match &r.matcher {
                Matcher::Http { pattern, .. } => url.covers(pattern.leading_literals()),
                Matcher::Grpc(_) => false,
            })
    }

    /// The first public prefix that covers every path `pattern` matches, as it stands and
    /// under the URL prefix, so a rule with it could never apply.
    pub(super) fn shadowing_prefix(&self, pattern: &Pattern) -> Option<&Prefix> {
        let as_written = self
            .public
            .iter()
            .find(|p| p.covers(pattern.leading_literals()))?;
        let Some(url) = &self.url_prefix else {
            return Some(as_written);
        };
        // The rule also matches the URL prefix followed by any path it matches.
        let under_prefix = self.public_when_stripped()
            || self
                .public
                .iter()
                .any(|p| p.covers(url.segs().chain(pattern.leading_literals())));
        under_prefix.then_some(as_written)
    }

    /// The first public gRPC entry that covers every method `pattern` names.
    pub(super) fn shadowing_grpc(&self, pattern: &GrpcPattern) -> Option<&GrpcPattern> {
        self.grpc_public
            .iter()
            .find(|p| match (p.kind(), pattern.kind()) {
                (GrpcKind::Any, _) => true,
                (GrpcKind::Service(s), GrpcKind::Service(r)) => s == r,
                (GrpcKind::Service(s), GrpcKind::Exact(m)) => {
                    super::pattern::split_grpc(m).is_some_and(|(service, _)| service == s)
                }
                (GrpcKind::Exact(p), GrpcKind::Exact(m)) => p == m,
                _ => false,
            })
    }
}
