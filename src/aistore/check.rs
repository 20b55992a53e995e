//! AIStore's check of a token's permission claims (`CheckPermissions`, `aclForCluster`
//! and `aclForBucket` in `cmd/authn/tok/token.go`), and its refusals.

use super::{Access, AclEntry, AisClaims, AisDenied, Bucket};

impl AisClaims {
    /// The entry for `cluster`: its own (the first, as AIStore scans), else the default
    /// one (the last with an empty id, as AIStore's scan keeps it).
    fn cluster_entry(&self, cluster: &str) -> Option<(Access, AclEntry)> {
        let mut default = None;
        for e in &self.clusters {
            if e.id == cluster {
                let by = if cluster.is_empty() {
                    AclEntry::DefaultCluster
                } else {
                    AclEntry::Cluster
                };
                return Some((e.access, by));
            }
            if e.id.is_empty() {
                default = Some((e.access, AclEntry::DefaultCluster));
            }
        }
        default
    }

    /// The first entry for `bucket` of `cluster`.
    fn bucket_entry(&self, cluster: &str, bucket: &Bucket) -> Option<Access> {
        if !bucket.namespace.is_global() {
            return None;
        }
        self.buckets
            .iter()
            .find(|e| {
                e.bucket.namespace.uuid == cluster
                    && e.bucket.name == bucket.name
                    && e.bucket.provider == bucket.provider
            })
            .map(|e| e.access)
    }

    /// Whether the token grants `access` on `cluster` (its id, AIStore's cluster UUID)
    /// and, for bucket bits, on `bucket`; the rules are in the [type's docs](Self).
    pub fn check(
        &self,
        cluster: &str,
        bucket: Option<&Bucket>,
        access: Access,
    ) -> Result<(), AisDenied> {
        if self.admin {
            return Ok(());
        }
        if access.is_empty() {
            return Err(AisDenied::EmptyAccess);
        }
        let cluster_bits = access & Access::CLUSTER_SCOPE;
        let bucket_bits = access & Access::BUCKET_SCOPE;
        let extra = access.without(Access::CLUSTER_SCOPE | Access::BUCKET_SCOPE);
        if !extra.is_empty() {
            return Err(AisDenied::UnknownBits { bits: extra });
        }
        let cluster_entry = self.cluster_entry(cluster);
        if !cluster_bits.is_empty() {
            // AIStore's order: no entry first, then the empty id, then the bits.
            let Some((granted, entry)) = cluster_entry else {
                return Err(AisDenied::Insufficient {
                    needs: cluster_bits,
                    entry: AclEntry::None,
                });
            };
            if cluster.is_empty() {
                return Err(AisDenied::ClusterWithoutId);
            }
            if !granted.contains(cluster_bits) {
                return Err(AisDenied::Insufficient {
                    needs: cluster_bits,
                    entry,
                });
            }
        }
        if bucket_bits.is_empty() {
            return Ok(());
        }
        let Some(bucket) = bucket else {
            return Err(AisDenied::NoBucket);
        };
        let (granted, entry) = match self.bucket_entry(cluster, bucket) {
            Some(granted) => (granted, AclEntry::Bucket),
            None => cluster_entry.unwrap_or((Access::NONE, AclEntry::None)),
        };
        if entry != AclEntry::None && granted.contains(bucket_bits) {
            Ok(())
        } else {
            Err(AisDenied::Insufficient {
                needs: bucket_bits,
                entry,
            })
        }
    }
}
