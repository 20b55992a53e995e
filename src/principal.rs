//! The verified caller.
//!
//! A [`Principal`] is made only by [`Authenticator`](crate::Authenticator) after a token
//! verified; the layer puts it into the request extensions. Cloning is cheap (one `Arc`).
//!
//! It holds the token's decoded header and claims as they arrived, plus the subject, roles
//! and groups read from them; the full claim map is built only when
//! [`claims`](Principal::claims) or [`claim`](Principal::claim) first asks for it.
//!
//! ```
//! use portcullis::{Authenticator, Signer, Algorithm};
//! use serde_json::json;
//!
//! let secret = "a-dev-secret-of-at-least-32-bytes!!";
//! let auth = Authenticator::builder().hmac_secret(secret).build()?;
//! let token = Signer::hmac(Algorithm::HS256, secret)?
//!     .sign(&json!({"sub": "ada", "role": "admin", "exp": 4_000_000_000u64}))?;
//! let principal = auth.verify(&token)?;
//! assert_eq!(principal.subject(), Some("ada"));
//! assert!(principal.has_role("admin"));
//! assert_eq!(principal.roles(), ["admin"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::answer::Answers;
use crate::jose::json;

/// The caller whose token verified: subject, roles, groups and all claims.
#[derive(Clone)]
pub struct Principal {
    inner: Arc<Inner>,
}

/// Most subject, role and group strings kept without a second allocation.
const INLINE_SPANS: usize = 8;

/// Ranges into one string buffer: subject, then roles, then groups.
#[derive(Default, Clone)]
struct Spans {
    inline: [(u32, u32); INLINE_SPANS],
    len: usize,
    more: Vec<(u32, u32)>,
}

impl Spans {
    fn push(&mut self, r: Range<usize>) {
        let r = (r.start as u32, r.end as u32);
        if self.len < INLINE_SPANS {
            self.inline[self.len] = r;
            self.len += 1;
        } else {
            self.more.push(r);
        }
    }

    fn get(&self, i: usize) -> (u32, u32) {
        if i < INLINE_SPANS {
            self.inline[i]
        } else {
            self.more[i - INLINE_SPANS]
        }
    }
}

/// What the verifier read from a token for its principal, built up while reading.
#[derive(Default, Clone)]
pub(crate) struct Identity {
    strings: String,
    spans: Spans,
    subject: bool,
    roles: usize,
    groups: usize,
    /// The token has a `cnf` claim (RFC 7800): it is bound to a key or a certificate.
    bound: bool,
}

impl Identity {
    fn push(&mut self, s: &str) {
        let start = self.strings.len();
        self.strings.push_str(s);
        self.spans.push(start..self.strings.len());
    }

    /// Sets the subject; call it first, at most once.
    pub(crate) fn subject(&mut self, s: &str) {
        debug_assert!(self.roles == 0 && self.groups == 0 && !self.subject);
        self.push(s);
        self.subject = true;
    }

    /// Adds a role; call after the subject and before any group.
    pub(crate) fn role(&mut self, s: &str) {
        debug_assert!(self.groups == 0);
        self.push(s);
        self.roles += 1;
    }

    /// Adds a group.
    pub(crate) fn group(&mut self, s: &str) {
        self.push(s);
        self.groups += 1;
    }

    /// Marks the token as bound by a `cnf` claim.
    pub(crate) fn bound(&mut self) {
        self.bound = true;
    }

    /// Reserves room for the strings to come, so that they take one allocation.
    pub(crate) fn reserve(&mut self, bytes: usize) {
        self.strings.reserve(bytes);
    }
}

struct Inner {
    answers: Arc<Answers>,
    /// The decoded header JSON, then the decoded payload JSON.
    buf: Vec<u8>,
    header_len: usize,
    id: Identity,
    claims: OnceLock<Map<String, Value>>,
    header: OnceLock<Map<String, Value>>,
    /// The string values of the claims one policy's conditions compare, read once: the
    /// set's id and a value list per claim.
    held: OnceLock<(usize, Box<[Held]>)>,
    /// The role bits one policy's role table gave this principal, read once: the table's
    /// id and its bits (tables of up to `64 * ROLE_MEMO_WORDS` roles).
    role_bits: OnceLock<(usize, [u64; ROLE_MEMO_WORDS])>,
}

/// The words of role bits a principal remembers for one policy.
pub(crate) const ROLE_MEMO_WORDS: usize = 4;

/// What a claim holds, for conditions: its string, or the strings of its array (other
/// items never match), or nothing comparable.
enum Held {
    Strs(Box<[Box<str>]>),
    Nothing,
}

/// The claims the conditions of one policy compare, each at its position.
#[derive(Debug)]
pub(crate) struct ClaimSet {
    id: usize,
    paths: Vec<ClaimPath>,
}

impl ClaimSet {
    pub(crate) fn new(paths: Vec<ClaimPath>) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        Self {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            paths,
        }
    }

    /// The position of `path`, adding it when new.
    pub(crate) fn position(paths: &mut Vec<ClaimPath>, path: &ClaimPath) -> usize {
        match paths.iter().position(|p| p == path) {
            Some(at) => at,
            None => {
                paths.push(path.clone());
                paths.len() - 1
            }
        }
    }
}

impl Principal {
    pub(crate) fn new(
        answers: Arc<Answers>,
        buf: Vec<u8>,
        header_len: usize,
        id: Identity,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                answers,
                buf,
                header_len,
                id,
                claims: OnceLock::new(),
                header: OnceLock::new(),
                held: OnceLock::new(),
                role_bits: OnceLock::new(),
            }),
        }
    }

    /// The same caller in an allocation of its own: for a per-thread cache, so that handing
    /// it out touches no memory another thread shares.
    #[cfg_attr(not(feature = "token-cache"), allow(dead_code))]
    pub(crate) fn own_copy(&self) -> Self {
        let i = &self.inner;
        Self::new(i.answers.clone(), i.buf.clone(), i.header_len, i.id.clone())
    }

    /// Roughly the bytes this principal holds, for caches that bound their size.
    #[cfg_attr(not(feature = "token-cache"), allow(dead_code))]
    pub(crate) fn weight(&self) -> u64 {
        let i = &self.inner;
        (std::mem::size_of::<Inner>()
            + i.buf.capacity()
            + i.id.strings.capacity()
            + i.id.spans.more.capacity() * 8) as u64
    }

    /// The answers of the authenticator that verified this caller (its scheme and realm),
    /// for rejections in extractors.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn answers(&self) -> &Arc<Answers> {
        &self.inner.answers
    }

    fn string(&self, i: usize) -> &str {
        let (a, b) = self.inner.id.spans.get(i);
        &self.inner.id.strings[a as usize..b as usize]
    }

    fn strs(&self, start: usize, len: usize) -> Strs<'_> {
        Strs {
            principal: self,
            next: start,
            end: start + len,
        }
    }

    /// The `iss` claim, when it is a string.
    pub fn issuer(&self) -> Option<&str> {
        self.claim("iss").and_then(serde_json::Value::as_str)
    }

    /// The `sub` claim, when it is a string.
    pub fn subject(&self) -> Option<&str> {
        self.inner.id.subject.then(|| self.string(0))
    }

    /// The roles read from the configured role claim (default `role`), in token order.
    pub fn roles(&self) -> Strs<'_> {
        let id = &self.inner.id;
        self.strs(usize::from(id.subject), id.roles)
    }

    /// Whether the caller holds exactly this role (case-sensitive).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().any(|r| r == role)
    }

    /// The groups read from the configured groups claim (default `groups`), in token order.
    pub fn groups(&self) -> Strs<'_> {
        let id = &self.inner.id;
        self.strs(usize::from(id.subject) + id.roles, id.groups)
    }

    /// Whether the token carries a `cnf` (confirmation, RFC 7800) claim: it is bound to a
    /// DPoP key (`cnf.jkt`, RFC 9449) or a client certificate (`cnf.x5t#S256`, RFC 8705),
    /// and the layer lets it through only with that proof of possession, never as a plain
    /// bearer token (see [`sender`](crate::sender)).
    pub fn is_sender_constrained(&self) -> bool {
        self.inner.id.bound
    }

    /// The string member `name` of the token's `cnf` claim (`jkt`, `x5t#S256`), read
    /// in place.
    pub(crate) fn confirmation(&self, name: &str) -> Option<String> {
        let raw = json::member_at(self.payload(), &["cnf", name])?;
        json::Scalar::of(raw).as_str().map(str::to_owned)
    }

    fn payload(&self) -> &[u8] {
        &self.inner.buf[self.inner.header_len..]
    }

    /// All claims of the verified token (built on first use).
    pub fn claims(&self) -> &Map<String, Value> {
        self.inner
            .claims
            .get_or_init(|| json::object(self.payload()).unwrap_or_default())
    }

    /// The verified token's JOSE header parameters (`alg`, `kid`, `typ`, and any `crit`
    /// parameters you declared with `understand_crit`, for you to check).
    pub fn header(&self) -> &Map<String, Value> {
        self.inner.header.get_or_init(|| {
            json::object(&self.inner.buf[..self.inner.header_len]).unwrap_or_default()
        })
    }

    /// One claim, by a path of nested member names separated by dots, such as
    /// `realm_access.roles`. A dot inside a member name is written `\.`:
    /// `https://example\.com/roles` names the top-level member `https://example.com/roles`.
    /// A path never matches a member whose name merely contains its dots.
    pub fn claim(&self, path: &str) -> Option<&Value> {
        claim_at(self.claims(), &ClaimPath::parse(path))
    }

    /// Whether the claim at `path` is a string equal to `want`, or an array containing it.
    /// Read from the token in place: no claim map is built.
    pub(crate) fn claim_is(&self, path: &ClaimPath, want: &str) -> bool {
        // The payload was checked when the token was verified: find the member without
        // parsing the whole document again.
        let Some(raw) = json::member_at(self.payload(), path.names()) else {
            return false;
        };
        let mut found = false;
        json::for_each_item(raw, |item, _| {
            found |= item == Some(want);
            !found
        });
        found
    }

    /// The same answer as `claim_is`, from the claims parsed once per principal (kept
    /// with it, so a principal from the verified-token cache answers with a map look-up):
    /// for rule conditions, which run on every request.
    pub(crate) fn claim_equals(&self, path: &ClaimPath, want: &str) -> bool {
        match claim_at(self.claims(), path) {
            Some(Value::String(s)) => s == want,
            Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(want)),
            _ => false,
        }
    }

    /// `claim_equals` for the claim at position `at` of `set`, from values read once per
    /// principal: a string compare on the request path.
    /// The role bits role table `table` gave this principal, when it remembers them.
    #[inline]
    pub(crate) fn role_bits(&self, table: usize) -> Option<[u64; ROLE_MEMO_WORDS]> {
        match self.inner.role_bits.get() {
            Some((id, bits)) if *id == table => Some(*bits),
            _ => None,
        }
    }

    /// Remembers the role bits of role table `table` (the first table to ask keeps the
    /// place; a principal is usually judged by one policy).
    pub(crate) fn remember_role_bits(&self, table: usize, bits: [u64; ROLE_MEMO_WORDS]) {
        let _ = self.inner.role_bits.set((table, bits));
    }

    pub(crate) fn set_claim_equals(&self, set: &ClaimSet, at: usize, want: &str) -> bool {
        let (id, held) = self.inner.held.get_or_init(|| {
            let claims = self.claims();
            let held = set
                .paths
                .iter()
                .map(|p| match claim_at(claims, p) {
                    Some(Value::String(s)) => Held::Strs(Box::new([s.as_str().into()])),
                    Some(Value::Array(items)) => Held::Strs(
                        items
                            .iter()
                            .filter_map(Value::as_str)
                            .map(Into::into)
                            .collect(),
                    ),
                    _ => Held::Nothing,
                })
                .collect();
            (set.id, held)
        });
        if *id != set.id {
            // Read for another policy: look it up.
            return set
                .paths
                .get(at)
                .is_some_and(|p| self.claim_equals(p, want));
        }
        match held.get(at) {
            Some(Held::Strs(values)) => values.iter().any(|v| &**v == want),
            _ => false,
        }
    }

    /// Whether both are the very same principal (one verification, shared), as the
    /// verified-token cache hands out. For tests.
    #[doc(hidden)]
    pub fn is_same(&self, other: &Principal) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The claims deserialized into `T`, or the path of the field that did not fit
    /// (`realm_access.roles[1]`) and why, without any claim value.
    #[cfg_attr(not(any(feature = "axum", feature = "tonic")), allow(dead_code))]
    pub(crate) fn claims_path_as<T: DeserializeOwned>(&self) -> Result<T, String> {
        let mut de = serde_json::Deserializer::from_slice(self.payload());
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let what = match e.inner().classify() {
                serde_json::error::Category::Data => without_values(&e.inner().to_string()),
                _ => "not valid JSON".to_owned(),
            };
            format!("`{path}`: {what}")
        })
    }

    /// The claims deserialized into your own type.
    pub fn claims_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(self.payload())
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claim values may be personal data; only names are printed.
        f.debug_struct("Principal")
            .field("subject", &self.subject())
            .field("roles", &self.roles())
            .field("groups", &self.groups())
            .field("claims", &self.claims().keys().collect::<Vec<_>>())
            .finish()
    }
}

/// serde's message for a claim that did not fit, without the claim's value: "invalid
/// type: string \"x\", expected u64" becomes "wrong type, expected u64".
fn without_values(msg: &str) -> String {
    let msg = msg.split(" at line").next().unwrap_or("");
    if let Some(field) = msg.strip_prefix("missing field ") {
        return format!("missing field {field}");
    }
    match msg.split_once(", expected ") {
        Some((_, expected)) => format!("wrong type or value, expected {expected}"),
        None => "does not fit".to_owned(),
    }
}

/// The roles or groups of a [`Principal`]: an iterator of `&str`, comparable with arrays
/// and slices of strings, serialized as a JSON array.
#[derive(Clone)]
pub struct Strs<'a> {
    principal: &'a Principal,
    next: usize,
    end: usize,
}

impl<'a> Iterator for Strs<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.principal.string(self.next - 1)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Strs<'_> {}

impl DoubleEndedIterator for Strs<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        (self.next < self.end).then(|| {
            self.end -= 1;
            self.principal.string(self.end)
        })
    }
}

impl Strs<'_> {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.next == self.end
    }

    /// Whether `s` is among them (exact, case-sensitive).
    pub fn contains(&self, s: &str) -> bool {
        self.clone().any(|x| x == s)
    }
}

impl fmt::Debug for Strs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

impl serde::Serialize for Strs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.clone())
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for Strs<'_> {
    fn eq(&self, other: &[S]) -> bool {
        self.len() == other.len() && self.clone().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for Strs<'_> {
    fn eq(&self, other: &[S; N]) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>> PartialEq<&[S]> for Strs<'_> {
    fn eq(&self, other: &&[S]) -> bool {
        *self == **other
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for Strs<'_> {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}

/// A claim path: nested member names, written with dots between them and `\.` for a dot
/// inside a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClaimPath {
    names: Vec<String>,
}

impl ClaimPath {
    pub(crate) fn parse(path: &str) -> Self {
        let mut names = Vec::new();
        let mut current = String::new();
        let mut chars = path.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('.') => current.push('.'),
                    Some(other) => {
                        current.push('\\');
                        current.push(other);
                    }
                    None => current.push('\\'),
                },
                '.' => names.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        names.push(current);
        Self { names }
    }

    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// The last member name (`scope` in `a.scope`).
    pub(crate) fn last(&self) -> &str {
        self.names.last().map_or("", String::as_str)
    }
}

/// Walks a claim path through nested objects of a claim map.
pub(crate) fn claim_at<'a>(claims: &'a Map<String, Value>, path: &ClaimPath) -> Option<&'a Value> {
    let (first, rest) = path.names.split_first()?;
    let mut current = claims.get(first)?;
    for name in rest {
        current = current.as_object()?.get(name)?;
    }
    Some(current)
}
