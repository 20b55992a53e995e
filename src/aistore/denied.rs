//! AIStore's refusals, and which entry of a token judged a request.

use std::fmt;

use super::Access;

/// Which entry of the token judged one half (cluster or bucket bits) of a request.
///
/// ```
/// use portcullis::aistore::{Access, AclEntry, AisClaims, AisDenied, Bucket};
///
/// // Read-write everywhere by default, read-only on "photos".
/// let claims = AisClaims::from_claims(serde_json::json!({
///     "clusters": [{"id": "", "perm": "63"}],
///     "buckets": [{"bck": {"name": "photos", "provider": "ais",
///                          "namespace": {"uuid": "Q8XCZ", "name": ""}}, "perm": "771"}],
/// }).as_object().unwrap())?;
/// let denied = |bucket: &str| match claims.check("Q8XCZ", Some(&Bucket::new(bucket)), Access::PROMOTE) {
///     Err(AisDenied::Insufficient { entry, .. }) => entry,
///     other => panic!("{other:?}"),
/// };
/// assert_eq!(denied("photos"), AclEntry::Bucket);
/// assert_eq!(denied("logs"), AclEntry::DefaultCluster);
/// # Ok::<(), AisDenied>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AclEntry {
    /// The token has no entry for this cluster and no default one.
    None,
    /// The cluster's own entry.
    Cluster,
    /// The default cluster entry (`id` empty).
    DefaultCluster,
    /// The bucket's entry, which overrides the cluster's for its bucket.
    Bucket,
}

/// Why AIStore's check refused a request. Each variant is one of AIStore's refusals
/// (its error text is quoted); none holds a claim value.
///
/// ```
/// use portcullis::aistore::{Access, AisClaims, AisDenied, Bucket};
///
/// let claims = AisClaims::default(); // no `admin`, no entries
/// assert_eq!(claims.check("Q8XCZ", None, Access::NONE), Err(AisDenied::EmptyAccess));
/// assert_eq!(claims.check("Q8XCZ", None, Access::GET), Err(AisDenied::NoBucket));
/// let e = claims.check("Q8XCZ", Some(&Bucket::new("b")), Access::ALL).unwrap_err();
/// assert!(matches!(e, AisDenied::UnknownBits { .. }));
/// let e = claims.check("Q8XCZ", Some(&Bucket::new("b")), Access::GET).unwrap_err();
/// assert_eq!(e.to_string(), "insufficient permissions: needs GET; the token has no entry for this cluster and no default one");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AisDenied {
    /// No bits were requested ("empty permissions requested").
    EmptyAccess,
    /// Bits that are neither cluster nor bucket access were requested ("invalid
    /// permissions"), such as the upper bits of [`Access::ALL`].
    UnknownBits {
        /// The bits outside both scopes.
        bits: Access,
    },
    /// Cluster bits were requested with an empty cluster id ("requested cluster
    /// permissions without cluster ID"). As in AIStore, this is reported only when the
    /// token has a default cluster entry; without one the request is
    /// [`Insufficient`](Self::Insufficient) with [`AclEntry::None`].
    ClusterWithoutId,
    /// Bucket bits were requested without a bucket ("requested bucket permissions
    /// without a bucket").
    NoBucket,
    /// The entry that judges one half of the request does not grant all of its bits, or
    /// there is none ("insufficient permissions").
    Insufficient {
        /// The half's bits: the requested cluster bits, or the requested bucket bits.
        needs: Access,
        /// The entry that judged them.
        entry: AclEntry,
    },
    /// A policy rule cannot tell which bucket the request names, so it refuses rather
    /// than judge a bucket the backend might not read: a `provider` query parameter given
    /// twice, badly escaped or unknown, a non-empty `namespace` (namespaced buckets are
    /// not judged by these rules), or a query AIStore's Go parser would split another way
    /// (`;`, a bad escape).
    AmbiguousBucket {
        /// What made it ambiguous.
        why: &'static str,
    },
    /// The token's `admin`, `clusters` or `buckets` claim does not have AIStore's shape,
    /// so nothing is granted.
    InvalidClaims {
        /// Where: `clusters[1].perm`.
        claim: String,
        /// What is wrong, without the value.
        why: &'static str,
    },
}

impl fmt::Display for AisDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyAccess => f.write_str("empty permissions requested"),
            Self::UnknownBits { bits } => write!(
                f,
                "invalid permissions requested: {bits} are neither cluster nor bucket access"
            ),
            Self::ClusterWithoutId => {
                f.write_str("requested cluster permissions without cluster ID")
            }
            Self::NoBucket => f.write_str("requested bucket permissions without a bucket"),
            Self::AmbiguousBucket { why } => {
                write!(
                    f,
                    "the request does not name one bucket unambiguously: {why}"
                )
            }
            Self::Insufficient { needs, entry } => {
                let by = match entry {
                    AclEntry::None => "the token has no entry for this cluster and no default one",
                    AclEntry::Cluster => "the cluster's entry does not grant them",
                    AclEntry::DefaultCluster => "the default cluster entry does not grant them",
                    AclEntry::Bucket => "the bucket's entry does not grant them",
                };
                write!(f, "insufficient permissions: needs {needs}; {by}")
            }
            Self::InvalidClaims { claim, why } => {
                write!(f, "invalid AIStore claims: `{claim}` {why}")
            }
        }
    }
}

impl std::error::Error for AisDenied {}
