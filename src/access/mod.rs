//! `authorize_user`: resource permissions decided in process.
//!
//! An [`Authorizer`] holds roles (id to permissions), groups (id to users) and access
//! records (statements that bind roles to resources for users, groups or token roles), and
//! answers `authorize_user(subject, resource_uri, permission)` with allowed or denied and
//! the reason. The records come from the [builder](RecordSet::builder), a TOML or JSON
//! [file](RecordSet::from_file), or a [`RecordStore`]; no decision makes a network call.
//!
//! ```
//! use portcullis::{AccessReason, Authorizer, Record, RecordSet, Statement, Subject};
//!
//! let records = RecordSet::builder()
//!     .role("reader", ["documents:read"])
//!     .role("editor", ["documents:*"])
//!     .group("editors", ["grace"])
//!     .record(
//!         Record::new("docs")
//!             .statement(Statement::new().roles(["reader"]).resources(["/documents/*"]).users(["ada"]))
//!             .statement(Statement::new().roles(["editor"]).resources(["/drafts"]).groups(["editors"])),
//!     )
//!     .build()?;
//! let authz = Authorizer::new(records);
//!
//! let decision = authz.authorize_user("ada", "/documents/A/metadata", "Documents:Read");
//! assert!(decision.is_allowed());
//! assert_eq!(
//!     decision.to_string(),
//!     "allowed: record `docs` statement 0 gives role `reader` \
//!      (`documents:read` on `/documents/*`) to user `ada`"
//! );
//! let grant = decision.grant().unwrap();
//! assert_eq!((grant.record(), grant.statement(), grant.role()), ("docs", 0, "reader"));
//!
//! // Statements are independent: ada's `reader` never reaches `/drafts`.
//! let denied = authz.authorize_user("ada", "/drafts/1", "documents:read");
//! assert_eq!(denied.reason(), &AccessReason::NoResource);
//! let denied = authz.authorize_user("ada", "/documents/A", "documents:write");
//! assert_eq!(denied.reason(), &AccessReason::NoPermission { roles: vec!["reader".into()] });
//!
//! // Groups hold users; a token's groups and roles count too.
//! assert!(authz.authorize_user("grace", "/drafts/1", "documents:delete").is_allowed());
//! let bob = Subject::user("bob").with_groups(["editors"]);
//! assert!(authz.authorize_user(bob, "/drafts/2", "documents:write").is_allowed());
//!
//! // Listing: what a subject holds on a resource, and where it holds a permission.
//! assert_eq!(authz.permissions("grace", "/drafts/1"), ["documents:*"]);
//! assert_eq!(authz.resources("ada", "documents:read"), ["/documents/*"]);
//! # Ok::<(), portcullis::ConfigError>(())
//! ```
//!
//! ## Matching
//!
//! - Resources are `/`-separated and case-sensitive; a leading slash is optional and a
//!   trailing slash ignored. A grant on `/a` covers `/a` and everything below it, at segment
//!   boundaries (`/resources/12` does not cover `/resources/123`). A `*` segment matches any
//!   one segment; `*` (or `/`) alone covers everything. A requested resource with an empty
//!   segment (`/a//b`) or a dot segment (`..`, also `%2e%2e`) is denied.
//! - Permissions are `:`-separated and case-insensitive. `documents` covers
//!   `documents:read`; `documents:*` covers any `documents:...` (not `documents` itself);
//!   `*` covers all. A permission has no empty segment and uses `*` only as a whole
//!   segment; role definitions that break this fail to build.
//! - A statement applies to a subject through its user id, a group (from the record set's
//!   groups or the subject's own), or a token role. Permissions only allow; nothing denies.
//!
//! ## In handlers
//!
//! With the `axum` feature, the [`Authz`] extractor gives the authorizer bound to the
//! verified caller, so a handler checks in one line and a refusal answers 403 with
//! `error="insufficient_scope"`. Elsewhere (tonic handlers, plain tower services),
//! [`Authorizer::require`] takes the [`Principal`] and returns an [`AuthError`] whose
//! kind maps to 403 / `PERMISSION_DENIED`. In a tonic handler (feature `tonic`) that is one
//! line too, since the error converts into a `tonic::Status`:
//! `authz.require(&portcullis::grpc::principal(&request)?, "/documents/A", "documents:read")?;`
//!
//! ## Reloading
//!
//! [`MemoryStore::replace`] and [`MemoryStore::reload_from_file`] swap in a new set
//! atomically; readers never block, and each decision sees one whole set. With the
//! `watch` feature, [`MemoryStore::watch_file`] polls a file and reloads it.
//!
//! ## AIStore's model as records
//!
//! Bucket-scoped roles hold `GET` and `PUT` on `/clusters/{cluster}/buckets/{bucket}`;
//! cluster-wide roles hold them on `/clusters/{cluster}`, and so on every bucket in it.
//!
//! ```
//! use portcullis::{Authorizer, RecordSet};
//!
//! let records = RecordSet::from_toml_str(r#"
//!     [roles]
//!     bucket-rw = ["GET", "PUT"]
//!     bucket-ro = ["GET"]
//!     cluster-admin = ["*"]
//!
//!     [[records]]
//!     id = "alice-c1-photos"
//!     [[records.statements]]
//!     roles = ["bucket-rw"]
//!     resources = ["/clusters/c1/buckets/photos"]
//!     users = ["alice"]
//!
//!     [[records]]
//!     id = "ops-c1"
//!     [[records.statements]]
//!     roles = ["cluster-admin"]
//!     resources = ["/clusters/c1"]
//!     token_roles = ["ops"]
//! "#)?;
//! let authz = Authorizer::new(records);
//! assert!(authz.authorize_user("alice", "/clusters/c1/buckets/photos/objects/x.jpg", "PUT").is_allowed());
//! assert!(!authz.authorize_user("alice", "/clusters/c1/buckets/logs", "GET").is_allowed());
//! assert!(!authz.authorize_user("alice", "/clusters/c2/buckets/photos", "GET").is_allowed());
//! assert!(!authz.authorize_user("alice", "/clusters/c1", "GET").is_allowed());
//! let ops = portcullis::Subject::default().with_roles(["ops"]);
//! assert!(authz.authorize_user(ops.clone(), "/clusters/c1/buckets/logs", "PUT").is_allowed());
//! assert!(!authz.authorize_user(ops, "/clusters/c2", "GET").is_allowed());
//! # Ok::<(), portcullis::ConfigError>(())
//! ```

mod file;
#[cfg(feature = "axum")]
mod handler;
mod pattern;
mod records;
mod set;
mod store;

use std::fmt;
use std::sync::Arc;

use crate::error::{AuthError, ConfigError, ConfigErrorKind};
use crate::principal::Principal;

#[cfg(feature = "axum")]
pub use handler::Authz;
pub use records::{Record, Statement, UserId};
pub use set::{RecordSet, RecordSetBuilder};
#[cfg(feature = "watch")]
pub use store::FileWatch;
pub use store::{MemoryStore, RecordStore};

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
    user: Option<&'a str>,
    /// The issuer the user id is unique within (the token's `iss`).
    issuer: Option<&'a str>,
    groups: Vec<&'a str>,
    roles: Vec<&'a str>,
    /// Set by an [`Authorizer`] bound to an authenticator of several issuers.
    several_issuers: bool,
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
    /// one issuer ([`UserId::of`], [`RecordSetBuilder::issuer`]) then tell this user from
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
    record: Arc<str>,
    statement: usize,
    role: Arc<str>,
    permission: Arc<str>,
    resource: Arc<str>,
    via: Via,
    via_id: Arc<str>,
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

/// The answer of [`Authorizer::authorize_user`]: allowed or denied, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDecision {
    reason: AccessReason,
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

/// Decides `authorize_user(subject, resource_uri, permission)` from the records of its
/// store. Cheap to clone (one `Arc`); `Send + Sync`. No decision makes a network call or
/// waits on a lock.
///
/// Matching:
/// - Resources are `/`-separated and case-sensitive; a leading slash is optional and a
///   trailing slash ignored. A grant on `/a` covers `/a` and everything below it, at
///   segment boundaries (`/resources/12` does not cover `/resources/123`). A `*` segment
///   matches any one segment; `*` (or `/`) alone covers everything. A requested resource
///   with an empty segment or a dot segment (`..`, also `%2e%2e`) is denied.
/// - Permissions are `:`-separated and case-insensitive. `documents` covers
///   `documents:read`; `documents:*` covers any `documents:...` (not `documents`
///   itself); `*` covers all.
/// - A statement applies through the subject's user id, its groups (the record set's
///   memberships and the subject's own) or its token roles. Statements are independent,
///   and permissions only allow.
/// - The reason of an allowed decision names one grant that allows it; when several do,
///   which one is not specified, but it is the same for the same record set.
///
/// ```
/// use portcullis::{Algorithm, Authenticator, Authorizer, AuthErrorKind, RecordSet, Signer};
///
/// let authz = Authorizer::new(RecordSet::from_json_str(r#"{
///     "roles": {"reader": ["documents:read"]},
///     "records": [{"id": "r1", "statements": [
///         {"roles": ["reader"], "resources": ["/documents"], "token_roles": ["client"]}
///     ]}]
/// }"#)?);
///
/// // A verified principal: its token roles, groups claim and `sub` count.
/// let secret = "0123456789abcdef0123456789abcdef";
/// let token = Signer::hmac(Algorithm::HS256, secret)?
///     .sign(&serde_json::json!({"sub": "c1", "role": "client", "exp": 4_000_000_000u64}))?;
/// let principal = Authenticator::builder().hmac_secret(secret).build()?.verify(&token)?;
///
/// assert!(authz.require(&principal, "/documents/7", "documents:read").is_ok());
/// let err = authz.require(&principal, "/documents/7", "documents:write").unwrap_err();
/// assert_eq!(err.kind(), AuthErrorKind::Forbidden);
/// assert_eq!(err.status(), http::StatusCode::FORBIDDEN);
/// assert_eq!(err.body(), r#"{"error":"insufficient_scope","message":"Insufficient permissions"}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Authorizer {
    store: Arc<dyn RecordStore>,
    /// Bound to an authenticator that accepts several issuers: bare user ids of a set
    /// that names no issuer match no token.
    several_issuers: bool,
}

impl Authorizer {
    /// An authorizer over a [`MemoryStore`] holding `records`. To reload later, build the
    /// store yourself and use [`Authorizer::from_store`] with a clone of it.
    pub fn new(records: RecordSet) -> Self {
        Self::from_store(MemoryStore::new(records))
    }

    /// An authorizer over any store.
    pub fn from_store(store: impl RecordStore) -> Self {
        Self {
            store: Arc::new(store),
            several_issuers: false,
        }
    }

    /// Binds the records to the issuers `auth` accepts. `sub` is unique only within its
    /// issuer: when `auth` accepts several (an issuer list, several OIDC issuers or issuer
    /// key sets, an issuer pattern), a bare user id such as `"ada"` could name any
    /// issuer's `ada`. Then every user in the records must name its issuer
    /// ([`UserId::of`], `{ iss = "...", sub = "ada" }` in a file), or the record set must
    /// name the one issuer it is for ([`RecordSetBuilder::issuer`], `issuer = "..."`);
    /// otherwise this is a configuration error naming the first bare user and the fix.
    /// Record sets swapped in later are held to the same rule at decision time: their bare
    /// user ids match no token.
    ///
    /// With one issuer, nothing changes.
    ///
    /// ```
    /// use portcullis::{Authenticator, Authorizer, RecordSet, Record, Statement, UserId};
    ///
    /// let auth = Authenticator::builder()
    ///     .hmac_secret("0123456789abcdef0123456789abcdef")
    ///     .issuer("https://alpha.example")
    ///     .issuer("https://beta.example")
    ///     .build()?;
    /// let bare = RecordSet::builder()
    ///     .role("reader", ["documents:read"])
    ///     .record(Record::new("r").statement(
    ///         Statement::new().roles(["reader"]).resources(["/documents"]).users(["ada"]),
    ///     ))
    ///     .build()?;
    /// let err = Authorizer::new(bare).issuers_of(&auth).unwrap_err();
    /// assert_eq!(err.setting(), "records[0].statements[0].users[0]");
    ///
    /// let qualified = RecordSet::builder()
    ///     .role("reader", ["documents:read"])
    ///     .record(Record::new("r").statement(
    ///         Statement::new().roles(["reader"]).resources(["/documents"])
    ///             .users([UserId::of("https://alpha.example", "ada")]),
    ///     ))
    ///     .build()?;
    /// let authz = Authorizer::new(qualified).issuers_of(&auth)?;
    /// let alpha = portcullis::Subject::user("ada").with_issuer("https://alpha.example");
    /// let beta = portcullis::Subject::user("ada").with_issuer("https://beta.example");
    /// assert!(authz.authorize_user(alpha, "/documents/1", "documents:read").is_allowed());
    /// assert!(!authz.authorize_user(beta, "/documents/1", "documents:read").is_allowed());
    /// # Ok::<(), portcullis::ConfigError>(())
    /// ```
    pub fn issuers_of(mut self, auth: &crate::Authenticator) -> Result<Self, ConfigError> {
        self.several_issuers = auth.accepts_several_issuers();
        if self.several_issuers
            && let Some((setting, user)) = self.records().unqualified_user()
        {
            return Err(ConfigError::new(
                ConfigErrorKind::Records,
                setting.clone(),
                format!(
                    "user `{user}` names no issuer, but the authenticator accepts several and `sub` is unique only within its issuer; write it as {{ iss = \"<issuer>\", sub = \"{user}\" }} (UserId::of in code), or set `issuer = \"<issuer>\"` at the top of the records for the one issuer they are for"
                ),
            ));
        }
        Ok(self)
    }

    /// The subject as this authorizer decides for it.
    fn bound<'a>(&self, subject: impl Into<Subject<'a>>) -> Subject<'a> {
        let mut subject = subject.into();
        subject.several_issuers = self.several_issuers;
        subject
    }

    /// An authorizer over a [`MemoryStore`] loaded from a file (see
    /// [`RecordSet::from_file`]).
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        RecordSet::from_file(path).map(Self::new)
    }

    /// The record set decisions use now.
    pub fn records(&self) -> RecordSet {
        self.store.snapshot()
    }

    /// Whether `subject` holds `permission` on `resource_uri`, and why.
    ///
    /// The subject is a user id (`"ada"`), a [`Subject`], or a `&Principal`. One
    /// decision reads one record set, even while a reload swaps in another.
    pub fn authorize_user<'a>(
        &self,
        subject: impl Into<Subject<'a>>,
        resource_uri: &str,
        permission: &str,
    ) -> AccessDecision {
        let subject = self.bound(subject);
        let records = self.store.snapshot();
        AccessDecision {
            reason: records.inner.authorize(&subject, resource_uri, permission),
        }
    }

    /// The same decision for a verified caller, as a result: `Err` is a 403
    /// [`AuthError`] (`PERMISSION_DENIED` over gRPC). For handlers of any framework.
    pub fn require(
        &self,
        principal: &Principal,
        resource_uri: &str,
        permission: &str,
    ) -> Result<Grant, AuthError> {
        self.authorize_user(principal, resource_uri, permission)
            .into_result()
    }

    /// The permissions `subject` holds on `resource_uri`: every permission of every role
    /// of every statement that covers it, lowercased, sorted, each once.
    pub fn permissions<'a>(
        &self,
        subject: impl Into<Subject<'a>>,
        resource_uri: &str,
    ) -> Vec<String> {
        self.store
            .snapshot()
            .inner
            .permissions(&self.bound(subject), resource_uri)
    }

    /// The resource grants through which `subject` holds `permission`, normalized,
    /// sorted, each once. Each covers itself and everything below it.
    pub fn resources<'a>(&self, subject: impl Into<Subject<'a>>, permission: &str) -> Vec<String> {
        self.store
            .snapshot()
            .inner
            .resources(&self.bound(subject), permission)
    }
}

/// Everything a subject may do ([`Authorizer::list`]): its grants, the roles they come
/// from, and its effective groups, as Kamiwaza's `read_own_permissions` lists rights,
/// roles and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessList {
    grants: Vec<Grant>,
    groups: Vec<String>,
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

impl Authorizer {
    /// Everything `subject` may do: its grants (resource, permission, and through which
    /// record, statement, role, user, group or token role) and its effective groups.
    ///
    /// ```
    /// use portcullis::{Authorizer, Record, RecordSet, Statement, Subject};
    ///
    /// let records = RecordSet::builder()
    ///     .role("viewer", ["documents:read"])
    ///     .group("staff", ["ada"])
    ///     .record(Record::new("r1").statement(
    ///         Statement::new().roles(["viewer"]).resources(["/documents"]).groups(["staff"]),
    ///     ))
    ///     .build()?;
    /// let list = Authorizer::new(records).list(Subject::user("ada").with_groups(["sso"]));
    /// assert_eq!(list.groups(), ["sso", "staff"]);
    /// assert_eq!(list.roles(), ["viewer"]);
    /// assert_eq!(list.grants()[0].resource(), "/documents");
    /// assert_eq!(list.grants()[0].via_id(), "staff");
    /// # Ok::<(), portcullis::ConfigError>(())
    /// ```
    pub fn list<'a>(&self, subject: impl Into<Subject<'a>>) -> AccessList {
        let (grants, groups) = self.store.snapshot().inner.list(&self.bound(subject));
        AccessList { grants, groups }
    }
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer")
            .field("records", &self.records())
            .finish()
    }
}
