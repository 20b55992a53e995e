//! `portcullis lint`: mistakes in a policy file and an access-record file, with file and
//! line.
//!
//! Errors are what the library refuses to load (syntax, bad patterns, rules shadowed by
//! public entries, roles in records that are not defined); warnings are what loads but is
//! probably not meant (duplicate rules, rules nothing can reach or that grant nothing new,
//! public prefixes that open part of a guarded route, roles never granted, token roles no
//! rule names).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use portcullis::{Policy, RecordSet};
use serde::Deserialize;
use toml::Spanned;

use crate::{EXIT_NO, Fail, Report};

const AFTER: &str = "\
Prints one line per finding, `FILE:LINE: error: ...` or `FILE:LINE: warning: ...`, then a
count. Errors: what `serve` and the library refuse to load (TOML syntax, unknown fields, bad
patterns or methods, rules a public prefix or public gRPC method fully shadows, roles used
in records but not defined). Warnings: duplicate rules, patterns no request can reach
(encoded dot segments, characters a request path never holds, more than 256 segments),
rules that grant nothing beyond an earlier rule open to any valid token, public prefixes
or methods that make part of a guarded rule public, inherited roles no rule names, roles
defined in records but never granted, token roles in records that no policy rule names.

Exit codes: 0 no errors (warnings allowed unless --deny-warnings), 1 errors found, 2 a file
cannot be read.

Examples:
  portcullis lint --policy policy.toml
  portcullis lint --policy policy.toml --records access.toml --deny-warnings";

/// Arguments of `lint`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER)]
pub(crate) struct Args {
    /// The TOML policy file
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The access-record file (TOML or JSON)
    #[arg(long, value_name = "FILE")]
    records: Option<PathBuf>,
    /// Exit 1 on warnings too
    #[arg(long)]
    deny_warnings: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Error,
    Warning,
}

/// One finding.
struct Finding {
    file: String,
    line: usize,
    level: Level,
    message: String,
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, file: &str, line: usize, level: Level, message: impl Into<String>) {
        self.0.push(Finding {
            file: file.to_owned(),
            line,
            level,
            message: message.into(),
        });
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .unwrap_or(text)
        .matches('\n')
        .count()
        + 1
}

// ---- the policy file, with positions ---------------------------------------------------

#[derive(Deserialize, Default)]
struct PolicyFile {
    #[serde(default)]
    public: Vec<Spanned<String>>,
    #[serde(default)]
    url_prefix: Option<Spanned<String>>,
    #[serde(default)]
    inherit: BTreeMap<String, Vec<Spanned<String>>>,
    #[serde(default)]
    rule: Vec<HttpRule>,
    #[serde(default)]
    public_grpc: Vec<Spanned<String>>,
    #[serde(default)]
    grpc: Vec<GrpcRule>,
}

#[derive(Deserialize)]
struct HttpRule {
    roles: Vec<String>,
    #[serde(default)]
    methods: Option<Vec<String>>,
    path: Spanned<String>,
}

#[derive(Deserialize)]
struct GrpcRule {
    roles: Vec<String>,
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

fn lint_policy(file: &str, text: &str, f: &mut Findings) -> Option<PolicyFile> {
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

// ---- the access-record file -------------------------------------------------------------

#[derive(Deserialize)]
struct RecordsFile {
    #[serde(default)]
    roles: BTreeMap<String, toml::Value>,
    #[serde(default)]
    records: Vec<RecordEntry>,
}

#[derive(Deserialize)]
struct RecordEntry {
    #[serde(default)]
    statements: Vec<StatementEntry>,
}

#[derive(Deserialize)]
struct StatementEntry {
    #[serde(default)]
    roles: Vec<Spanned<String>>,
    #[serde(default)]
    token_roles: Vec<Spanned<String>>,
}

/// A name and the line it is on.
struct Named {
    name: String,
    line: usize,
}

/// (defined roles, statement roles, token roles), each with lines.
type Uses = (Vec<Named>, Vec<Named>, Vec<Named>);

fn toml_uses(text: &str) -> Option<Uses> {
    let doc: RecordsFile = toml::from_str(text).ok()?;
    let defined = doc
        .roles
        .keys()
        .map(|k| Named {
            name: k.clone(),
            line: find_line(text, &format!("\n{k}"), 0)
                .or_else(|| find_line(text, k, 0))
                .unwrap_or(0),
        })
        .collect();
    let mut used = Vec::new();
    let mut token = Vec::new();
    for r in &doc.records {
        for s in &r.statements {
            used.extend(s.roles.iter().map(|x| Named {
                name: x.get_ref().clone(),
                line: line_of(text, x.span().start),
            }));
            token.extend(s.token_roles.iter().map(|x| Named {
                name: x.get_ref().clone(),
                line: line_of(text, x.span().start),
            }));
        }
    }
    Some((defined, used, token))
}

/// The line of the first `needle` at or after `from`.
fn find_line(text: &str, needle: &str, from: usize) -> Option<usize> {
    text.get(from..)?
        .find(needle)
        .map(|i| line_of(text, from + i + needle.len().min(1)))
}

/// JSON has no positions in serde: lines are found by searching for the quoted names, in
/// the order they appear.
fn json_uses(text: &str) -> Option<Uses> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let quoted = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let mut cursor = 0;
    let mut next_line = |s: &str| {
        let q = quoted(s);
        match text.get(cursor..).and_then(|t| t.find(&q)) {
            Some(i) => {
                cursor += i + q.len();
                line_of(text, cursor)
            }
            None => find_line(text, &q, 0).unwrap_or(0),
        }
    };
    let defined = v["roles"]
        .as_object()
        .map(|m| {
            m.keys()
                .map(|k| Named {
                    name: k.clone(),
                    line: next_line(k),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut used = Vec::new();
    let mut token = Vec::new();
    for r in v["records"].as_array().into_iter().flatten() {
        for s in r["statements"].as_array().into_iter().flatten() {
            for x in s["roles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str())
            {
                used.push(Named {
                    name: x.to_owned(),
                    line: next_line(x),
                });
            }
            for x in s["token_roles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str())
            {
                token.push(Named {
                    name: x.to_owned(),
                    line: next_line(x),
                });
            }
        }
    }
    Some((defined, used, token))
}

fn lint_records(
    file: &str,
    path: &Path,
    text: &str,
    policy: Option<&PolicyFile>,
    f: &mut Findings,
) {
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let uses = if json {
        json_uses(text)
    } else {
        toml_uses(text)
    };
    let library = RecordSet::from_file(path).err();
    let mut unknown_found = false;
    if let Some((defined, used, token)) = &uses {
        let defined_names: BTreeSet<&str> = defined.iter().map(|d| d.name.as_str()).collect();
        let used_names: BTreeSet<&str> = used.iter().map(|d| d.name.as_str()).collect();
        for u in used {
            if !defined_names.contains(u.name.as_str()) {
                unknown_found = true;
                f.add(file, u.line, Level::Error, format!(
                    "unknown role `{}`: a statement gives it, but it is not defined under `roles`",
                    u.name
                ));
            }
        }
        for d in defined {
            if !used_names.contains(d.name.as_str()) {
                f.add(
                    file,
                    d.line,
                    Level::Warning,
                    format!("role `{}` is never granted: no statement gives it", d.name),
                );
            }
        }
        if let Some(p) = policy {
            let named: BTreeSet<&str> = p
                .rule
                .iter()
                .flat_map(|r| &r.roles)
                .chain(p.grpc.iter().flat_map(|r| &r.roles))
                .map(String::as_str)
                .chain(p.inherit.keys().map(String::as_str))
                .chain(p.inherit.values().flatten().map(|s| s.get_ref().as_str()))
                .collect();
            for t in token {
                if !named.contains(t.name.as_str()) {
                    f.add(file, t.line, Level::Warning, format!(
                        "token role `{}` is named by no policy rule: no token the policy lets through is likely to carry it",
                        t.name
                    ));
                }
            }
        }
    }
    if let Some(e) = library {
        let unknown = e.message().contains("is not defined under `roles`");
        if !(unknown && unknown_found) {
            // `file:L:C: field`: keep the line, show the field and the message.
            let setting = e.setting();
            let rest = setting.strip_prefix(file).unwrap_or(setting);
            let mut parts = rest.trim_start_matches(':').splitn(3, ':');
            let line = parts.next().and_then(|l| l.trim().parse().ok());
            let field = match line {
                Some(_) => parts.nth(1).map(str::trim).unwrap_or(""),
                None => rest.trim_start_matches(':').trim(),
            };
            let field = if field.is_empty() {
                String::new()
            } else {
                format!("{field}: ")
            };
            f.add(
                file,
                line.unwrap_or(0),
                Level::Error,
                format!("{field}{}", e.message()),
            );
        }
    }
}

pub(crate) fn run(args: Args) -> Result<Report, Fail> {
    let read = |flag: &str, p: &PathBuf| {
        std::fs::read_to_string(p)
            .map_err(|e| Fail::usage(format!("{flag}: cannot read `{}`: {e}", p.display())))
    };
    let policy_text = read("--policy", &args.policy)?;
    let records_text = args
        .records
        .as_ref()
        .map(|p| read("--records", p))
        .transpose()?;
    let mut f = Findings::default();
    let policy_name = args.policy.display().to_string();
    let doc = lint_policy(&policy_name, &policy_text, &mut f);
    if let (Some(path), Some(text)) = (&args.records, &records_text) {
        lint_records(
            &path.display().to_string(),
            path,
            text,
            doc.as_ref(),
            &mut f,
        );
    }
    f.0.sort_by(|a, b| (&a.file, a.line, a.level).cmp(&(&b.file, b.line, b.level)));
    let mut out = String::new();
    let (mut errors, mut warnings) = (0, 0);
    for x in &f.0 {
        let word = match x.level {
            Level::Error => {
                errors += 1;
                "error"
            }
            Level::Warning => {
                warnings += 1;
                "warning"
            }
        };
        if x.line > 0 {
            out.push_str(&format!("{}:{}: {word}: {}\n", x.file, x.line, x.message));
        } else {
            out.push_str(&format!("{}: {word}: {}\n", x.file, x.message));
        }
    }
    out.push_str(&format!("{errors} error(s), {warnings} warning(s)\n"));
    let failed = errors > 0 || (args.deny_warnings && warnings > 0);
    Ok(Report {
        stdout: out,
        code: if failed { EXIT_NO } else { 0 },
    })
}
