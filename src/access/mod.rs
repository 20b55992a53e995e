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

mod decision;
mod file;
#[cfg(feature = "axum")]
mod handler;
mod index;
mod pattern;
mod records;
mod set;
mod store;

use std::fmt;
use std::sync::Arc;

use crate::error::{AuthError, ConfigError, ConfigErrorKind};
use crate::principal::Principal;

pub use decision::{AccessDecision, AccessList, AccessReason, Grant, Subject, Via, resource_uri};
#[cfg(feature = "axum")]
pub use handler::Authz;
pub use records::{Record, Statement, UserId};
pub use set::{RecordSet, RecordSetBuilder};
#[cfg(feature = "watch")]
pub use store::FileWatch;
pub use store::{MemoryStore, RecordStore};

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
