//! AIStore permission claims: tokens shaped as AIStore's AuthN issues them
//! (`cmd/authn/mgr.go` `buildClaims`: `clusters`, `buckets` only when some, `admin`, then
//! `iss`, `sub`, `aud`, `exp`, `iat`; each `perm` a decimal string), checked with
//! AIStore's `CheckPermissions` rules through `AisClaims`, the policy's AIStore rules and
//! the `AisAuthz` extractor.

mod common;
#[allow(unreachable_pub)]
mod python_support;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use http::{Method, Request};
use portcullis::aistore::{Access, AclEntry, AisAuthz, AisClaims, AisDenied, Bucket, Namespace};
use portcullis::{
    AuthError, AuthLayer, AuthRejection, Authenticator, Policy, Principal, RouteReason, Unmatched,
};
use serde_json::{Value, json};
use tower::ServiceExt;

use common::{NOW, SECRET, assert_rejected, hs256, send, split};

/// The cluster this service fronts (an AIStore cluster UUID).
const CLU: &str = "Q8XCZf1Ae";
/// Another registered cluster.
const OTHER: &str = "kB3m9tPx";

const FORBIDDEN: (u16, Option<&str>, &str, &str) = (
    403,
    Some(r#"Bearer realm="api", error="insufficient_scope""#),
    "insufficient_scope",
    "Insufficient permissions",
);

/// A cluster entry as AuthN writes it (`perm` left out when zero: `omitempty`).
fn clu(id: &str, perm: Access) -> Value {
    let mut e = json!({"id": id});
    if !perm.is_empty() {
        e["perm"] = json!(perm.bits().to_string());
    }
    e
}

/// A cluster entry with the alias a role gave it.
fn clu_alias(id: &str, alias: &str, perm: Access) -> Value {
    let mut e = clu(id, perm);
    e["alias"] = json!(alias);
    e
}

/// A bucket entry as AuthN writes it: the namespace's UUID is the cluster.
fn bck(cluster: &str, name: &str, provider: &str, perm: Access) -> Value {
    json!({
        "bck": {"name": name, "provider": provider, "namespace": {"uuid": cluster, "name": ""}},
        "perm": perm.bits().to_string(),
    })
}

/// The claims of a user's token: `clusters` (null when none), `buckets` (left out when
/// none), `admin: false`, and the registered claims, `aud` being the cluster ids named.
fn user(clusters: Vec<Value>, buckets: Vec<Value>) -> Value {
    let mut aud: Vec<String> = clusters
        .iter()
        .filter_map(|c| c["id"].as_str())
        .chain(
            buckets
                .iter()
                .filter_map(|b| b["bck"]["namespace"]["uuid"].as_str()),
        )
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    aud.sort();
    aud.dedup();
    if aud.is_empty() {
        aud.push(CLU.to_owned());
    }
    let mut c = json!({
        "clusters": if clusters.is_empty() { Value::Null } else { Value::Array(clusters) },
        "admin": false,
        "iss": "https://authn.example:52001",
        "sub": "alice",
        "aud": aud,
        "exp": NOW + 3600,
        "iat": NOW,
    });
    if !buckets.is_empty() {
        c["buckets"] = Value::Array(buckets);
    }
    c
}

/// An admin's token: no ACLs, `aud` every registered cluster.
fn admin() -> Value {
    json!({
        "clusters": null, "admin": true, "iss": "https://authn.example:52001",
        "sub": "admin", "aud": [CLU, OTHER], "exp": NOW + 3600, "iat": NOW,
    })
}

fn authenticator() -> Authenticator {
    Authenticator::builder()
        .hmac_secret(SECRET)
        .audience(CLU)
        .clock(|| NOW)
        .build()
        .unwrap()
}

/// Verifies the token as the layer would, with any of its audiences.
fn principal(claims: &Value) -> Principal {
    let aud = match &claims["aud"] {
        Value::Array(a) => a[0].as_str().unwrap().to_owned(),
        Value::String(s) => s.clone(),
        _ => CLU.to_owned(),
    };
    Authenticator::builder()
        .hmac_secret(SECRET)
        .audience(aud)
        .clock(|| NOW)
        .build()
        .unwrap()
        .verify(&hs256().sign(claims).unwrap())
        .unwrap()
}

fn photos() -> Bucket {
    Bucket::new("photos")
}

fn insufficient(needs: Access, entry: AclEntry) -> Result<(), AisDenied> {
    Err(AisDenied::Insufficient { needs, entry })
}

struct Case {
    name: &'static str,
    token: Value,
    cluster: &'static str,
    bucket: Option<Bucket>,
    access: Access,
    want: Result<(), AisDenied>,
}

fn case(
    name: &'static str,
    token: Value,
    cluster: &'static str,
    bucket: Option<Bucket>,
    access: Access,
    want: Result<(), AisDenied>,
) -> Case {
    Case {
        name,
        token,
        cluster,
        bucket,
        access,
        want,
    }
}

fn cases() -> Vec<Case> {
    use AclEntry::{Bucket as B, Cluster as C, DefaultCluster as D, None as N};
    let ro_photos = || user(vec![], vec![bck(CLU, "photos", "ais", Access::RO)]);
    vec![
        // 1. admin allows everything.
        case(
            "admin: every bit on a bucket",
            admin(),
            CLU,
            Some(photos()),
            Access::ALL,
            Ok(()),
        ),
        case(
            "admin: bucket bits without a bucket",
            admin(),
            CLU,
            None,
            Access::PUT,
            Ok(()),
        ),
        case(
            "admin: cluster bits, empty cluster id",
            admin(),
            "",
            None,
            Access::CREATE_BUCKET,
            Ok(()),
        ),
        // 2. no ACLs: nothing.
        case(
            "no ACLs: read",
            user(vec![], vec![]),
            CLU,
            Some(photos()),
            Access::GET,
            insufficient(Access::GET, N),
        ),
        case(
            "no ACLs: list buckets",
            user(vec![], vec![]),
            CLU,
            None,
            Access::LIST_BUCKETS,
            insufficient(Access::LIST_BUCKETS, N),
        ),
        // 3. bucket read vs write.
        case(
            "bucket ro: GET",
            ro_photos(),
            CLU,
            Some(photos()),
            Access::GET,
            Ok(()),
        ),
        case(
            "bucket ro: the whole ro set",
            ro_photos(),
            CLU,
            Some(photos()),
            Access::RO,
            Ok(()),
        ),
        case(
            "bucket ro: PUT",
            ro_photos(),
            CLU,
            Some(photos()),
            Access::PUT,
            insufficient(Access::PUT, B),
        ),
        case(
            "bucket ro: DELETE-OBJECT",
            ro_photos(),
            CLU,
            Some(photos()),
            Access::OBJ_DELETE,
            insufficient(Access::OBJ_DELETE, B),
        ),
        case(
            "bucket rw: PUT",
            user(vec![], vec![bck(CLU, "photos", "ais", Access::RW)]),
            CLU,
            Some(photos()),
            Access::PUT,
            Ok(()),
        ),
        // 4. another cluster.
        case(
            "cluster rw on another cluster",
            user(vec![clu(OTHER, Access::RW)], vec![]),
            CLU,
            Some(photos()),
            Access::GET,
            insufficient(Access::GET, N),
        ),
        case(
            "bucket entry of another cluster",
            user(vec![], vec![bck(OTHER, "photos", "ais", Access::RW)]),
            CLU,
            Some(photos()),
            Access::GET,
            insufficient(Access::GET, N),
        ),
        // 5. another bucket.
        case(
            "bucket entry of another bucket",
            ro_photos(),
            CLU,
            Some(Bucket::new("logs")),
            Access::GET,
            insufficient(Access::GET, N),
        ),
        // 6. cluster bits.
        case(
            "cluster ro: list buckets",
            user(vec![clu(CLU, Access::CLUSTER_RO)], vec![]),
            CLU,
            None,
            Access::LIST_BUCKETS,
            Ok(()),
        ),
        case(
            "cluster ro: create bucket",
            user(vec![clu(CLU, Access::CLUSTER_RO)], vec![]),
            CLU,
            None,
            Access::CREATE_BUCKET,
            insufficient(Access::CREATE_BUCKET, C),
        ),
        case(
            "cluster rw: destroy bucket",
            user(vec![clu_alias(CLU, "prod", Access::CLUSTER_RW)], vec![]),
            CLU,
            None,
            Access::DESTROY_BUCKET,
            Ok(()),
        ),
        case(
            "ADMIN bit grants ADMIN",
            user(vec![clu(CLU, Access::ADMIN)], vec![]),
            CLU,
            None,
            Access::ADMIN,
            Ok(()),
        ),
        case(
            "ADMIN bit is one bit, not the admin claim",
            user(vec![clu(CLU, Access::ADMIN)], vec![]),
            CLU,
            None,
            Access::CREATE_BUCKET,
            insufficient(Access::CREATE_BUCKET, C),
        ),
        case(
            "cluster bits come from the cluster entry only",
            user(vec![], vec![bck(CLU, "photos", "ais", Access::CLUSTER_RW)]),
            CLU,
            Some(photos()),
            Access::LIST_BUCKETS,
            insufficient(Access::LIST_BUCKETS, N),
        ),
        // 7. bucket bits without a bucket.
        case(
            "bucket bits without a bucket",
            user(vec![clu(CLU, Access::RW)], vec![]),
            CLU,
            None,
            Access::GET,
            Err(AisDenied::NoBucket),
        ),
        // 8. a bucket entry overrides the cluster entry, both ways.
        case(
            "bucket entry grants more than the cluster's",
            user(
                vec![clu(CLU, Access::RO)],
                vec![bck(CLU, "photos", "ais", Access::RW)],
            ),
            CLU,
            Some(photos()),
            Access::PUT,
            Ok(()),
        ),
        case(
            "bucket entry grants less than the cluster's",
            user(
                vec![clu(CLU, Access::RW)],
                vec![bck(CLU, "photos", "ais", Access::RO)],
            ),
            CLU,
            Some(photos()),
            Access::PUT,
            insufficient(Access::PUT, B),
        ),
        case(
            "without a bucket entry the cluster's applies",
            user(
                vec![clu(CLU, Access::RW)],
                vec![bck(CLU, "photos", "ais", Access::RO)],
            ),
            CLU,
            Some(Bucket::new("logs")),
            Access::PUT,
            Ok(()),
        ),
        // 9. the default cluster entry.
        case(
            "default entry: read anywhere",
            user(vec![clu("", Access::RO)], vec![]),
            CLU,
            Some(photos()),
            Access::GET,
            Ok(()),
        ),
        case(
            "default entry: write refused",
            user(vec![clu("", Access::RO)], vec![]),
            CLU,
            Some(photos()),
            Access::PUT,
            insufficient(Access::PUT, D),
        ),
        case(
            "default entry: cluster bits",
            user(vec![clu("", Access::CLUSTER_RO)], vec![]),
            OTHER,
            None,
            Access::SHOW_CLUSTER,
            Ok(()),
        ),
        // 10. an exact entry beats the default, both ways.
        case(
            "exact ro beats default rw",
            user(vec![clu("", Access::RW), clu(CLU, Access::RO)], vec![]),
            CLU,
            Some(photos()),
            Access::PUT,
            insufficient(Access::PUT, C),
        ),
        case(
            "exact rw beats default ro",
            user(vec![clu("", Access::RO), clu(CLU, Access::RW)], vec![]),
            CLU,
            Some(photos()),
            Access::PUT,
            Ok(()),
        ),
        case(
            "default applies to the other cluster",
            user(vec![clu("", Access::RO), clu(CLU, Access::RW)], vec![]),
            OTHER,
            Some(photos()),
            Access::PUT,
            insufficient(Access::PUT, D),
        ),
        case(
            "exact entry without perm grants nothing",
            user(vec![clu("", Access::RW), clu(CLU, Access::NONE)], vec![]),
            CLU,
            Some(photos()),
            Access::GET,
            insufficient(Access::GET, C),
        ),
        // 11. cluster bits without a cluster id.
        case(
            "cluster bits, empty id, default entry",
            user(vec![clu("", Access::CLUSTER_RW)], vec![]),
            "",
            None,
            Access::LIST_BUCKETS,
            Err(AisDenied::ClusterWithoutId),
        ),
        case(
            "cluster bits, empty id, no default entry (AIStore checks the entry first)",
            user(vec![clu(CLU, Access::CLUSTER_RW)], vec![]),
            "",
            None,
            Access::LIST_BUCKETS,
            insufficient(Access::LIST_BUCKETS, N),
        ),
        // 12. empty and unknown bits.
        case(
            "empty permissions",
            user(vec![clu(CLU, Access::ALL)], vec![]),
            CLU,
            Some(photos()),
            Access::NONE,
            Err(AisDenied::EmptyAccess),
        ),
        case(
            "unknown bit",
            user(vec![clu(CLU, Access::ALL)], vec![]),
            CLU,
            Some(photos()),
            Access::from_bits(1 << 18),
            Err(AisDenied::UnknownBits {
                bits: Access::from_bits(1 << 18),
            }),
        ),
        case(
            "su requested by a user",
            user(vec![clu(CLU, Access::ALL)], vec![]),
            CLU,
            Some(photos()),
            Access::ALL,
            Err(AisDenied::UnknownBits {
                bits: Access::from_bits(u64::MAX << 18),
            }),
        ),
        case(
            "su granted covers every named bit",
            user(vec![clu(CLU, Access::ALL)], vec![]),
            CLU,
            Some(photos()),
            Access::CLUSTER_SCOPE | Access::BUCKET_SCOPE,
            Ok(()),
        ),
        // 13. the provider must match.
        case(
            "provider mismatch",
            user(vec![], vec![bck(CLU, "photos", "aws", Access::RW)]),
            CLU,
            Some(photos()),
            Access::GET,
            insufficient(Access::GET, N),
        ),
        case(
            "provider match",
            user(vec![], vec![bck(CLU, "photos", "aws", Access::RW)]),
            CLU,
            Some(photos().with_provider("aws")),
            Access::GET,
            Ok(()),
        ),
        case(
            "provider alias is not resolved by check",
            user(vec![], vec![bck(CLU, "photos", "aws", Access::RW)]),
            CLU,
            Some(photos().with_provider("s3")),
            Access::GET,
            insufficient(Access::GET, N),
        ),
        case(
            "a bucket in a namespace never matches a bucket entry",
            user(
                vec![clu(CLU, Access::RO)],
                vec![bck(CLU, "photos", "ais", Access::RW)],
            ),
            CLU,
            Some(photos().with_namespace(Namespace::new(OTHER, "ns"))),
            Access::PUT,
            insufficient(Access::PUT, C),
        ),
        // 14. a mixed request, split by scope.
        case(
            "mixed: cluster half by the cluster entry, bucket half by the bucket entry",
            user(
                vec![clu(CLU, Access::LIST_BUCKETS)],
                vec![bck(CLU, "photos", "ais", Access::GET)],
            ),
            CLU,
            Some(photos()),
            Access::LIST_BUCKETS | Access::GET,
            Ok(()),
        ),
        case(
            "mixed: the cluster half fails first",
            user(
                vec![clu(CLU, Access::RO)],
                vec![bck(CLU, "photos", "ais", Access::ALL)],
            ),
            CLU,
            Some(photos()),
            Access::LIST_BUCKETS | Access::PUT,
            insufficient(Access::LIST_BUCKETS, C),
        ),
        case(
            "mixed: the bucket half fails on its entry",
            user(
                vec![clu(CLU, Access::CLUSTER_RO | Access::RW)],
                vec![bck(CLU, "photos", "ais", Access::RO)],
            ),
            CLU,
            Some(photos()),
            Access::LIST_BUCKETS | Access::PUT,
            insufficient(Access::PUT, B),
        ),
        case(
            "mixed: bucket half without a bucket",
            user(vec![clu(CLU, Access::CLUSTER_RO | Access::RW)], vec![]),
            CLU,
            None,
            Access::LIST_BUCKETS | Access::GET,
            Err(AisDenied::NoBucket),
        ),
    ]
}

#[test]
fn check_follows_aistore_rule_by_rule() {
    let cases = cases();
    assert!(cases.len() >= 20);
    for c in cases {
        let p = principal(&c.token);
        let got = AisClaims::from_principal(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name))
            .check(c.cluster, c.bucket.as_ref(), c.access);
        assert_eq!(got, c.want, "{}", c.name);
    }
}

#[test]
fn malformed_claims_are_refusals_with_reasons() {
    let bad = |name: &str, mutate: &dyn Fn(&mut Value), claim: &str| {
        let mut t = user(
            vec![clu(CLU, Access::RW)],
            vec![bck(CLU, "photos", "ais", Access::RO)],
        );
        mutate(&mut t);
        let got = AisClaims::from_principal(&principal(&t));
        match got {
            Err(AisDenied::InvalidClaims { claim: at, why }) => {
                assert_eq!(at, claim, "{name}");
                assert!(!why.is_empty());
            }
            other => panic!("{name}: {other:?}"),
        }
    };
    bad(
        "perm as a number",
        &|t| t["clusters"][0]["perm"] = json!(6),
        "clusters[0].perm",
    );
    bad(
        "perm not decimal",
        &|t| t["clusters"][0]["perm"] = json!("0x3"),
        "clusters[0].perm",
    );
    bad(
        "perm signed",
        &|t| t["buckets"][0]["perm"] = json!("-1"),
        "buckets[0].perm",
    );
    bad(
        "perm empty",
        &|t| t["buckets"][0]["perm"] = json!(""),
        "buckets[0].perm",
    );
    bad(
        "perm too large",
        &|t| t["buckets"][0]["perm"] = json!("18446744073709551616"),
        "buckets[0].perm",
    );
    bad("admin a string", &|t| t["admin"] = json!("true"), "admin");
    bad(
        "clusters an object",
        &|t| t["clusters"] = json!({"id": CLU}),
        "clusters",
    );
    bad(
        "a null entry",
        &|t| t["clusters"] = json!([null]),
        "clusters[0]",
    );
    bad(
        "id a number",
        &|t| t["clusters"][0]["id"] = json!(7),
        "clusters[0].id",
    );
    bad(
        "bck a string",
        &|t| t["buckets"][0]["bck"] = json!("photos"),
        "buckets[0].bck",
    );
    bad(
        "namespace a string",
        &|t| t["buckets"][0]["bck"]["namespace"] = json!(CLU),
        "buckets[0].bck.namespace",
    );
    bad(
        "provider a number",
        &|t| t["buckets"][0]["bck"]["provider"] = json!(1),
        "buckets[0].bck.provider",
    );

    // The largest value that fits is every bit; leading zeros are digits (Go's ParseUint).
    let mut t = user(vec![clu(CLU, Access::RW)], vec![]);
    t["clusters"][0]["perm"] = json!("18446744073709551615");
    assert!(
        AisClaims::from_principal(&principal(&t))
            .unwrap()
            .check(CLU, None, Access::CLUSTER_RW)
            .is_ok()
    );
    t["clusters"][0]["perm"] = json!("0004");
    let c = AisClaims::from_principal(&principal(&t)).unwrap();
    assert_eq!(c.clusters()[0].access(), Access::PUT);
    // A reason never holds a claim value.
    let mut t = user(vec![clu(CLU, Access::RW)], vec![]);
    t["clusters"][0]["perm"] = json!("secret-value");
    let e = AisClaims::from_principal(&principal(&t)).unwrap_err();
    assert!(!e.to_string().contains("secret-value"), "{e}");
    assert_eq!(
        e.to_string(),
        "invalid AIStore claims: `clusters[0].perm` is not a decimal string"
    );
}

#[test]
fn zero_values_as_go_decodes_them() {
    // No `perm` (omitempty), `null` members, a missing `id`: zero values, as in AIStore.
    let t = json!({"clusters": [{"perm": Access::RO.bits().to_string()}], "buckets": null,
                   "admin": null, "sub": "bob", "aud": CLU, "exp": NOW + 60});
    let c = AisClaims::from_principal(&principal(&t)).unwrap();
    assert!(!c.is_admin());
    assert_eq!(c.clusters()[0].id(), "");
    assert_eq!(c.check(OTHER, Some(&photos()), Access::GET), Ok(()));
    // Member names are exact: Go's decoder would take `Admin`, we do not.
    let t = json!({"Admin": true, "sub": "eve", "aud": CLU, "exp": NOW + 60});
    let c = AisClaims::from_principal(&principal(&t)).unwrap();
    assert_eq!(
        c.check(CLU, None, Access::LIST_BUCKETS),
        insufficient(Access::LIST_BUCKETS, AclEntry::None)
    );
}

#[test]
fn reasons_read_like_aistore_errors() {
    let cases = [
        (AisDenied::EmptyAccess, "empty permissions requested"),
        (
            AisDenied::NoBucket,
            "requested bucket permissions without a bucket",
        ),
        (
            AisDenied::ClusterWithoutId,
            "requested cluster permissions without cluster ID",
        ),
        (
            AisDenied::UnknownBits {
                bits: Access::from_bits(1 << 18),
            },
            "invalid permissions requested: 262144 are neither cluster nor bucket access",
        ),
        (
            AisDenied::Insufficient {
                needs: Access::PUT | Access::GET,
                entry: AclEntry::Bucket,
            },
            "insufficient permissions: needs GET,PUT; the bucket's entry does not grant them",
        ),
    ];
    for (e, text) in cases {
        assert_eq!(e.to_string(), text);
    }
}

// ---- the policy: AIStore rules on `{cluster}` / `{bucket}` path segments -------------

fn ais_policy() -> Policy {
    Policy::builder()
        .allow_ais(
            "GET",
            "/v1/clusters/{cluster}/buckets/{bucket}/objects/{*object}",
            Access::GET,
        )
        .allow_ais(
            "PUT",
            "/v1/clusters/{cluster}/buckets/{bucket}/objects/{*object}",
            Access::PUT,
        )
        .allow_ais(
            "GET",
            "/v1/clusters/{cluster}/buckets",
            Access::LIST_BUCKETS,
        )
        .allow_ais(
            "DELETE",
            "/v1/{provider}/{bucket}",
            Access::DESTROY_BUCKET | Access::BCK_HEAD,
        )
        .allow("*", "/v1/clusters/**", ["ops"])
        .ais_cluster(CLU)
        .unmatched(Unmatched::Authenticated)
        .build()
        .unwrap()
}

fn ais_app(policy: Policy) -> Router {
    Router::new()
        .fallback(|| async { "ok" })
        .layer(AuthLayer::new(authenticator(), policy).attach_errors())
}

fn bearer(claims: &Value) -> String {
    format!("Bearer {}", hs256().sign(claims).unwrap())
}

#[tokio::test]
async fn policy_rules_answer_through_the_layer() {
    let app = ais_app(ais_policy());
    let reader = bearer(&user(
        vec![clu(CLU, Access::CLUSTER_RO)],
        vec![
            bck(CLU, "photos", "ais", Access::RO),
            bck(CLU, "logs", "aws", Access::DESTROY_BUCKET),
        ],
    ));
    let obj = format!("/v1/clusters/{CLU}/buckets/photos/objects/2024/a.jpg");
    let cases: Vec<(&str, String, u16)> = vec![
        ("GET", obj.clone(), 200),
        ("HEAD", obj.clone(), 200),
        ("PUT", obj.clone(), 403),
        (
            "GET",
            format!("/v1/clusters/{CLU}/buckets/private/objects/a.jpg"),
            403,
        ),
        (
            "GET",
            format!("/v1/clusters/{OTHER}/buckets/photos/objects/a.jpg"),
            403,
        ),
        ("GET", format!("/v1/clusters/{CLU}/buckets"), 200),
        ("GET", format!("/v1/clusters/{OTHER}/buckets"), 403),
        // `{provider}`: AIStore's alias `s3` is `aws`; the bucket entry lacks HEAD-BUCKET.
        ("DELETE", "/v1/s3/logs".to_owned(), 403),
        // A route no rule names: the unmatched default.
        ("GET", "/v1/health".to_owned(), 200),
    ];
    for (method, path, want) in cases {
        let got = send(&app, method, &path, Some(&reader)).await;
        if want == 403 {
            assert_rejected(&got, FORBIDDEN.0, FORBIDDEN.1, FORBIDDEN.2, FORBIDDEN.3);
        } else {
            assert_eq!(got.0, want, "{method} {path}: {:?}", got.2);
        }
    }
    // A role an ordinary rule names still passes (roles and AIStore access add up).
    let mut ops = user(vec![], vec![]);
    ops["role"] = json!("ops");
    assert_eq!(send(&app, "PUT", &obj, Some(&bearer(&ops))).await.0, 200);
    // An admin token passes every AIStore rule.
    let admin_token = bearer(&admin());
    assert_eq!(send(&app, "PUT", &obj, Some(&admin_token)).await.0, 200);
    assert_eq!(
        send(&app, "DELETE", "/v1/gcp/x", Some(&admin_token))
            .await
            .0,
        200
    );
    // With the right bits on the aliased provider, it passes.
    let deleter = bearer(&user(
        vec![],
        vec![bck(
            CLU,
            "logs",
            "aws",
            Access::DESTROY_BUCKET | Access::BCK_HEAD,
        )],
    ));
    // DESTROY-BUCKET is a cluster bit: it needs the cluster's entry, not the bucket's.
    assert_eq!(
        send(&app, "DELETE", "/v1/s3/logs", Some(&deleter)).await.0,
        403
    );
    let deleter = bearer(&user(
        vec![clu(CLU, Access::DESTROY_BUCKET)],
        vec![bck(CLU, "logs", "aws", Access::BCK_HEAD)],
    ));
    assert_eq!(
        send(&app, "DELETE", "/v1/s3/logs", Some(&deleter)).await.0,
        200
    );
    assert_eq!(
        send(&app, "DELETE", "/v1/ais/logs", Some(&deleter)).await.0,
        403
    );
}

#[tokio::test]
async fn a_refusal_carries_aistores_reason_for_the_logs_only() {
    let app = ais_app(ais_policy());
    let token = bearer(&user(vec![], vec![bck(CLU, "photos", "ais", Access::RO)]));
    let req = Request::put(format!("/v1/clusters/{CLU}/buckets/photos/objects/a.jpg"))
        .header("authorization", &token)
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let err = res.extensions().get::<AuthError>().cloned().unwrap();
    let got = split(res).await;
    assert_rejected(&got, FORBIDDEN.0, FORBIDDEN.1, FORBIDDEN.2, FORBIDDEN.3);
    assert!(
        err.to_string().contains("ais rule 1 (PUT /v1/clusters/{cluster}/buckets/{bucket}/objects/{*object}): insufficient permissions: needs PUT; the bucket's entry does not grant them"),
        "{err}"
    );
}

#[test]
fn decisions_name_the_ais_rule() {
    let policy = ais_policy();
    let p = principal(&user(vec![clu("", Access::RO)], vec![]));
    let path = format!("/v1/clusters/{CLU}/buckets/photos/objects/a.jpg");
    let d = policy.decide(&p, &policy.target(&Method::GET, &path).unwrap());
    assert!(d.is_allowed());
    assert_eq!(
        d.reason(),
        &RouteReason::Extension {
            family: "ais",
            index: 0,
            methods: "GET".into(),
            pattern: "/v1/clusters/{cluster}/buckets/{bucket}/objects/{*object}".into(),
        }
    );
    let d = policy.decide(&p, &policy.target(&Method::PUT, &path).unwrap());
    assert!(!d.is_allowed());
    match d.reason() {
        RouteReason::ExtensionDenied {
            family: "ais",
            index,
            refusal,
            ..
        } => {
            assert_eq!(*index, 1);
            assert_eq!(
                refusal.detail::<AisDenied>(),
                Some(&AisDenied::Insufficient {
                    needs: Access::PUT,
                    entry: AclEntry::DefaultCluster
                })
            );
        }
        other => panic!("{other:?}"),
    }
    // Malformed claims: refused with the reason, never a panic.
    let mut t = user(vec![clu(CLU, Access::RW)], vec![]);
    t["clusters"][0]["perm"] = json!(7);
    let d = policy.decide(&principal(&t), &policy.target(&Method::GET, &path).unwrap());
    assert!(matches!(
        d.reason(),
        RouteReason::ExtensionDenied {
            family: "ais",
            refusal,
            ..
        } if matches!(refusal.detail::<AisDenied>(), Some(AisDenied::InvalidClaims { .. }))
    ));
}

#[tokio::test]
async fn rules_apply_under_the_url_prefix_and_decode_segments() {
    let policy = Policy::builder()
        .allow_ais("GET", "/v1/objects/{bucket}/{*object}", Access::GET)
        .ais_cluster(CLU)
        .url_prefix("/internal")
        .build()
        .unwrap();
    let app = ais_app(policy);
    let token = bearer(&user(
        vec![],
        vec![bck(CLU, "my-photos", "ais", Access::RO)],
    ));
    assert_eq!(
        send(&app, "GET", "/v1/objects/my-photos/a", Some(&token))
            .await
            .0,
        200
    );
    assert_eq!(
        send(
            &app,
            "GET",
            "/internal/v1/objects/my-photos/a",
            Some(&token)
        )
        .await
        .0,
        200
    );
    // `%2D` is `-`: the handler's `Path` sees `my-photos`, and so does the rule.
    assert_eq!(
        send(&app, "GET", "/v1/objects/my%2Dphotos/a", Some(&token))
            .await
            .0,
        200
    );
    assert_eq!(
        send(&app, "GET", "/v1/objects/other/a", Some(&token))
            .await
            .0,
        403
    );
    // A route the AIStore rule names is named: the unmatched default does not open it.
    let open = Policy::builder()
        .allow_ais("GET", "/v1/objects/{bucket}/{*object}", Access::GET)
        .ais_cluster(CLU)
        .unmatched(Unmatched::Authenticated)
        .build()
        .unwrap();
    let app = ais_app(open);
    assert_eq!(
        send(&app, "GET", "/v1/objects/other/a", Some(&token))
            .await
            .0,
        403
    );
    assert_eq!(send(&app, "GET", "/v1/other", Some(&token)).await.0, 200);
    // No token: 401 as always.
    assert_eq!(
        send(&app, "GET", "/v1/objects/my-photos/a", None).await.0,
        401
    );
}

#[test]
fn rules_that_can_never_pass_are_refused_at_build() {
    let err = |b: portcullis::PolicyBuilder| b.build().unwrap_err();
    let e = err(Policy::builder()
        .allow_ais("GET", "/v1/{bucket}", Access::NONE)
        .ais_cluster(CLU));
    assert_eq!(e.setting(), "ais rule 0 (GET /v1/{bucket})");
    assert!(e.to_string().contains("no access bits"), "{e}");
    let e = err(Policy::builder()
        .allow_ais("GET", "/v1/{bucket}", Access::ALL)
        .ais_cluster(CLU));
    assert!(e.to_string().contains("neither cluster nor bucket"), "{e}");
    let e = err(Policy::builder()
        .allow_ais("GET", "/v1/buckets", Access::RO)
        .ais_cluster(CLU));
    assert!(e.to_string().contains("no `{bucket}` segment"), "{e}");
    let e = err(Policy::builder().allow_ais("GET", "/v1/buckets", Access::LIST_BUCKETS));
    assert!(e.to_string().contains("needs a cluster"), "{e}");
    let e = err(Policy::builder().allow_ais("get", "/v1/{cluster}", Access::LIST_BUCKETS));
    assert!(e.to_string().contains("capitals"), "{e}");
    let e = err(Policy::builder().public_prefix("/v1").allow_ais(
        "GET",
        "/v1/{cluster}",
        Access::LIST_BUCKETS,
    ));
    assert_eq!(e.setting(), "ais rule 0 (GET /v1/{cluster})");
    assert!(e.to_string().contains("public prefix `/v1`"), "{e}");
    assert!(
        Policy::builder()
            .allow_ais("GET", "/v1/{cluster}", Access::CLUSTER_RO)
            .build()
            .is_ok()
    );
}

#[tokio::test]
async fn rules_from_a_policy_file() {
    let policy = Policy::from_toml_str(&format!(
        r#"
        ais_cluster = "{CLU}"
        [[ais]]
        methods = ["GET"]
        path = "/v1/objects/{{bucket}}/{{*object}}"
        access = ["ro"]
        [[ais]]
        path = "/v1/buckets/{{bucket}}"
        access = ["HEAD-BUCKET", "PATCH"]
        "#
    ))
    .unwrap();
    let app = ais_app(policy);
    let token = bearer(&user(vec![], vec![bck(CLU, "photos", "ais", Access::RO)]));
    assert_eq!(
        send(&app, "GET", "/v1/objects/photos/a", Some(&token))
            .await
            .0,
        200
    );
    assert_eq!(
        send(&app, "PATCH", "/v1/buckets/photos", Some(&token))
            .await
            .0,
        403
    );
    let err = Policy::from_toml_str("[[ais]]\npath = \"/v1/{bucket}\"\naccess = [\"READ\"]\n")
        .unwrap_err();
    assert_eq!(err.setting(), "policy: ais[0].access");
    assert!(
        err.to_string()
            .contains("`READ` is not an AIStore access name"),
        "{err}"
    );
}

#[tokio::test]
async fn the_provider_comes_from_the_query_as_in_aistores_rest_api() {
    // AIStore's REST API names the provider in the query: `/v1/objects/logs/x?provider=aws`.
    let policy = Policy::builder()
        .allow_ais("PUT", "/v1/objects/{bucket}/{*object}", Access::PUT)
        .ais_cluster(CLU)
        .build()
        .unwrap();
    let app = ais_app(policy);
    // Read-write on the cluster, but the aws bucket `logs` is read-only.
    let token = bearer(&user(
        vec![clu(CLU, Access::RW)],
        vec![bck(CLU, "logs", "aws", Access::RO)],
    ));
    for (query, want) in [
        ("", 200),
        ("?provider=ais", 200),
        ("?provider=aws", 403),
        ("?provider=s3", 403),
        ("?archpath=x&provider=%61ws", 403),
        ("?provider=", 200),  // empty is `ais`
        ("?namespace=", 200), // the global namespace
        // Refused rather than judged: the backend might read another bucket.
        ("?provider=ais&provider=aws", 403),
        ("?provider=%zz&provider=ais", 403), // Go drops the bad pair, then reads `ais`
        ("?provider=ais;provider=aws", 403),
        ("?provider=nope", 403),
        ("?namespace=%40uuid%23ns", 403), // a namespaced bucket of the same name
    ] {
        let got = send(
            &app,
            "PUT",
            &format!("/v1/objects/logs/x{query}"),
            Some(&token),
        )
        .await;
        assert_eq!(got.0, want, "{query}: {:?}", got.2);
    }
    // A `{provider}` segment wins over the query.
    let policy = Policy::builder()
        .allow_ais("PUT", "/v1/{provider}/{bucket}/{*object}", Access::PUT)
        .ais_cluster(CLU)
        .build()
        .unwrap();
    let app = ais_app(policy);
    assert_eq!(
        send(&app, "PUT", "/v1/ais/logs/x?provider=aws", Some(&token))
            .await
            .0,
        200
    );
    assert_eq!(
        send(&app, "PUT", "/v1/aws/logs/x?provider=ais", Some(&token))
            .await
            .0,
        403
    );
}

// ---- handlers: the extractor ----------------------------------------------------------

async fn get_object(
    ais: AisAuthz,
    Path((bucket, object)): Path<(String, String)>,
) -> Result<String, AuthRejection> {
    ais.require(CLU, Some(&Bucket::new(bucket)), Access::GET)?;
    Ok(format!("object {object}"))
}

fn handler_app() -> Router {
    let policy = Policy::builder()
        .allow("GET", "/v1/objects/**", ["*"])
        .build()
        .unwrap();
    Router::new()
        .route("/v1/objects/{bucket}/{*object}", get(get_object))
        .layer(AuthLayer::new(authenticator(), policy))
}

#[tokio::test]
async fn the_extractor_checks_in_handlers() {
    let app = handler_app();
    let token = bearer(&user(vec![], vec![bck(CLU, "photos", "ais", Access::RO)]));
    let got = send(&app, "GET", "/v1/objects/photos/a.jpg", Some(&token)).await;
    assert_eq!(got.0, 200);
    assert_eq!(got.2, json!("object a.jpg"));
    let got = send(&app, "GET", "/v1/objects/private/a.jpg", Some(&token)).await;
    assert_rejected(&got, FORBIDDEN.0, FORBIDDEN.1, FORBIDDEN.2, FORBIDDEN.3);
    // Malformed claims: 403 from the check, not a failed extraction.
    let mut bad = user(vec![], vec![bck(CLU, "photos", "ais", Access::RO)]);
    bad["buckets"][0]["perm"] = json!(771);
    let got = send(&app, "GET", "/v1/objects/photos/a.jpg", Some(&bearer(&bad))).await;
    assert_rejected(&got, FORBIDDEN.0, FORBIDDEN.1, FORBIDDEN.2, FORBIDDEN.3);
    // Without the layer: misuse, 500.
    let bare = Router::new().route("/v1/objects/{bucket}/{*object}", get(get_object));
    assert_eq!(
        send(&bare, "GET", "/v1/objects/photos/a.jpg", Some(&token))
            .await
            .0,
        500
    );
}

#[tokio::test]
async fn an_aistore_sdk_request_passes_by_default() {
    // What AIStore's Python SDK 2.0.0 sends for `bucket("photos").object("a.jpg")
    // .get_reader().read_all()` (captured from the SDK: `Authorization: Bearer <token>`,
    // from `Client(token=...)` or `AIS_AUTHN_TOKEN`), on a route shaped like ours.
    let token = hs256()
        .sign(&user(vec![], vec![bck(CLU, "photos", "ais", Access::RO)]))
        .unwrap();
    let app = ais_app(ais_policy());
    let req = Request::get(format!(
        "/v1/clusters/{CLU}/buckets/photos/objects/a.jpg?provider=ais"
    ))
    .header("authorization", format!("Bearer {token}"))
    .header("user-agent", "ais/python/2.0.0")
    .header("accept", "*/*")
    .header("accept-encoding", "gzip, deflate")
    .header("content-type", "application/json")
    .body(Body::empty())
    .unwrap();
    let (status, _, body) = split(app.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 200, "{body:?}");
    // AIStore's own header name and scheme compare as RFC 9110 says: `bearer` works too.
    let got = send(
        &app,
        "GET",
        &format!("/v1/clusters/{CLU}/buckets/photos/objects/a.jpg"),
        Some(&format!("bearer {token}")),
    )
    .await;
    assert_eq!(got.0, 200);
}

/// AIStore's own Python SDK (PyPI `aistore` 2.0.0) against a guarded server on loopback:
/// its token from `Client(token=...)` and from `AIS_AUTHN_TOKEN`, its request as it
/// builds it. Skips (printing why) without python3 or PyPI, unless
/// `PORTCULLIS_STRICT_TESTS=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aistores_python_sdk_passes_the_layer() {
    let Some(venv) =
        python_support::venv("aistores_python_sdk_passes_the_layer", &["aistore==2.0.0"])
    else {
        return;
    };
    let policy = Policy::builder()
        .allow_ais("GET", "/v1/objects/{bucket}/{*object}", Access::GET)
        .ais_cluster(CLU)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/v1/objects/{bucket}/{*object}",
            get(|| async { "hello from portcullis" }),
        )
        .layer(AuthLayer::new(authenticator(), policy));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let token = hs256()
        .sign(&user(vec![], vec![bck(CLU, "photos", "ais", Access::RO)]))
        .unwrap();
    let script = r#"
import os
from aistore.sdk import Client

def read(client, bucket):
    try:
        return client.bucket(bucket).object("a.jpg").get_reader().read_all().decode()
    except Exception as e:
        return "refused %s" % getattr(e, "status_code", type(e).__name__)

url, token = os.environ["URL"], os.environ["TOKEN"]
print(read(Client(url, token=token), "photos"))
print(read(Client(url, token=token), "private"))
print(read(Client(url), "photos"))
os.environ["AIS_AUTHN_TOKEN"] = token
print(read(Client(url), "photos"))
"#;
    let out = tokio::task::spawn_blocking(move || {
        venv.run_ok(
            script,
            &[("URL", &url), ("TOKEN", &token), ("AIS_AUTHN_TOKEN", "")],
        )
    })
    .await
    .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "hello from portcullis",
            "refused 403",
            "refused 401",
            "hello from portcullis"
        ],
        "{out}"
    );
}
