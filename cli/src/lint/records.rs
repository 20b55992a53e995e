//! The access-record file: unknown roles, roles never granted, token roles no rule names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use portcullis::RecordSet;
use serde::Deserialize;
use toml::Spanned;

use super::policy::PolicyFile;
use super::{Findings, Level, line_of};

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

pub(crate) fn lint_records(
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
