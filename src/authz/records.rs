//! Access records, their builder, and the index that answers from them.
//!
//! Statements are indexed by the subject they apply to (user id, group id, token role);
//! under each subject a segment trie of resource grants finds the statements covering a
//! resource in time that depends on the resource's depth, not on how many records exist.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use super::pattern::{Action, Resource, Seg, requested_action, requested_resource};
use super::{AccessReason, Grant, Subject, Via};
use crate::error::ConfigError;

/// One access record: an id (named in decisions) and its statements.
///
/// ```
/// use portcullis::{Record, Statement};
///
/// let record = Record::new("documents-team")
///     .statement(Statement::new().roles(["reader"]).resources(["/documents/*"]).groups(["staff"]));
/// assert_eq!(record.id(), "documents-team");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    id: String,
    statements: Vec<Statement>,
}

impl Record {
    /// A record with this id and no statements yet.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            statements: Vec::new(),
        }
    }

    /// Adds a statement. Statements are independent: a role of one statement never
    /// reaches the resources of another.
    pub fn statement(mut self, statement: Statement) -> Self {
        self.statements.push(statement);
        self
    }

    /// The record's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A statement: these roles, on these resources, for these users, groups and token
/// roles. Each setter adds to what is there.
///
/// - `roles`: ids of roles defined in the record set (each holds permissions).
/// - `resources`: resource grants: `/documents` covers `/documents` and everything below
///   it, `*` as a segment matches any one segment, and `*` alone covers everything.
/// - `users`: user ids (a principal's `sub`); `groups`: group ids, from the record set's
///   groups or the token's groups claim; `token_roles`: roles from the token's role claim.
///   A statement applies to a subject that matches any of them; at least one is needed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statement {
    roles: Vec<String>,
    resources: Vec<String>,
    users: Vec<String>,
    groups: Vec<String>,
    token_roles: Vec<String>,
}

fn extend<I, S>(v: &mut Vec<String>, items: I)
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    v.extend(items.into_iter().map(Into::into));
}

impl Statement {
    /// An empty statement.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds role ids.
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        extend(&mut self.roles, roles);
        self
    }

    /// Adds resource grants.
    pub fn resources<I: IntoIterator<Item = S>, S: Into<String>>(mut self, resources: I) -> Self {
        extend(&mut self.resources, resources);
        self
    }

    /// Adds user ids.
    pub fn users<I: IntoIterator<Item = S>, S: Into<String>>(mut self, users: I) -> Self {
        extend(&mut self.users, users);
        self
    }

    /// Adds group ids.
    pub fn groups<I: IntoIterator<Item = S>, S: Into<String>>(mut self, groups: I) -> Self {
        extend(&mut self.groups, groups);
        self
    }

    /// Adds token roles (values of the token's role claim).
    pub fn token_roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        extend(&mut self.token_roles, roles);
        self
    }
}

/// Builds a [`RecordSet`]: roles (id to permissions), groups (id to users) and records.
#[derive(Debug, Clone, Default)]
pub struct RecordSetBuilder {
    roles: Vec<(String, Vec<String>)>,
    groups: Vec<(String, Vec<String>)>,
    records: Vec<Record>,
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

    /// Defines a group and its members (user ids).
    pub fn group<I, S>(mut self, id: impl Into<String>, users: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups
            .push((id.into(), users.into_iter().map(Into::into).collect()));
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

struct RoleData {
    id: Arc<str>,
    permissions: Vec<Action>,
}

struct StatementData {
    record: u32,
    index: u32,
    roles: Vec<u32>,
    resources: Vec<Resource>,
}

/// The statements that apply to one user, group or token role.
struct Index {
    key: Arc<str>,
    statements: Vec<u32>,
    trie: Node,
}

/// A segment trie of resource grants; `here` holds (statement, resource) pairs whose
/// grant ends at this node, and so covers everything below it.
#[derive(Default)]
struct Node {
    here: Vec<(u32, u32)>,
    lit: HashMap<Box<str>, Node>,
    any: Option<Box<Node>>,
}

impl Node {
    fn insert(&mut self, segs: &[Seg], entry: (u32, u32)) {
        match segs.split_first() {
            None => self.here.push(entry),
            Some((Seg::Lit(l), rest)) => self.lit.entry(l.clone()).or_default().insert(rest, entry),
            Some((Seg::Any, rest)) => self.any.get_or_insert_default().insert(rest, entry),
        }
    }

    /// Calls `f` for every grant covering `path`, broadest first. Each node is visited at
    /// most once, so the cost is bounded by the path's depth and the trie's size.
    fn walk<B>(
        &self,
        path: &[&str],
        f: &mut impl FnMut(u32, u32) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        for &(s, r) in &self.here {
            f(s, r)?;
        }
        if let Some((first, rest)) = path.split_first() {
            if let Some(n) = self.lit.get(*first) {
                n.walk(rest, f)?;
            }
            if let Some(n) = &self.any {
                n.walk(rest, f)?;
            }
        }
        ControlFlow::Continue(())
    }
}

pub(super) struct Compiled {
    roles: Vec<RoleData>,
    records: Vec<Arc<str>>,
    statements: Vec<StatementData>,
    by_user: HashMap<Box<str>, Index>,
    by_group: HashMap<Box<str>, Index>,
    by_token_role: HashMap<Box<str>, Index>,
    member_of: HashMap<Box<str>, Vec<Box<str>>>,
    group_count: usize,
}

fn check_id(kind: &str, id: &str, setting: impl FnOnce() -> String) -> Result<(), ConfigError> {
    if id.is_empty() {
        return Err(ConfigError::new(
            setting(),
            format!("a {kind} must not be empty"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(ConfigError::new(
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
                    format!("roles.{id}"),
                    format!("role `{id}` is defined twice"),
                ));
            }
            let permissions = perms
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    Action::parse(p).map_err(|m| ConfigError::new(format!("roles.{id}[{i}]"), m))
                })
                .collect::<Result<Vec<_>, _>>()?;
            roles.push(RoleData {
                id: id.as_str().into(),
                permissions,
            });
        }

        let mut member_of: HashMap<Box<str>, Vec<Box<str>>> = HashMap::new();
        let mut group_ids = HashSet::new();
        for (id, users) in &b.groups {
            check_id("group id", id, || "groups".to_owned())?;
            if !group_ids.insert(id.as_str()) {
                return Err(ConfigError::new(
                    format!("groups.{id}"),
                    format!("group `{id}` is defined twice"),
                ));
            }
            for (i, user) in users.iter().enumerate() {
                check_id("user id", user, || format!("groups.{id}[{i}]"))?;
                let groups = member_of.entry(user.as_str().into()).or_default();
                if !groups.iter().any(|g| **g == **id) {
                    groups.push(id.as_str().into());
                }
            }
        }

        let mut records = Vec::with_capacity(b.records.len());
        let mut record_ids = HashSet::new();
        let mut statements = Vec::new();
        let mut by_user: HashMap<Box<str>, Index> = HashMap::new();
        let mut by_group: HashMap<Box<str>, Index> = HashMap::new();
        let mut by_token_role: HashMap<Box<str>, Index> = HashMap::new();
        for (ri, record) in b.records.iter().enumerate() {
            let at = |rest: &str| format!("records[{ri}]{rest}");
            check_id("record id", &record.id, || at(".id"))?;
            if !record_ids.insert(record.id.as_str()) {
                return Err(ConfigError::new(
                    at(".id"),
                    format!("record id `{}` is used twice", record.id),
                ));
            }
            records.push(Arc::<str>::from(record.id.as_str()));
            for (si, st) in record.statements.iter().enumerate() {
                let at = |rest: &str| at(&format!(".statements[{si}]{rest}"));
                if st.roles.is_empty() {
                    return Err(ConfigError::new(at(".roles"), "a statement needs a role"));
                }
                if st.resources.is_empty() {
                    return Err(ConfigError::new(
                        at(".resources"),
                        "a statement needs a resource (`*` for everything)",
                    ));
                }
                if st.users.is_empty() && st.groups.is_empty() && st.token_roles.is_empty() {
                    return Err(ConfigError::new(
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
                        Resource::parse(r)
                            .map_err(|m| ConfigError::new(at(&format!(".resources[{i}]")), m))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let sid = u32::try_from(statements.len())
                    .map_err(|_| ConfigError::new(at(""), "more than 4,294,967,295 statements"))?;
                for (list, name, map) in [
                    (&st.users, "users", &mut by_user),
                    (&st.groups, "groups", &mut by_group),
                    (&st.token_roles, "token_roles", &mut by_token_role),
                ] {
                    let mut seen = HashSet::new();
                    for (i, key) in list.iter().enumerate() {
                        check_id("subject", key, || at(&format!(".{name}[{i}]")))?;
                        if !seen.insert(key.as_str()) {
                            continue;
                        }
                        let index = map.entry(key.as_str().into()).or_insert_with(|| Index {
                            key: key.as_str().into(),
                            statements: Vec::new(),
                            trie: Node::default(),
                        });
                        index.statements.push(sid);
                        for (rix, res) in resources.iter().enumerate() {
                            index.trie.insert(res.segs(), (sid, rix as u32));
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
            by_group,
            by_token_role,
            member_of,
            group_count: group_ids.len(),
        })
    }

    /// Calls `f` with every index that applies to the subject: its user id, its groups
    /// (from the subject and from the record set's memberships), its token roles.
    fn for_each_index<B>(
        &self,
        subject: &Subject<'_>,
        mut f: impl FnMut(Via, &Index) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        if let Some(user) = subject.user {
            if let Some(ix) = self.by_user.get(user) {
                f(Via::User, ix)?;
            }
            for g in self.member_of.get(user).into_iter().flatten() {
                if let Some(ix) = self.by_group.get(g) {
                    f(Via::Group, ix)?;
                }
            }
        }
        for g in &subject.groups {
            if let Some(ix) = self.by_group.get(*g) {
                f(Via::Group, ix)?;
            }
        }
        for r in &subject.roles {
            if let Some(ix) = self.by_token_role.get(*r) {
                f(Via::TokenRole, ix)?;
            }
        }
        ControlFlow::Continue(())
    }

    pub(super) fn authorize(
        &self,
        subject: &Subject<'_>,
        resource: &str,
        permission: &str,
    ) -> AccessReason {
        let Some(path) = requested_resource(resource) else {
            return AccessReason::InvalidResource;
        };
        let Some(perm) = requested_action(permission) else {
            return AccessReason::InvalidPermission;
        };
        let mut applies = false;
        let mut covered = false;
        let found = self.for_each_index(subject, |via, ix| {
            applies = true;
            ix.trie.walk(&path, &mut |s, r| {
                covered = true;
                let st = &self.statements[s as usize];
                for &role in &st.roles {
                    let role = &self.roles[role as usize];
                    if let Some(p) = role.permissions.iter().find(|p| p.covers(&perm)) {
                        return ControlFlow::Break(Grant {
                            record: self.records[st.record as usize].clone(),
                            statement: st.index as usize,
                            role: role.id.clone(),
                            permission: p.text().clone(),
                            resource: st.resources[r as usize].text().clone(),
                            via,
                            via_id: ix.key.clone(),
                        });
                    }
                }
                ControlFlow::Continue(())
            })
        });
        match found {
            ControlFlow::Break(grant) => AccessReason::Granted(grant),
            ControlFlow::Continue(()) if covered => {
                let mut roles = BTreeSet::new();
                self.walk_covering(subject, &path, |st| {
                    roles.extend(st.roles.iter().map(|&r| &*self.roles[r as usize].id));
                });
                AccessReason::NoPermission {
                    roles: roles.into_iter().map(str::to_owned).collect(),
                }
            }
            ControlFlow::Continue(()) if applies => AccessReason::NoResource,
            ControlFlow::Continue(()) => AccessReason::NoStatement,
        }
    }

    /// Calls `f` with every statement of the subject that covers `path`.
    fn walk_covering(
        &self,
        subject: &Subject<'_>,
        path: &[&str],
        mut f: impl FnMut(&StatementData),
    ) {
        let _ = self.for_each_index::<()>(subject, |_, ix| {
            ix.trie.walk::<()>(path, &mut |s, _| {
                f(&self.statements[s as usize]);
                ControlFlow::Continue(())
            })
        });
    }

    /// The permissions the subject holds on `resource`, lowercased, sorted, each once.
    pub(super) fn permissions(&self, subject: &Subject<'_>, resource: &str) -> Vec<String> {
        let Some(path) = requested_resource(resource) else {
            return Vec::new();
        };
        let mut out = BTreeSet::new();
        self.walk_covering(subject, &path, |st| {
            for &r in &st.roles {
                out.extend(
                    self.roles[r as usize]
                        .permissions
                        .iter()
                        .map(|p| &**p.text()),
                );
            }
        });
        out.into_iter().map(str::to_owned).collect()
    }

    /// The resource grants through which the subject holds `permission`, sorted, each once.
    pub(super) fn resources(&self, subject: &Subject<'_>, permission: &str) -> Vec<String> {
        let Some(perm) = requested_action(permission) else {
            return Vec::new();
        };
        let mut out = BTreeSet::new();
        let _ = self.for_each_index::<()>(subject, |_, ix| {
            for &s in &ix.statements {
                let st = &self.statements[s as usize];
                let holds = st.roles.iter().any(|&r| {
                    self.roles[r as usize]
                        .permissions
                        .iter()
                        .any(|p| p.covers(&perm))
                });
                if holds {
                    out.extend(st.resources.iter().map(|r| &**r.text()));
                }
            }
            ControlFlow::Continue(())
        });
        out.into_iter().map(str::to_owned).collect()
    }

    /// Everything the subject holds: one grant per statement, role, permission and resource
    /// that applies to it, and its effective groups (the record set's memberships plus
    /// the token's groups), each sorted.
    pub(super) fn list(&self, subject: &Subject<'_>) -> (Vec<Grant>, Vec<String>) {
        let mut grants = Vec::new();
        let _ = self.for_each_index::<()>(subject, |via, ix| {
            for &s in &ix.statements {
                let st = &self.statements[s as usize];
                for &role in &st.roles {
                    let role = &self.roles[role as usize];
                    for p in &role.permissions {
                        for r in &st.resources {
                            grants.push(Grant {
                                record: self.records[st.record as usize].clone(),
                                statement: st.index as usize,
                                role: role.id.clone(),
                                permission: p.text().clone(),
                                resource: r.text().clone(),
                                via,
                                via_id: ix.key.clone(),
                            });
                        }
                    }
                }
            }
            ControlFlow::Continue(())
        });
        grants.sort_by(|a, b| {
            (
                &a.resource,
                &a.permission,
                &a.record,
                a.statement,
                &a.role,
                &a.via_id,
            )
                .cmp(&(
                    &b.resource,
                    &b.permission,
                    &b.record,
                    b.statement,
                    &b.role,
                    &b.via_id,
                ))
        });
        grants.dedup();
        let mut groups = BTreeSet::new();
        if let Some(user) = subject.user {
            groups.extend(self.member_of.get(user).into_iter().flatten().map(|g| &**g));
        }
        groups.extend(subject.groups.iter().copied());
        (grants, groups.into_iter().map(str::to_owned).collect())
    }
}
