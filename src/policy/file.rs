//! The TOML policy file.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::{Condition, PolicyBuilder, Unmatched};
use crate::error::{ConfigError, ConfigErrorKind};

/// The core's keys; the integrations' sections land in `sections`.
const KEYS: &[&str] = &[
    "unmatched",
    "public",
    "url_prefix",
    "required_claims",
    "inherit",
    "rule",
    "unmatched_grpc",
    "public_grpc",
    "grpc_user_agent",
    "grpc",
];

/// A policy-file section an integration reads: its top-level keys, and how it adds what
/// they say to the builder.
pub(crate) struct FileSection {
    pub(crate) keys: &'static [&'static str],
    pub(crate) read: ReadSection,
}

/// Adds what a section's keys say (those present, by name) to the builder; errors name
/// the origin (the third argument).
pub(crate) type ReadSection =
    fn(PolicyBuilder, BTreeMap<String, toml::Value>, &str) -> Result<PolicyBuilder, ConfigError>;

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    unmatched: Option<String>,
    #[serde(default)]
    public: Vec<String>,
    #[serde(default)]
    url_prefix: Option<String>,
    #[serde(default)]
    required_claims: BTreeMap<String, String>,
    #[serde(default)]
    inherit: HashMap<String, Vec<String>>,
    #[serde(default)]
    rule: Vec<FileRule>,
    #[serde(default)]
    unmatched_grpc: Option<String>,
    #[serde(default)]
    public_grpc: Vec<String>,
    #[serde(default)]
    grpc_user_agent: Vec<UserAgent>,
    #[serde(default)]
    grpc: Vec<GrpcRule>,
    /// Every other key: an integration's section, or a mistake.
    #[serde(flatten)]
    sections: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserAgent {
    agent: String,
    methods: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrpcRule {
    roles: Vec<String>,
    method: String,
    #[serde(default)]
    when: Vec<FileCondition>,
    #[serde(default)]
    shadow: bool,
}

/// One condition of a rule: `{ claim = "tenant", equals_param = "tenant" }`, with
/// `equals` (a literal) or `equals_header` (a header name) instead.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCondition {
    claim: String,
    #[serde(default)]
    equals: Option<String>,
    #[serde(default)]
    equals_param: Option<String>,
    #[serde(default)]
    equals_header: Option<String>,
}

/// The conditions of a rule; `field` is the rule's place (`rule[2]`) for errors.
fn conditions(
    when: Vec<FileCondition>,
    origin: &str,
    field: &str,
) -> Result<Vec<Condition>, ConfigError> {
    when.into_iter()
        .enumerate()
        .map(|(i, c)| match (c.equals, c.equals_param, c.equals_header) {
            (Some(v), None, None) => Ok(Condition::claim_equals(c.claim, v)),
            (None, Some(p), None) => Ok(Condition::claim_equals_param(c.claim, p)),
            (None, None, Some(h)) => Ok(Condition::claim_equals_header(c.claim, h)),
            _ => Err(ConfigError::at(
                ConfigErrorKind::Policy,
                origin,
                &format!("{field}.when[{i}]"),
                "give exactly one of `equals`, `equals_param` and `equals_header` beside `claim`",
            )),
        })
        .collect()
}

fn unmatched(value: Option<&str>, origin: &str, key: &str) -> Result<Unmatched, ConfigError> {
    match value {
        None | Some("deny") => Ok(Unmatched::Deny),
        Some("authenticated") => Ok(Unmatched::Authenticated),
        Some(other) => Err(ConfigError::at(
            ConfigErrorKind::Policy,
            origin,
            key,
            format!("`{other}` is not `deny` or `authenticated`"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    roles: Vec<String>,
    #[serde(default)]
    methods: Option<Vec<String>>,
    path: String,
    #[serde(default)]
    when: Vec<FileCondition>,
    #[serde(default)]
    shadow: bool,
}

/// Line and column (from 1) of byte `at` of `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    (
        before.matches('\n').count() + 1,
        before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
    )
}

/// Where the top-level key `key` is written (`key = `, `[key]`, `[[key]]`), if found.
fn key_at(text: &str, key: &str) -> Option<usize> {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let name = trimmed.trim_start_matches('[').trim_start();
        let skipped = trimmed.len() - name.len();
        if let Some(after) = name.strip_prefix(key)
            && after.trim_start().starts_with(['=', ']', '.'])
        {
            return Some(at + indent + skipped);
        }
        at += line.len();
    }
    None
}

/// Parses policy TOML into a builder. `origin` names the file in errors; `sections` are
/// the integrations' sections.
pub(super) fn parse(
    text: &str,
    origin: &str,
    sections: &[FileSection],
) -> Result<PolicyBuilder, ConfigError> {
    let mut file: File = toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map_or((0, 0), |s| line_col(text, s.start));
        ConfigError::at(
            ConfigErrorKind::Policy,
            format!("{origin}:{line}:{col}"),
            "",
            e.message(),
        )
    })?;
    if let Some(key) = file
        .sections
        .keys()
        .find(|k| !sections.iter().any(|s| s.keys.contains(&k.as_str())))
    {
        // Worded as serde words `deny_unknown_fields`.
        let expected = KEYS
            .iter()
            .chain(sections.iter().flat_map(|s| s.keys))
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let (line, col) = key_at(text, key).map_or((0, 0), |at| line_col(text, at));
        return Err(ConfigError::at(
            ConfigErrorKind::Policy,
            format!("{origin}:{line}:{col}"),
            "",
            format!("unknown field `{key}`, expected one of {expected}"),
        ));
    }
    let mut b = PolicyBuilder::default();
    b = b
        .unmatched(unmatched(file.unmatched.as_deref(), origin, "unmatched")?)
        .unmatched_grpc(unmatched(
            file.unmatched_grpc.as_deref(),
            origin,
            "unmatched_grpc",
        )?);
    for p in file.public_grpc {
        b = b.public_grpc(p);
    }
    for a in file.grpc_user_agent {
        b = b.grpc_user_agent(a.agent, a.methods);
    }
    for (i, rule) in file.grpc.into_iter().enumerate() {
        let when = conditions(rule.when, origin, &format!("grpc[{i}]"))?;
        b = b.file_rule(None, &rule.method, rule.roles, when, rule.shadow);
    }
    for p in file.public {
        b = b.public_prefix(p);
    }
    if let Some(p) = file.url_prefix {
        b = b.url_prefix(p);
    }
    for (k, v) in file.required_claims {
        b = b.require_claim(k, v);
    }
    for (role, includes) in file.inherit {
        b = b.inherit(role, includes);
    }
    for (i, rule) in file.rule.into_iter().enumerate() {
        let methods = rule.methods.map_or_else(|| "*".to_owned(), |m| m.join(","));
        let when = conditions(rule.when, origin, &format!("rule[{i}]"))?;
        b = b.file_rule(Some(&methods), &rule.path, rule.roles, when, rule.shadow);
    }
    for section in sections {
        let values: BTreeMap<String, toml::Value> = section
            .keys
            .iter()
            .filter_map(|k| file.sections.remove_entry(*k))
            .collect();
        if !values.is_empty() {
            b = (section.read)(b, values, origin)?;
        }
    }
    Ok(b)
}

/// A builder from a TOML policy file; `setting` (the variable that named it) is named
/// when it cannot be read.
pub(crate) fn builder_from_file(path: &str, setting: &str) -> Result<PolicyBuilder, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            ConfigErrorKind::Policy,
            setting,
            format!("cannot read `{path}`: {e}"),
        )
        .with_source(e)
    })?;
    parse(&text, path, crate::POLICY_FILE_SECTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named_with_their_place() {
        let err = parse("public = []\n\n[[rulez]]\nroles = [\"a\"]\n", "p.toml", &[])
            .err()
            .unwrap();
        assert_eq!(err.setting(), "p.toml:3:3");
        assert!(
            err.to_string()
                .contains("unknown field `rulez`, expected one of `unmatched`, `public`"),
            "{err}"
        );
        // A section's keys go to the section.
        let seen = FileSection {
            keys: &["extra"],
            read: |b, values, _| {
                assert_eq!(values.len(), 1);
                Ok(b)
            },
        };
        assert!(parse("extra = 1\n", "p.toml", &[seen]).is_ok());
    }
}
