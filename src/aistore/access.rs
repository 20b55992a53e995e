//! AIStore's access bits: `apc.AccessAttrs` in `api/apc/access.go`.

use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign, Not};
use std::str::FromStr;

/// A set of AIStore access bits (AIStore's `apc.AccessAttrs`, a 64-bit mask).
///
/// The bit values are AIStore's, in the order `api/apc/access.go` declares them (object,
/// then bucket, then cluster operations), so a `perm` string from an AIStore token means
/// the same here. The named sets are AIStore's too: [`RO`](Self::RO) (`ro`),
/// [`RW`](Self::RW) (`rw`), [`ALL`](Self::ALL) (`su`, every bit, current and future),
/// [`BUCKET_ADMIN`](Self::BUCKET_ADMIN), [`CLUSTER_RO`](Self::CLUSTER_RO) and
/// [`CLUSTER_RW`](Self::CLUSTER_RW).
///
/// It parses AIStore's names (what `ais auth add role` accepts): `ro`, `rw`, `su` and the
/// operation names (`GET`, `HEAD-OBJECT`, `LIST-BUCKETS`, ...), several separated by
/// commas, and prints the operation names the same way.
///
/// ```
/// use portcullis::aistore::Access;
///
/// assert_eq!(Access::GET.bits(), 1);
/// assert_eq!(Access::ADMIN.bits(), 1 << 17);
/// assert_eq!(Access::RO.bits(), 1 | 2 | 256 | 512); // GET, HEAD-OBJECT, HEAD-BUCKET, LIST-OBJECTS
/// assert_eq!("ro".parse::<Access>()?, Access::RO);
/// assert_eq!("GET,PUT".parse::<Access>()?, Access::GET | Access::PUT);
/// assert!(Access::RW.contains(Access::RO));
/// assert_eq!(Access::RO.to_string(), "GET,HEAD-OBJECT,HEAD-BUCKET,LIST-OBJECTS");
/// assert!("FLY".parse::<Access>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Access(u64);

/// Operation names by bit position, as AIStore's `accessOp` map names them.
const NAMES: [&str; 18] = [
    "GET",
    "HEAD-OBJECT",
    "PUT",
    "APPEND",
    "DELETE-OBJECT",
    "MOVE-OBJECT",
    "PROMOTE",
    "UPDATE-OBJECT",
    "HEAD-BUCKET",
    "LIST-OBJECTS",
    "PATCH",
    "SET-BUCKET-ACL",
    "LIST-BUCKETS",
    "SHOW-CLUSTER",
    "CREATE-BUCKET",
    "DESTROY-BUCKET",
    "MOVE-BUCKET",
    "ADMIN",
];

impl Access {
    /// Read object contents (`AceGET`, bit 0).
    pub const GET: Self = Self(1);
    /// Read object metadata (`AceObjHEAD`, `HEAD-OBJECT`).
    pub const OBJ_HEAD: Self = Self(1 << 1);
    /// Write an object (`AcePUT`).
    pub const PUT: Self = Self(1 << 2);
    /// Append to an object (`AceAPPEND`).
    pub const APPEND: Self = Self(1 << 3);
    /// Delete an object (`AceObjDELETE`, `DELETE-OBJECT`).
    pub const OBJ_DELETE: Self = Self(1 << 4);
    /// Move or rename an object (`AceObjMOVE`, `MOVE-OBJECT`).
    pub const OBJ_MOVE: Self = Self(1 << 5);
    /// Promote local files (`AcePromote`, `PROMOTE`).
    pub const PROMOTE: Self = Self(1 << 6);
    /// Update object metadata (`AceObjUpdate`, `UPDATE-OBJECT`).
    pub const OBJ_UPDATE: Self = Self(1 << 7);
    /// Read bucket metadata (`AceBckHEAD`, `HEAD-BUCKET`).
    pub const BCK_HEAD: Self = Self(1 << 8);
    /// List the objects of a bucket (`AceObjLIST`, `LIST-OBJECTS`).
    pub const OBJ_LIST: Self = Self(1 << 9);
    /// Set bucket properties (`AcePATCH`, `PATCH`).
    pub const PATCH: Self = Self(1 << 10);
    /// Set bucket permissions (`AceBckSetACL`, `SET-BUCKET-ACL`).
    pub const BCK_SET_ACL: Self = Self(1 << 11);
    /// List every bucket of the cluster (`AceListBuckets`, `LIST-BUCKETS`).
    pub const LIST_BUCKETS: Self = Self(1 << 12);
    /// View cluster information (`AceShowCluster`, `SHOW-CLUSTER`).
    pub const SHOW_CLUSTER: Self = Self(1 << 13);
    /// Create a bucket (`AceCreateBucket`, `CREATE-BUCKET`).
    pub const CREATE_BUCKET: Self = Self(1 << 14);
    /// Destroy a bucket (`AceDestroyBucket`, `DESTROY-BUCKET`).
    pub const DESTROY_BUCKET: Self = Self(1 << 15);
    /// Move or rename a bucket (`AceMoveBucket`, `MOVE-BUCKET`).
    pub const MOVE_BUCKET: Self = Self(1 << 16);
    /// Every cluster operation (`AceAdmin`, `ADMIN`, bit 17). Not the token's `admin`
    /// claim: this is one cluster-scope bit that an entry grants or not.
    pub const ADMIN: Self = Self(1 << 17);

    /// No access (`AccessNone`).
    pub const NONE: Self = Self(0);
    /// Read-only bucket access, `ro` (`AccessRO`): GET, HEAD-OBJECT, HEAD-BUCKET,
    /// LIST-OBJECTS.
    pub const RO: Self = Self(Self::GET.0 | Self::OBJ_HEAD.0 | Self::BCK_HEAD.0 | Self::OBJ_LIST.0);
    /// Read-write bucket access, `rw` (`AccessRW`): [`RO`](Self::RO) and PUT, APPEND,
    /// DELETE-OBJECT, MOVE-OBJECT.
    pub const RW: Self =
        Self(Self::RO.0 | Self::PUT.0 | Self::APPEND.0 | Self::OBJ_DELETE.0 | Self::OBJ_MOVE.0);
    /// Bucket administration (`AccessBucketAdmin`): PATCH, SET-BUCKET-ACL, UPDATE-OBJECT.
    pub const BUCKET_ADMIN: Self = Self(Self::PATCH.0 | Self::BCK_SET_ACL.0 | Self::OBJ_UPDATE.0);
    /// Read-only cluster access (`ClusterAccessRO`): LIST-BUCKETS, SHOW-CLUSTER.
    pub const CLUSTER_RO: Self = Self(Self::LIST_BUCKETS.0 | Self::SHOW_CLUSTER.0);
    /// Read-write cluster access (`ClusterAccessRW`): [`CLUSTER_RO`](Self::CLUSTER_RO)
    /// and CREATE-BUCKET, DESTROY-BUCKET, MOVE-BUCKET.
    pub const CLUSTER_RW: Self = Self(
        Self::CLUSTER_RO.0 | Self::CREATE_BUCKET.0 | Self::DESTROY_BUCKET.0 | Self::MOVE_BUCKET.0,
    );
    /// Every bit, current and future, `su` (`AccessAll`). As a grant it allows
    /// everything; as a request from a caller who is not an admin it is refused, since its
    /// upper bits belong to no scope.
    pub const ALL: Self = Self(u64::MAX);

    /// The bits checked against a cluster's entry (`ClusterAccessRW | AceAdmin` in
    /// `CheckPermissions`).
    pub const CLUSTER_SCOPE: Self = Self(Self::CLUSTER_RW.0 | Self::ADMIN.0);
    /// The bits checked against a bucket's entry, or the cluster's when the bucket has
    /// none (`AccessRW | AccessBucketAdmin | AcePromote` in `CheckPermissions`).
    pub const BUCKET_SCOPE: Self = Self(Self::RW.0 | Self::BUCKET_ADMIN.0 | Self::PROMOTE.0);

    /// The set with these bits, as a token's `perm` string holds them in decimal.
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// The bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every bit of `other` is in `self` (AIStore's `Has`).
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The bits of `self` that are not in `other`.
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// One AIStore name: `ro`, `rw`, `su`, or an operation name (case-sensitive, as
    /// AIStore's `StrToAccess`).
    fn by_name(name: &str) -> Option<Self> {
        match name {
            "ro" => Some(Self::RO),
            "rw" => Some(Self::RW),
            "su" => Some(Self::ALL),
            _ => NAMES.iter().position(|n| *n == name).map(|i| Self(1 << i)),
        }
    }
}

impl BitOr for Access {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for Access {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Access {
    type Output = Self;

    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl Not for Access {
    type Output = Self;

    fn not(self) -> Self {
        Self(!self.0)
    }
}

/// The operation names, separated by commas, in AIStore's order (`Describe(true)`);
/// `su` for every bit, `none` for none; bits AIStore does not name as one decimal number.
impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ALL {
            return f.write_str("su");
        }
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { "," };
            first = false;
            f.write_str(s)
        };
        for (i, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                sep(f)?;
                f.write_str(name)?;
            }
        }
        let rest = self.0 >> NAMES.len() << NAMES.len();
        if rest != 0 {
            sep(f)?;
            write!(f, "{rest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Access({self})")
    }
}

/// A name that is not one of AIStore's access names.
///
/// ```
/// use portcullis::aistore::Access;
///
/// let err = "GET,get".parse::<Access>().unwrap_err();
/// assert_eq!(err.to_string(), "`get` is not an AIStore access name (ro, rw, su, GET, HEAD-OBJECT, PUT, ...)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAccess(String);

impl fmt::Display for UnknownAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not an AIStore access name (ro, rw, su, GET, HEAD-OBJECT, PUT, ...)",
            self.0
        )
    }
}

impl std::error::Error for UnknownAccess {}

impl FromStr for Access {
    type Err = UnknownAccess;

    /// AIStore's names, several separated by commas (spaces around them are ignored);
    /// the empty string is [`Access::NONE`], as in AIStore.
    fn from_str(s: &str) -> Result<Self, UnknownAccess> {
        if s.trim().is_empty() {
            return Ok(Self::NONE);
        }
        s.split(',').try_fold(Self::NONE, |acc, name| {
            let name = name.trim();
            Self::by_name(name)
                .map(|a| acc | a)
                .ok_or_else(|| UnknownAccess(name.to_owned()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_bits_agree() {
        for (i, name) in NAMES.iter().enumerate() {
            let a: Access = name.parse().unwrap();
            assert_eq!(a.bits(), 1 << i, "{name}");
            assert_eq!(a.to_string(), *name);
        }
    }

    #[test]
    fn scopes_cover_every_named_bit_once() {
        assert_eq!(Access::CLUSTER_SCOPE & Access::BUCKET_SCOPE, Access::NONE);
        assert_eq!(
            (Access::CLUSTER_SCOPE | Access::BUCKET_SCOPE).bits(),
            (1 << NAMES.len()) - 1
        );
    }

    #[test]
    fn display_of_unnamed_bits() {
        assert_eq!(Access::from_bits(1 | 1 << 20).to_string(), "GET,1048576");
        assert_eq!(Access::ALL.to_string(), "su");
        assert_eq!(Access::NONE.to_string(), "none");
    }
}
