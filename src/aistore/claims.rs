//! The permission claims of an AIStore token, read as AIStore's gateways decode them
//! (`AISClaims` in `cmd/authn/tok/token.go`, `CluACL` and `BckACL` in
//! `api/authn/entity.go`, `Bck` and `Ns` in `cmn/bck_wire.go`).

use serde_json::{Map, Value};

use super::{Access, AisDenied};
use crate::principal::Principal;

/// A bucket namespace (AIStore's `cmn.Ns`): the `uuid` of the cluster that owns it and a
/// `name`. Both empty is the global namespace, the [`Default`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Namespace {
    pub(super) uuid: String,
    pub(super) name: String,
}

impl Namespace {
    /// A namespace of cluster `uuid` named `name`.
    ///
    /// ```
    /// use portcullis::aistore::Namespace;
    ///
    /// assert!(Namespace::default().is_global());
    /// assert!(!Namespace::new("Q8XCZ", "").is_global());
    /// ```
    pub fn new(uuid: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            uuid: uuid.into(),
            name: name.into(),
        }
    }

    /// The cluster's UUID (`uuid`).
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// The namespace's name (`name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is the global namespace (both parts empty).
    pub fn is_global(&self) -> bool {
        self.uuid.is_empty() && self.name.is_empty()
    }
}

/// A bucket (AIStore's `cmn.Bck`): a name, a provider and a namespace.
///
/// ```
/// use portcullis::aistore::{Bucket, Namespace};
///
/// let b = Bucket::new("photos");
/// assert_eq!((b.name(), b.provider()), ("photos", "ais"));
/// assert!(b.namespace().is_global());
/// let s3 = Bucket::new("logs").with_provider("aws").with_namespace(Namespace::default());
/// assert_eq!(s3.provider(), "aws");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bucket {
    pub(super) name: String,
    pub(super) provider: String,
    pub(super) namespace: Namespace,
}

impl Bucket {
    /// The bucket `name` of the `ais` provider (AIStore's default) in the global
    /// namespace.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            provider: "ais".to_owned(),
            namespace: Namespace::default(),
        }
    }

    /// The same bucket of another provider, compared as written (see
    /// [`normalize_provider`] for AIStore's aliases such as `s3`).
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = provider.into();
        self
    }

    /// The same bucket in another namespace.
    pub fn with_namespace(mut self, namespace: Namespace) -> Self {
        self.namespace = namespace;
        self
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The provider (`ais`, `aws`, `gcp`, `azure`, `oci`).
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }
}

/// AIStore's provider name for `provider`, as its gateways normalize a request's
/// (`apc.NormalizeProvider`): the empty string is `ais`; `s3`, `gs`, `az` and `oc` are
/// `aws`, `gcp`, `azure` and `oci`; other names are not providers.
///
/// ```
/// use portcullis::aistore::normalize_provider;
///
/// assert_eq!(normalize_provider(""), Some("ais"));
/// assert_eq!(normalize_provider("s3"), Some("aws"));
/// assert_eq!(normalize_provider("gcp"), Some("gcp"));
/// assert_eq!(normalize_provider("ftp"), None);
/// ```
pub fn normalize_provider(provider: &str) -> Option<&'static str> {
    Some(match provider {
        "" | "ais" => "ais",
        "aws" | "s3" => "aws",
        "gcp" | "gs" => "gcp",
        "azure" | "az" => "azure",
        "oci" | "oc" => "oci",
        _ => return None,
    })
}

/// One entry of the token's `clusters`: a cluster id (`id`; empty for the default entry
/// that applies to every cluster without an entry of its own) and the access granted.
///
/// ```
/// use portcullis::aistore::{Access, AisClaims};
///
/// let claims = AisClaims::from_claims(serde_json::json!({
///     "clusters": [{"id": "Q8XCZ", "alias": "prod", "perm": "12288"}, {"id": ""}],
/// }).as_object().unwrap())?;
/// assert_eq!(claims.clusters()[0].id(), "Q8XCZ");
/// assert_eq!(claims.clusters()[0].access(), Access::CLUSTER_RO);
/// assert_eq!(claims.clusters()[1].access(), Access::NONE); // no `perm`: nothing
/// # Ok::<(), portcullis::aistore::AisDenied>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAcl {
    pub(super) id: String,
    pub(super) access: Access,
}

impl ClusterAcl {
    /// The cluster's id; empty for the default entry.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The access granted (`perm`).
    pub fn access(&self) -> Access {
        self.access
    }
}

/// One entry of the token's `buckets`: a bucket (`bck`, whose namespace UUID names the
/// cluster) and the access granted on it.
///
/// ```
/// use portcullis::aistore::{Access, AisClaims};
///
/// let claims = AisClaims::from_claims(serde_json::json!({
///     "buckets": [{"bck": {"name": "logs", "provider": "aws",
///                          "namespace": {"uuid": "Q8XCZ", "name": ""}}, "perm": "771"}],
/// }).as_object().unwrap())?;
/// let entry = &claims.buckets()[0];
/// assert_eq!((entry.bucket().name(), entry.bucket().provider()), ("logs", "aws"));
/// assert_eq!(entry.bucket().namespace().uuid(), "Q8XCZ");
/// assert_eq!(entry.access(), Access::RO);
/// # Ok::<(), portcullis::aistore::AisDenied>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketAcl {
    pub(super) bucket: Bucket,
    pub(super) access: Access,
}

impl BucketAcl {
    /// The bucket as the token names it; its namespace's UUID is the cluster's id.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// The access granted (`perm`).
    pub fn access(&self) -> Access {
        self.access
    }
}

/// The permission claims of a token that AIStore's AuthN issued: `admin`, `clusters`
/// (`[{"id", "perm"}]`) and `buckets` (`[{"bck": {"name", "provider", "namespace":
/// {"uuid", "name"}}, "perm"}]`), each `perm` a decimal string of [`Access`] bits.
///
/// Read them from the verified caller with [`from_principal`](Self::from_principal) and
/// ask [`check`](Self::check), which follows AIStore's `CheckPermissions` rule by rule:
///
/// 1. `admin: true` allows everything.
/// 2. An empty request is refused ([`AisDenied::EmptyAccess`]), and so are bits outside
///    both scopes ([`AisDenied::UnknownBits`]).
/// 3. The request splits by scope, and each half is checked on its own: cluster bits
///    ([`Access::CLUSTER_SCOPE`]) against the cluster's entry only; bucket bits
///    ([`Access::BUCKET_SCOPE`]) against the bucket's entry when the token has one for
///    this bucket, which then overrides the cluster's either way (it may grant more or
///    less), and against the cluster's entry otherwise.
/// 4. The cluster's entry is the one whose `id` equals the cluster; without one, the
///    default entry (`id` empty). An exact entry always beats the default.
/// 5. A bucket entry applies when its namespace `uuid` is the cluster, its name and
///    provider equal the bucket's (exactly: no alias is resolved), and the requested
///    bucket is in the global namespace (AIStore compares the token's bucket, without
///    its namespace, with the requested one).
/// 6. Cluster bits with an empty cluster id, and bucket bits without a bucket, are
///    refused with their own reasons.
///
/// ```
/// use portcullis::aistore::{Access, AclEntry, AisClaims, AisDenied, Bucket};
/// use serde_json::json;
///
/// // A token as AIStore's AuthN issues it to a user with read-only access to cluster
/// // "Q8XCZ" and read-write access to its bucket "photos".
/// let claims = AisClaims::from_claims(json!({
///     "clusters": [{"id": "Q8XCZ", "perm": "768"}],      // HEAD-BUCKET, LIST-OBJECTS
///     "buckets": [{"bck": {"name": "photos", "provider": "ais",
///                          "namespace": {"uuid": "Q8XCZ", "name": ""}},
///                  "perm": Access::RW.bits().to_string()}],
///     "admin": false, "sub": "alice", "exp": 4_000_000_000u64,
/// }).as_object().unwrap())?;
///
/// let photos = Bucket::new("photos");
/// assert_eq!(claims.check("Q8XCZ", Some(&photos), Access::PUT), Ok(()));
/// assert_eq!(
///     claims.check("Q8XCZ", Some(&Bucket::new("other")), Access::PUT),
///     Err(AisDenied::Insufficient { needs: Access::PUT, entry: AclEntry::Cluster }),
/// );
/// assert_eq!(claims.check("Q8XCZ", None, Access::GET), Err(AisDenied::NoBucket));
/// # Ok::<(), AisDenied>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AisClaims {
    pub(super) admin: bool,
    pub(super) clusters: Vec<ClusterAcl>,
    pub(super) buckets: Vec<BucketAcl>,
}

impl AisClaims {
    /// Reads the verified caller's claims; see [`from_claims`](Self::from_claims).
    ///
    /// ```
    /// use portcullis::{Algorithm, Authenticator, Signer};
    /// use portcullis::aistore::{Access, AisClaims};
    ///
    /// let secret = "0123456789abcdef0123456789abcdef";
    /// let auth = Authenticator::builder().hmac_secret(secret).build()?;
    /// let token = Signer::hmac(Algorithm::HS256, secret)?.sign(&serde_json::json!({
    ///     "clusters": null, "admin": true, "sub": "admin", "exp": 4_000_000_000u64,
    /// }))?;
    /// let claims = AisClaims::from_principal(&auth.verify(&token)?)?;
    /// assert!(claims.is_admin());
    /// assert!(claims.check("any", None, Access::ALL).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_principal(principal: &Principal) -> Result<Self, AisDenied> {
        Self::from_claims(principal.claims())
    }

    /// Reads AIStore's claims from a claim map, as AIStore's gateways decode them:
    /// missing or `null` members take their zero value (`admin` false, no entries, an
    /// entry without `id` is the default cluster entry, an entry without `perm` grants
    /// nothing); `perm` must be a string of decimal digits that fits 64 bits (AIStore's
    /// `json:",string"`), and members must have their JSON types. Other members
    /// (`alias`, `urls`, registered claims) are ignored. Member names are exact
    /// (lowercase), where Go's decoder would also accept other cases.
    pub fn from_claims(claims: &Map<String, Value>) -> Result<Self, AisDenied> {
        let admin = match claims.get("admin") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid("admin", "is not a boolean")),
        };
        let clusters = entries(claims, "clusters", |at, e| {
            Ok(ClusterAcl {
                id: string(e, "id", at)?,
                access: perm(e, at)?,
            })
        })?;
        let buckets = entries(claims, "buckets", |at, e| {
            let bck_at = || format!("{at}.bck");
            let bucket = match e.get("bck") {
                None | Some(Value::Null) => Bucket::new("").with_provider(""),
                Some(Value::Object(b)) => {
                    let namespace = match b.get("namespace") {
                        None | Some(Value::Null) => Namespace::default(),
                        Some(Value::Object(ns)) => {
                            let ns_at = format!("{}.namespace", bck_at());
                            Namespace::new(string(ns, "uuid", &ns_at)?, string(ns, "name", &ns_at)?)
                        }
                        Some(_) => {
                            return Err(invalid(
                                format!("{}.namespace", bck_at()),
                                "is not an object",
                            ));
                        }
                    };
                    Bucket {
                        name: string(b, "name", &bck_at())?,
                        provider: string(b, "provider", &bck_at())?,
                        namespace,
                    }
                }
                Some(_) => return Err(invalid(bck_at(), "is not an object")),
            };
            Ok(BucketAcl {
                bucket,
                access: perm(e, at)?,
            })
        })?;
        Ok(Self {
            admin,
            clusters,
            buckets,
        })
    }

    /// Whether the token's `admin` claim is true: everything is allowed.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// The `clusters` entries, in token order.
    pub fn clusters(&self) -> &[ClusterAcl] {
        &self.clusters
    }

    /// The `buckets` entries, in token order.
    pub fn buckets(&self) -> &[BucketAcl] {
        &self.buckets
    }
}

fn invalid(claim: impl Into<String>, why: &'static str) -> AisDenied {
    AisDenied::InvalidClaims {
        claim: claim.into(),
        why,
    }
}

/// The objects of the array claim `name` (missing or `null`: none), each read by `f`
/// with its position (`clusters[2]`).
fn entries<T>(
    claims: &Map<String, Value>,
    name: &str,
    mut f: impl FnMut(&str, &Map<String, Value>) -> Result<T, AisDenied>,
) -> Result<Vec<T>, AisDenied> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let at = format!("{name}[{i}]");
                match item {
                    Value::Object(e) => f(&at, e),
                    _ => Err(invalid(at, "is not an object")),
                }
            })
            .collect(),
        Some(_) => Err(invalid(name, "is not an array")),
    }
}

/// A string member (missing or `null`: empty).
fn string(obj: &Map<String, Value>, key: &str, at: &str) -> Result<String, AisDenied> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(invalid(format!("{at}.{key}"), "is not a string")),
    }
}

/// The `perm` member: a string of decimal digits (missing or `null`: no access).
fn perm(obj: &Map<String, Value>, at: &str) -> Result<Access, AisDenied> {
    let s = match obj.get("perm") {
        None | Some(Value::Null) => return Ok(Access::NONE),
        Some(Value::String(s)) => s,
        Some(Value::Number(_)) => {
            return Err(invalid(
                format!("{at}.perm"),
                "is a JSON number; AIStore writes access bits as a decimal string",
            ));
        }
        Some(_) => return Err(invalid(format!("{at}.perm"), "is not a string")),
    };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!("{at}.perm"), "is not a decimal string"));
    }
    s.parse::<u64>()
        .map(Access::from_bits)
        .map_err(|_| invalid(format!("{at}.perm"), "does not fit 64 bits"))
}
