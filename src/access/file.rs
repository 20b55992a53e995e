//! Access-record files, TOML or JSON.
//!
//! Every value is checked while it is read, so that every error (syntax, types, unknown
//! fields, bad permissions or resources, undefined roles, duplicate ids) names the file,
//! the line and column, and the field as a path such as
//! `records[0].statements[1].resources[2]`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::pattern::{Action, Resource};
use super::records::{Record, Statement, UserId};
use super::set::{RecordSet, RecordSetBuilder};
use crate::error::{ConfigError, ConfigErrorKind};

/// The two formats; same fields in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Toml,
    Json,
}

/// What the second pass checks against: the role ids found by the first pass, and the
/// record ids seen so far.
struct Context {
    roles: HashSet<String>,
    record_ids: HashSet<String>,
}

thread_local! {
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// Installs the context for one parse and removes it afterwards, even on a panic.
struct ContextGuard;

impl ContextGuard {
    fn install(roles: HashSet<String>) -> Self {
        CONTEXT.with(|c| {
            *c.borrow_mut() = Some(Context {
                roles,
                record_ids: HashSet::new(),
            });
        });
        Self
    }
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        CONTEXT.with(|c| *c.borrow_mut() = None);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// The one issuer the records are for.
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    roles: UniqueMap<Vec<Perm>>,
    #[serde(default)]
    groups: UniqueMap<Vec<FileUser>>,
    #[serde(default)]
    records: Vec<FileRecord>,
}

/// The first pass only learns the role ids.
#[derive(Deserialize)]
struct RoleIds {
    #[serde(default)]
    roles: BTreeMap<String, IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRecord {
    id: RecordId,
    #[serde(default)]
    statements: Vec<FileStatement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawStatement")]
struct FileStatement(Statement);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatement {
    roles: Vec<RoleRef>,
    resources: Vec<Res>,
    #[serde(default)]
    users: Vec<FileUser>,
    #[serde(default)]
    groups: Vec<Id>,
    #[serde(default)]
    token_roles: Vec<Id>,
}

impl TryFrom<RawStatement> for FileStatement {
    type Error = &'static str;

    fn try_from(raw: RawStatement) -> Result<Self, Self::Error> {
        if raw.roles.is_empty() {
            return Err("a statement needs a role");
        }
        if raw.resources.is_empty() {
            return Err("a statement needs a resource (`*` for everything)");
        }
        if raw.users.is_empty() && raw.groups.is_empty() && raw.token_roles.is_empty() {
            return Err("a statement applies to nobody: give users, groups or token_roles");
        }
        Ok(Self(
            Statement::new()
                .roles(raw.roles.into_iter().map(|r| r.0))
                .resources(raw.resources.into_iter().map(|r| r.0))
                .users(raw.users)
                .groups(raw.groups.into_iter().map(|r| r.0))
                .token_roles(raw.token_roles.into_iter().map(|r| r.0)),
        ))
    }
}

/// A permission, checked when read.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Perm(String);

impl TryFrom<String> for Perm {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Action::parse(&s).map(|_| Self(s))
    }
}

/// A resource grant, checked when read.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Res(String);

impl TryFrom<String> for Res {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Resource::parse(&s).map(|_| Self(s))
    }
}

/// A user, group or token-role id: not empty, no control characters.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Id(String);

impl TryFrom<String> for Id {
    type Error = &'static str;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.is_empty() {
            Err("an id must not be empty")
        } else if s.chars().any(char::is_control) {
            Err("an id must not hold control characters")
        } else {
            Ok(Self(s))
        }
    }
}

/// A user: a `sub` (`"ada"`), or a `sub` of one issuer (`{ iss = "...", sub = "ada" }`).
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a user id (`\"ada\"`) or a table `{ iss = \"<issuer>\", sub = \"ada\" }`"
)]
enum FileUser {
    Bare(Id),
    Of(QualifiedUser),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QualifiedUser {
    /// `""` names tokens without `iss`; checked when the set is built.
    iss: String,
    sub: Id,
}

impl From<FileUser> for UserId {
    fn from(u: FileUser) -> Self {
        match u {
            FileUser::Bare(Id(sub)) => UserId::new(sub),
            FileUser::Of(QualifiedUser { iss, sub }) => UserId::of(iss, sub.0),
        }
    }
}

/// A role id in a statement: it must be defined under `roles`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct RoleRef(String);

impl TryFrom<String> for RoleRef {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let known = CONTEXT.with(|c| c.borrow().as_ref().is_none_or(|ctx| ctx.roles.contains(&s)));
        if known {
            Ok(Self(s))
        } else {
            Err(format!("role `{s}` is not defined under `roles`"))
        }
    }
}

/// A record id: not empty, and used once.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct RecordId(String);

impl TryFrom<String> for RecordId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let Id(s) = Id::try_from(s).map_err(str::to_owned)?;
        let fresh = CONTEXT.with(|c| {
            c.borrow_mut()
                .as_mut()
                .is_none_or(|ctx| ctx.record_ids.insert(s.clone()))
        });
        if fresh {
            Ok(Self(s))
        } else {
            Err(format!("record id `{s}` is used twice"))
        }
    }
}

/// A map whose keys must be unique (JSON objects may repeat a key; we refuse that) and
/// valid ids. Keeps the order of the file.
struct UniqueMap<V>(Vec<(String, V)>);

impl<V> Default for UniqueMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = UniqueMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of ids")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                while let Some(Id(key)) = map.next_key::<Id>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("`{key}` is defined twice")));
                    }
                    let value = map.next_value()?;
                    out.push((key, value));
                }
                Ok(UniqueMap(out))
            }
        }
        d.deserialize_map(V2(PhantomData))
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

fn located(origin: &str, line: usize, col: usize, path: &str, message: String) -> ConfigError {
    let at = if line == 0 {
        origin.to_owned()
    } else {
        format!("{origin}:{line}:{col}")
    };
    let path = if path == "." { "" } else { path };
    ConfigError::at(ConfigErrorKind::Records, at, path, message)
}

fn toml_error(origin: &str, text: &str, path: &str, e: &toml::de::Error) -> ConfigError {
    let (line, col) = e.span().map_or((0, 0), |s| line_col(text, s.start));
    located(origin, line, col, path, e.message().to_owned()).with_source(e.clone())
}

fn json_error(origin: &str, path: &str, e: &serde_json::Error) -> ConfigError {
    // serde_json's Display appends " at line L column C"; keep only the message.
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) if e.line() > 0 => full[..i].to_owned(),
        _ => full,
    };
    located(origin, e.line(), e.column(), path, message)
}

/// Runs one deserialization pass, with the field path tracked.
fn pass<T: for<'de> Deserialize<'de>>(
    text: &str,
    format: Format,
    origin: &str,
) -> Result<T, ConfigError> {
    match format {
        Format::Toml => {
            let de = toml::de::Deserializer::parse(text)
                .map_err(|e| toml_error(origin, text, "", &e))?;
            serde_path_to_error::deserialize(de)
                .map_err(|e| toml_error(origin, text, &e.path().to_string(), e.inner()))
        }
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            let value = serde_path_to_error::deserialize(&mut de)
                .map_err(|e| json_error(origin, &e.path().to_string(), e.inner()))?;
            de.end().map_err(|e| json_error(origin, "", &e))?;
            Ok(value)
        }
    }
}

/// Parses a record file. `origin` (the file name) starts every error.
pub(super) fn parse(text: &str, format: Format, origin: &str) -> Result<RecordSet, ConfigError> {
    let ids: RoleIds = pass(text, format, origin)?;
    let file: File = {
        let _guard = ContextGuard::install(ids.roles.into_keys().collect());
        pass(text, format, origin)?
    };
    let mut b = RecordSetBuilder::default();
    if let Some(iss) = file.issuer {
        b = b.issuer(iss);
    }
    for (id, perms) in file.roles.0 {
        b = b.role(id, perms.into_iter().map(|p| p.0));
    }
    for (id, users) in file.groups.0 {
        b = b.group(id, users);
    }
    for r in file.records {
        let mut record = Record::new(r.id.0);
        for s in r.statements {
            record = record.statement(s.0);
        }
        b = b.record(record);
    }
    // Everything was checked while reading; what is left would still name the field.
    b.build()
        .map_err(|e| ConfigError::at(e.kind(), origin, e.setting(), e.message()))
}

impl RecordSet {
    /// Reads records from TOML text; see [`RecordSet::from_file`] for the format. Errors
    /// start with `records`, the line and column, and the field.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        parse(text, Format::Toml, "records")
    }

    /// Reads records from JSON text; see [`RecordSet::from_file`] for the format.
    pub fn from_json_str(text: &str) -> Result<Self, ConfigError> {
        parse(text, Format::Json, "records")
    }

    /// Reads a record file: TOML when the name ends in `.toml`, JSON when it ends in
    /// `.json`. Errors name the file, the line and column, and the field, as in
    /// `access.toml:12:14: records[0].statements[0].resources[1]: resource `/a//b` has an
    /// empty segment (`//`)`.
    ///
    /// ```toml
    /// # issuer = "https://idp.example"  # the one issuer bare user ids belong to (optional)
    /// [roles]                          # role id -> permissions
    /// reader = ["documents:read"]
    /// editor = ["documents:read", "documents:write"]
    ///
    /// [groups]                         # group id -> user ids
    /// editors = ["ada", "grace"]
    ///
    /// [[records]]
    /// id = "documents"                 # named in every decision it makes
    /// [[records.statements]]
    /// roles = ["editor"]
    /// resources = ["/documents/*"]
    /// groups = ["editors"]             # and/or users = [...], token_roles = [...]
    /// ```
    ///
    /// A user is a `sub` (`"ada"`), or `{ iss = "https://idp.example", sub = "ada" }` when
    /// the authenticator accepts several issuers (`sub` is unique only within its issuer;
    /// see [`Authorizer::issuers_of`](crate::Authorizer::issuers_of)).
    ///
    /// The same in JSON:
    ///
    /// ```json
    /// {
    ///   "roles": {"reader": ["documents:read"], "editor": ["documents:read", "documents:write"]},
    ///   "groups": {"editors": ["ada", "grace"]},
    ///   "records": [{"id": "documents", "statements": [
    ///     {"roles": ["editor"], "resources": ["/documents/*"], "groups": ["editors"]}
    ///   ]}]
    /// }
    /// ```
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let (format, origin) = format_of(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::at(
                ConfigErrorKind::Records,
                origin.clone(),
                "",
                format!("cannot read it: {e}"),
            )
            .with_source(e)
        })?;
        parse(&text, format, &origin)
    }
}

/// The format a record file's name gives, and the name errors start with.
fn format_of(path: &std::path::Path) -> Result<(Format, String), ConfigError> {
    let origin = path.display().to_string();
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("toml") => Ok((Format::Toml, origin)),
        Some(e) if e.eq_ignore_ascii_case("json") => Ok((Format::Json, origin)),
        _ => Err(ConfigError::at(
            ConfigErrorKind::Records,
            origin,
            "",
            "name an access-record file `*.toml` or `*.json`",
        )),
    }
}

/// Parses the content of the record file at `path`, already read (by the file watcher),
/// as [`RecordSet::from_file`] would.
#[cfg(feature = "watch")]
pub(super) fn parse_file_bytes(
    path: &std::path::Path,
    bytes: &[u8],
) -> Result<RecordSet, ConfigError> {
    let (format, origin) = format_of(path)?;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ConfigError::at(
            ConfigErrorKind::Records,
            origin.clone(),
            "",
            format!("cannot read it: {e}"),
        )
    })?;
    parse(text, format, &origin)
}
