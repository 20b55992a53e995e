//! The compiled policy: role bits, segment tries and method maps, built once by
//! `build()` and walked per request without allocating.
//!
//! - Roles are interned to bit positions. Each rule carries the bits of the roles that
//!   satisfy it, with inheritance already folded in; a caller's role strings become a
//!   [`Mask`] by one lookup each.
//! - HTTP rules live in one segment trie per method (plus one for `*`); a `GET` rule is
//!   also in the `HEAD` trie. A trie node has literal children, one child for `{name}` and
//!   `*`, and entries for rules that end there, take the tail (`**`, zero or more
//!   segments) or need a non-empty tail (`{*rest}`).
//! - gRPC rules live in a map by full method name, a map by service, and one entry for
//!   `*`. Public gRPC methods and user-agent allow-lists use the same maps.
//! - Public prefixes live in a literal segment trie that remembers which prefix (in the
//!   order configured) ends at each node.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use http::Method;

use super::builder::{Matcher, Parsed};
use super::pattern::{GrpcKind, GrpcPattern, Seg, Segs};
use super::{Inner, UserAgent};

/// Role names interned to bit positions.
#[derive(Debug, Default)]
pub(super) struct Roles {
    ids: HashMap<Box<str>, u32>,
}

impl Roles {
    fn intern(&mut self, name: &str) -> u32 {
        let next = self.ids.len() as u32;
        *self.ids.entry(name.into()).or_insert(next)
    }

    pub(super) fn id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    fn words(&self) -> usize {
        self.ids.len().div_ceil(64)
    }

    /// The caller's roles as bits; names the policy never mentions are dropped.
    /// Allocation-free while the policy names at most 256 roles.
    pub(super) fn mask<'r>(&self, roles: impl IntoIterator<Item = &'r str>) -> Mask {
        let mut mask = Mask::new(self.words());
        for role in roles {
            if let Some(id) = self.id(role) {
                mask.insert(id);
            }
        }
        mask
    }
}

/// A caller's [`Mask`] stays on the stack while the policy names at most
/// `64 * INLINE_WORDS` (256) roles.
const INLINE_WORDS: usize = 4;

/// A caller's role bits, on the stack for policies of up to 256 roles.
pub(super) struct Mask {
    inline: [u64; INLINE_WORDS],
    heap: Vec<u64>,
    words: usize,
}

impl Mask {
    fn new(words: usize) -> Self {
        Self {
            inline: [0; INLINE_WORDS],
            heap: if words > INLINE_WORDS {
                vec![0; words]
            } else {
                Vec::new()
            },
            words,
        }
    }

    fn insert(&mut self, id: u32) {
        let (word, bit) = (id as usize / 64, id % 64);
        let words = if self.words > INLINE_WORDS {
            &mut self.heap[..]
        } else {
            &mut self.inline[..]
        };
        words[word] |= 1 << bit;
    }

    fn words(&self) -> &[u64] {
        if self.words > INLINE_WORDS {
            &self.heap
        } else {
            &self.inline[..self.words]
        }
    }
}

/// A set of role bits, sized to the policy's roles.
#[derive(Debug, Clone, Default)]
pub(super) struct Bits(Box<[u64]>);

impl Bits {
    fn new(words: usize) -> Self {
        Self(vec![0; words].into_boxed_slice())
    }

    fn insert(&mut self, id: u32) {
        self.0[id as usize / 64] |= 1 << (id % 64);
    }

    pub(super) fn contains(&self, id: u32) -> bool {
        self.0
            .get(id as usize / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn union_with(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    fn intersects(&self, mask: &Mask) -> bool {
        self.0.iter().zip(mask.words()).any(|(a, b)| a & b != 0)
    }
}

/// A compiled rule: what reasons need, and the bits that satisfy it.
#[derive(Debug)]
pub(super) struct Rule {
    /// The rule's methods (`None` for `*`); unused for gRPC rules.
    pub(super) methods: Option<Vec<Method>>,
    /// The pattern as written.
    pub(super) pattern: String,
    /// The roles as written, for reasons.
    pub(super) roles: Vec<String>,
    /// The roles that satisfy the rule once inheritance is applied.
    pub(super) granted: Bits,
    /// The rule is open to any valid token (role `*`).
    pub(super) any_role: bool,
}

impl Rule {
    /// (methods, pattern) as written, for reasons.
    pub(super) fn describe(&self, grpc: bool) -> (String, String) {
        let methods = match (&self.methods, grpc) {
            (_, true) => "gRPC".to_owned(),
            (None, false) => "*".to_owned(),
            (Some(ms), false) => ms.iter().map(Method::as_str).collect::<Vec<_>>().join(","),
        };
        (methods, self.pattern.clone())
    }
}

/// The rules that end at one place of an index, merged.
#[derive(Debug)]
pub(super) struct Entry {
    /// Rule positions (among the rules of their kind), ascending.
    pub(super) rules: Vec<u32>,
    granted: Bits,
    any_role: bool,
}

impl Entry {
    fn new(words: usize) -> Self {
        Self {
            rules: Vec::new(),
            granted: Bits::new(words),
            any_role: false,
        }
    }

    fn add(&mut self, id: u32, rule: &Rule) {
        if self.rules.last() != Some(&id) {
            self.rules.push(id);
        }
        self.granted.union_with(&rule.granted);
        self.any_role |= rule.any_role;
    }

    /// Whether one of the rules here lets a caller with `mask` through.
    pub(super) fn admits(&self, mask: &Mask) -> bool {
        self.any_role || self.granted.intersects(mask)
    }
}

/// Literal children of a trie node: a short list scanned in place, or a map once there
/// are many.
#[derive(Debug)]
enum Children<N> {
    Few(Vec<(Box<str>, N)>),
    Many(HashMap<Box<str>, N>),
}

/// Past this many literal children a node looks them up in a map.
const FEW: usize = 8;

impl<N> Default for Children<N> {
    fn default() -> Self {
        Self::Few(Vec::new())
    }
}

impl<N: Default> Children<N> {
    fn get(&self, seg: &str) -> Option<&N> {
        match self {
            Self::Few(list) => list.iter().find(|(k, _)| **k == *seg).map(|(_, n)| n),
            Self::Many(map) => map.get(seg),
        }
    }

    fn get_or_insert(&mut self, seg: &str) -> &mut N {
        if let Self::Few(list) = self
            && list.len() == FEW
            && !list.iter().any(|(k, _)| **k == *seg)
        {
            *self = Self::Many(std::mem::take(list).into_iter().collect());
        }
        match self {
            Self::Few(list) => {
                let at = match list.iter().position(|(k, _)| **k == *seg) {
                    Some(at) => at,
                    None => {
                        list.push((seg.into(), N::default()));
                        list.len() - 1
                    }
                };
                &mut list[at].1
            }
            Self::Many(map) => map.entry(seg.into()).or_default(),
        }
    }
}

/// A node of an HTTP rule trie.
#[derive(Debug, Default)]
pub(super) struct Node {
    literals: Children<Node>,
    /// `{name}` or `*`: any one non-empty segment.
    one: Option<Box<Node>>,
    /// Rules whose pattern ends here.
    end: Option<Box<Entry>>,
    /// `**` here: zero or more further segments.
    tail_any: Option<Box<Entry>>,
    /// `{*rest}` here: one or more further segments, the first non-empty.
    tail_some: Option<Box<Entry>>,
}

impl Node {
    fn entry(&mut self, segs: &[Seg], words: usize) -> &mut Entry {
        let mut node = self;
        for seg in segs {
            node = match seg {
                Seg::Literal(lit) => node.literals.get_or_insert(lit),
                Seg::One => node.one.get_or_insert_with(Default::default),
                Seg::Tail {
                    at_least_one: false,
                } => {
                    return node
                        .tail_any
                        .get_or_insert_with(|| Entry::new(words).into());
                }
                Seg::Tail { at_least_one: true } => {
                    return node
                        .tail_some
                        .get_or_insert_with(|| Entry::new(words).into());
                }
            };
        }
        node.end.get_or_insert_with(|| Entry::new(words).into())
    }

    /// Calls `f` with every entry whose pattern matches `segs`, until it breaks.
    pub(super) fn walk<F>(&self, segs: Segs<'_>, f: &mut F) -> ControlFlow<()>
    where
        F: FnMut(&Entry) -> ControlFlow<()>,
    {
        if let Some(e) = &self.tail_any {
            f(e)?;
        }
        match segs.split_first() {
            None => {
                if let Some(e) = &self.end {
                    f(e)?;
                }
            }
            Some((seg, rest)) => {
                if !seg.is_empty()
                    && let Some(e) = &self.tail_some
                {
                    f(e)?;
                }
                if let Some(child) = self.literals.get(seg) {
                    child.walk(rest, f)?;
                }
                if !seg.is_empty()
                    && let Some(child) = &self.one
                {
                    child.walk(rest, f)?;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// HTTP rules: one trie per method named by some rule, and one for `*`.
#[derive(Debug, Default)]
pub(super) struct HttpIndex {
    by_method: Vec<(Method, Node)>,
    any: Node,
}

impl HttpIndex {
    fn trie(&mut self, method: Option<&Method>) -> &mut Node {
        let Some(method) = method else {
            return &mut self.any;
        };
        let at = match self.by_method.iter().position(|(m, _)| m == method) {
            Some(at) => at,
            None => {
                self.by_method.push((method.clone(), Node::default()));
                self.by_method.len() - 1
            }
        };
        &mut self.by_method[at].1
    }

    /// The tries a request with `method` walks: its method's, then `*`'s.
    pub(super) fn tries(&self, method: &Method) -> impl Iterator<Item = &Node> {
        self.by_method
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, n)| n)
            .into_iter()
            .chain(std::iter::once(&self.any))
    }
}

/// Public prefixes: a literal segment trie; each node remembers the first prefix (in the
/// order configured) that ends there.
#[derive(Debug, Default)]
pub(super) struct PrefixNode {
    literals: Children<PrefixNode>,
    first: Option<u32>,
}

impl PrefixNode {
    fn insert<'p>(&mut self, segs: impl IntoIterator<Item = &'p str>, index: u32) {
        let mut node = self;
        for seg in segs {
            node = node.literals.get_or_insert(seg);
        }
        node.first.get_or_insert(index);
    }

    /// The first prefix (in the order configured) that covers `segs`.
    pub(super) fn first_covering(&self, segs: Segs<'_>) -> Option<u32> {
        let mut node = self;
        let mut best = node.first;
        for seg in segs {
            match node.literals.get(seg) {
                Some(next) => node = next,
                None => break,
            }
            best = min_some(best, node.first);
        }
        best
    }
}

pub(super) fn min_some(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

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
    let mut grpc = GrpcMap::<Box<Entry>>::default();
    for rule in parsed.rules {
        let mut granted = Bits::new(words);
        for r in &rule.roles {
            let id = roles.intern(r);
            granted.insert(id);
            if let Some(g) = grantors.get(&id) {
                granted.union_with(g);
            }
        }
        match rule.matcher {
            Matcher::Http { methods, pattern } => {
                let id = http_rules.len() as u32;
                let compiled = Rule {
                    methods,
                    pattern: pattern.source().to_owned(),
                    roles: rule.roles,
                    granted,
                    any_role: rule.any_role,
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
                    http.trie(m.as_ref())
                        .entry(pattern.segs(), words)
                        .add(id, &compiled);
                    seen.push(m);
                }
                http_rules.push(compiled);
            }
            Matcher::Grpc(pattern) => {
                let id = grpc_rules.len() as u32;
                let compiled = Rule {
                    methods: None,
                    pattern: pattern.source().to_owned(),
                    roles: rule.roles,
                    granted,
                    any_role: rule.any_role,
                };
                grpc.slot(&pattern, || Entry::new(words).into())
                    .add(id, &compiled);
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
        required_claims: parsed.required_claims,
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_move_to_a_map_and_keep_every_entry() {
        let mut c: Children<PrefixNode> = Children::default();
        for i in 0..(FEW * 3) {
            c.get_or_insert(&format!("s{i}")).first = Some(i as u32);
            // Inserting again finds the same child.
            assert_eq!(c.get_or_insert(&format!("s{i}")).first, Some(i as u32));
        }
        assert!(matches!(c, Children::Many(_)));
        for i in 0..(FEW * 3) {
            assert_eq!(c.get(&format!("s{i}")).unwrap().first, Some(i as u32));
        }
        assert!(c.get("s999").is_none());
    }

    #[test]
    fn masks_past_the_inline_words() {
        let mut roles = Roles::default();
        for i in 0..((64 * INLINE_WORDS) + 10) {
            roles.intern(&format!("r{i}"));
        }
        let last = format!("r{}", (64 * INLINE_WORDS) + 9);
        let mask = roles.mask(["r0", last.as_str(), "unknown"]);
        let mut bits = Bits::new(roles.words());
        bits.insert(roles.id(&last).unwrap());
        assert!(bits.intersects(&mask));
        let mut other = Bits::new(roles.words());
        other.insert(roles.id("r5").unwrap());
        assert!(!other.intersects(&mask));
    }
}
