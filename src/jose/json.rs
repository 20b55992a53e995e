//! Strict JSON: duplicate member names are an error at every depth.
//!
//! serde_json keeps the last of two equal names; JOSE (RFC 7515 section 5.2) says a parser
//! must either reject duplicates or keep only the last, and we reject. Depth is bounded by
//! serde_json's recursion limit (128), so deep nesting is an error, never a stack overflow;
//! arrays and objects hold at most 1024 items.
//!
//! serde_json's `arbitrary_precision` feature, which any crate in a build may turn on,
//! hands numbers to visitors as one-member maps. The readers here answer the same with it
//! on or off (`.ci/run` runs this module's tests both ways), with two differences that are
//! serde_json's own: a number beyond `f64`'s range is then refused only where we read it
//! (`exp`, `nbf`, `iat`: not a NumericDate) and kept as written elsewhere, and an object
//! whose only member is named `$serde_json::private::Number` is read by serde_json as a
//! number in [`object`].

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Most elements of one array, or members of one object: huge arrays are refused, so a
/// token cannot make us build one. Real tokens and key sets stay far below it.
const MAX_ITEMS: usize = 1024;

/// Parses a JSON object, refusing duplicate names, a BOM, trailing bytes and non-objects.
///
/// Checked by the strict rules first, then built by serde_json itself, so that its numbers
/// are serde_json's own whatever features of serde_json a build turns on
/// (`arbitrary_precision` hands numbers to a visitor as one-member maps).
pub(crate) fn object(bytes: &[u8]) -> Result<Map<String, Value>, &'static str> {
    // serde_json refuses a BOM and trailing non-whitespace by itself.
    strict(bytes).map_err(|_| NOT_JSON)?;
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("not a JSON object"),
        Err(_) => Err(NOT_JSON),
    }
}

/// Parses a document into `T`, refusing duplicate member names anywhere.
pub(crate) fn from_slice_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    strict(bytes).map_err(|e| e.to_string())?;
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Checks a whole document by the strict rules (duplicate names at every depth, item
/// caps, finite numbers) without building it.
fn strict(bytes: &[u8]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Check.deserialize(&mut de).and_then(|()| de.end())
}

// ---------------------------------------------------------------------------------------
// The request path: strict checks and borrowed reads, without building a `Value`.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::de::IgnoredAny;
use serde_json::value::RawValue;

/// An object member name, borrowed from the input unless it holds escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Name<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Member names seen in one object, to refuse duplicates. Small objects stay on the
/// stack; large ones (an attacker's) move to a hash set, so the check stays linear.
struct Seen<'de> {
    inline: [&'de str; 16],
    len: usize,
    more: Vec<Cow<'de, str>>,
    set: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Seen<'de> {
    fn new() -> Self {
        Self {
            inline: [""; 16],
            len: 0,
            more: Vec::new(),
            set: None,
        }
    }

    /// Records `name`; `false` when it was seen already.
    fn insert(&mut self, name: Cow<'de, str>) -> bool {
        if let Some(set) = &mut self.set {
            return set.insert(name);
        }
        let n: &str = &name;
        if self.inline[..self.len].iter().any(|s| same(s, n))
            || self.more.iter().any(|m| same(m, n))
        {
            return false;
        }
        match name {
            Cow::Borrowed(b) if self.len < self.inline.len() => {
                self.inline[self.len] = b;
                self.len += 1;
            }
            other => {
                self.more.push(other);
                if self.more.len() > 32 {
                    let mut set: HashSet<Cow<'de, str>> = self.more.drain(..).collect();
                    set.extend(self.inline[..self.len].iter().map(|s| Cow::Borrowed(*s)));
                    self.set = Some(set);
                }
            }
        }
        true
    }
}

/// Whether two member names are equal, compared in line: the names a scan looks for and
/// the names of a token's members are a few bytes long, where a call to `memcmp` (what
/// `==` on strings compiles to) costs more than the compare itself.
#[inline]
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// Validates one value with the strict rules (duplicate names at every depth, item caps)
/// and discards it.
struct Check;

impl<'de> DeserializeSeed<'de> for Check {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(CheckVisitor)
    }
}

struct CheckVisitor;

fn check_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    let mut n = 0;
    while seq.next_element_seed(Check)?.is_some() {
        n += 1;
        if n > MAX_ITEMS {
            return Err(de::Error::custom("array too long"));
        }
    }
    Ok(())
}

fn check_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    let mut seen = Seen::new();
    let mut n = 0;
    while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
        map.next_value_seed(Check)?;
        n += 1;
        if n > MAX_ITEMS {
            return Err(de::Error::custom("object has too many members"));
        }
        if !seen.insert(name) {
            return Err(de::Error::custom("duplicate member name"));
        }
    }
    Ok(())
}

impl<'de> Visitor<'de> for CheckVisitor {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(E::custom("number out of range"))
        }
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        check_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        check_map(map)
    }
}

/// Checks a whole document by the strict rules without building it.
#[cfg(test)]
pub(crate) fn check(bytes: &[u8]) -> Result<(), &'static str> {
    strict(bytes).map_err(|_| NOT_JSON)
}

/// The members of an object that a scan was asked for, as borrowed raw JSON.
pub(crate) type Members<'de, const N: usize> = [Option<&'de RawValue>; N];

struct Scan<'n, const N: usize> {
    names: &'n [&'n str; N],
    strict: bool,
}

enum Scanned<'de, const N: usize> {
    Object(Members<'de, N>),
    NotObject,
}

impl<'de, const N: usize> DeserializeSeed<'de> for Scan<'_, N> {
    type Value = Scanned<'de, N>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Scan<'_, N> {
    type Value = Scanned<'de, N>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scanned::NotObject)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Scanned::NotObject)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Scanned::NotObject)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Scanned::NotObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Scanned::NotObject)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scanned::NotObject)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        if self.strict {
            check_seq(seq)?;
        }
        Ok(Scanned::NotObject)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        const { assert!(N <= 64, "a scan asks for at most 64 names") };
        let mut found: Members<'de, N> = [None; N];
        let mut seen = Seen::new();
        let mut n = 0;
        while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
            // The slots asked for under this name, one pass (a name may be asked for
            // twice).
            let mut wanted = 0u64;
            for (i, want) in self.names.iter().enumerate() {
                wanted |= u64::from(same(want, &name)) << i;
            }
            if wanted != 0 {
                let raw: &'de RawValue = map.next_value()?;
                while wanted != 0 {
                    found[wanted.trailing_zeros() as usize] = Some(raw);
                    wanted &= wanted - 1;
                }
                if self.strict && raw.get().starts_with(['{', '[']) {
                    let mut de = serde_json::Deserializer::from_str(raw.get());
                    Check.deserialize(&mut de).map_err(de::Error::custom)?;
                }
            } else if self.strict {
                map.next_value_seed(Check)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
            n += 1;
            if self.strict {
                if n > MAX_ITEMS {
                    return Err(de::Error::custom("object has too many members"));
                }
                if !seen.insert(name) {
                    return Err(de::Error::custom("duplicate member name"));
                }
            }
        }
        Ok(Scanned::Object(found))
    }
}

fn scan<'de, R: serde_json::de::Read<'de>, const N: usize>(
    de: &mut serde_json::Deserializer<R>,
    names: &[&str; N],
    strict: bool,
) -> Result<Members<'de, N>, &'static str> {
    let scanned = Scan { names, strict }
        .deserialize(&mut *de)
        .and_then(|s| de.end().map(|()| s));
    match scanned {
        Ok(Scanned::Object(found)) => Ok(found),
        Ok(Scanned::NotObject) => Err("not a JSON object"),
        Err(_) => Err(NOT_JSON),
    }
}

/// [`scan`] over a whole document held as text: with serde_json's `arbitrary_precision`
/// feature a number reaches [`Scan`]'s `visit_map` as a map, so a document is an object
/// only when it also opens with a brace.
#[inline(always)]
fn scan_text<'de, const N: usize>(
    text: &'de str,
    names: &[&str; N],
    strict: bool,
) -> Result<Members<'de, N>, &'static str> {
    let found = scan(&mut serde_json::Deserializer::from_str(text), names, strict)?;
    if text.trim_ascii_start().starts_with('{') {
        Ok(found)
    } else {
        Err("not a JSON object")
    }
}

/// Why a document was refused: not JSON, or a name repeated within one object.
const NOT_JSON: &str = "not valid JSON, or a duplicate member name";

/// Checks a whole JSON object by the strict rules (as [`object`] does: no duplicate names
/// at any depth, no BOM, no trailing bytes, item caps) and returns the members named in
/// `names`, borrowed. Nothing is allocated for objects of up to 16 members with plain
/// names.
pub(crate) fn scan_object<'de, const N: usize>(
    bytes: &'de [u8],
    names: &[&str; N],
) -> Result<Members<'de, N>, &'static str> {
    // Checked as UTF-8 once, whole: then no string inside is checked again.
    let text = std::str::from_utf8(bytes).map_err(|_| NOT_JSON)?;
    scan_text(text, names, true)
}

/// A JSON value read as one scalar, borrowed where it can be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'de> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'de, str>),
    /// An array or an object.
    Compound,
}

impl<'de> Scalar<'de> {
    /// Reads an already checked raw value.
    ///
    /// The common claim values are read in place, with the answer the full parse gives: a
    /// string without escapes is its bytes between the quotes (the raw value is valid JSON
    /// already, so it has no control character or stray quote), and a number is read by
    /// [`number`](Self::number).
    #[inline]
    pub(crate) fn of(raw: &'de RawValue) -> Self {
        let text = raw.get();
        match text.as_bytes() {
            [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => {
                Scalar::Str(Cow::Borrowed(&text[1..text.len() - 1]))
            }
            [b'-' | b'0'..=b'9', ..] => Self::number(text),
            _ => Self::parse(text),
        }
    }

    /// Reads a JSON number (already checked) as serde_json reads one by default: a whole
    /// number within `u64` is a `U64`, a negative one within `i64` an `I64` (but `-0` is
    /// the float `-0.0`), any other an `F64`, read by serde_json as an `f64` (without
    /// `arbitrary_precision`, the number [`Principal::claims`](crate::Principal::claims)
    /// holds, to the last bit). Not through serde_json's `deserialize_any`: its visitors
    /// see a number as a one-member map when any crate in the build turns on that
    /// feature.
    fn number(text: &str) -> Self {
        let (negative, digits) = match text.as_bytes() {
            [b'-', digits @ ..] => (true, digits),
            digits => (false, digits),
        };
        if digits.iter().all(u8::is_ascii_digit) {
            if !negative {
                if let Ok(u) = text.parse::<u64>() {
                    return Scalar::U64(u);
                }
            } else if let Ok(i) = text.parse::<i64>()
                && i != 0
            {
                return Scalar::I64(i);
            }
        }
        serde_json::from_str::<f64>(text).map_or(Scalar::Compound, Scalar::F64)
    }

    /// Reads a raw value that is not a number with serde_json's parser (numbers go to
    /// [`number`](Self::number)).
    fn parse(text: &'de str) -> Self {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Compound)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Compound)
            }
        }
        let mut de = serde_json::Deserializer::from_str(text);
        de::Deserializer::deserialize_any(&mut de, V).unwrap_or(Scalar::Compound)
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// What [`for_each_item`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Str,
    Array,
    Other,
}

/// Walks an already checked raw value that is a string or an array: `each` gets the
/// string, or each array element (`None` for an element that is not a string), with
/// `true` for array elements. Returning `false` from `each` skips the rest.
pub(crate) fn for_each_item(
    raw: &RawValue,
    mut each: impl FnMut(Option<&str>, bool) -> bool,
) -> Shape {
    struct V<'f, F>(&'f mut F);
    impl<'de, F: FnMut(Option<&str>, bool) -> bool> Visitor<'de> for V<'_, F> {
        type Value = Shape;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an array")
        }
        fn visit_str<E>(self, v: &str) -> Result<Shape, E> {
            (self.0)(Some(v), false);
            Ok(Shape::Str)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
            while let Some(MaybeStr(item)) = seq.next_element::<MaybeStr<'de>>()? {
                if !(self.0)(item.as_deref(), true) {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    break;
                }
            }
            Ok(Shape::Array)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
            Ok(Shape::Other)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
            Ok(Shape::Other)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
            Ok(Shape::Other)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
            Ok(Shape::Other)
        }
        fn visit_unit<E>(self) -> Result<Shape, E> {
            Ok(Shape::Other)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Shape::Other)
        }
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de::Deserializer::deserialize_any(&mut de, V(&mut each)).unwrap_or(Shape::Other)
}

/// A string, or `None` for any other value (which is skipped).
struct MaybeStr<'de>(Option<Cow<'de, str>>);

impl<'de> de::Deserialize<'de> for MaybeStr<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(None))
            }
            fn visit_unit<E>(self) -> Result<MaybeStr<'de>, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MaybeStr<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeStr<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Follows `path` (member names) down through nested objects of an already checked raw
/// value. Only nested members are followed: a path is never matched against a member
/// whose name holds a dot.
/// The member at `path` of an object already checked (a verified token's payload), found
/// without checking it again: one pass over the members on the way, nothing allocated.
pub(crate) fn member_at<'de, S: AsRef<str>>(bytes: &'de [u8], path: &[S]) -> Option<&'de RawValue> {
    let (first, rest) = path.split_first()?;
    let names = [first.as_ref()];
    let text = std::str::from_utf8(bytes).ok()?;
    let [found] = scan_text(text, &names, false).ok()?;
    walk(found?, rest)
}

pub(crate) fn walk<'de, S: AsRef<str>>(
    mut raw: &'de RawValue,
    path: &[S],
) -> Option<&'de RawValue> {
    for name in path {
        let names = [name.as_ref()];
        let [found] = scan_text(raw.get(), &names, false).ok()?;
        raw = found?;
    }
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_matches_the_strict_parser() {
        for doc in [
            r#"{"a":1,"b":{"c":[1,2,{"d":null}]}}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"x":1,"x":2}}"#,
            r#"{"sub":{"x":1,"x":2}}"#,
            r#"{"sub":[{"x":1,"x":2}]}"#,
            r#"{"a\u0062":1,"ab":2}"#,
            r#"[1,2]"#,
            r#""x""#,
            r#"{"a":1} x"#,
            "\u{feff}{}",
            r#"{"a":1e400}"#,
        ] {
            let strict = object(doc.as_bytes());
            let scanned = scan_object(doc.as_bytes(), &["sub"]);
            assert_eq!(strict.is_ok(), scanned.is_ok(), "{doc}");
            if let (Err(a), Err(b)) = (strict, scanned) {
                assert_eq!(a, b, "{doc}");
            }
        }
    }

    #[test]
    fn scan_fills_every_slot_of_a_name_and_only_those() {
        // Names of one length, a prefix, an escaped name, and a name asked for twice.
        let doc = r#"{"sub":"ada","su":1,"subs":2,"i\u0073s":"me","exp":3,"roles":["r"]}"#;
        let [sub, iss, exp, roles, again, none, prefix] = scan_object(
            doc.as_bytes(),
            &["sub", "iss", "exp", "roles", "sub", "nbf", "s"],
        )
        .unwrap();
        let get = |m: Option<&RawValue>| m.map(|r| r.get().to_owned());
        assert_eq!(get(sub).as_deref(), Some(r#""ada""#));
        assert_eq!(get(again).as_deref(), Some(r#""ada""#));
        assert_eq!(get(iss).as_deref(), Some(r#""me""#));
        assert_eq!(get(exp).as_deref(), Some("3"));
        assert_eq!(get(roles).as_deref(), Some(r#"["r"]"#));
        assert!(none.is_none() && prefix.is_none());
        // A duplicate spelled differently is still a duplicate.
        assert!(scan_object(br#"{"iss":1,"i\u0073s":2}"#, &["iss"]).is_err());
        assert!(scan_object(br#"{"a":1,"b":2,"a":3}"#, &[]).is_err());
    }

    #[test]
    fn scalars_read_in_place_as_the_parser_reads_them() {
        let values = [
            r#""""#,
            r#""ada""#,
            r#""a\"b""#,
            r#""\u00e9t\u00e9""#,
            r#""été""#,
            r#""x\\""#,
            "true",
            "false",
            "null",
            "[1,2]",
            r#"{"a":1}"#,
        ];
        for v in values {
            let doc = format!(r#"{{"k": {v} , "m":[ {v} ]}}"#);
            let [k] = scan_object(doc.as_bytes(), &["k"]).unwrap();
            let raw = k.unwrap();
            assert_eq!(raw.get(), v, "the raw value is the value alone");
            assert_eq!(Scalar::of(raw), Scalar::parse(raw.get()), "{v}");
        }
    }

    /// Numbers are read as serde_json reads them by default, whatever features of
    /// serde_json the build turns on (`.ci/run` runs this module with
    /// `arbitrary_precision` too).
    #[test]
    fn numbers_read_as_serde_json_reads_them() {
        use Scalar::*;
        let numbers = [
            ("0", U64(0)),
            ("7", U64(7)),
            ("4000000000", U64(4_000_000_000)),
            ("1234567890123456789", U64(1_234_567_890_123_456_789)),
            ("12345678901234567890", U64(12_345_678_901_234_567_890)),
            ("18446744073709551615", U64(u64::MAX)),
            ("18446744073709551616", F64(18_446_744_073_709_551_616.0)),
            ("-1", I64(-1)),
            ("-9223372036854775808", I64(i64::MIN)),
            ("-9223372036854775809", F64(-9_223_372_036_854_775_809.0)),
            ("-0", F64(-0.0)),
            ("1.5", F64(1.5)),
            ("1700000000.25", F64(1_700_000_000.25)),
            ("-2.5e-3", F64(-0.0025)),
            ("1e3", F64(1000.0)),
            ("1E+2", F64(100.0)),
            // serde_json's own reading, which may differ from a correctly rounded one in
            // the last bit: the second it floors to must be the one `claims()` shows.
            ("3893932055.9999996", F64(3_893_932_056.0)),
            ("0.0", F64(0.0)),
        ];
        for (v, want) in numbers {
            let doc = format!(r#"{{"k": {v} , "m":[ {v} ]}}"#);
            let [k] = scan_object(doc.as_bytes(), &["k"]).unwrap();
            let raw = k.unwrap();
            assert_eq!(raw.get(), v);
            assert_eq!(Scalar::of(raw), want, "{v}");
            if let F64(f) = want {
                // -0.0 == 0.0: the sign too.
                assert!(
                    matches!(Scalar::of(raw), F64(g) if g.to_bits() == f.to_bits()),
                    "{v}"
                );
            }
        }
        // A built object keeps numbers as numbers.
        let map =
            object(br#"{"exp":1700000000,"iat":1.5,"n":-2,"big":18446744073709551616}"#).unwrap();
        assert_eq!(map["exp"].as_u64(), Some(1_700_000_000));
        assert_eq!(map["iat"].as_f64(), Some(1.5));
        assert_eq!(map["n"].as_i64(), Some(-2));
        assert_eq!(map["big"].as_f64(), Some(18_446_744_073_709_551_616.0));
        #[derive(serde::Deserialize)]
        struct Typed {
            exp: u64,
        }
        let typed: Typed = from_slice_strict(br#"{"exp":1700000000}"#).unwrap();
        assert_eq!(typed.exp, 1_700_000_000);
        // A number is not an object, at the top or down a path.
        for doc in ["1.5", " 7", "-3", "1e3"] {
            let scanned = scan_object(doc.as_bytes(), &["exp"]);
            assert_eq!(scanned.err(), Some("not a JSON object"), "{doc}");
            assert_eq!(object(doc.as_bytes()), Err("not a JSON object"), "{doc}");
            assert!(member_at(doc.as_bytes(), &["exp"]).is_none(), "{doc}");
        }
        let doc = br#"{"a":1.5}"#;
        assert!(member_at(doc, &["a", "b"]).is_none());
    }

    #[test]
    fn many_members_stay_linear_and_refuse_duplicates() {
        let mut doc = String::from("{");
        for i in 0..1000 {
            doc.push_str(&format!("\"k{i}\":{i},"));
        }
        doc.push_str("\"k500\":1}");
        assert!(scan_object(doc.as_bytes(), &["k1"]).is_err());
        assert!(check(doc.as_bytes()).is_err());
    }

    #[test]
    fn walk_follows_nested_members_only() {
        let doc = r#"{"realm_access":{"roles":["a","b"]},"realm_access.roles":["x"]}"#;
        let [top] = scan_object(doc.as_bytes(), &["realm_access"]).unwrap();
        let raw = walk(top.unwrap(), &["roles"]).unwrap();
        let mut got = Vec::new();
        let shape = for_each_item(raw, |s, _| {
            got.push(s.unwrap().to_owned());
            true
        });
        assert_eq!(shape, Shape::Array);
        assert_eq!(got, ["a", "b"]);
    }
}
