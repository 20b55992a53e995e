//! Children keyed by raw segment for the compiled policy's tries and role names: short
//! segments as three words, in a short list scanned in place or a map once there are many.

use std::collections::HashMap;

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
        // Byte by byte: a segment is short, and a copy of a length known only now would
        // call memcpy.
        let mut words = [0u64; 3];
        for (i, &byte) in b.iter().enumerate() {
            words[i / 8] |= u64::from(byte) << ((i % 8) * 8);
        }
        Some(Self {
            len: b.len() as u8,
            words,
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
pub(super) struct Children<N> {
    short: Table<Short, N>,
    long: Option<Box<Table<Box<str>, N>>>,
}

impl<N: Default> Children<N> {
    /// Whether no child is there.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        matches!(&self.short, Table::Few(list) if list.is_empty()) && self.long.is_none()
    }

    #[inline]
    pub(super) fn get(&self, seg: &str) -> Option<&N> {
        match Short::of(seg) {
            Some(key) => self.short.get(&key),
            None => self.long.as_ref()?.get(seg),
        }
    }

    pub(super) fn get_or_insert(&mut self, seg: &str) -> &mut N {
        match Short::of(seg) {
            Some(key) => self.short.get_or_insert(key),
            None => self
                .long
                .get_or_insert_with(Default::default)
                .get_or_insert(seg.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::trie::PrefixNode;

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
