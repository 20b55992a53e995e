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

use super::parsed::{Matcher, Parsed};
use super::pattern::{GrpcKind, GrpcPattern, Seg, Segs};
use super::{Inner, UserAgent};
use crate::principal::ClaimPath;

/// Role names interned to bit positions.
#[derive(Debug, Default)]
pub(super) struct Roles {
    ids: Children<u32>,
    /// Names by id.
    names: Vec<Box<str>>,
}

impl Roles {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        *self.ids.get_or_insert(name) = id;
        self.names.push(name.into());
        id
    }

    pub(super) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    #[inline]
    pub(super) fn id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    fn words(&self) -> usize {
        self.names.len().div_ceil(64)
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

    #[inline]
    fn insert(&mut self, id: u32) {
        let (word, bit) = (id as usize / 64, id % 64);
        let words = if self.words > INLINE_WORDS {
            &mut self.heap[..]
        } else {
            &mut self.inline[..]
        };
        words[word] |= 1 << bit;
    }

    #[inline]
    fn words(&self) -> &[u64] {
        if self.words > INLINE_WORDS {
            &self.heap
        } else {
            &self.inline[..self.words]
        }
    }
}

/// A set of role bits, sized to the policy's roles; the first 64 live inline.
#[derive(Debug, Clone, Default)]
pub(super) struct Bits {
    first: u64,
    rest: Box<[u64]>,
}

impl Bits {
    fn new(words: usize) -> Self {
        Self {
            first: 0,
            rest: vec![0; words.saturating_sub(1)].into_boxed_slice(),
        }
    }

    #[inline]
    fn insert(&mut self, id: u32) {
        let (word, bit) = (id as usize / 64, 1 << (id % 64));
        match word {
            0 => self.first |= bit,
            w => self.rest[w - 1] |= bit,
        }
    }

    #[inline]
    pub(super) fn contains(&self, id: u32) -> bool {
        let (word, bit) = (id as usize / 64, 1 << (id % 64));
        match word {
            0 => self.first & bit != 0,
            w => self.rest.get(w - 1).is_some_and(|x| x & bit != 0),
        }
    }

    fn union_with(&mut self, other: &Bits) {
        self.first |= other.first;
        for (a, b) in self.rest.iter_mut().zip(other.rest.iter()) {
            *a |= b;
        }
    }

    #[inline]
    fn intersects(&self, mask: &Mask) -> bool {
        match mask.words().split_first() {
            None => false,
            Some((first, rest)) => {
                self.first & first != 0 || self.rest.iter().zip(rest).any(|(a, b)| a & b != 0)
            }
        }
    }

    /// The ids in the set, ascending.
    pub(super) fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.first)
            .chain(self.rest.iter().copied())
            .enumerate()
            .flat_map(|(w, mut word)| {
                std::iter::from_fn(move || {
                    (word != 0).then(|| {
                        let b = word.trailing_zeros();
                        word &= word - 1;
                        w as u32 * 64 + b
                    })
                })
            })
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
    pub(super) own: Bits,
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
    granted: Bits,
    any_role: bool,
    /// Rule positions (among the rules of their kind), ascending: the first inline.
    first: u32,
    more: Box<[u32]>,
}

impl Entry {
    fn new(id: u32, rule: &Rule) -> Self {
        Self {
            granted: rule.granted.clone(),
            any_role: rule.any_role,
            first: id,
            more: Box::default(),
        }
    }

    /// Adds rule `id` to the entry in `slot`, making it if needed.
    fn add<E: AsMut<Entry> + From<Entry>>(slot: &mut Option<E>, id: u32, rule: &Rule) {
        match slot {
            None => *slot = Some(Entry::new(id, rule).into()),
            Some(e) => e.as_mut().merge(id, rule),
        }
    }

    fn merge(&mut self, id: u32, rule: &Rule) {
        if self.rules().next_back() != Some(id) {
            // Build time only: one rule at a time, kept compact for the walk.
            let mut more = std::mem::take(&mut self.more).into_vec();
            more.push(id);
            self.more = more.into_boxed_slice();
        }
        self.granted.union_with(&rule.granted);
        self.any_role |= rule.any_role;
    }

    /// The positions of the rules here, ascending.
    pub(super) fn rules(&self) -> impl DoubleEndedIterator<Item = u32> + '_ {
        std::iter::once(self.first).chain(self.more.iter().copied())
    }

    /// Whether one of the rules here lets a caller with `mask` through.
    #[inline]
    pub(super) fn admits(&self, mask: &Mask) -> bool {
        self.any_role || self.granted.intersects(mask)
    }
}

impl AsMut<Entry> for Entry {
    fn as_mut(&mut self) -> &mut Entry {
        self
    }
}

/// A short segment (up to 24 bytes) as three words: compared without a call to
/// `memcmp`, hashed without following a pointer.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Short {
    len: u8,
    words: [u64; 3],
}

impl Short {
    #[inline]
    fn of(seg: &str) -> Option<Self> {
        let b = seg.as_bytes();
        if b.len() > 24 {
            return None;
        }
        let mut buf = [[0u8; 8]; 3];
        buf.as_flattened_mut()[..b.len()].copy_from_slice(b);
        Some(Self {
            len: b.len() as u8,
            words: buf.map(u64::from_le_bytes),
        })
    }
}

impl std::fmt::Debug for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.words.map(u64::to_le_bytes);
        let text = String::from_utf8_lossy(&bytes.as_flattened()[..self.len as usize]);
        write!(f, "{text:?}")
    }
}

/// Keyed children: a short list scanned in place, or a map once there are many.
#[derive(Debug)]
enum Table<K, N> {
    Few(Vec<(K, N)>),
    /// Boxed: a wide node is rare and hot, and the box keeps every node small.
    #[allow(
        clippy::box_collection,
        reason = "keeps every trie node small; only wide nodes pay the indirection"
    )]
    Many(Box<HashMap<K, N>>),
}

/// Past this many entries a table looks keys up in a map.
const FEW: usize = 8;

impl<K, N> Default for Table<K, N> {
    fn default() -> Self {
        Self::Few(Vec::new())
    }
}

impl<K: Eq + std::hash::Hash, N: Default> Table<K, N> {
    #[inline]
    fn get<Q>(&self, key: &Q) -> Option<&N>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + std::hash::Hash + ?Sized,
    {
        match self {
            Self::Few(list) => list.iter().find(|(k, _)| k.borrow() == key).map(|(_, n)| n),
            Self::Many(map) => map.get(key),
        }
    }

    fn get_or_insert(&mut self, key: K) -> &mut N {
        if let Self::Few(list) = self
            && list.len() == FEW
            && !list.iter().any(|(k, _)| *k == key)
        {
            *self = Self::Many(Box::new(std::mem::take(list).into_iter().collect()));
        }
        match self {
            Self::Few(list) => {
                let at = match list.iter().position(|(k, _)| *k == key) {
                    Some(at) => at,
                    None => {
                        list.push((key, N::default()));
                        list.len() - 1
                    }
                };
                &mut list[at].1
            }
            Self::Many(map) => map.entry(key).or_default(),
        }
    }
}

/// Children keyed by raw segment: short ones as words, longer (rare) ones as strings.
#[derive(Debug, Default)]
struct Children<N> {
    short: Table<Short, N>,
    long: Option<Box<Table<Box<str>, N>>>,
}

impl<N: Default> Children<N> {
    #[inline]
    fn get(&self, seg: &str) -> Option<&N> {
        match Short::of(seg) {
            Some(key) => self.short.get(&key),
            None => self.long.as_ref()?.get(seg),
        }
    }

    fn get_or_insert(&mut self, seg: &str) -> &mut N {
        match Short::of(seg) {
            Some(key) => self.short.get_or_insert(key),
            None => self
                .long
                .get_or_insert_with(Default::default)
                .get_or_insert(seg.into()),
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
    end: Option<Entry>,
    /// `**` here: zero or more further segments.
    tail_any: Option<Box<Entry>>,
    /// `{*rest}` here: one or more further segments, the first non-empty.
    tail_some: Option<Box<Entry>>,
}

impl Node {
    /// Adds rule `id` at the place its pattern's segments lead to.
    fn add(&mut self, segs: &[Seg], id: u32, rule: &Rule) {
        let mut node = self;
        for seg in segs {
            node = match seg {
                Seg::Literal(lit) => node.literals.get_or_insert(lit),
                Seg::One => node.one.get_or_insert_with(Default::default),
                Seg::Tail {
                    at_least_one: false,
                } => return Entry::add(&mut node.tail_any, id, rule),
                Seg::Tail { at_least_one: true } => {
                    return Entry::add(&mut node.tail_some, id, rule);
                }
            };
        }
        Entry::add(&mut node.end, id, rule)
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
    for rule in parsed.rules {
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
                let compiled = Rule {
                    methods,
                    pattern: pattern.source().to_owned(),
                    own: own.clone(),
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
        assert!(matches!(c.short, Table::Many(_)));
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
        // Ids come back ascending, across words.
        let mut set = Bits::new(roles.words());
        for id in [300, 0, 63, 64, 5, 129] {
            set.insert(id);
        }
        assert_eq!(set.ids().collect::<Vec<_>>(), [0, 5, 63, 64, 129, 300]);
        assert!(set.contains(64) && !set.contains(65) && !set.contains(10_000));
    }

    #[test]
    fn nodes_stay_small() {
        // What a walk reads per node; growing it costs cache misses at 10,000 rules.
        let size = std::mem::size_of::<Node>();
        assert!(size <= 112, "{size}");
    }

    #[test]
    fn keys_compare_inline_and_on_the_heap() {
        let long = "a".repeat(25);
        let mut c: Children<PrefixNode> = Children::default();
        for seg in ["", "a", "ab", long.as_str(), &long[1..]] {
            c.get_or_insert(seg).first = Some(seg.len() as u32);
        }
        for seg in ["", "a", "ab", long.as_str(), &long[1..]] {
            assert_eq!(c.get(seg).unwrap().first, Some(seg.len() as u32), "{seg:?}");
        }
        assert!(c.get("b").is_none() && c.get(&"a".repeat(26)).is_none());
    }
}
