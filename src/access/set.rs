//! The record set: its builder, and the checks that compile what it was given into the
//! index (`index.rs`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use super::index::{Compiled, Index, Memberships, RoleData, StatementData, index_into};
use super::pattern::{Action, Resource};
use super::records::{Record, UserId};
use crate::error::{ConfigError, ConfigErrorKind};

/// Builds a [`RecordSet`]: roles (id to permissions), groups (id to users) and records.
#[derive(Debug, Clone, Default)]
pub struct RecordSetBuilder {
    roles: Vec<(String, Vec<String>)>,
    groups: Vec<(String, Vec<UserId>)>,
    records: Vec<Record>,
    issuer: Option<String>,
}

impl RecordSetBuilder {
    /// Defines a role and the permissions it holds (`documents:read`, `documents:*`,
    /// `documents`, `*`). Permissions compare case-insensitively.
    pub fn role<I, S>(mut self, id: impl Into<String>, permissions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles
            .push((id.into(), permissions.into_iter().map(Into::into).collect()));
        self
    }

    /// Defines a group and its members (user ids: strings, or [`UserId`]s that name their
    /// issuer).
    pub fn group<I, S>(mut self, id: impl Into<String>, users: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<UserId>,
    {
        self.groups
            .push((id.into(), users.into_iter().map(Into::into).collect()));
        self
    }

    /// The one issuer the set is for: bare user ids (a `sub` alone) match only tokens of
    /// this `iss` (`""`: tokens without `iss`), and user ids the application names itself
    /// ([`Subject::user`](crate::Subject::user) without an issuer). Needed when the authenticator accepts several issuers and users are not
    /// named as [`UserId::of`]; see [`Authorizer::issuers_of`](crate::Authorizer::issuers_of).
    /// Default: none (bare user ids match the one issuer the authenticator accepts).
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuer = Some(iss.into());
        self
    }

    /// Adds an access record.
    pub fn record(mut self, record: Record) -> Self {
        self.records.push(record);
        self
    }

    /// Checks and indexes everything. Errors name the setting as a path, such as
    /// `records[2].statements[0].resources[1]`, and say what is wrong.
    pub fn build(self) -> Result<RecordSet, ConfigError> {
        Compiled::build(self).map(|inner| RecordSet {
            inner: Arc::new(inner),
        })
    }
}

/// A checked, indexed set of roles, groups and access records. Immutable; cheap to clone
/// (one `Arc`). Swap a new one into a [`MemoryStore`](crate::MemoryStore) to reload.
#[derive(Clone)]
pub struct RecordSet {
    pub(super) inner: Arc<Compiled>,
}

impl RecordSet {
    /// Starts an empty builder.
    pub fn builder() -> RecordSetBuilder {
        RecordSetBuilder::default()
    }

    /// A set with nothing in it: every request is denied.
    pub fn empty() -> Self {
        Self::builder()
            .build()
            .unwrap_or_else(|_| unreachable!("an empty record set is valid"))
    }

    /// How many records the set holds.
    pub fn record_count(&self) -> usize {
        self.inner.records.len()
    }

    /// How many statements the set holds.
    pub fn statement_count(&self) -> usize {
        self.inner.statements.len()
    }

    /// The one issuer the set is for ([`RecordSetBuilder::issuer`]), if named.
    pub fn issuer(&self) -> Option<&str> {
        self.inner.issuer.as_deref()
    }

    /// The first bare user id (one that names no issuer), with where it stands, when the
    /// set names no issuer of its own: what cannot be told apart between issuers.
    pub(crate) fn unqualified_user(&self) -> Option<&(String, String)> {
        match self.inner.issuer {
            Some(_) => None,
            None => self.inner.first_bare_user.as_ref(),
        }
    }
}

impl fmt::Debug for RecordSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordSet")
            .field("roles", &self.inner.roles.len())
            .field("groups", &self.inner.group_count)
            .field("records", &self.inner.records.len())
            .field("statements", &self.inner.statements.len())
            .finish()
    }
}

/// An issuer as named in records: any text without control characters; `""` names the
/// tokens that carry no `iss`.
fn check_issuer(iss: &str, setting: impl FnOnce() -> String) -> Result<(), ConfigError> {
    if iss.chars().any(char::is_control) {
        return Err(ConfigError::new(
            ConfigErrorKind::Records,
            setting(),
            "an issuer must not hold control characters",
        ));
    }
    Ok(())
}

fn check_id(kind: &str, id: &str, setting: impl FnOnce() -> String) -> Result<(), ConfigError> {
    if id.is_empty() {
        return Err(ConfigError::new(
            ConfigErrorKind::Records,
            setting(),
            format!("a {kind} must not be empty"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(ConfigError::new(
            ConfigErrorKind::Records,
            setting(),
            format!("a {kind} must not hold control characters"),
        ));
    }
    Ok(())
}

impl Compiled {
    fn build(b: RecordSetBuilder) -> Result<Self, ConfigError> {
        let mut role_ix: HashMap<&str, u32> = HashMap::new();
        let mut roles = Vec::with_capacity(b.roles.len());
        for (id, perms) in &b.roles {
            check_id("role id", id, || "roles".to_owned())?;
            if role_ix.insert(id, roles.len() as u32).is_some() {
                return Err(ConfigError::new(
                    ConfigErrorKind::Records,
                    format!("roles.{id}"),
                    format!("role `{id}` is defined twice"),
                ));
            }
            let permissions = perms
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    Action::parse(p).map_err(|m| {
                        ConfigError::new(ConfigErrorKind::Records, format!("roles.{id}[{i}]"), m)
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            roles.push(RoleData {
                id: id.as_str().into(),
                permissions,
            });
        }

        if let Some(iss) = &b.issuer {
            check_issuer(iss, || "issuer".to_owned())?;
        }
        let mut first_bare_user = None;
        let mut member_of: HashMap<Box<str>, Vec<Box<str>>> = HashMap::new();
        let mut issuer_member_of: HashMap<Box<str>, Memberships> = HashMap::new();
        let mut group_ids = HashSet::new();
        for (id, users) in &b.groups {
            check_id("group id", id, || "groups".to_owned())?;
            if !group_ids.insert(id.as_str()) {
                return Err(ConfigError::new(
                    ConfigErrorKind::Records,
                    format!("groups.{id}"),
                    format!("group `{id}` is defined twice"),
                ));
            }
            for (i, user) in users.iter().enumerate() {
                let at = || format!("groups.{id}[{i}]");
                check_id("user id", &user.subject, at)?;
                let map = match &user.issuer {
                    Some(iss) => {
                        check_issuer(iss, at)?;
                        issuer_member_of.entry(iss.as_str().into()).or_default()
                    }
                    None => {
                        first_bare_user.get_or_insert_with(|| (at(), user.subject.clone()));
                        &mut member_of
                    }
                };
                let groups = map.entry(user.subject.as_str().into()).or_default();
                if !groups.iter().any(|g| **g == **id) {
                    groups.push(id.as_str().into());
                }
            }
        }

        let mut records = Vec::with_capacity(b.records.len());
        let mut record_ids = HashSet::new();
        let mut statements = Vec::new();
        let mut by_user: HashMap<Box<str>, Index> = HashMap::new();
        let mut by_issuer_user: HashMap<Box<str>, HashMap<Box<str>, Index>> = HashMap::new();
        let mut by_group: HashMap<Box<str>, Index> = HashMap::new();
        let mut by_token_role: HashMap<Box<str>, Index> = HashMap::new();
        for (ri, record) in b.records.iter().enumerate() {
            let at = |rest: &str| format!("records[{ri}]{rest}");
            check_id("record id", &record.id, || at(".id"))?;
            if !record_ids.insert(record.id.as_str()) {
                return Err(ConfigError::new(
                    ConfigErrorKind::Records,
                    at(".id"),
                    format!("record id `{}` is used twice", record.id),
                ));
            }
            records.push(Arc::<str>::from(record.id.as_str()));
            for (si, st) in record.statements.iter().enumerate() {
                let at = |rest: &str| at(&format!(".statements[{si}]{rest}"));
                if st.roles.is_empty() {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Records,
                        at(".roles"),
                        "a statement needs a role",
                    ));
                }
                if st.resources.is_empty() {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Records,
                        at(".resources"),
                        "a statement needs a resource (`*` for everything)",
                    ));
                }
                if st.users.is_empty() && st.groups.is_empty() && st.token_roles.is_empty() {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Records,
                        at(""),
                        "a statement applies to nobody: give users, groups or token_roles",
                    ));
                }
                let role_list = st
                    .roles
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        role_ix.get(r.as_str()).copied().ok_or_else(|| {
                            ConfigError::new(
                                ConfigErrorKind::Records,
                                at(&format!(".roles[{i}]")),
                                format!("role `{r}` is not defined under `roles`"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let resources = st
                    .resources
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        Resource::parse(r).map_err(|m| {
                            ConfigError::new(
                                ConfigErrorKind::Records,
                                at(&format!(".resources[{i}]")),
                                m,
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let sid = u32::try_from(statements.len()).map_err(|_| {
                    ConfigError::new(
                        ConfigErrorKind::Records,
                        at(""),
                        "more than 4,294,967,295 statements",
                    )
                })?;
                let mut seen = HashSet::new();
                for (i, user) in st.users.iter().enumerate() {
                    let at = || at(&format!(".users[{i}]"));
                    check_id("subject", &user.subject, at)?;
                    if !seen.insert(user) {
                        continue;
                    }
                    let map = match &user.issuer {
                        Some(iss) => {
                            check_issuer(iss, at)?;
                            by_issuer_user.entry(iss.as_str().into()).or_default()
                        }
                        None => {
                            first_bare_user.get_or_insert_with(|| (at(), user.subject.clone()));
                            &mut by_user
                        }
                    };
                    index_into(map, &user.subject, sid, &resources);
                }
                for (list, name, map) in [
                    (&st.groups, "groups", &mut by_group),
                    (&st.token_roles, "token_roles", &mut by_token_role),
                ] {
                    let mut seen = HashSet::new();
                    for (i, key) in list.iter().enumerate() {
                        check_id("subject", key, || at(&format!(".{name}[{i}]")))?;
                        if seen.insert(key.as_str()) {
                            index_into(map, key, sid, &resources);
                        }
                    }
                }
                statements.push(StatementData {
                    record: ri as u32,
                    index: si as u32,
                    roles: role_list,
                    resources,
                });
            }
        }
        Ok(Self {
            roles,
            records,
            statements,
            by_user,
            by_issuer_user,
            by_group,
            by_token_role,
            member_of,
            issuer_member_of,
            group_count: group_ids.len(),
            issuer: b.issuer.map(String::into_boxed_str),
            first_bare_user,
        })
    }
}
