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
    #[serde(default)]
    ais_cluster: Option<String>,
    #[serde(default)]
    ais: Vec<AisRule>,
}

/// An AIStore rule (feature `aistore`): `access` holds AIStore's names (`ro`, `GET`...).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(feature = "aistore"), allow(dead_code))]
struct AisRule {
    #[serde(default)]
    methods: Option<Vec<String>>,
    path: String,
    access: Vec<String>,
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
    #[cfg(feature = "aistore")]
    {
        if let Some(id) = file.ais_cluster {
            b = b.ais_cluster(id);
        }
        for (i, rule) in file.ais.into_iter().enumerate() {
            let methods = rule.methods.map_or_else(|| "*".to_owned(), |m| m.join(","));
            let access = rule
                .access
                .join(",")
                .parse::<crate::aistore::Access>()
                .map_err(|e| {
                    ConfigError::at(
                        ConfigErrorKind::Policy,
                        origin,
                        &format!("ais[{i}].access"),
                        e.to_string(),
                    )
                })?;
            b = b.allow_ais(&methods, &rule.path, access);
        }
    }
    #[cfg(not(feature = "aistore"))]
    if !file.ais.is_empty() || file.ais_cluster.is_some() {
        return Err(ConfigError::at(
            ConfigErrorKind::Policy,
            origin,
            "ais",
            "AIStore rules need the `aistore` feature of portcullis",
        ));
    }
    Ok(b)
}
