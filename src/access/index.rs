//! The compiled record set: the index that answers from it.
//!
//! Statements are indexed by the subject they apply to (user id, group id, token role);
//! under each subject a segment trie of resource grants finds the statements covering a
//! resource in time that depends on the resource's depth, not on how many records exist.

use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;

use super::pattern::{Action, Resource, Seg, requested_action, requested_resource};
use super::{AccessReason, Grant, Subject, Via};

pub(super) struct RoleData {
    pub(super) id: Arc<str>,
    pub(super) permissions: Vec<Action>,
}

pub(super) struct StatementData {
    pub(super) record: u32,
    pub(super) index: u32,
    pub(super) roles: Vec<u32>,
    pub(super) resources: Vec<Resource>,
}

/// The statements that apply to one user, group or token role.
pub(super) struct Index {
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
    pub(super) roles: Vec<RoleData>,
    pub(super) records: Vec<Arc<str>>,
    pub(super) statements: Vec<StatementData>,
    /// Statements by bare user id (`sub`).
    pub(super) by_user: HashMap<Box<str>, Index>,
    /// Statements by issuer, then `sub`.
    pub(super) by_issuer_user: HashMap<Box<str>, HashMap<Box<str>, Index>>,
    pub(super) by_group: HashMap<Box<str>, Index>,
    pub(super) by_token_role: HashMap<Box<str>, Index>,
    /// Groups by bare member id.
    pub(super) member_of: Memberships,
    /// Groups by issuer, then member `sub`.
    pub(super) issuer_member_of: HashMap<Box<str>, Memberships>,
    pub(super) group_count: usize,
    pub(super) issuer: Option<Box<str>>,
    /// The first bare user id and its setting (`records[0].statements[1].users[2]`).
    pub(super) first_bare_user: Option<(String, String)>,
}

/// Group ids by member id.
pub(super) type Memberships = HashMap<Box<str>, Vec<Box<str>>>;

/// Adds statement `sid` with its resources to the index of `key`.
pub(super) fn index_into(
    map: &mut HashMap<Box<str>, Index>,
    key: &str,
    sid: u32,
    resources: &[Resource],
) {
    let index = map.entry(key.into()).or_insert_with(|| Index {
        key: key.into(),
        statements: Vec::new(),
        trie: Node::default(),
    });
    index.statements.push(sid);
    for (rix, res) in resources.iter().enumerate() {
        index.trie.insert(res.segs(), (sid, rix as u32));
    }
}

impl Compiled {
    /// Whether bare user ids (a `sub` alone) name this subject: when the application
    /// named the user itself (no issuer), when the set's issuer is the subject's, or when
    /// the set names no issuer and the authenticator accepts only one.
    fn bare_users_apply(&self, subject: &Subject<'_>) -> bool {
        match (subject.issuer, &self.issuer) {
            (None, _) => true,
            (Some(iss), Some(own)) => **own == *iss,
            (Some(_), None) => !subject.several_issuers,
        }
    }

    /// The record set's groups the subject's user is a member of.
    fn memberships<'s>(&'s self, subject: &Subject<'_>) -> impl Iterator<Item = &'s Box<str>> {
        let user = subject.user;
        let bare = user
            .filter(|_| self.bare_users_apply(subject))
            .and_then(|u| self.member_of.get(u));
        let qualified = user
            .zip(subject.issuer)
            .and_then(|(u, iss)| self.issuer_member_of.get(iss)?.get(u));
        bare.into_iter().chain(qualified).flatten()
    }

    /// Calls `f` with every index that applies to the subject: its user id, its groups
    /// (from the subject and from the record set's memberships), its token roles.
    fn for_each_index<B>(
        &self,
        subject: &Subject<'_>,
        mut f: impl FnMut(Via, &Index) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        if let Some(user) = subject.user {
            if self.bare_users_apply(subject)
                && let Some(ix) = self.by_user.get(user)
            {
                f(Via::User, ix)?;
            }
            if let Some(ix) = subject
                .issuer
                .and_then(|iss| self.by_issuer_user.get(iss))
                .and_then(|users| users.get(user))
            {
                f(Via::User, ix)?;
            }
            for g in self.memberships(subject) {
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
        groups.extend(self.memberships(subject).map(|g| &**g));
        groups.extend(subject.groups.iter().copied());
        (grants, groups.into_iter().map(str::to_owned).collect())
    }
}
