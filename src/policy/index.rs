//! The compiled policy: role bits, segment tries and method maps, built once by
//! `build()` and walked per request without allocating.
//!
//! - Roles are interned to bit positions. Each rule carries the bits of the roles that
//!   satisfy it, with inheritance already folded in; a caller's role strings become a
//!   [`Mask`](super::roles::Mask) by one lookup each.
//! - HTTP rules live in one segment trie per method (plus one for `*`); a `GET` rule is
//!   also in the `HEAD` trie. A trie node has literal children, one child for `{name}` and
//!   `*`, and entries for rules that end there, take the tail (`**`, zero or more
//!   segments) or need a non-empty tail (`{*rest}`).
//! - gRPC rules live in a map by full method name, a map by service, and one entry for
//!   `*`. Public gRPC methods and user-agent allow-lists use the same maps.
//! - Public prefixes live in a literal segment trie that remembers which prefix (in the
//!   order configured) ends at each node.

use std::collections::HashMap;
use std::sync::Arc;

use http::Method;

use super::parsed::{Matcher, Parsed};
use super::pattern::{GrpcKind, GrpcPattern};
use super::roles::{Bits, Roles};
use super::trie::{Entry, HttpIndex, PrefixNode, Rule, min_some};
use super::{Inner, UserAgent};
use crate::principal::{ClaimPath, ClaimSet};

/// gRPC method patterns by kind: full method names, services, and `*`.
#[derive(Debug)]
pub(super) struct GrpcMap<T> {
    exact: HashMap<Box<str>, T>,
    service: HashMap<Box<str>, T>,
    any: Option<T>,
}

impl<T> Default for GrpcMap<T> {
    fn default() -> Self {
        Self {
            exact: HashMap::new(),
            service: HashMap::new(),
            any: None,
        }
    }
}

impl<T> GrpcMap<T> {
    fn slot(&mut self, pattern: &GrpcPattern, new: impl FnOnce() -> T) -> &mut T {
        match pattern.kind() {
            GrpcKind::Any => self.any.get_or_insert_with(new),
            GrpcKind::Service(s) => self.service.entry(s.as_str().into()).or_insert_with(new),
            GrpcKind::Exact(m) => self.exact.entry(m.as_str().into()).or_insert_with(new),
        }
    }

    /// What applies to `method` (`/pkg.Service/Method`) of `service`, or, without a
    /// method, to any method of an unknown service (only `*`).
    pub(super) fn lookup<'s>(
        &'s self,
        method: Option<(&str, &str)>,
    ) -> impl Iterator<Item = &'s T> + 's {
        let (exact, service) = match method {
            Some((method, service)) => (self.exact.get(method), self.service.get(service)),
            None => (None, None),
        };
        exact.into_iter().chain(service).chain(self.any.as_ref())
    }
}

impl GrpcMap<Entry> {
    fn add(&mut self, pattern: &GrpcPattern, id: u32, rule: &Rule) {
        use std::collections::hash_map::Entry as Slot;
        let map = match pattern.kind() {
            GrpcKind::Any => return Entry::add(&mut self.any, id, rule),
            GrpcKind::Service(s) => self.service.entry(s.as_str().into()),
            GrpcKind::Exact(m) => self.exact.entry(m.as_str().into()),
        };
        match map {
            Slot::Occupied(mut e) => e.get_mut().merge(id, rule),
            Slot::Vacant(v) => {
                v.insert(Entry::new(id, rule));
            }
        }
    }
}

impl GrpcMap<u32> {
    /// A map of patterns to their first position in `patterns`.
    fn of(patterns: &[GrpcPattern]) -> Self {
        let mut map = Self::default();
        for (i, p) in patterns.iter().enumerate() {
            map.slot(p, || i as u32);
        }
        map
    }

    /// The first pattern (in the order configured) that covers `method` of `service`.
    pub(super) fn first(&self, method: &str, service: &str) -> Option<u32> {
        self.lookup(Some((method, service)))
            .copied()
            .fold(None, |a, b| min_some(a, Some(b)))
    }
}

/// Compiles checked settings into the index.
pub(super) fn compile(parsed: Parsed) -> Inner {
    let reasons_read_headers = parsed.rules.iter().any(|r| {
        r.conditions
            .iter()
            .any(super::condition::Compiled::reads_headers)
    });
    let public_when_stripped = parsed.public_when_stripped();
    let mut roles = Roles::default();
    for rule in &parsed.rules {
        for r in &rule.roles {
            roles.intern(r);
        }
    }
    for (holder, includes) in &parsed.inherit {
        roles.intern(holder);
        for r in includes {
            roles.intern(r);
        }
    }
    let words = roles.words();

    // Which roles grant role r: r itself and every role whose closure holds r.
    let mut grantors: HashMap<u32, Bits> = HashMap::new();
    for holder in parsed.inherit.keys() {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![holder.as_str()];
        while let Some(r) = stack.pop() {
            if seen.insert(r) {
                stack.extend(
                    parsed
                        .inherit
                        .get(r)
                        .into_iter()
                        .flatten()
                        .map(String::as_str),
                );
            }
        }
        let holder_id = roles.intern(holder);
        for r in seen {
            let id = roles.intern(r);
            grantors
                .entry(id)
                .or_insert_with(|| Bits::new(words))
                .insert(holder_id);
        }
    }

    let mut http_rules = Vec::new();
    let mut grpc_rules = Vec::new();
    let mut http = HttpIndex::default();
    let mut grpc = GrpcMap::<Entry>::default();
    let mut claim_paths = Vec::new();
    for rule in parsed.rules {
        let mut conditions = rule.conditions;
        for c in &mut conditions {
            c.at = ClaimSet::position(&mut claim_paths, &c.claim);
        }
        let mut own = Bits::new(words);
        let mut granted = Bits::new(words);
        for r in &rule.roles {
            let id = roles.intern(r);
            own.insert(id);
            granted.insert(id);
            if let Some(g) = grantors.get(&id) {
                granted.union_with(g);
            }
        }
        match rule.matcher {
            Matcher::Http { methods, pattern } => {
                let id = http_rules.len() as u32;
                let matcher = (!conditions.is_empty()).then(|| pattern.clone());
                let compiled = Rule {
                    methods,
                    pattern: pattern.source().to_owned(),
                    own: own.clone(),
                    granted,
                    any_role: rule.any_role,
                    conditions,
                    matcher,
                };
                // A GET rule also covers HEAD; each trie holds a rule once.
                let mut tries: Vec<Option<Method>> = match &compiled.methods {
                    None => vec![None],
                    Some(ms) => ms.iter().cloned().map(Some).collect(),
                };
                if tries.contains(&Some(Method::GET)) {
                    tries.push(Some(Method::HEAD));
                }
                let mut seen: Vec<Option<Method>> = Vec::new();
                for m in tries {
                    if seen.contains(&m) {
                        continue;
                    }
                    http.trie(m.as_ref()).add(pattern.segs(), id, &compiled);
                    seen.push(m);
                }
                http_rules.push(compiled);
            }
            Matcher::Grpc(pattern) => {
                let id = grpc_rules.len() as u32;
                let compiled = Rule {
                    methods: None,
                    pattern: pattern.source().to_owned(),
                    own,
                    granted,
                    any_role: rule.any_role,
                    conditions,
                    matcher: None,
                };
                grpc.add(&pattern, id, &compiled);
                grpc_rules.push(compiled);
            }
        }
    }

    let mut public = PrefixNode::default();
    for (i, p) in parsed.public.iter().enumerate() {
        public.insert(p.segs(), i as u32);
    }
    Inner {
        http_rules,
        grpc_rules,
        roles,
        http,
        grpc,
        public_sources: parsed.public.iter().map(|p| p.source().clone()).collect(),
        public,
        url_prefix: parsed.url_prefix,
        public_when_stripped,
        required_claims: parsed
            .required_claims
            .into_iter()
            .map(|(key, want)| {
                let path = ClaimPath::parse(&key);
                (key, path, want)
            })
            .collect(),
        unmatched: parsed.unmatched,
        grpc_public: GrpcMap::of(&parsed.grpc_public),
        grpc_public_sources: parsed
            .grpc_public
            .iter()
            .map(|p| Arc::from(p.source()))
            .collect(),
        grpc_user_agents: parsed
            .grpc_user_agents
            .into_iter()
            .map(|(agent, methods)| UserAgent {
                label: Arc::from(format!("user-agent {agent}")),
                methods: GrpcMap::of(&methods),
                sources: methods.iter().map(|m| m.source().to_owned()).collect(),
                agent,
            })
            .collect(),
        grpc_unmatched: parsed.grpc_unmatched,
        extension: parsed.extension,
        shadow: parsed.shadow,
        reasons_read_headers,
        claim_set: ClaimSet::new(claim_paths),
    }
}
