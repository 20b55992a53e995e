//! What a subject is, and what a decision says: subjects, grants, reasons, decisions and
//! listings of the access-record engine.

use std::fmt;
use std::sync::Arc;

use crate::error::AuthError;
use crate::principal::Principal;

/// Builds a resource URI from segments taken from a request (path parameters, ids),
/// percent-encoding `/`, `\` and `%` inside each one, so a value such as `A/secret` (a
/// decoded `%2F`) stays one segment and cannot reach below `/documents/A`.
///
/// ```
/// use portcullis::resource_uri;
///
/// assert_eq!(resource_uri(["documents", "A"]), "/documents/A");
/// assert_eq!(resource_uri(["documents", "A/secret"]), "/documents/A%2Fsecret");
/// ```
pub fn resource_uri<I, S>(segments: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::CONTROLS.add(b'/').add(b'\\').add(b'%');
    let mut out = String::new();
    for seg in segments {
        out.push('/');
        out.extend(percent_encoding::utf8_percent_encode(seg.as_ref(), SET));
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Who is asking: a user id, plus groups and token roles.
///
/// Made from a user id (`"ada"`), with [`Subject::user`] and the `with_` methods, or from
/// a verified [`Principal`]: its `sub`, its groups claim and its token roles.
///
/// ```
/// use portcullis::Subject;
///
/// let s = Subject::user("ada").with_groups(["staff"]).with_roles(["client"]);
/// assert_eq!(s.user_id(), Some("ada"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject<'a> {
    pub(super) user: Option<&'a str>,
    /// The issuer the user id is unique within (the token's `iss`).
    pub(super) issuer: Option<&'a str>,
    pub(super) groups: Vec<&'a str>,
    pub(super) roles: Vec<&'a str>,
    /// Set by an [`Authorizer`](crate::Authorizer) bound to an authenticator of several issuers.
    pub(super) several_issuers: bool,
}

impl<'a> Subject<'a> {
    /// A user, by id. Groups the record set puts the user in apply too.
    pub fn user(id: &'a str) -> Self {
        Self {
            user: Some(id),
            ..Self::default()
        }
    }

    /// The verified caller: `sub` as the user id within its `iss`, the groups claim, the
    /// token roles.
    pub fn principal(principal: &'a Principal) -> Self {
        Self {
            user: principal.subject(),
            issuer: Some(principal.issuer().unwrap_or("")),
            groups: principal.groups().collect(),
            roles: principal.roles().collect(),
            several_issuers: false,
        }
    }

    /// The issuer the user id belongs to (a token's `iss`): records that name users of
    /// one issuer ([`UserId::of`](crate::UserId::of), [`RecordSetBuilder::issuer`](crate::RecordSetBuilder::issuer)) then tell this user from
    /// another issuer's user of the same id. Without it, the application vouches for the
    /// user id itself: bare user ids match it, issuer-qualified ones do not.
    pub fn with_issuer(mut self, issuer: &'a str) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// Adds groups the subject belongs to (beyond those of the record set).
    pub fn with_groups<I: IntoIterator<Item = &'a str>>(mut self, groups: I) -> Self {
        self.groups.extend(groups);
        self
    }

    /// Adds token roles (values of the token's role claim).
    pub fn with_roles<I: IntoIterator<Item = &'a str>>(mut self, roles: I) -> Self {
        self.roles.extend(roles);
        self
    }

    /// The user id, if any.
    pub fn user_id(&self) -> Option<&'a str> {
        self.user
    }

    /// The issuer of the user id, if known.
    pub fn issuer(&self) -> Option<&'a str> {
        self.issuer
    }
}

impl<'a> From<&'a str> for Subject<'a> {
    fn from(id: &'a str) -> Self {
        Self::user(id)
    }
}

impl<'a> From<&'a String> for Subject<'a> {
    fn from(id: &'a String) -> Self {
        Self::user(id)
    }
}

impl<'a> From<&'a Principal> for Subject<'a> {
    fn from(p: &'a Principal) -> Self {
        Self::principal(p)
    }
}

/// Through what a statement applied to the subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Via {
    /// The subject's user id is in the statement's `users`.
    User,
    /// One of the subject's groups is in the statement's `groups`.
    Group,
    /// One of the subject's token roles is in the statement's `token_roles`.
    TokenRole,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Via::User => "user",
            Via::Group => "group",
            Via::TokenRole => "token role",
        })
    }
}

/// What allowed a request: the record, statement, role, permission and resource grant,
/// and through which user, group or token role the statement applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub(super) record: Arc<str>,
    pub(super) statement: usize,
    pub(super) role: Arc<str>,
    pub(super) permission: Arc<str>,
    pub(super) resource: Arc<str>,
    pub(super) via: Via,
    pub(super) via_id: Arc<str>,
}

impl Grant {
    /// The record's id.
    pub fn record(&self) -> &str {
        &self.record
    }

    /// The statement's index within its record, from 0.
    pub fn statement(&self) -> usize {
        self.statement
    }

    /// The role that holds the permission.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The role's permission that covers the request, lowercased (`documents:*`).
    pub fn permission(&self) -> &str {
        &self.permission
    }

    /// The statement's resource grant that covers the request, normalized
    /// (`/documents/*`, or `*` for everything).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Whether the statement applied through the user id, a group or a token role.
    pub fn via(&self) -> Via {
        self.via
    }

    /// The user id, group id or token role the statement applied through.
    pub fn via_id(&self) -> &str {
        &self.via_id
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record `{}` statement {} gives role `{}` (`{}` on `{}`) to {} `{}`",
            self.record,
            self.statement,
            self.role,
            self.permission,
            self.resource,
            self.via,
            self.via_id
        )
    }
}

/// Why a request was allowed or denied.
///
/// The denial texts name no user, group or claim value, so they are safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessReason {
    /// A statement allowed it.
    Granted(Grant),
    /// The requested resource is not a valid path (an empty or dot segment).
    InvalidResource,
    /// The requested permission is not valid (empty, an empty segment, or `*` inside a
    /// segment).
    InvalidPermission,
    /// No statement applies to the subject.
    NoStatement,
    /// Statements apply to the subject, but none covers the resource.
    NoResource,
    /// Statements cover the resource, but none of their roles holds the permission.
    NoPermission {
        /// The roles of those statements, sorted.
        roles: Vec<String>,
    },
}

impl fmt::Display for AccessReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Granted(g) => g.fmt(f),
            Self::InvalidResource => {
                f.write_str("the resource is not a valid path (empty or dot segment)")
            }
            Self::InvalidPermission => {
                f.write_str("the permission is not valid (empty segment, or `*` inside a segment)")
            }
            Self::NoStatement => f.write_str("no statement applies to the subject"),
            Self::NoResource => {
                f.write_str("statements apply to the subject, but none covers the resource")
            }
            Self::NoPermission { roles } => write!(
                f,
                "statements cover the resource, but their roles ({}) do not hold the permission",
                roles.join(", ")
            ),
        }
    }
}

/// The answer of [`Authorizer::authorize_user`](crate::Authorizer::authorize_user): allowed or denied, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDecision {
    pub(super) reason: AccessReason,
}

impl AccessDecision {
    /// Whether the subject may do it.
    pub fn is_allowed(&self) -> bool {
        matches!(self.reason, AccessReason::Granted(_))
    }

    /// Why.
    pub fn reason(&self) -> &AccessReason {
        &self.reason
    }

    /// What allowed it, when it is allowed.
    pub fn grant(&self) -> Option<&Grant> {
        match &self.reason {
            AccessReason::Granted(g) => Some(g),
            _ => None,
        }
    }

    /// The decision as a result: a denial becomes a 403 [`AuthError`]
    /// (`insufficient_scope`, `PERMISSION_DENIED`) whose log text is the reason.
    pub fn into_result(self) -> Result<Grant, AuthError> {
        match self.reason {
            AccessReason::Granted(g) => Ok(g),
            other => Err(AuthError::forbidden_because(format!(
                "authorize_user: {other}"
            ))),
        }
    }
}

impl fmt::Display for AccessDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = if self.is_allowed() {
            "allowed"
        } else {
            "denied"
        };
        write!(f, "{word}: {}", self.reason)
    }
}

/// Everything a subject may do ([`Authorizer::list`](crate::Authorizer::list)): its grants, the roles they come
/// from, and its effective groups, as Kamiwaza's `read_own_permissions` lists rights,
/// roles and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessList {
    pub(super) grants: Vec<Grant>,
    pub(super) groups: Vec<String>,
}

impl AccessList {
    /// One grant per statement, role, permission and resource that applies, sorted by
    /// resource then permission: each says through which record, statement, role, and
    /// user, group or token role it comes.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// The effective groups: the record set's memberships of the user plus the groups of
    /// the token, sorted, each once.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// The roles the grants come from, sorted, each once.
    pub fn roles(&self) -> Vec<&str> {
        let mut roles: Vec<&str> = self.grants.iter().map(Grant::role).collect();
        roles.sort_unstable();
        roles.dedup();
        roles
    }

    /// The permissions held anywhere, lowercased, sorted, each once.
    pub fn permissions(&self) -> Vec<&str> {
        let mut p: Vec<&str> = self.grants.iter().map(Grant::permission).collect();
        p.sort_unstable();
        p.dedup();
        p
    }
}
