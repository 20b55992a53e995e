//! The compiled rules and the segment tries: [`Rule`], the merged [`Entry`] of the rules
//! that end at one place, the HTTP tries by method and the trie of public prefixes.

use std::ops::ControlFlow;

use http::Method;

use super::children::Children;
use super::pattern::{Seg, Segs};
use super::roles::{Bits, Mask};

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
    /// Conditions that must all hold (none for most rules).
    pub(super) conditions: Vec<super::condition::Compiled>,
    /// The parsed pattern of an HTTP rule with conditions: to tell which readings of a
    /// path (with and without the URL prefix) it matches.
    pub(super) matcher: Option<super::pattern::Pattern>,
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

/// The rules that end at one place of an index, merged: the roles of the rules without
/// conditions in one set; the rules with conditions marked (the high bit of their
/// position) and checked one by one.
#[derive(Debug)]
pub(super) struct Entry {
    granted: Bits,
    any_role: bool,
    /// Some rule here has conditions.
    has_conditional: bool,
    /// Rule positions (among the rules of their kind), ascending: the first inline. A
    /// rule with conditions has [`CONDITIONAL`] set.
    first: u32,
    more: Box<[u32]>,
}

/// Marks the position of a rule with conditions in an [`Entry`].
const CONDITIONAL: u32 = 1 << 31;

impl Entry {
    pub(super) fn new(id: u32, rule: &Rule) -> Self {
        let conditional = !rule.conditions.is_empty();
        let granted = if conditional {
            Bits::new(rule.granted.words())
        } else {
            rule.granted.clone()
        };
        Self {
            granted,
            any_role: rule.any_role && !conditional,
            has_conditional: conditional,
            first: if conditional { id | CONDITIONAL } else { id },
            more: Box::default(),
        }
    }

    /// Adds rule `id` to the entry in `slot`, making it if needed.
    pub(super) fn add<E: AsMut<Entry> + From<Entry>>(slot: &mut Option<E>, id: u32, rule: &Rule) {
        match slot {
            None => *slot = Some(Entry::new(id, rule).into()),
            Some(e) => e.as_mut().merge(id, rule),
        }
    }

    pub(super) fn merge(&mut self, id: u32, rule: &Rule) {
        let conditional = !rule.conditions.is_empty();
        if self.rules().next_back() != Some(id) {
            // Build time only: one rule at a time, kept compact for the walk.
            let mut more = std::mem::take(&mut self.more).into_vec();
            more.push(if conditional { id | CONDITIONAL } else { id });
            self.more = more.into_boxed_slice();
        }
        if conditional {
            self.has_conditional = true;
        } else {
            self.granted.union_with(&rule.granted);
            self.any_role |= rule.any_role;
        }
    }

    fn marked(&self) -> impl DoubleEndedIterator<Item = u32> + '_ {
        std::iter::once(self.first).chain(self.more.iter().copied())
    }

    /// The positions of the rules here, ascending.
    pub(super) fn rules(&self) -> impl DoubleEndedIterator<Item = u32> + '_ {
        self.marked().map(|id| id & !CONDITIONAL)
    }

    /// Whether some rule here has conditions.
    #[inline]
    pub(super) fn has_conditional(&self) -> bool {
        self.has_conditional
    }

    /// The positions of the rules here that have conditions.
    pub(super) fn conditional(&self) -> impl Iterator<Item = u32> + '_ {
        self.marked()
            .filter(|id| id & CONDITIONAL != 0)
            .map(|id| id & !CONDITIONAL)
    }

    /// Whether one of the rules here without conditions lets a caller with `mask`
    /// through.
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
    pub(super) fn add(&mut self, segs: &[Seg], id: u32, rule: &Rule) {
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
    pub(super) fn trie(&mut self, method: Option<&Method>) -> &mut Node {
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
    pub(super) first: Option<u32>,
}

impl PrefixNode {
    pub(super) fn insert<'p>(&mut self, segs: impl IntoIterator<Item = &'p str>, index: u32) {
        let mut node = self;
        for seg in segs {
            node = node.literals.get_or_insert(seg);
        }
        node.first.get_or_insert(index);
    }

    /// The first prefix (in the order configured) that covers `segs`.
    pub(super) fn first_covering(&self, segs: Segs<'_>) -> Option<u32> {
        if self.literals.is_empty() {
            // No public prefix below the root (the common case of none at all).
            return self.first;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_stay_small() {
        // What a walk reads per node; growing it costs cache misses at 10,000 rules.
        let size = std::mem::size_of::<Node>();
        assert!(size <= 112, "{size}");
    }
}
