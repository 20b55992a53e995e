//! The TOML policy file.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::{PolicyBuilder, Unmatched};
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
    for rule in file.grpc {
        b = b.allow_grpc(&rule.method, rule.roles);
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
    for rule in file.rule {
        let methods = rule.methods.map_or_else(|| "*".to_owned(), |m| m.join(","));
        b = b.allow(&methods, &rule.path, rule.roles);
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

/// A builder from a TOML policy file, for the environment configuration.
pub(crate) fn builder_from_file(path: &str) -> Result<PolicyBuilder, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            ConfigErrorKind::Policy,
            "PORTCULLIS_POLICY_FILE",
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
