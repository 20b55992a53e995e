//! Role bits: role names interned to bit positions, a caller's [`Mask`] and a rule's
//! [`Bits`].

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::children::Children;
use crate::principal::{Principal, ROLE_MEMO_WORDS};

/// Role names interned to bit positions.
#[derive(Debug)]
pub(super) struct Roles {
    ids: Children<u32>,
    /// Names by id.
    names: Vec<Box<str>>,
    /// Tells role tables apart in the role bits a principal remembers.
    table: usize,
}

impl Default for Roles {
    fn default() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        Self {
            ids: Children::default(),
            names: Vec::new(),
            table: NEXT.fetch_add(1, Relaxed),
        }
    }
}

impl Roles {
    pub(super) fn intern(&mut self, name: &str) -> u32 {
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

    pub(super) fn words(&self) -> usize {
        self.names.len().div_ceil(64)
    }

    /// `principal`'s roles (as `roles` lists them) as bits, remembered by the principal
    /// for this table when it names at most 256 roles: a cached principal is masked once,
    /// not on every request.
    #[inline]
    pub(super) fn mask_of<'p, I>(
        &self,
        principal: &'p Principal,
        roles: impl FnOnce(&'p Principal) -> I,
    ) -> Mask
    where
        I: IntoIterator<Item = &'p str>,
    {
        let words = self.words();
        if words > INLINE_WORDS {
            return self.mask(roles(principal));
        }
        if let Some(inline) = principal.role_bits(self.table) {
            return Mask {
                inline,
                heap: Vec::new(),
                words,
            };
        }
        let mask = self.mask(roles(principal));
        principal.remember_role_bits(self.table, mask.inline);
        mask
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
const INLINE_WORDS: usize = ROLE_MEMO_WORDS;

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
    pub(super) fn new(words: usize) -> Self {
        Self {
            first: 0,
            rest: vec![0; words.saturating_sub(1)].into_boxed_slice(),
        }
    }

    /// How many 64-bit words it holds.
    pub(super) fn words(&self) -> usize {
        1 + self.rest.len()
    }

    #[inline]
    pub(super) fn insert(&mut self, id: u32) {
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

    pub(super) fn union_with(&mut self, other: &Bits) {
        self.first |= other.first;
        for (a, b) in self.rest.iter_mut().zip(other.rest.iter()) {
            *a |= b;
        }
    }

    #[inline]
    pub(super) fn intersects(&self, mask: &Mask) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
