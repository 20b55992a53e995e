//! The TOML policy file.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::{PolicyBuilder, Unmatched};
use crate::error::{ConfigError, ConfigErrorKind};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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

/// Parses policy TOML into a builder. `origin` names the file in errors.
pub(super) fn parse(text: &str, origin: &str) -> Result<PolicyBuilder, ConfigError> {
    let file: File = toml::from_str(text).map_err(|e| {
        let (line, col) = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                (
                    before.matches('\n').count() + 1,
                    before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
                )
            })
            .unwrap_or((0, 0));
        ConfigError::at(
            ConfigErrorKind::Policy,
            format!("{origin}:{line}:{col}"),
            "",
            e.message(),
        )
    })?;
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
    Ok(b)
}
