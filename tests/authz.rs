//! authorize_user (SPEC.md section 5).
//!
//! Acceptance 1 (SPEC 5): `a1_*`. Acceptance 2 (AIStore's model): `a2_*`. Acceptance 4
//! (reload under load): `a4_reload_under_load_no_error_no_mixed_state`. Acceptance 3 is
//! `benches/authz.rs`. Files, handlers and principals: the other tests.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use axum::{Extension, Router};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use portcullis::{
    AccessReason, Algorithm, AuthErrorKind, AuthLayer, AuthRejection, Authenticator, Authorizer,
    Authz, GrpcCode, MemoryStore, Policy, Principal, Record, RecordSet, Statement, Subject, Via,
};
use serde_json::{Value, json};
use tower::ServiceExt;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// One role `r` holding `permissions`, granted to user `u` on `resources`.
fn single(permissions: &[&str], resources: &[&str]) -> Authorizer {
    Authorizer::new(
        RecordSet::builder()
            .role("r", permissions.iter().copied())
            .record(
                Record::new("rec").statement(
                    Statement::new()
                        .roles(["r"])
                        .resources(resources.iter().copied())
                        .users(["u"]),
                ),
            )
            .build()
            .unwrap(),
    )
}

/// Asserts each (resource, permission, allowed) row for user `u`.
fn check(authz: &Authorizer, rows: &[(&str, &str, bool)]) {
    for &(resource, permission, allowed) in rows {
        let d = authz.authorize_user("u", resource, permission);
        assert_eq!(d.is_allowed(), allowed, "{resource} {permission}: {d}");
    }
}

fn principal(claims: Value) -> Principal {
    let token = portcullis::Signer::hmac(Algorithm::HS256, SECRET)
        .unwrap()
        .sign(&claims)
        .unwrap();
    Authenticator::builder()
        .hmac_secret(SECRET)
        .build()
        .unwrap()
        .verify(&token)
        .unwrap()
}

// ---- Acceptance 1: SPEC.md section 5 ----

#[test]
fn a1_documents_star_allows_a_document_and_everything_below_it() {
    let authz = single(&["documents:read"], &["/documents/*"]);
    check(
        &authz,
        &[
            ("/documents/A", "documents:read", true),
            (
                "/documents/B/sub-documents/C/metadata",
                "documents:read",
                true,
            ),
            ("/documents", "documents:read", false),
            ("/other/A", "documents:read", false),
        ],
    );
    let d = authz.authorize_user(
        "u",
        "/documents/B/sub-documents/C/metadata",
        "documents:read",
    );
    let g = d.grant().unwrap();
    assert_eq!(
        (
            g.record(),
            g.statement(),
            g.role(),
            g.permission(),
            g.resource()
        ),
        ("rec", 0, "r", "documents:read", "/documents/*")
    );
    assert_eq!((g.via(), g.via_id()), (Via::User, "u"));
}

#[test]
fn a1_grant_on_resources_allows_resources_123() {
    check(
        &single(&["p"], &["/resources"]),
        &[("/resources/123", "p", true), ("/resources", "p", true)],
    );
}

#[test]
fn a1_grant_on_resources_123_does_not_allow_resources() {
    check(
        &single(&["p"], &["/resources/123"]),
        &[("/resources", "p", false), ("/resources/123", "p", true)],
    );
}

#[test]
fn a1_resources_12_does_not_cover_resources_123() {
    check(
        &single(&["p"], &["/resources/12"]),
        &[
            ("/resources/123", "p", false),
            ("/resources/12", "p", true),
            ("/resources/12/3", "p", true),
        ],
    );
}

#[test]
fn a1_wildcard_segments_organizations_documents() {
    check(
        &single(&["p"], &["/organizations/*/documents/*"]),
        &[
            ("/organizations/org1/documents/doc1", "p", true),
            ("/organizations/org1/documents/doc1/pages/2", "p", true),
            ("/organizations/org1/users/u1", "p", false),
            ("/organizations/org1/documents", "p", false),
        ],
    );
}

#[test]
fn a1_star_on_star_allows_everything() {
    let authz = single(&["*"], &["*"]);
    check(
        &authz,
        &[
            ("/", "documents:read", true),
            ("/a", "x", true),
            ("/a/b/c/d", "documents:read:meta", true),
            ("anything/at/all", "Some:Thing", true),
        ],
    );
    assert_eq!(authz.resources("u", "x:y"), ["*"]);
}

#[test]
fn a1_documents_star_and_documents_allow_documents_read() {
    for grant in ["documents:*", "documents", "*", "DOCUMENTS:*"] {
        let authz = single(&[grant], &["/d"]);
        check(&authz, &[("/d", "documents:read", true)]);
    }
    // `documents:*` covers any `documents:...`, not `documents` itself.
    check(
        &single(&["documents:*"], &["/d"]),
        &[
            ("/d", "documents:read:meta", true),
            ("/d", "documents", false),
            ("/d", "other:read", false),
        ],
    );
}

#[test]
fn a1_documents_read_allows_neither_write_nor_documents() {
    check(
        &single(&["documents:read"], &["/d"]),
        &[
            ("/d", "documents:write", false),
            ("/d", "documents", false),
            ("/d", "documents:*", false),
            ("/d", "documents:read", true),
            ("/d", "documents:read:meta", true),
        ],
    );
}

#[test]
fn a1_permissions_compare_case_insensitively() {
    check(
        &single(&["Documents:Read"], &["/d"]),
        &[
            ("/d", "documents:read", true),
            ("/d", "DOCUMENTS:READ", true),
        ],
    );
    check(
        &single(&["documents:read"], &["/d"]),
        &[("/d", "Documents:Read", true)],
    );
}

#[test]
fn a1_resources_case_sensitive_leading_slash_optional_trailing_ignored() {
    let authz = single(&["p"], &["documents/A/"]);
    check(
        &authz,
        &[
            ("/documents/A", "p", true),
            ("documents/A", "p", true),
            ("/documents/A/", "p", true),
            ("/Documents/A", "p", false),
            ("/documents/a", "p", false),
        ],
    );
    assert_eq!(authz.resources("u", "p"), ["/documents/A"]);
}

#[test]
fn a1_statements_stay_independent() {
    let authz = Authorizer::new(
        RecordSet::builder()
            .role("reader", ["documents:read"])
            .role("writer", ["documents:write"])
            .record(
                Record::new("one")
                    .statement(
                        Statement::new()
                            .roles(["reader"])
                            .resources(["/a"])
                            .users(["u"]),
                    )
                    .statement(
                        Statement::new()
                            .roles(["writer"])
                            .resources(["/b"])
                            .users(["u"]),
                    ),
            )
            .build()
            .unwrap(),
    );
    check(
        &authz,
        &[
            ("/a/1", "documents:read", true),
            ("/b/1", "documents:write", true),
            ("/a/1", "documents:write", false),
            ("/b/1", "documents:read", false),
        ],
    );
    assert_eq!(
        authz.authorize_user("u", "/a", "documents:write").reason(),
        &AccessReason::NoPermission {
            roles: vec!["reader".into()]
        }
    );
    assert_eq!(authz.permissions("u", "/b/x"), ["documents:write"]);
}

fn groups_authz() -> Authorizer {
    Authorizer::new(
        RecordSet::builder()
            .role("reader", ["documents:read"])
            .role("lister", ["documents:list", "documents:read"])
            .group("staff", ["ada", "grace"])
            .group("auditors", ["grace"])
            .record(
                Record::new("staff-docs")
                    .statement(
                        Statement::new()
                            .roles(["reader"])
                            .resources(["/documents"])
                            .groups(["staff"]),
                    )
                    .statement(
                        Statement::new()
                            .roles(["lister"])
                            .resources(["/documents"])
                            .groups(["auditors"]),
                    ),
            )
            .build()
            .unwrap(),
    )
}

#[test]
fn a1_group_membership_grants() {
    let authz = groups_authz();
    let d = authz.authorize_user("ada", "/documents/7", "documents:read");
    assert!(d.is_allowed(), "{d}");
    let g = d.grant().unwrap();
    assert_eq!((g.via(), g.via_id()), (Via::Group, "staff"));
    assert!(
        !authz
            .authorize_user("ada", "/documents/7", "documents:list")
            .is_allowed()
    );
    assert_eq!(
        authz
            .authorize_user("bob", "/documents/7", "documents:read")
            .reason(),
        &AccessReason::NoStatement
    );
    // A group named by the subject itself (a token's groups claim) counts too.
    let bob = Subject::user("bob").with_groups(["auditors"]);
    assert!(
        authz
            .authorize_user(bob, "/documents/7", "documents:list")
            .is_allowed()
    );
}

#[test]
fn a1_user_in_two_groups_holding_one_right_sees_it_once() {
    let authz = groups_authz();
    assert_eq!(
        authz.permissions("grace", "/documents/7"),
        ["documents:list", "documents:read"]
    );
    assert_eq!(authz.resources("grace", "documents:read"), ["/documents"]);
    // Named by the subject and by the record set: still once.
    let grace = Subject::user("grace").with_groups(["staff", "auditors"]);
    assert_eq!(
        authz.permissions(grace, "/documents/7"),
        ["documents:list", "documents:read"]
    );
}

#[test]
fn a1_token_roles_and_principal_subject() {
    let authz = Authorizer::new(
        RecordSet::builder()
            .role("reader", ["documents:read"])
            .role("owner", ["documents:*"])
            .record(
                Record::new("clients").statement(
                    Statement::new()
                        .roles(["reader"])
                        .resources(["/documents"])
                        .token_roles(["client"]),
                ),
            )
            .record(
                Record::new("ada").statement(
                    Statement::new()
                        .roles(["owner"])
                        .resources(["/documents/ada"])
                        .users(["ada"]),
                ),
            )
            .record(
                Record::new("team").statement(
                    Statement::new()
                        .roles(["owner"])
                        .resources(["/documents/team"])
                        .groups(["team"]),
                ),
            )
            .build()
            .unwrap(),
    );
    let p = principal(
        json!({"sub": "ada", "role": "client", "groups": ["team"], "exp": 4_000_000_000u64}),
    );
    let d = authz.authorize_user(&p, "/documents/x", "documents:read");
    assert_eq!(d.grant().unwrap().via(), Via::TokenRole);
    assert!(
        authz
            .authorize_user(&p, "/documents/ada/1", "documents:delete")
            .is_allowed()
    );
    assert!(
        authz
            .authorize_user(&p, "/documents/team/1", "documents:delete")
            .is_allowed()
    );
    assert!(
        !authz
            .authorize_user(&p, "/documents/x", "documents:delete")
            .is_allowed()
    );
    // A client-supplied id is just a user id: without the token role, nothing.
    assert!(
        !authz
            .authorize_user("ada", "/documents/x", "documents:read")
            .is_allowed()
    );
    // The framework-free form for tonic and other handlers: 403 / PERMISSION_DENIED.
    let err = authz
        .require(&p, "/documents/x", "documents:delete")
        .unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::Forbidden);
    assert_eq!(err.status(), StatusCode::FORBIDDEN);
    assert_eq!(err.grpc_code(), GrpcCode::PermissionDenied);
    assert_eq!(
        err.body(),
        r#"{"error":"insufficient_scope","message":"Insufficient permissions"}"#
    );
    assert!(!err.to_string().contains("ada"), "{err}");
}

#[test]
fn a1_invalid_requests_are_denied_with_a_reason() {
    let authz = single(&["*"], &["*"]);
    for resource in ["/a//b", "/a/../b", "/a/./b", "/a/%2e%2E/b", "//", "/a\n"] {
        assert_eq!(
            authz.authorize_user("u", resource, "p").reason(),
            &AccessReason::InvalidResource,
            "{resource:?}"
        );
    }
    for permission in ["", ":", "a::b", "a:", "read*", "a b"] {
        assert_eq!(
            authz.authorize_user("u", "/a", permission).reason(),
            &AccessReason::InvalidPermission,
            "{permission:?}"
        );
    }
    assert!(authz.permissions("u", "/a//b").is_empty());
    assert!(authz.resources("u", "a::b").is_empty());
}

#[test]
fn a1_action_and_resource_strings_are_validated_at_build() {
    let cases: [(&str, &str, &str); 10] = [
        ("", "/a", "roles.r[0]"),
        ("a::b", "/a", "roles.r[0]"),
        ("a:", "/a", "roles.r[0]"),
        ("docs*", "/a", "roles.r[0]"),
        ("docs:re*d", "/a", "roles.r[0]"),
        ("p", "/a//b", "records[0].statements[0].resources[0]"),
        ("p", "/a/../b", "records[0].statements[0].resources[0]"),
        ("p", "/a/b*", "records[0].statements[0].resources[0]"),
        ("p", "/a/{id}", "records[0].statements[0].resources[0]"),
        ("p", "", "records[0].statements[0].resources[0]"),
    ];
    for (perm, resource, setting) in cases {
        let err = RecordSet::builder()
            .role("r", [perm])
            .record(
                Record::new("rec").statement(
                    Statement::new()
                        .roles(["r"])
                        .resources([resource])
                        .users(["u"]),
                ),
            )
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), setting, "{perm} {resource}: {err}");
    }
    let err = RecordSet::builder()
        .record(
            Record::new("rec").statement(
                Statement::new()
                    .roles(["missing"])
                    .resources(["/a"])
                    .users(["u"]),
            ),
        )
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "records[0].statements[0].roles[0]");
    assert!(
        err.to_string().contains("`missing` is not defined"),
        "{err}"
    );
    let err = RecordSet::builder()
        .role("r", ["p"])
        .record(Record::new("rec").statement(Statement::new().roles(["r"]).resources(["/a"])))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("applies to nobody"), "{err}");
    let err = RecordSet::builder()
        .record(Record::new("x"))
        .record(Record::new("x"))
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "records[1].id");
}

// ---- Acceptance 2: AIStore's model ----

const AISTORE: &str = r#"
# AIStore: bucket-scoped roles on /clusters/{cluster}/buckets/{bucket},
# cluster-wide roles on /clusters/{cluster}.
[roles]
bucket-rw = ["GET", "PUT"]
bucket-ro = ["GET"]
cluster-admin = ["GET", "PUT", "cluster:*"]

[[records]]
id = "alice-c1-photos"
[[records.statements]]
roles = ["bucket-rw"]
resources = ["/clusters/c1/buckets/photos"]
users = ["alice"]

[[records]]
id = "bob-c1-logs"
[[records.statements]]
roles = ["bucket-ro"]
resources = ["/clusters/c1/buckets/logs"]
users = ["bob"]

[[records]]
id = "ops-c1"
[[records.statements]]
roles = ["cluster-admin"]
resources = ["/clusters/c1"]
token_roles = ["ops"]
"#;

#[test]
fn a2_aistore_bucket_role_reaches_neither_another_bucket_nor_another_cluster() {
    let authz = Authorizer::new(RecordSet::from_toml_str(AISTORE).unwrap());
    for (user, resource, perm, allowed) in [
        ("alice", "/clusters/c1/buckets/photos", "GET", true),
        ("alice", "/clusters/c1/buckets/photos", "PUT", true),
        (
            "alice",
            "/clusters/c1/buckets/photos/objects/cat.jpg",
            "put",
            true,
        ),
        ("alice", "/clusters/c1/buckets/logs", "GET", false),
        ("alice", "/clusters/c1/buckets/photos2", "GET", false),
        ("alice", "/clusters/c2/buckets/photos", "GET", false),
        ("alice", "/clusters/c1", "GET", false),
        ("alice", "/clusters/c1/buckets/photos", "DELETE", false),
        ("bob", "/clusters/c1/buckets/logs", "GET", true),
        ("bob", "/clusters/c1/buckets/logs", "PUT", false),
        ("bob", "/clusters/c1/buckets/photos", "GET", false),
    ] {
        let d = authz.authorize_user(user, resource, perm);
        assert_eq!(d.is_allowed(), allowed, "{user} {perm} {resource}: {d}");
    }
    assert_eq!(
        authz.resources("alice", "PUT"),
        ["/clusters/c1/buckets/photos"]
    );
}

#[test]
fn a2_aistore_cluster_role_covers_its_buckets_only() {
    let authz = Authorizer::new(RecordSet::from_toml_str(AISTORE).unwrap());
    let ops = || Subject::default().with_roles(["ops"]);
    for (resource, perm, allowed) in [
        ("/clusters/c1", "cluster:config", true),
        ("/clusters/c1/buckets/photos", "PUT", true),
        ("/clusters/c1/buckets/any-new-bucket", "GET", true),
        ("/clusters/c2", "GET", false),
        ("/clusters/c2/buckets/photos", "GET", false),
    ] {
        let d = authz.authorize_user(ops(), resource, perm);
        assert_eq!(d.is_allowed(), allowed, "ops {perm} {resource}: {d}");
    }
}

// ---- Acceptance 4: reload under load ----

/// Set A grants only `x:read` on `/x/{i}`, set B only `y:read` on `/y/{i}`, both to `u`,
/// through records named `a-{i}` and `b-{i}`.
fn swap_set(tag: &str, n: usize) -> RecordSet {
    let mut b = RecordSet::builder().role(format!("role-{tag}"), [format!("{tag}:read")]);
    for i in 0..n {
        b = b.record(
            Record::new(format!("{tag}-{i}")).statement(
                Statement::new()
                    .roles([format!("role-{tag}")])
                    .resources([format!("/{tag}/{i}")])
                    .users(["u"]),
            ),
        );
    }
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a4_reload_under_load_no_error_no_mixed_state() {
    const N: usize = 200;
    let set_a = swap_set("x", N);
    let set_b = swap_set("y", N);
    let store = MemoryStore::new(set_a.clone());
    let authz = Authorizer::from_store(store.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let saw_both = Arc::new(AtomicUsize::new(0));

    let mut readers = Vec::new();
    for t in 0..4usize {
        let (authz, stop, saw_both) = (authz.clone(), stop.clone(), saw_both.clone());
        readers.push(tokio::spawn(async move {
            let (mut seen_a, mut seen_b, mut calls) = (0usize, 0usize, 0usize);
            let mut reported = false;
            let mut i = t;
            while !stop.load(Ordering::Acquire) {
                i = (i + 7) % N;
                // Each answer must fit exactly one set.
                let x = authz.authorize_user("u", &format!("/x/{i}"), "x:read");
                let in_a = match x.reason() {
                    AccessReason::Granted(g) => {
                        assert_eq!(
                            (g.record(), g.role()),
                            (format!("x-{i}").as_str(), "role-x")
                        );
                        assert_eq!(g.resource(), format!("/x/{i}"));
                        true
                    }
                    AccessReason::NoResource => false,
                    other => panic!("mixed or broken state: {other}"),
                };
                let listed = authz.resources("u", "x:read");
                assert!(listed.is_empty() || listed.len() == N, "{}", listed.len());
                let perms = authz.permissions("u", &format!("/y/{i}"));
                assert!(
                    perms.is_empty() || perms == ["y:read"],
                    "mixed state: {perms:?}"
                );
                let y = authz.authorize_user("u", &format!("/y/{i}"), "Y:READ");
                match y.reason() {
                    AccessReason::Granted(g) => assert_eq!(g.record(), format!("y-{i}")),
                    AccessReason::NoResource => {}
                    other => panic!("mixed or broken state: {other}"),
                }
                if in_a {
                    seen_a += 1;
                } else {
                    seen_b += 1;
                }
                calls += 1;
                if !reported && seen_a > 0 && seen_b > 0 {
                    reported = true;
                    saw_both.fetch_add(1, Ordering::AcqRel);
                }
                tokio::task::yield_now().await;
            }
            (seen_a, seen_b, calls)
        }));
    }

    // Swap until every reader has seen both sets (bounded, so a bug cannot hang CI).
    let mut swaps = 0usize;
    while saw_both.load(Ordering::Acquire) < 4 && swaps < 2_000_000 {
        store.replace(if swaps.is_multiple_of(2) {
            set_b.clone()
        } else {
            set_a.clone()
        });
        swaps += 1;
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Release);
    for r in readers {
        let (a, b, calls) = r.await.expect("a reader panicked");
        assert!(calls > 0 && a > 0 && b > 0, "a={a} b={b} calls={calls}");
    }
    assert_eq!(saw_both.load(Ordering::Acquire), 4, "after {swaps} swaps");
}

// ---- Files ----

fn temp_file(name: &str, text: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "portcullis-authz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn file_toml_and_json_load_the_same_records() {
    let toml = temp_file("access.toml", AISTORE);
    let json = temp_file(
        "access.json",
        r#"{
  "roles": {"bucket-rw": ["GET", "PUT"]},
  "groups": {"photographers": ["alice"]},
  "records": [
    {"id": "c1-photos", "statements": [
      {"roles": ["bucket-rw"], "resources": ["/clusters/c1/buckets/photos"], "groups": ["photographers"]}
    ]}
  ]
}"#,
    );
    for path in [toml, json] {
        let authz = Authorizer::from_file(&path).unwrap();
        assert!(
            authz
                .authorize_user("alice", "/clusters/c1/buckets/photos", "PUT")
                .is_allowed(),
            "{}",
            path.display()
        );
        assert!(
            !authz
                .authorize_user("alice", "/clusters/c1/buckets/logs", "PUT")
                .is_allowed()
        );
    }
}

#[test]
fn file_errors_name_file_line_and_field() {
    let toml_cases = [
        (
            "[roles]\nreader = [\"documents:read\", \"documents::write\"]\n",
            ":2:",
            "roles.reader[1]",
            "empty segment",
        ),
        (
            "[roles]\nr = [\"p\"]\n\n[[records]]\nid = \"x\"\n[[records.statements]]\nroles = [\"r\"]\nresources = [\"/a\", \"/b//c\"]\nusers = [\"u\"]\n",
            ":8:",
            "records[0].statements[0].resources[1]",
            "empty segment",
        ),
        (
            "[[records]]\nid = \"x\"\n[[records.statements]]\nroles = [\"ghost\"]\nresources = [\"/a\"]\nusers = [\"u\"]\n",
            ":4:",
            "records[0].statements[0].roles[0]",
            "`ghost` is not defined",
        ),
        (
            "[roles]\nr = [\"p\"]\n[[records]]\nid = \"x\"\n[[records]]\nid = \"x\"\n",
            ":6:",
            "records[1].id",
            "used twice",
        ),
        (
            "[roles]\nr = [\"p\"]\n[[records]]\nid = \"x\"\nstatement = []\n",
            ":5:",
            "records[0].statement",
            "unknown field",
        ),
        (
            "[roles]\nr = [\"p\"]\n[[records]]\nid = \"x\"\n[[records.statements]]\nroles = [\"r\"]\nresources = \"/a\"\nusers = [\"u\"]\n",
            ":7:",
            "records[0].statements[0].resources",
            "invalid type",
        ),
        ("[roles\n", ":1:", "", "unclosed table"),
    ];
    for (text, line, field, message) in toml_cases {
        let path = temp_file("bad.toml", text);
        let err = RecordSet::from_file(&path).unwrap_err();
        let shown = err.to_string();
        assert!(
            err.setting()
                .starts_with(&format!("{}{line}", path.display())),
            "{shown}"
        );
        assert!(err.setting().ends_with(field), "{shown}");
        assert!(shown.contains(message), "{shown}");
    }

    let json_cases = [
        (
            "{\n  \"roles\": {\n    \"r\": [\"p\", \"a*\"]\n  }\n}",
            ":3:",
            "roles.r[1]",
            "whole segment",
        ),
        (
            "{\n  \"roles\": {\"r\": [\"p\"], \"r\": [\"q\"]}\n}",
            ":2:",
            "roles",
            "defined twice",
        ),
        (
            "{\"roles\": {\"r\": [\"p\"]},\n \"records\": [{\"id\": \"x\", \"statements\": [\n  {\"roles\": [\"r\"], \"resources\": [\"/a\"]}\n ]}]}",
            // serde_json places errors about a whole object where the parser stands
            // when it reports them: here the end of the enclosing list.
            ":4:",
            "records[0].statements[0]",
            "applies to nobody",
        ),
        ("{\"roles\": {}} trailing", ":1:", "", "trailing"),
    ];
    for (text, line, field, message) in json_cases {
        let path = temp_file("bad.json", text);
        let err = RecordSet::from_file(&path).unwrap_err();
        let shown = err.to_string();
        assert!(
            err.setting()
                .starts_with(&format!("{}{line}", path.display())),
            "{shown}"
        );
        assert!(err.setting().ends_with(field), "{shown}");
        assert!(shown.contains(message), "{shown}");
    }

    let err = RecordSet::from_file(temp_file("access.yaml", "")).unwrap_err();
    assert!(err.to_string().contains("`*.toml` or `*.json`"), "{err}");
    let err = RecordSet::from_file("/nonexistent/portcullis/access.toml").unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn reload_from_file_swaps_atomically_and_keeps_the_old_set_on_error() {
    let path = temp_file("access.toml", AISTORE);
    let store = MemoryStore::new(RecordSet::from_file(&path).unwrap());
    let authz = Authorizer::from_store(store.clone());
    let alice = |a: &Authorizer| {
        a.authorize_user("alice", "/clusters/c1/buckets/photos", "GET")
            .is_allowed()
    };
    assert!(alice(&authz));

    std::fs::write(&path, AISTORE.replace("photos", "videos")).unwrap();
    store.reload_from_file(&path).unwrap();
    assert!(!alice(&authz));
    assert!(
        authz
            .authorize_user("alice", "/clusters/c1/buckets/videos", "GET")
            .is_allowed()
    );

    std::fs::write(&path, "[roles]\nr = [\"a::b\"]\n").unwrap();
    let err = store.reload_from_file(&path).unwrap_err();
    assert!(err.setting().ends_with("roles.r[0]"), "{err}");
    assert!(
        authz
            .authorize_user("alice", "/clusters/c1/buckets/videos", "GET")
            .is_allowed()
    );
}

#[cfg(feature = "watch")]
#[tokio::test(start_paused = true)]
async fn watch_file_reloads_valid_versions_and_keeps_the_last_good_one() {
    use std::time::Duration;

    let path = temp_file("watched.toml", AISTORE);
    let store = MemoryStore::new(RecordSet::from_file(&path).unwrap());
    let authz = Authorizer::from_store(store.clone());
    let watch = store.watch_file(&path, Duration::from_secs(1));
    let allowed = |bucket: &str| {
        authz
            .authorize_user("alice", &format!("/clusters/c1/buckets/{bucket}"), "GET")
            .is_allowed()
    };
    assert!(allowed("photos"));

    // Paused time: each sleep lets the watcher poll once more; no wall-clock waiting.
    std::fs::write(&path, AISTORE.replace("photos", "longer-bucket-name")).unwrap();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert!(allowed("longer-bucket-name"));
    assert!(!allowed("photos"));

    std::fs::write(&path, "[roles]\nr = [\"broken::permission\"]\n").unwrap();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert!(allowed("longer-bucket-name"));
    watch.stop();
}

#[cfg(feature = "watch")]
#[tokio::test(start_paused = true)]
async fn watch_file_outlives_an_unreadable_file_and_stops_when_dropped() {
    use std::time::Duration;

    let path = temp_file("watched.toml", AISTORE);
    let store = MemoryStore::new(RecordSet::from_file(&path).unwrap());
    let authz = Authorizer::from_store(store.clone());
    let watch = store.watch_file(&path, Duration::from_secs(1));
    let allowed = |bucket: &str| {
        authz
            .authorize_user("alice", &format!("/clusters/c1/buckets/{bucket}"), "GET")
            .is_allowed()
    };
    let polls = || async {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    };

    // Removed: nothing to read, the last good records stay.
    std::fs::remove_file(&path).unwrap();
    polls().await;
    assert!(allowed("photos"));
    // Recreated with a new version: the watch is still alive and loads it.
    std::fs::write(&path, AISTORE.replace("photos", "videos")).unwrap();
    polls().await;
    assert!(allowed("videos"));
    assert!(!allowed("photos"));
    // Not UTF-8: refused, kept, and the next valid version still loads.
    std::fs::write(&path, b"\xff\xfe[roles]\n").unwrap();
    polls().await;
    assert!(allowed("videos"));
    std::fs::write(&path, AISTORE).unwrap();
    polls().await;
    assert!(allowed("photos"));
    assert!(!allowed("videos"));

    // Dropping the handle stops the watch.
    drop(watch);
    std::fs::write(&path, AISTORE.replace("photos", "videos")).unwrap();
    polls().await;
    assert!(allowed("photos"));
    assert!(!allowed("videos"));
}

// ---- Handlers ----

async fn read_document(authz: Authz, Path(id): Path<String>) -> Result<String, AuthRejection> {
    let grant = authz.require(&format!("/documents/{id}"), "documents:read")?;
    Ok(format!("{id} via {}", grant.record()))
}

fn documents_app(with_authorizer: bool) -> Router {
    let records = RecordSet::from_toml_str(
        r#"
        [roles]
        reader = ["documents:read"]
        [[records]]
        id = "ada-reads-A"
        [[records.statements]]
        roles = ["reader"]
        resources = ["/documents/A"]
        users = ["ada"]
        "#,
    )
    .unwrap();
    let layer = AuthLayer::new(
        Authenticator::builder()
            .hmac_secret(SECRET)
            .realm("docs")
            .build()
            .unwrap(),
        Policy::builder()
            .allow("GET", "/documents/{id}", ["*"])
            .build()
            .unwrap(),
    );
    let mut app = Router::new().route("/documents/{id}", get(read_document));
    if with_authorizer {
        app = app.layer(Extension(Authorizer::new(records)));
    }
    app.layer(layer)
}

async fn call(app: Router, path: &str, sub: &str) -> (StatusCode, Option<String>, String) {
    let token = portcullis::Signer::hmac(Algorithm::HS256, SECRET)
        .unwrap()
        .sign(&json!({"sub": sub, "exp": 4_000_000_000u64}))
        .unwrap();
    let res = app
        .oneshot(
            Request::get(path)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, challenge, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn handler_require_allows_with_200_and_refuses_with_403() {
    let (status, challenge, body) = call(documents_app(true), "/documents/A", "ada").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(challenge, None);
    assert_eq!(body, "A via ada-reads-A");

    for (path, sub) in [("/documents/B", "ada"), ("/documents/A", "bob")] {
        let (status, challenge, body) = call(documents_app(true), path, sub).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} {sub}");
        assert_eq!(
            challenge.as_deref(),
            Some(r#"Bearer realm="docs", error="insufficient_scope""#)
        );
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"error": "insufficient_scope", "message": "Insufficient permissions"})
        );
    }
}

#[tokio::test]
async fn handler_without_authorizer_extension_is_misuse_500() {
    let (status, challenge, body) = call(documents_app(false), "/documents/A", "ada").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(challenge, None);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"error": "server_error", "message": "Internal error"})
    );
}

#[test]
fn decisions_explain_themselves() {
    let authz = groups_authz();
    let reasons: HashSet<String> = [
        authz.authorize_user("ada", "/documents/1", "documents:read"),
        authz.authorize_user("ada", "/documents/1", "documents:list"),
        authz.authorize_user("ada", "/elsewhere", "documents:read"),
        authz.authorize_user("nobody", "/documents/1", "documents:read"),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let expected: HashSet<String> = [
        "allowed: record `staff-docs` statement 0 gives role `reader` (`documents:read` on `/documents`) to group `staff`",
        "denied: statements cover the resource, but their roles (reader) do not hold the permission",
        "denied: statements apply to the subject, but none covers the resource",
        "denied: no statement applies to the subject",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(reasons, expected);
}

#[test]
fn a1_slash_star_is_one_segment_and_below_not_the_root() {
    let authz = single(&["documents:read"], &["/*"]);
    check(
        &authz,
        &[
            ("/x", "documents:read", true),
            ("/x/y/z", "documents:read", true),
            ("/", "documents:read", false),
        ],
    );
}

#[test]
fn a1_dot_segments_behind_encoded_slashes_are_denied() {
    let authz = single(&["documents:read"], &["/documents"]);
    check(
        &authz,
        &[
            ("/documents/ok", "documents:read", true),
            ("/documents/..%2Fsecret", "documents:read", false),
            ("/documents/%2e%2e%5cadmin", "documents:read", false),
            ("/documents/a%2Fb", "documents:read", true),
        ],
    );
}

#[test]
fn resource_uri_keeps_a_decoded_slash_inside_its_segment() {
    let authz = single(&["documents:read"], &["/documents/A"]);
    let nested = portcullis::resource_uri(["documents", "A", "page"]);
    assert!(
        authz
            .authorize_user("u", &nested, "documents:read")
            .is_allowed()
    );
    // A path parameter that decoded to `A/secret` names another document, not A's child.
    let sneaky = portcullis::resource_uri(["documents", "A/secret"]);
    assert_eq!(sneaky, "/documents/A%2Fsecret");
    assert!(
        !authz
            .authorize_user("u", &sneaky, "documents:read")
            .is_allowed()
    );
}

const ALPHA: &str = "https://alpha.example";
const BETA: &str = "https://beta.example";

/// An authenticator that accepts tokens of two issuers (tenants alpha and beta).
fn two_issuers() -> Authenticator {
    Authenticator::builder()
        .hmac_secret(SECRET)
        .issuer(ALPHA)
        .issuer(BETA)
        .build()
        .unwrap()
}

fn tenant_token(iss: &str, sub: &str) -> String {
    portcullis::Signer::hmac(Algorithm::HS256, SECRET)
        .unwrap()
        .sign(&json!({"iss": iss, "sub": sub, "exp": 4_000_000_000u64}))
        .unwrap()
}

/// SECURITY.md R6: with several issuers a subject is (issuer, sub). Records that name
/// bare users beside two issuers fail to bind, naming the first bare user and the fix;
/// users qualified by issuer (in code and in files), or a record set naming its one
/// issuer, decide per issuer: tenant beta's `ada` never gets alpha's `ada`'s grants.
#[tokio::test]
async fn r6_several_issuers_need_qualified_users() {
    let auth = two_issuers();
    let toml_bare = r#"
        [roles]
        reader = ["documents:read"]
        [groups]
        staff = ["grace"]
        [[records]]
        id = "docs"
        [[records.statements]]
        roles = ["reader"]
        resources = ["/documents"]
        users = ["ada"]
    "#;
    for (set, at) in [
        (
            RecordSet::from_toml_str(toml_bare).unwrap(),
            "groups.staff[0]",
        ),
        (
            RecordSet::builder()
                .role("reader", ["documents:read"])
                .record(
                    Record::new("docs").statement(
                        Statement::new()
                            .roles(["reader"])
                            .resources(["/documents"])
                            .users(["ada"]),
                    ),
                )
                .build()
                .unwrap(),
            "records[0].statements[0].users[0]",
        ),
    ] {
        let err = Authorizer::new(set).issuers_of(&auth).unwrap_err();
        assert_eq!(err.setting(), at, "{err}");
        let text = err.to_string();
        assert!(text.contains("names no issuer"), "{text}");
        assert!(text.contains("iss = "), "{text}");
        assert!(text.contains("`issuer = "), "{text}");
    }
    // One issuer: bare users bind as before.
    let one = Authenticator::builder()
        .hmac_secret(SECRET)
        .issuer(ALPHA)
        .build()
        .unwrap();
    assert!(!one.accepts_several_issuers() && auth.accepts_several_issuers());
    Authorizer::new(RecordSet::from_toml_str(toml_bare).unwrap())
        .issuers_of(&one)
        .unwrap();

    // Qualified users in a file (statements and groups), and a set naming its issuer.
    let qualified = format!(
        r#"
        [roles]
        reader = ["documents:read"]
        [groups]
        staff = [{{ iss = "{ALPHA}", sub = "grace" }}]
        [[records]]
        id = "docs"
        [[records.statements]]
        roles = ["reader"]
        resources = ["/documents"]
        users = [{{ iss = "{ALPHA}", sub = "ada" }}]
        [[records.statements]]
        roles = ["reader"]
        resources = ["/staff"]
        groups = ["staff"]
    "#
    );
    let for_alpha = format!("issuer = \"{ALPHA}\"\n{toml_bare}");
    for (text, staff_route) in [(qualified, true), (for_alpha, false)] {
        let authz = Authorizer::new(RecordSet::from_toml_str(&text).unwrap())
            .issuers_of(&auth)
            .unwrap();
        let app = Router::new()
            .route(
                "/documents/{id}",
                get(|authz: Authz, Path(id): Path<String>| async move {
                    authz
                        .require(&format!("/documents/{id}"), "documents:read")
                        .map(|_| "read")
                }),
            )
            .layer(Extension(authz.clone()))
            .layer(AuthLayer::new(
                auth.clone(),
                Policy::builder()
                    .allow("GET", "/documents/{id}", ["*"])
                    .build()
                    .unwrap(),
            ));
        let get = |iss: &str| {
            Request::get("/documents/7")
                .header(
                    "authorization",
                    format!("Bearer {}", tenant_token(iss, "ada")),
                )
                .body(Body::empty())
                .unwrap()
        };
        let res = app.clone().oneshot(get(ALPHA)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{text}");
        let res = app.oneshot(get(BETA)).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "beta's ada: {text}");
        // Groups too (the qualified file's `staff` holds alpha's grace).
        let grace =
            |iss: &str| principal(json!({"iss": iss, "sub": "grace", "exp": 4_000_000_000u64}));
        let (alpha_grace, beta_grace) = (grace(ALPHA), grace(BETA));
        let staff = |p: &Principal| {
            authz
                .authorize_user(p, "/staff", "documents:read")
                .is_allowed()
        };
        assert_eq!(staff(&alpha_grace), staff_route, "{text}");
        assert!(!staff(&beta_grace), "{text}");
        assert_eq!(authz.list(&alpha_grace).groups(), ["staff"], "{text}");
        assert!(authz.list(&beta_grace).groups().is_empty(), "{text}");
    }
    // A bare set swapped in later is held to the rule: its bare users match no token.
    let store = MemoryStore::new(RecordSet::empty());
    let authz = Authorizer::from_store(store.clone())
        .issuers_of(&auth)
        .unwrap();
    store.replace(RecordSet::from_toml_str(toml_bare).unwrap());
    let ada = principal(json!({"iss": ALPHA, "sub": "ada", "exp": 4_000_000_000u64}));
    assert!(
        !authz
            .authorize_user(&ada, "/documents", "documents:read")
            .is_allowed()
    );
    // The application naming a user itself (no issuer) still matches bare users.
    assert!(
        authz
            .authorize_user("ada", "/documents", "documents:read")
            .is_allowed()
    );
}
