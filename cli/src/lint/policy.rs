//! The policy file, read again with positions: shadowed, duplicate, unreachable and
//! redundant rules, public entries that open part of a guarded rule, idle inheritance.

use std::collections::{BTreeMap, BTreeSet};

use portcullis::Policy;
use serde::Deserialize;
use toml::Spanned;

use super::{Findings, Level, line_of};

#[derive(Deserialize, Default)]
pub(crate) struct PolicyFile {
    #[serde(default)]
    public: Vec<Spanned<String>>,
    #[serde(default)]
    url_prefix: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) inherit: BTreeMap<String, Vec<Spanned<String>>>,
    #[serde(default)]
    pub(crate) rule: Vec<HttpRule>,
    #[serde(default)]
    public_grpc: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) grpc: Vec<GrpcRule>,
}

#[derive(Deserialize)]
pub(crate) struct HttpRule {
    pub(crate) roles: Vec<String>,
    #[serde(default)]
    methods: Option<Vec<String>>,
    path: Spanned<String>,
}

#[derive(Deserialize)]
pub(crate) struct GrpcRule {
    pub(crate) roles: Vec<String>,
    method: Spanned<String>,
}

/// A path pattern segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    One,
    /// `**` (zero or more) or `{*rest}` (one or more).
    Tail {
        min1: bool,
    },
}

fn segs(pattern: &str) -> Option<Vec<Seg>> {
    let body = pattern.strip_prefix('/')?;
    if body.is_empty() {
        return Some(Vec::new());
    }
    Some(
        body.split('/')
            .map(|p| match p {
                "*" => Seg::One,
                "**" => Seg::Tail { min1: false },
                p if p.starts_with("{*") && p.ends_with('}') => Seg::Tail { min1: true },
                p if p.starts_with('{') && p.ends_with('}') => Seg::One,
                p => Seg::Lit(p.to_owned()),
            })
            .collect(),
    )
}

fn prefix_segs(prefix: &str) -> Vec<String> {
    prefix
        .trim_end_matches('/')
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether every path `b` matches, `a` matches too.
fn covers(a: &[Seg], b: &[Seg]) -> bool {
    match (a.first(), b.first()) {
        (None, None) => true,
        (Some(Seg::Tail { min1: false }), _) => true,
        (Some(Seg::Tail { min1: true }), Some(first)) => {
            !matches!(first, Seg::Tail { min1: false })
        }
        (Some(Seg::One), Some(Seg::Lit(l))) => !l.is_empty() && covers(&a[1..], &b[1..]),
        (Some(Seg::One), Some(Seg::One)) => covers(&a[1..], &b[1..]),
        (Some(Seg::Lit(x)), Some(Seg::Lit(y))) => x == y && covers(&a[1..], &b[1..]),
        _ => false,
    }
}

/// Whether the public prefix covers every path the pattern matches.
fn prefix_covers(prefix: &[String], pattern: &[Seg]) -> bool {
    prefix
        .iter()
        .enumerate()
        .all(|(i, p)| matches!(pattern.get(i), Some(Seg::Lit(l)) if l == p))
}

/// Whether some path the pattern matches lies under the prefix.
fn prefix_meets(prefix: &[String], pattern: &[Seg]) -> bool {
    for (i, p) in prefix.iter().enumerate() {
        match pattern.get(i) {
            Some(Seg::Lit(l)) if l == p => {}
            Some(Seg::One) => {}
            Some(Seg::Tail { .. }) => return true,
            _ => return false,
        }
    }
    true
}

/// Why no request can reach a pattern, if none can.
fn unreachable(pattern: &[Seg]) -> Option<String> {
    if pattern.len() > 256 {
        return Some("it has more than 256 segments; longer paths are refused with 400".into());
    }
    for s in pattern {
        let Seg::Lit(l) = s else { continue };
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(l).collect();
        let pieces = decoded.split(|b| *b == b'/' || *b == b'\\');
        if l.contains('%') && pieces.into_iter().any(|p| p == b"." || p == b"..") {
            return Some(format!(
                "segment `{l}` is a dot segment once decoded; such requests are refused with 400"
            ));
        }
        if let Some(c) = l
            .chars()
            .find(|c| c.is_control() || *c == ' ' || *c == '?' || *c == '#' || !c.is_ascii())
        {
            return Some(format!(
                "segment `{l}` holds {c:?}, which a request path as sent never holds (write it percent-encoded)"
            ));
        }
    }
    None
}

/// The methods of a rule, normalized: `None` for any.
fn methods(m: &Option<Vec<String>>) -> Option<BTreeSet<String>> {
    let m = m.as_ref()?;
    if m.iter().any(|x| x.trim() == "*") {
        return None;
    }
    let mut set: BTreeSet<String> = m.iter().map(|x| x.trim().to_owned()).collect();
    if set.contains("GET") {
        set.insert("HEAD".into());
    }
    Some(set)
}

fn methods_cover(a: &Option<BTreeSet<String>>, b: &Option<BTreeSet<String>>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => b.is_subset(a),
    }
}

fn describe_rule(i: usize, r: &HttpRule) -> String {
    let m = r
        .methods
        .as_ref()
        .map_or_else(|| "*".to_owned(), |m| m.join(","));
    format!("rule {i} ({m} {})", r.path.get_ref())
}

/// Whether a gRPC pattern covers every method of another: `*`, `/pkg.S/*`, exact.
fn grpc_covers(a: &str, b: &str) -> bool {
    if a == "*" || a == b {
        return true;
    }
    match a.strip_suffix("/*") {
        Some(service) => b != "*" && b.starts_with(service) && b[service.len()..].starts_with('/'),
        None => false,
    }
}

/// A rule with its index, parsed pattern and normalized methods.
type ParsedRule<'a> = (
    usize,
    &'a HttpRule,
    Option<Vec<Seg>>,
    Option<BTreeSet<String>>,
);

pub(crate) fn lint_policy(file: &str, text: &str, f: &mut Findings) -> Option<PolicyFile> {
    let parsed: Result<PolicyFile, _> = toml::from_str(text);
    let library = Policy::from_toml_str(text).err();
    let doc = parsed.ok();
    let line = |span: std::ops::Range<usize>| line_of(text, span.start);
    let mut shadow_found = false;
    if let Some(p) = &doc {
        let publics: Vec<(Vec<String>, &Spanned<String>)> = p
            .public
            .iter()
            .map(|s| (prefix_segs(s.get_ref()), s))
            .collect();
        let rules: Vec<ParsedRule<'_>> = p
            .rule
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r, segs(r.path.get_ref()), methods(&r.methods)))
            .collect();
        for (i, r, pat, ms) in &rules {
            let Some(pat) = pat else { continue };
            let at = line(r.path.span());
            let name = describe_rule(*i, r);
            for (pre, src) in &publics {
                if pre.is_empty() {
                    continue;
                }
                if prefix_covers(pre, pat) {
                    shadow_found = true;
                    f.add(file, at, Level::Error, format!(
                        "{name} is shadowed by the public prefix `{}` (line {}): it can never apply; remove the rule or the prefix",
                        src.get_ref(), line(src.span())
                    ));
                } else if matches!(pat.first(), Some(Seg::Lit(_))) && prefix_meets(pre, pat) {
                    // A catch-all (`/**`, `/{*rest}`) beside public prefixes is the usual
                    // "admin everywhere" rule; a rule under a literal prefix is not.
                    f.add(file, at, Level::Warning, format!(
                        "the public prefix `{}` (line {}) makes part of what {name} guards public",
                        src.get_ref(), line(src.span())
                    ));
                }
            }
            if let Some(why) = unreachable(pat) {
                f.add(
                    file,
                    at,
                    Level::Warning,
                    format!("{name} can never match: {why}"),
                );
            }
            for (j, earlier, epat, ems) in &rules[..*i] {
                let Some(epat) = epat else { continue };
                let same_route = epat == pat && ems == ms;
                if same_route {
                    let (mut a, mut b) = (earlier.roles.clone(), r.roles.clone());
                    a.sort();
                    b.sort();
                    let what = if a == b {
                        "duplicates"
                    } else {
                        "names the same route as"
                    };
                    f.add(
                        file,
                        at,
                        Level::Warning,
                        format!(
                            "{name} {what} rule {j} (line {}); roles add up, so merge them",
                            line(earlier.path.span())
                        ),
                    );
                    break;
                }
                if earlier.roles.iter().any(|x| x == "*")
                    && methods_cover(ems, ms)
                    && covers(epat, pat)
                {
                    f.add(file, at, Level::Warning, format!(
                        "{name} grants nothing: rule {j} (line {}) already lets any valid token reach every request it matches",
                        line(earlier.path.span())
                    ));
                    break;
                }
            }
        }
        // gRPC rules against public methods, and duplicates.
        for (i, r) in p.grpc.iter().enumerate() {
            let m = r.method.get_ref();
            let at = line(r.method.span());
            for pubm in &p.public_grpc {
                if grpc_covers(pubm.get_ref(), m) {
                    shadow_found = true;
                    f.add(file, at, Level::Error, format!(
                        "grpc rule {i} ({m}) is shadowed by the public gRPC method `{}` (line {}): it can never apply",
                        pubm.get_ref(), line(pubm.span())
                    ));
                } else if grpc_covers(m, pubm.get_ref()) {
                    f.add(file, at, Level::Warning, format!(
                        "the public gRPC method `{}` (line {}) makes part of what grpc rule {i} ({m}) guards public",
                        pubm.get_ref(), line(pubm.span())
                    ));
                }
            }
            if let Some((j, e)) = p.grpc[..i]
                .iter()
                .enumerate()
                .find(|(_, e)| e.method.get_ref() == m)
            {
                f.add(file, at, Level::Warning, format!(
                    "grpc rule {i} ({m}) names the same method as grpc rule {j} (line {}); roles add up, so merge them",
                    line(e.method.span())
                ));
            }
        }
        // Inherited roles that no rule names have no effect.
        let named: BTreeSet<&str> = p
            .rule
            .iter()
            .flat_map(|r| &r.roles)
            .chain(p.grpc.iter().flat_map(|r| &r.roles))
            .map(String::as_str)
            .collect();
        for (role, includes) in &p.inherit {
            for inc in includes {
                if !named.contains(inc.get_ref().as_str()) {
                    f.add(file, line(inc.span()), Level::Warning, format!(
                        "`{role}` inherits `{}`, which no rule names: the inheritance grants nothing",
                        inc.get_ref()
                    ));
                }
            }
        }
        let _ = &p.url_prefix;
    }
    if let Some(e) = library {
        let shadow = e.message().contains("can never apply");
        if !(shadow && shadow_found) {
            let (at, setting) = locate(file, text, doc.as_ref(), e.setting());
            f.add(file, at, Level::Error, format!("{setting}{}", e.message()));
        }
    }
    doc
}

/// The line of a library error's setting, and the setting as it should be shown.
fn locate(file: &str, text: &str, doc: Option<&PolicyFile>, setting: &str) -> (usize, String) {
    // TOML errors: `policy:L:C`.
    if let Some(rest) = setting.strip_prefix("policy:") {
        let line = rest
            .split(':')
            .next()
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        return (line, String::new());
    }
    let index = |prefix: &str| {
        setting
            .strip_prefix(prefix)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse::<usize>().ok())
    };
    if let Some(doc) = doc {
        if let Some(i) = index("rule ")
            && let Some(r) = doc.rule.get(i)
        {
            return (line_of(text, r.path.span().start), format!("{setting}: "));
        }
        if let Some(i) = index("grpc rule ")
            && let Some(r) = doc.grpc.get(i)
        {
            return (line_of(text, r.method.span().start), format!("{setting}: "));
        }
    }
    let _ = file;
    (0, format!("{setting}: "))
}
