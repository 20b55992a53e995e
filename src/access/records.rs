//! Access records as written: records, their statements and the users they name.

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
    pub(super) id: String,
    pub(super) statements: Vec<Statement>,
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

/// A user named in access records: a `sub`, optionally with the issuer (`iss`) it is
/// unique within.
///
/// `sub` is unique only within its issuer. When an authenticator accepts several issuers
/// (a list, several OIDC issuers, an issuer pattern), a bare `"ada"` would match every
/// issuer's `ada`; name the issuer ([`UserId::of`], or `{ iss = "...", sub = "ada" }` in a
/// file), or name the record set's one issuer ([`RecordSetBuilder::issuer`](crate::RecordSetBuilder::issuer)). A string
/// converts into a bare user id.
///
/// ```
/// use portcullis::UserId;
///
/// let ada = UserId::of("https://alpha.example", "ada");
/// assert_eq!((ada.issuer(), ada.subject()), (Some("https://alpha.example"), "ada"));
/// assert_eq!(UserId::from("ada").issuer(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId {
    pub(super) issuer: Option<String>,
    pub(super) subject: String,
}

impl UserId {
    /// A bare user id: a `sub`, of whichever issuer the record set is for.
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            issuer: None,
            subject: subject.into(),
        }
    }

    /// The user `subject` of `issuer` (the token's `iss`, exactly; `""` for tokens that
    /// carry no `iss`).
    pub fn of(issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            issuer: Some(issuer.into()),
            subject: subject.into(),
        }
    }

    /// The issuer, when named.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The `sub`.
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

impl From<&str> for UserId {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for UserId {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<&String> for UserId {
    fn from(s: &String) -> Self {
        Self::new(s.as_str())
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
    pub(super) roles: Vec<String>,
    pub(super) resources: Vec<String>,
    pub(super) users: Vec<UserId>,
    pub(super) groups: Vec<String>,
    pub(super) token_roles: Vec<String>,
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

    /// Adds user ids: strings (a `sub`) or [`UserId`]s that name their issuer too.
    pub fn users<I: IntoIterator<Item = S>, S: Into<UserId>>(mut self, users: I) -> Self {
        self.users.extend(users.into_iter().map(Into::into));
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
