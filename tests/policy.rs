//! The route policy. Public prefixes on whole segments, path patterns,
//! methods, the URL prefix, dot segments, `%2F`, the query, unmatched routes, role
//! inheritance, role claim shapes, required claims, decision reasons and TOML files.

mod common;

use axum::Router;
use http::Method;
use portcullis::{
    AuthLayer, Authenticator, Policy, Principal, RouteDecision, RouteReason, Unmatched,
};
use serde_json::{Value, json};

use common::{NOW, assert_rejected, claims, hs_builder, hs256, send};

const MISSING: (u16, Option<&str>, &str, &str) = (
    401,
    Some(r#"Bearer realm="api""#),
    "missing_token",
    "Missing token",
);
const FORBIDDEN: (u16, Option<&str>, &str, &str) = (
    403,
    Some(r#"Bearer realm="api", error="insufficient_scope""#),
    "insufficient_scope",
    "Insufficient permissions",
);
const BAD_PATH: (u16, Option<&str>, &str, &str) = (
    400,
    Some(r#"Bearer realm="api", error="invalid_request""#),
    "invalid_request",
    "Invalid request path",
);

/// A router whose every route answers "ok", behind the layer.
fn guarded(auth: Authenticator, policy: Policy) -> Router {
    Router::new()
        .fallback(|| async { "ok" })
        .layer(AuthLayer::new(auth, policy))
}

fn bearer(claims: &Value) -> String {
    format!("Bearer {}", hs256().sign(claims).unwrap())
}

fn with_role(role: &str) -> String {
    bearer(&claims(role))
}

fn principal(claims: &Value) -> Principal {
    hs_builder()
        .build()
        .unwrap()
        .verify(&hs256().sign(claims).unwrap())
        .unwrap()
}

/// Decides `method path` for a caller holding `roles`.
fn decide(policy: &Policy, method: &str, path: &str, roles: &[&str]) -> RouteDecision {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let target = policy.target(&method, path).unwrap();
    policy.decide_roles(roles, &target)
}

fn assert_answer(
    got: &(u16, http::HeaderMap, Value),
    want: (u16, Option<&str>, &str, &str),
    case: &str,
) {
    assert_eq!(got.0, want.0, "{case}: status; body {:?}", got.2);
    assert_rejected(got, want.0, want.1, want.2, want.3);
}

fn assert_ok(got: &(u16, http::HeaderMap, Value), case: &str) {
    assert_eq!(got.0, 200, "{case}: body {:?}", got.2);
    assert_eq!(got.2, json!("ok"), "{case}");
    assert!(got.1.get("www-authenticate").is_none(), "{case}");
}

#[tokio::test]
async fn r3_public_prefix_matches_whole_segments() {
    let policy = Policy::builder()
        .public_prefix("/internal")
        .build()
        .unwrap();
    let app = guarded(hs_builder().build().unwrap(), policy.clone());
    for path in [
        "/internal",
        "/internal/",
        "/internal/x",
        "/internal/x/y",
        "/internal?next=/admin",
    ] {
        assert_ok(&send(&app, "GET", path, None).await, path);
    }
    for path in [
        "/internalx",
        "/internalx/y",
        "/internal-x",
        "/x/internal",
        "/Internal",
    ] {
        assert_answer(&send(&app, "GET", path, None).await, MISSING, path);
    }
    // The decision names the prefix.
    let d = decide(&policy, "GET", "/internal/x", &[]);
    assert!(d.is_allowed());
    assert_eq!(
        d.reason(),
        &RouteReason::Public {
            prefix: "/internal".into()
        }
    );
    assert!(
        !policy
            .target(&Method::GET, "/internalx")
            .unwrap()
            .is_public()
    );
}

#[test]
fn path_patterns_param_star_and_tail() {
    let policy = Policy::builder()
        .allow("GET", "/items/{id}", ["reader"])
        .allow("GET", "/one/*", ["reader"])
        .allow("GET", "/files/{*rest}", ["reader"])
        .allow("GET", "/blobs/**", ["reader"])
        .allow("GET", "/items/{id}/tags/{tag}", ["reader"])
        .build()
        .unwrap();
    // (path, allowed for `reader`, reason when refused)
    let table: &[(&str, bool, Option<RouteReason>)] = &[
        ("/items/5", true, None),
        ("/items/a%2Fb", true, None),
        ("/items/5/tags/red", true, None),
        ("/items", false, Some(RouteReason::UnmatchedDenied)),
        ("/items/5/x", false, Some(RouteReason::UnmatchedDenied)),
        ("/items/5/tags", false, Some(RouteReason::UnmatchedDenied)),
        ("/one/x", true, None),
        ("/one", false, Some(RouteReason::UnmatchedDenied)),
        ("/one/x/y", false, Some(RouteReason::UnmatchedDenied)),
        // `{*rest}` needs at least one segment (as in axum); `**` takes zero or more.
        ("/files", false, Some(RouteReason::UnmatchedDenied)),
        ("/files/", false, Some(RouteReason::UnmatchedDenied)),
        ("/blobs", true, None),
        ("/files/a", true, None),
        ("/files/a/b/c", true, None),
        ("/filesx/a", false, Some(RouteReason::UnmatchedDenied)),
        ("/blobs/x/y/z", true, None),
        ("/blobsx", false, Some(RouteReason::UnmatchedDenied)),
    ];
    for (path, allowed, reason) in table {
        let d = decide(&policy, "GET", path, &["reader"]);
        assert_eq!(d.is_allowed(), *allowed, "{path}: {d}");
        if let Some(reason) = reason {
            assert_eq!(d.reason(), reason, "{path}");
        }
        // A role no rule names never passes a named route.
        let d = decide(&policy, "GET", path, &["readers"]);
        assert!(!d.is_allowed(), "{path} with `readers`: {d}");
    }
    // The reason names the pattern that matched.
    let d = decide(&policy, "GET", "/files/a/b", &["reader"]);
    assert_eq!(
        d.reason(),
        &RouteReason::Rule {
            index: 2,
            methods: "GET".into(),
            pattern: "/files/{*rest}".into(),
            role: "reader".into()
        }
    );
}

#[test]
fn bad_patterns_are_config_errors() {
    for pattern in [
        "items",
        "/a/**/b",
        "/a/{*rest}/b",
        "/a/x*",
        "/a/{id}x",
        "/a/../b",
        "/a/./b",
    ] {
        let err = Policy::builder()
            .allow("GET", pattern, ["r"])
            .build()
            .unwrap_err();
        assert!(err.setting().contains("rule 0"), "{pattern}: {err}");
        assert!(err.to_string().contains(pattern), "{pattern}: {err}");
    }
    let err = Policy::builder()
        .allow("GET", "/a", Vec::<String>::new())
        .build()
        .unwrap_err();
    assert!(err.setting().contains("rule 0"), "{err}");
}

#[test]
fn methods_get_covers_head_and_post_only_does_not_open_get() {
    let policy = Policy::builder()
        .allow("GET", "/r", ["u"])
        .allow("POST", "/w", ["u"])
        .allow("GET,PUT", "/m", ["u"])
        .allow("*", "/any", ["u"])
        .build()
        .unwrap();
    let table: &[(&str, &str, bool)] = &[
        ("GET", "/r", true),
        ("HEAD", "/r", true),
        ("POST", "/r", false),
        ("DELETE", "/r", false),
        ("POST", "/w", true),
        ("GET", "/w", false),
        ("HEAD", "/w", false),
        ("PUT", "/w", false),
        ("GET", "/m", true),
        ("HEAD", "/m", true),
        ("PUT", "/m", true),
        ("POST", "/m", false),
        ("GET", "/any", true),
        ("PATCH", "/any", true),
        ("OPTIONS", "/any", true),
    ];
    for (method, path, allowed) in table {
        let d = decide(&policy, method, path, &["u"]);
        assert_eq!(d.is_allowed(), *allowed, "{method} {path}: {d}");
        if !allowed {
            // A rule for another method does not name this target.
            assert_eq!(d.reason(), &RouteReason::UnmatchedDenied, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn methods_through_the_layer() {
    let policy = Policy::builder()
        .allow("GET", "/r", ["u"])
        .allow("POST", "/w", ["u"])
        .build()
        .unwrap();
    let app = guarded(hs_builder().build().unwrap(), policy);
    let t = with_role("u");
    assert_ok(&send(&app, "GET", "/r", Some(&t)).await, "GET /r");
    let head = send(&app, "HEAD", "/r", Some(&t)).await;
    assert_eq!(head.0, 200, "HEAD /r");
    assert_ok(&send(&app, "POST", "/w", Some(&t)).await, "POST /w");
    assert_answer(
        &send(&app, "GET", "/w", Some(&t)).await,
        FORBIDDEN,
        "GET /w",
    );
    assert_answer(
        &send(&app, "POST", "/r", Some(&t)).await,
        FORBIDDEN,
        "POST /r",
    );
}

#[test]
fn url_prefix_rules_match_with_and_without_it() {
    let policy = Policy::builder()
        .allow("POST", "/api/v1/clients/add", ["client"])
        .public_prefix("/health")
        .url_prefix("/internal")
        .build()
        .unwrap();
    for path in ["/api/v1/clients/add", "/internal/api/v1/clients/add"] {
        assert!(
            decide(&policy, "POST", path, &["client"]).is_allowed(),
            "{path}"
        );
        let d = decide(&policy, "POST", path, &["combiner"]);
        assert_eq!(
            d.reason(),
            &RouteReason::MissingRole {
                needs: vec!["client".into()]
            },
            "{path}"
        );
    }
    // Only a whole-segment prefix is stripped.
    let d = decide(
        &policy,
        "POST",
        "/internalx/api/v1/clients/add",
        &["client"],
    );
    assert_eq!(d.reason(), &RouteReason::UnmatchedDenied);
    // Public prefixes match under the URL prefix too.
    for path in ["/health", "/internal/health", "/internal/health/live"] {
        assert!(
            policy.target(&Method::GET, path).unwrap().is_public(),
            "{path}"
        );
    }
    assert!(
        !policy
            .target(&Method::GET, "/internalx/health")
            .unwrap()
            .is_public()
    );
}

#[tokio::test]
async fn r4_dot_segments_are_400_through_the_layer() {
    let policy = Policy::builder()
        .allow("*", "/**", ["admin"])
        .public_prefix("/a")
        .public_prefix("/health")
        .build()
        .unwrap();
    let app = guarded(hs_builder().build().unwrap(), policy.clone());
    let admin = with_role("admin");
    let paths = [
        "/a/../b",
        "/a/%2e%2e/b",
        "/a/.%2E/b",
        "/a/%2E./b",
        "/./a",
        "/a/.",
        "/a/..",
        "/a/%2e",
        "/a/%2E/b",
        "/health/../admin",
        "/health/%2e%2e/admin",
        "/a/../b?x=1",
        // A dot segment hidden behind an encoded slash or backslash: a server behind us
        // that decodes and normalises would walk out of the route.
        "/a/%2F..",
        "/health/..%2F..%2Fadmin",
        "/health/..%2fadmin",
        "/a/.%5C",
    ];
    for path in paths {
        // With no token, with a valid admin token, and on a public prefix: 400 first.
        assert_answer(&send(&app, "GET", path, None).await, BAD_PATH, path);
        assert_answer(&send(&app, "GET", path, Some(&admin)).await, BAD_PATH, path);
        assert!(
            policy
                .target(&Method::GET, path.split('?').next().unwrap())
                .is_err(),
            "{path}"
        );
    }
    // Not dot segments: three dots, a dot inside a name, an encoded slash.
    for path in [
        "/a/.../b",
        "/a/..x/b",
        "/a/.x",
        "/a/%2e%2e%2e",
        "/a/b.c",
        "/a/%2F...",
        "/a/x%2Fy",
    ] {
        assert_ok(&send(&app, "GET", path, Some(&admin)).await, path);
    }
}

/// SECURITY.md R4: a dot segment followed by a path parameter (`..;`, `.;x`, also
/// percent-encoded) is a dot segment: Tomcat, Jetty and Spring drop the parameter and walk
/// up, so `/public/..;/admin/x` would otherwise pass as public and reach `/admin/x`.
#[tokio::test]
async fn r4_dot_segments_with_a_path_parameter_are_400() {
    let policy = Policy::builder()
        .allow("*", "/admin/{*rest}", ["admin"])
        .allow("*", "/api/{*rest}", ["client"])
        .public_prefix("/public")
        .build()
        .unwrap();
    let app = guarded(hs_builder().build().unwrap(), policy.clone());
    let client = with_role("client");
    for path in [
        "/public/..;/admin/x",
        "/public/..;x/admin/x",
        "/public/%2e%2e;/admin/x",
        "/public/%2E%2e;jsessionid=1/admin/x",
        "/public/.;/admin",
        "/public/.;x",
        "/api/..;/admin/x",
        "/api/.%2e;/admin/x",
        "/public/..%3b/admin/x",
        "/public/a%2F..;/admin",
    ] {
        assert_answer(&send(&app, "GET", path, None).await, BAD_PATH, path);
        assert_answer(
            &send(&app, "GET", path, Some(&client)).await,
            BAD_PATH,
            path,
        );
        assert!(policy.target(&Method::GET, path).is_err(), "{path}");
    }
    // Parameters on ordinary segments, and dots that are not a whole segment, still pass.
    for path in [
        "/api/items;v=1",
        "/api/..x;y",
        "/api/...;x",
        "/api/a;..",
        "/api/;x",
    ] {
        assert_ok(&send(&app, "GET", path, Some(&client)).await, path);
    }
}

#[tokio::test]
async fn r4_encoded_slash_does_not_split_a_segment() {
    let policy = Policy::builder()
        .allow("GET", "/files/{name}", ["u"])
        .allow("GET", "/x/a/b", ["u"])
        .public_prefix("/pub/a")
        .build()
        .unwrap();
    assert!(decide(&policy, "GET", "/files/a%2Fb", &["u"]).is_allowed());
    assert!(decide(&policy, "GET", "/files/a%2fb", &["u"]).is_allowed());
    assert_eq!(
        decide(&policy, "GET", "/x/a%2Fb", &["u"]).reason(),
        &RouteReason::UnmatchedDenied
    );
    assert!(
        !policy
            .target(&Method::GET, "/pub/a%2Fb")
            .unwrap()
            .is_public()
    );
    assert!(!policy.target(&Method::GET, "/pub%2Fa").unwrap().is_public());

    let app = guarded(hs_builder().build().unwrap(), policy);
    let t = with_role("u");
    assert_ok(
        &send(&app, "GET", "/files/a%2Fb", Some(&t)).await,
        "/files/a%2Fb",
    );
    assert_answer(
        &send(&app, "GET", "/x/a%2Fb", Some(&t)).await,
        FORBIDDEN,
        "/x/a%2Fb",
    );
    assert_answer(
        &send(&app, "GET", "/pub/a%2Fb", None).await,
        MISSING,
        "/pub/a%2Fb",
    );
    assert_ok(&send(&app, "GET", "/pub/a/b", None).await, "/pub/a/b");
}

#[tokio::test]
async fn query_string_is_never_part_of_matching() {
    let policy = Policy::builder()
        .allow("GET", "/q", ["u"])
        .public_prefix("/internal")
        .build()
        .unwrap();
    let app = guarded(hs_builder().build().unwrap(), policy);
    let t = with_role("u");
    for path in [
        "/q?x=1",
        "/q?next=/admin",
        "/q?",
        "/q?a=..%2F..",
        "/q?/../x",
    ] {
        assert_ok(&send(&app, "GET", path, Some(&t)).await, path);
    }
    // A query naming a public prefix does not make a route public.
    for path in ["/x?/internal", "/x?p=/internal/y", "/admin?internal"] {
        assert_answer(&send(&app, "GET", path, None).await, MISSING, path);
        assert_answer(&send(&app, "GET", path, Some(&t)).await, FORBIDDEN, path);
    }
    assert_ok(
        &send(&app, "GET", "/internal?x=/admin", None).await,
        "/internal?x=/admin",
    );
}

#[tokio::test]
async fn r2_unmatched_deny_versus_authenticated() {
    let deny = Policy::builder()
        .allow("GET", "/known", ["admin"])
        .build()
        .unwrap();
    let open = Policy::builder()
        .allow("GET", "/known", ["admin"])
        .unmatched(Unmatched::Authenticated)
        .build()
        .unwrap();

    let d = decide(&deny, "GET", "/unknown", &["client"]);
    assert!(!d.is_allowed());
    assert_eq!(d.reason(), &RouteReason::UnmatchedDenied);
    let d = decide(&open, "GET", "/unknown", &["client"]);
    assert!(d.is_allowed());
    assert_eq!(d.reason(), &RouteReason::UnmatchedAuthenticated);
    // A named route still needs its role under `Authenticated`.
    let d = decide(&open, "GET", "/known", &["client"]);
    assert_eq!(
        d.reason(),
        &RouteReason::MissingRole {
            needs: vec!["admin".into()]
        }
    );

    let t = with_role("client");
    let deny_app = guarded(hs_builder().build().unwrap(), deny);
    let open_app = guarded(hs_builder().build().unwrap(), open);
    assert_answer(
        &send(&deny_app, "GET", "/unknown", Some(&t)).await,
        FORBIDDEN,
        "deny",
    );
    assert_ok(
        &send(&open_app, "GET", "/unknown", Some(&t)).await,
        "authenticated",
    );
    assert_answer(
        &send(&open_app, "GET", "/known", Some(&t)).await,
        FORBIDDEN,
        "named route",
    );
    // `Authenticated` still needs a token.
    assert_answer(
        &send(&open_app, "GET", "/unknown", None).await,
        MISSING,
        "no token",
    );
}

#[test]
fn role_inheritance() {
    let base = || {
        Policy::builder()
            .allow("GET", "/c", ["client"])
            .allow("GET", "/a", ["admin"])
    };
    let flat = base().build().unwrap();
    let inherited = base()
        .inherit("admin", ["client"])
        .inherit("root", ["admin"])
        .build()
        .unwrap();

    // Off by default.
    assert!(!decide(&flat, "GET", "/c", &["admin"]).is_allowed());
    // admin includes client, root includes admin and so client; never the reverse.
    let table: &[(&str, &str, bool)] = &[
        ("/c", "client", true),
        ("/c", "admin", true),
        ("/c", "root", true),
        ("/a", "admin", true),
        ("/a", "root", true),
        ("/a", "client", false),
        ("/c", "administrator", false),
        ("/c", "Admin", false),
    ];
    for (path, role, allowed) in table {
        let d = decide(&inherited, "GET", path, &[role]);
        assert_eq!(d.is_allowed(), *allowed, "{role} on {path}: {d}");
    }
    let d = decide(&inherited, "GET", "/c", &["admin"]);
    assert_eq!(
        d.reason(),
        &RouteReason::Rule {
            index: 0,
            methods: "GET".into(),
            pattern: "/c".into(),
            role: "admin".into()
        }
    );
    // The reason for a refusal names the roles as written in the rule.
    let d = decide(&inherited, "GET", "/a", &["client"]);
    assert_eq!(
        d.reason(),
        &RouteReason::MissingRole {
            needs: vec!["admin".into()]
        }
    );
}

#[tokio::test]
async fn r1_role_claim_shapes() {
    let policy = || {
        Policy::builder()
            .allow("GET", "/me", ["client"])
            .build()
            .unwrap()
    };
    let base = |extra: Value| {
        let mut c = json!({"sub": "u", "exp": NOW + 3600});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    // (role claim path, extra claims, allowed)
    let table: Vec<(&str, Value, bool)> = vec![
        ("role", json!({"role": "client"}), true),
        ("role", json!({"role": ["other", "client"]}), true),
        // A string under any name but `scope`/`scp` is one role, never split.
        ("role", json!({"role": "other client"}), false),
        ("role", json!({"role": "super admin client"}), false),
        ("scp", json!({"scp": "read client"}), true),
        ("role", json!({"role": ["other", 5, "client"]}), true),
        ("scope", json!({"scope": "read client write"}), true),
        ("scope", json!({"scope": "read  client"}), true),
        ("roles", json!({"roles": ["client"]}), true),
        (
            "realm_access.roles",
            json!({"realm_access": {"roles": ["offline", "client"]}}),
            true,
        ),
        (
            "realm_access.roles",
            json!({"realm_access": {"roles": "client"}}),
            true,
        ),
        // Wrong types and near misses: no roles, 403, never a panic.
        ("role", json!({"role": 5}), false),
        ("role", json!({"role": 1.5}), false),
        ("role", json!({"role": true}), false),
        ("role", json!({"role": null}), false),
        ("role", json!({"role": {"client": true}}), false),
        ("role", json!({"role": [["client"]]}), false),
        ("role", json!({"role": [{"name": "client"}]}), false),
        ("role", json!({"role": ""}), false),
        ("role", json!({"role": []}), false),
        ("role", json!({"role": "clientx"}), false),
        ("role", json!({"role": "Client"}), false),
        ("role", json!({"roles": "client"}), false),
        ("role", json!({}), false),
        ("scope", json!({"scope": "read,client"}), false),
        ("realm_access.roles", json!({"realm_access": null}), false),
        (
            "realm_access.roles",
            json!({"realm_access": "client"}),
            false,
        ),
        (
            "realm_access.roles",
            json!({"realm_access": ["client"]}),
            false,
        ),
        (
            "realm_access.roles",
            json!({"realm_access": {"roles": 7}}),
            false,
        ),
        (
            "realm_access.roles",
            json!({"realm_access": {"roles": {"client": 1}}}),
            false,
        ),
        ("realm_access.roles", json!({"realm_access": {}}), false),
    ];
    for (path, extra, allowed) in table {
        let case = format!("{path} = {extra}");
        let auth = hs_builder().role_claim(path).build().unwrap();
        let app = guarded(auth, policy());
        let got = send(&app, "GET", "/me", Some(&bearer(&base(extra)))).await;
        if allowed {
            assert_ok(&got, &case);
        } else {
            assert_answer(&got, FORBIDDEN, &case);
        }
    }
}

#[tokio::test]
async fn required_claims() {
    let policy = || {
        Policy::builder()
            .allow("GET", "/me", ["*"])
            .require_claim("tenant", "acme")
            .build()
            .unwrap()
    };
    let nested = || {
        Policy::builder()
            .allow("GET", "/me", ["*"])
            .require_claim("org.id", "acme")
            .build()
            .unwrap()
    };
    let base = |extra: Value| {
        let mut c = claims("client");
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    // (nested path?, extra claims, allowed)
    let table: Vec<(bool, Value, bool)> = vec![
        (false, json!({"tenant": "acme"}), true),
        (false, json!({"tenant": ["other", "acme"]}), true),
        (false, json!({"tenant": "other"}), false),
        (false, json!({"tenant": "acme2"}), false),
        (false, json!({"tenant": "Acme"}), false),
        (false, json!({"tenant": "other acme"}), false),
        (false, json!({"tenant": ["other"]}), false),
        (false, json!({"tenant": []}), false),
        (false, json!({"tenant": null}), false),
        (false, json!({"tenant": 5}), false),
        (false, json!({"tenant": {"acme": true}}), false),
        (false, json!({}), false),
        (true, json!({"org": {"id": "acme"}}), true),
        (true, json!({"org": {"id": ["acme"]}}), true),
        (true, json!({"org": {"id": "evil"}}), false),
        (true, json!({"org": "acme"}), false),
        (true, json!({"org": {}}), false),
    ];
    for (is_nested, extra, allowed) in table {
        let case = format!("{extra}");
        let p = if is_nested { nested() } else { policy() };
        let key = if is_nested { "org.id" } else { "tenant" };
        let c = base(extra);

        let target = p.target(&Method::GET, "/me").unwrap();
        let d = p.decide(&principal(&c), &target);
        assert_eq!(d.is_allowed(), allowed, "{case}: {d}");
        if !allowed {
            assert_eq!(
                d.reason(),
                &RouteReason::RequiredClaim { key: key.into() },
                "{case}"
            );
            assert_eq!(
                d.to_string(),
                format!("denied: required claim `{key}` is missing or different")
            );
            let err = d.clone().into_result().unwrap_err();
            assert_eq!(err.kind(), portcullis::AuthErrorKind::Forbidden);
            // The claim's value is never reported.
            assert!(
                !err.to_string().contains("acme") && !err.to_string().contains("evil"),
                "{err}"
            );
        }

        let app = guarded(hs_builder().build().unwrap(), p);
        let got = send(&app, "GET", "/me", Some(&bearer(&c))).await;
        if allowed {
            assert_ok(&got, &case);
        } else {
            assert_answer(&got, FORBIDDEN, &case);
        }
    }
}

#[test]
fn decision_reasons_for_hit_and_miss() {
    let policy = Policy::builder()
        .allow("POST", "/api/v1/clients/add", ["client"])
        .allow("GET,HEAD", "/api/v1/clients/", ["admin", "ops"])
        .allow("GET", "/me", ["*"])
        .public_prefix("/health")
        .build()
        .unwrap();

    let hit = decide(&policy, "POST", "/api/v1/clients/add", &["client"]);
    assert_eq!(
        hit.reason(),
        &RouteReason::Rule {
            index: 0,
            methods: "POST".into(),
            pattern: "/api/v1/clients/add".into(),
            role: "client".into()
        }
    );
    assert_eq!(
        hit.to_string(),
        "allowed: rule 0 (POST /api/v1/clients/add) allows role `client`"
    );
    assert_eq!(hit.clone().into_result().unwrap(), hit.reason().clone());

    let any = decide(&policy, "GET", "/me", &[]);
    assert_eq!(any.to_string(), "allowed: rule 2 (GET /me) allows role `*`");

    let miss = decide(&policy, "GET", "/api/v1/clients/", &["client"]);
    assert_eq!(
        miss.reason(),
        &RouteReason::MissingRole {
            needs: vec!["admin".into(), "ops".into()]
        }
    );
    assert_eq!(
        miss.to_string(),
        "denied: no role of the caller is named by the rules for this route (needs one of: admin, ops)"
    );
    let err = miss.into_result().unwrap_err();
    assert_eq!(err.status(), http::StatusCode::FORBIDDEN);
    assert_eq!(err.message(), "Insufficient permissions");

    let none = decide(&policy, "GET", "/nowhere", &["admin"]);
    assert_eq!(
        none.to_string(),
        "denied: no rule names this route; unmatched routes are denied"
    );

    let public = decide(&policy, "GET", "/health/live", &[]);
    assert_eq!(public.to_string(), "allowed: public prefix `/health`");
}

const FULL_TOML: &str = r#"
# A complete policy file.
unmatched = "deny"
public = ["/health", "/internal"]
url_prefix = "/prefix"

[required_claims]
tenant = "acme"

[inherit]
admin = ["client", "combiner"]

[[rule]]
roles = ["client"]
methods = ["POST"]
path = "/api/v1/clients/add"

[[rule]]
roles = ["combiner"]
methods = ["POST", "PUT"]
path = "/add_combiner"

[[rule]]
roles = ["reader"]
methods = ["GET"]
path = "/files/{*rest}"

[[rule]]
roles = ["*"]
methods = ["GET"]
path = "/me"

[[rule]]
roles = ["admin"]
path = "/**"
"#;

#[test]
fn toml_full_example() {
    let policy = Policy::from_toml_str(FULL_TOML).unwrap();
    let table: &[(&str, &str, &[&str], bool)] = &[
        ("POST", "/api/v1/clients/add", &["client"], true),
        ("POST", "/prefix/api/v1/clients/add", &["client"], true),
        ("GET", "/api/v1/clients/add", &["client"], false),
        ("POST", "/api/v1/clients/add", &["admin"], true),
        ("PUT", "/add_combiner", &["combiner"], true),
        ("PUT", "/add_combiner", &["admin"], true),
        ("DELETE", "/add_combiner", &["combiner"], false),
        ("GET", "/files/a/b", &["reader"], true),
        ("HEAD", "/files/a/b", &["reader"], true),
        ("GET", "/me", &[], true),
        ("DELETE", "/anything/at/all", &["admin"], true),
        ("GET", "/elsewhere", &["client"], false),
    ];
    for (method, path, roles, allowed) in table {
        let d = decide(&policy, method, path, roles);
        assert_eq!(
            d.is_allowed(),
            *allowed,
            "{method} {path} as {roles:?}: {d}"
        );
    }
    for path in ["/health", "/internal/x", "/prefix/health"] {
        assert!(
            policy.target(&Method::GET, path).unwrap().is_public(),
            "{path}"
        );
    }
    assert!(
        !policy
            .target(&Method::GET, "/internalx")
            .unwrap()
            .is_public()
    );

    // The required claim applies on top of the rules.
    let target = policy.target(&Method::GET, "/me").unwrap();
    let mut c = claims("client");
    assert_eq!(
        policy.decide(&principal(&c), &target).reason(),
        &RouteReason::RequiredClaim {
            key: "tenant".into()
        }
    );
    c["tenant"] = json!("acme");
    assert!(policy.decide(&principal(&c), &target).is_allowed());

    // `authenticated` and the defaults.
    let open = Policy::from_toml_str("unmatched = \"authenticated\"\n").unwrap();
    assert_eq!(
        decide(&open, "GET", "/x", &[]).reason(),
        &RouteReason::UnmatchedAuthenticated
    );
    let empty = Policy::from_toml_str("").unwrap();
    assert_eq!(
        decide(&empty, "GET", "/x", &["admin"]).reason(),
        &RouteReason::UnmatchedDenied
    );
}

#[test]
fn toml_errors_name_the_line_or_the_rule() {
    // Unknown fields: the error names the line.
    let unknown_top = "unmatched = \"deny\"\npublik = [\"/health\"]\n";
    let err = Policy::from_toml_str(unknown_top).unwrap_err();
    assert!(err.setting().contains(":2:"), "{err}");
    assert!(err.to_string().contains("publik"), "{err}");

    let unknown_in_rule = "[[rule]]\nroles = [\"client\"]\nmethod = [\"GET\"]\npath = \"/x\"\n";
    let err = Policy::from_toml_str(unknown_in_rule).unwrap_err();
    assert!(err.setting().contains(":3:"), "{err}");
    assert!(err.to_string().contains("method"), "{err}");

    // Bad methods: the error names the rule and the method.
    for (methods, bad) in [
        ("[\"FETCH!\"]", "FETCH!"),
        ("[\"get\"]", "get"),
        ("[\"\"]", "``"),
    ] {
        let text = format!(
            "[[rule]]\nroles = [\"a\"]\npath = \"/ok\"\n\n[[rule]]\nroles = [\"client\"]\nmethods = {methods}\npath = \"/x\"\n"
        );
        let err = Policy::from_toml_str(&text).unwrap_err();
        assert!(err.setting().contains("rule 1"), "{methods}: {err}");
        assert!(err.setting().contains("/x"), "{methods}: {err}");
        assert!(err.to_string().contains(bad), "{methods}: {err}");
    }

    // A bad `unmatched` value and a wrong type.
    let err = Policy::from_toml_str("unmatched = \"allow\"\n").unwrap_err();
    assert!(err.setting().contains("unmatched"), "{err}");
    let err = Policy::from_toml_str("public = \"/health\"\n").unwrap_err();
    assert!(err.setting().contains(":1:"), "{err}");
    let err =
        Policy::from_toml_str("[[rule]]\nroles = [\"a\"]\npath = \"no-slash\"\n").unwrap_err();
    assert!(err.setting().contains("rule 0"), "{err}");
}

#[test]
fn url_prefix_strips_public_prefixes_only_when_no_rule_names_it() {
    let get = &Method::GET;
    // No rule names a route under `/internal`: the stripped reading makes it public.
    let policy = Policy::builder()
        .allow("POST", "/api/v1/clients/add", ["client"])
        .allow("*", "/**", ["admin"])
        .public_prefix("/health")
        .url_prefix("/internal")
        .build()
        .unwrap();
    assert!(
        policy
            .target(get, "/internal/health/x")
            .unwrap()
            .is_public()
    );
    // A rule names `/api/...`: under the URL prefix `/api`, only what is public as it
    // stands is public, whatever the stripped reading says.
    let policy = Policy::fedn_rest()
        .public_prefix("/v1/clients")
        .url_prefix("/api")
        .build()
        .unwrap();
    for path in ["/api/v1/clients/", "/api/v1/clients", "/api/v1/clients/x"] {
        let target = policy.target(get, path).unwrap();
        assert!(!target.is_public(), "{path}");
        assert_eq!(
            policy.decide_roles(&["client"], &target).reason(),
            &RouteReason::MissingRole {
                needs: vec!["admin".into()]
            },
            "{path}"
        );
    }
    for path in ["/v1/clients", "/v1/clients/x", "/health"] {
        assert!(policy.target(get, path).unwrap().is_public(), "{path}");
    }
    // Rules still match with and without the prefix.
    let add = policy
        .target(&Method::POST, "/api/api/v1/clients/add")
        .unwrap();
    assert!(policy.decide_roles(&["client"], &add).is_allowed());
    // A rule whose leading literals merely share text with the prefix does not count.
    let policy = Policy::builder()
        .allow("GET", "/apix/y", ["r"])
        .allow("GET", "/{any}/api/x", ["r"])
        .public_prefix("/health")
        .url_prefix("/api")
        .build()
        .unwrap();
    assert!(policy.target(get, "/api/health").unwrap().is_public());
}

#[test]
fn shadowed_http_rule_is_refused_naming_both() {
    let err = Policy::builder()
        .allow("GET", "/me", ["*"])
        .allow("GET,POST", "/health/live", ["ops"])
        .public_prefix("/internal")
        .public_prefix("/health")
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "rule 1 (GET,POST /health/live)", "{err}");
    assert!(err.to_string().contains("public prefix `/health`"), "{err}");
    assert!(err.to_string().contains("never apply"), "{err}");

    // Every pattern whose matches all lie under the prefix is refused...
    for pattern in [
        "/health",
        "/health/",
        "/health/**",
        "/health/{*rest}",
        "/health/{id}/x",
    ] {
        let err = Policy::builder()
            .public_prefix("/health")
            .allow("*", pattern, ["ops"])
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), format!("rule 0 (* {pattern})"), "{err}");
        assert!(err.to_string().contains("`/health`"), "{err}");
    }
    // ...and none that also reaches a path outside it.
    for pattern in ["/healthz", "/{id}/health", "/**", "/", "/*", "/x/health"] {
        assert!(
            Policy::builder()
                .public_prefix("/health")
                .allow("*", pattern, ["ops"])
                .build()
                .is_ok(),
            "{pattern}"
        );
    }
    // A URL prefix that the stripped reading may use: `/api/v1/clients/add` reads as the
    // public `/v1/clients/add`, and so does `/v1/clients/add` itself.
    let err = Policy::builder()
        .allow("POST", "/v1/clients/add", ["client"])
        .public_prefix("/v1/clients")
        .url_prefix("/api")
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "rule 0 (POST /v1/clients/add)", "{err}");
    // Once a rule names a route under `/api`, `/api/v1/clients/add` is not public, so
    // the rule applies there.
    let policy = Policy::builder()
        .allow("GET", "/api/status", ["ops"])
        .allow("POST", "/v1/clients/add", ["client"])
        .public_prefix("/v1/clients")
        .url_prefix("/api")
        .build()
        .unwrap();
    let d = decide(&policy, "POST", "/api/v1/clients/add", &["client"]);
    assert!(
        matches!(d.reason(), RouteReason::Rule { index: 1, .. }),
        "{d}"
    );
    // The same through a policy file.
    let err = Policy::from_toml_str(
        "public = [\"/health\"]\n[[rule]]\nroles = [\"ops\"]\npath = \"/health/live\"\n",
    )
    .unwrap_err();
    assert_eq!(err.setting(), "rule 0 (* /health/live)", "{err}");
}

#[test]
fn shadowed_grpc_rule_is_refused_naming_both() {
    let err = Policy::builder()
        .allow("GET", "/me", ["*"])
        .allow_grpc("/pkg.S/Other", ["client"])
        .allow_grpc("/pkg.S/Check", ["client"])
        .public_grpc("/pkg.S/Check")
        .build()
        .unwrap_err();
    // HTTP and gRPC rules are numbered apart.
    assert_eq!(err.setting(), "grpc rule 1 (/pkg.S/Check)", "{err}");
    assert!(
        err.to_string()
            .contains("public gRPC method `/pkg.S/Check`"),
        "{err}"
    );
    // (public entry, rule pattern, refused)
    let table: &[(&str, &str, bool)] = &[
        ("/pkg.S/*", "/pkg.S/M", true),
        ("/pkg.S/*", "/pkg.S/*", true),
        ("/pkg.S/*", "/pkg.T/M", false),
        ("/pkg.S/*", "*", false),
        ("/pkg.S/M", "/pkg.S/*", false),
        ("/pkg.S/M", "/pkg.S/N", false),
        ("*", "/pkg.S/M", true),
        ("*", "/pkg.S/*", true),
        ("*", "*", true),
    ];
    for (public, pattern, refused) in table {
        let got = Policy::builder()
            .public_grpc(*public)
            .allow_grpc(pattern, ["r"])
            .build();
        assert_eq!(got.is_err(), *refused, "{public} over {pattern}: {got:?}");
        if let Err(err) = got {
            assert_eq!(err.setting(), format!("grpc rule 0 ({pattern})"));
            assert!(err.to_string().contains(&format!("`{public}`")), "{err}");
        }
    }
    // A user-agent allow-list opens methods to some callers only: no shadow.
    assert!(
        Policy::builder()
            .grpc_user_agent("probe", ["/pkg.S/*"])
            .allow_grpc("/pkg.S/M", ["r"])
            .build()
            .is_ok()
    );
}

#[test]
fn segment_limit_and_empty_segments() {
    let policy = Policy::builder()
        .allow("GET", "/**", ["r"])
        .allow("GET", "/one/{id}", ["one"])
        .allow("GET", "/rest/{*rest}", ["rest"])
        .build()
        .unwrap();
    let path = |n: usize| "/s".repeat(n);
    assert!(policy.target(&Method::GET, &path(256)).is_ok());
    let err = policy.target(&Method::GET, &path(257)).unwrap_err();
    assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
    assert!(
        policy
            .target(&Method::GET, &format!("{}/", path(255)))
            .is_ok()
    );
    assert!(
        policy
            .target(&Method::GET, &format!("{}/", path(256)))
            .is_err()
    );
    // `{name}` and `*` never match an empty segment; `{*rest}` needs a non-empty first one.
    for (path, role, allowed) in [
        ("/one/x", "one", true),
        ("/one/", "one", false),
        ("/one//", "one", false),
        ("/rest/a", "rest", true),
        ("/rest/a/", "rest", true),
        ("/rest/", "rest", false),
        ("/rest//a", "rest", false),
        ("/rest", "rest", false),
        ("/", "r", true),
        ("//", "r", true),
    ] {
        let d = decide(&policy, "GET", path, &[role]);
        assert_eq!(d.is_allowed(), allowed, "{path}: {d}");
    }
}

#[test]
fn reasons_follow_rule_order_across_tries() {
    // Rules spread over the GET, HEAD and `*` tries, `{id}` and `*` nodes, and tails:
    // the reason still names the first rule as written.
    let policy = Policy::builder()
        .allow("*", "/a/**", ["z"])
        .allow("GET", "/a/{id}", ["y", "x"])
        .allow("GET,HEAD", "/a/*", ["x"])
        .allow("POST", "/a/b", ["w"])
        .allow("*", "/a/b", ["x", "v"])
        .inherit("root", ["x"])
        .build()
        .unwrap();
    let d = decide(&policy, "HEAD", "/a/b", &["v", "x"]);
    assert_eq!(
        d.reason(),
        &RouteReason::Rule {
            index: 1,
            methods: "GET".into(),
            pattern: "/a/{id}".into(),
            role: "x".into()
        }
    );
    let d = decide(&policy, "POST", "/a/b", &["root"]);
    assert_eq!(
        d.reason(),
        &RouteReason::Rule {
            index: 4,
            methods: "*".into(),
            pattern: "/a/b".into(),
            role: "root".into()
        }
    );
    let d = decide(&policy, "GET", "/a/b", &["nobody"]);
    assert_eq!(
        d.reason(),
        &RouteReason::MissingRole {
            needs: vec!["v".into(), "x".into(), "y".into(), "z".into()]
        }
    );
    let d = decide(&policy, "HEAD", "/a/b", &["x"]);
    assert!(
        matches!(d.reason(), RouteReason::Rule { index: 1, .. }),
        "{d}"
    );
}

/// Index equivalence: for random rule sets and requests, the compiled policy answers as a
/// plain scan of the rules in order would (the reference below), through `decide_roles`
/// and through the layer's own path.
mod equivalence {
    use super::*;
    use proptest::prelude::*;

    const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"];
    const RULE_METHODS: [&str; 6] = ["GET", "POST", "*", "GET,PUT", "HEAD", "PUT"];
    const LITS: [&str; 5] = ["a", "b", "c", "p", ""];
    const ROLES: [&str; 5] = ["r0", "r1", "r2", "r3", "*"];

    #[derive(Debug, Clone)]
    struct HttpRule {
        methods: &'static str,
        pattern: String,
        roles: Vec<&'static str>,
    }

    #[derive(Debug, Clone)]
    struct GrpcRule {
        pattern: &'static str,
        roles: Vec<&'static str>,
    }

    #[derive(Debug, Clone)]
    struct Model {
        http: Vec<HttpRule>,
        grpc: Vec<GrpcRule>,
        public: Vec<String>,
        public_grpc: Vec<&'static str>,
        url_prefix: Option<&'static str>,
        inherit: bool,
        open: bool,
    }

    fn segs(path: &str) -> Vec<&str> {
        match &path[1..] {
            "" => Vec::new(),
            body => body.split('/').collect(),
        }
    }

    fn pattern_matches(pattern: &str, path: &[&str]) -> bool {
        let pat = segs(pattern);
        for (i, p) in pat.iter().enumerate() {
            match *p {
                "**" => return true,
                "{*rest}" => return path.get(i).is_some_and(|s| !s.is_empty()),
                "*" | "{id}" => {
                    if path.get(i).is_none_or(|s| s.is_empty()) {
                        return false;
                    }
                }
                lit => {
                    if path.get(i) != Some(&lit) {
                        return false;
                    }
                }
            }
        }
        pat.len() == path.len()
    }

    fn leading_literals(pattern: &str) -> Vec<&str> {
        segs(pattern)
            .into_iter()
            .take_while(|s| !s.contains(['*', '{']))
            .collect()
    }

    fn covers(prefix: &[&str], path: &[&str]) -> bool {
        path.len() >= prefix.len() && prefix.iter().zip(path).all(|(a, b)| a == b)
    }

    impl Model {
        fn build(&self) -> Result<Policy, portcullis::ConfigError> {
            let mut b = Policy::builder();
            for r in &self.http {
                b = b.allow(r.methods, &r.pattern, r.roles.iter().copied());
            }
            for r in &self.grpc {
                b = b.allow_grpc(r.pattern, r.roles.iter().copied());
            }
            for p in &self.public {
                b = b.public_prefix(p.as_str());
            }
            for p in &self.public_grpc {
                b = b.public_grpc(*p);
            }
            if let Some(u) = self.url_prefix {
                b = b.url_prefix(u);
            }
            if self.inherit {
                b = b.inherit("r0", ["r1"]).inherit("r2", ["r0"]);
            }
            let unmatched = if self.open {
                Unmatched::Authenticated
            } else {
                Unmatched::Deny
            };
            b.unmatched(unmatched).unmatched_grpc(unmatched).build()
        }

        /// The roles that satisfy a rule naming `roles`, with inheritance.
        fn granted(&self, roles: &[&'static str]) -> Vec<&'static str> {
            let mut out = roles.to_vec();
            if self.inherit {
                // r0 includes r1; r2 includes r0 and so r1.
                if roles.contains(&"r1") {
                    out.extend(["r0", "r2"]);
                }
                if roles.contains(&"r0") {
                    out.push("r2");
                }
            }
            out
        }

        fn stripped<'p>(&self, path: &[&'p str]) -> Option<Vec<&'p str>> {
            let url = segs(self.url_prefix?);
            covers(&url, path).then(|| path[url.len()..].to_vec())
        }

        fn public(&self, path: &[&str]) -> Option<String> {
            let strip_ok = self.url_prefix.is_some_and(|u| {
                let url = segs(u);
                !self
                    .http
                    .iter()
                    .any(|r| covers(&url, &leading_literals(&r.pattern)))
            });
            let stripped = self.stripped(path);
            self.public
                .iter()
                .find(|p| {
                    let p = segs(p);
                    covers(&p, path)
                        || (strip_ok && stripped.as_deref().is_some_and(|s| covers(&p, s)))
                })
                .cloned()
        }

        fn http_matches(&self, rule: &HttpRule, method: &str, path: &[&str]) -> bool {
            let method_ok = rule.methods == "*"
                || rule
                    .methods
                    .split(',')
                    .any(|m| m == method || (m == "GET" && method == "HEAD"));
            method_ok
                && (pattern_matches(&rule.pattern, path)
                    || self
                        .stripped(path)
                        .is_some_and(|s| pattern_matches(&rule.pattern, &s)))
        }

        fn grpc_matches(pattern: &str, method: &str) -> bool {
            match pattern.strip_suffix('*') {
                Some("") => true,
                Some(service) => method.starts_with(service),
                None => pattern == method,
            }
        }

        /// A plain scan: the first rule (as written) that one of `roles` satisfies.
        fn decide(
            &self,
            hits: Vec<(usize, String, String, Vec<&'static str>)>,
            roles: &[&str],
        ) -> (bool, RouteReason) {
            let mut needs = std::collections::BTreeSet::new();
            for (index, methods, pattern, rule_roles) in &hits {
                let role = if rule_roles.contains(&"*") {
                    Some("*")
                } else {
                    let granted = self.granted(rule_roles);
                    roles.iter().copied().find(|r| granted.contains(r))
                };
                if let Some(role) = role {
                    return (
                        true,
                        RouteReason::Rule {
                            index: *index,
                            methods: methods.clone(),
                            pattern: pattern.clone(),
                            role: role.into(),
                        },
                    );
                }
                needs.extend(rule_roles.iter().map(|r| r.to_string()));
            }
            match (hits.is_empty(), self.open) {
                (false, _) => (
                    false,
                    RouteReason::MissingRole {
                        needs: needs.into_iter().collect(),
                    },
                ),
                (true, true) => (true, RouteReason::UnmatchedAuthenticated),
                (true, false) => (false, RouteReason::UnmatchedDenied),
            }
        }

        fn decide_http(&self, method: &str, path: &str, roles: &[&str]) -> (bool, RouteReason) {
            let path = segs(path);
            if let Some(prefix) = self.public(&path) {
                return (true, RouteReason::Public { prefix });
            }
            let hits = self
                .http
                .iter()
                .enumerate()
                .filter(|(_, r)| self.http_matches(r, method, &path))
                .map(|(i, r)| (i, r.methods.to_owned(), r.pattern.clone(), r.roles.clone()))
                .collect();
            self.decide(hits, roles)
        }

        fn decide_grpc(&self, method: &str, roles: &[&str]) -> (bool, RouteReason) {
            if let Some(p) = self
                .public_grpc
                .iter()
                .find(|p| Self::grpc_matches(p, method))
            {
                return (
                    true,
                    RouteReason::Public {
                        prefix: p.to_string(),
                    },
                );
            }
            let hits = self
                .grpc
                .iter()
                .enumerate()
                .filter(|(_, r)| Self::grpc_matches(r.pattern, method))
                .map(|(i, r)| (i, "gRPC".to_owned(), r.pattern.to_owned(), r.roles.clone()))
                .collect();
            self.decide(hits, roles)
        }

        /// Builds the policy, dropping each rule that `build()` refuses as shadowed, and
        /// checks on `paths` that a dropped rule only ever matched public paths.
        fn build_dropping_shadowed(&mut self, paths: &[(&str, String)]) -> Policy {
            loop {
                let err = match self.build() {
                    Ok(policy) => return policy,
                    Err(err) => err,
                };
                assert!(err.to_string().contains("never apply"), "{err}");
                let setting = err.setting().to_owned();
                let (grpc, rest) = match setting.strip_prefix("grpc rule ") {
                    Some(rest) => (true, rest),
                    None => (false, setting.strip_prefix("rule ").unwrap()),
                };
                let index: usize = rest.split(' ').next().unwrap().parse().unwrap();
                if grpc {
                    let rule = self.grpc.remove(index);
                    for m in ["/s.A/m1", "/s.A/m2", "/s.B/m1"] {
                        if Self::grpc_matches(rule.pattern, m) {
                            assert!(
                                self.public_grpc.iter().any(|p| Self::grpc_matches(p, m)),
                                "{rule:?} refused but reaches {m}"
                            );
                        }
                    }
                } else {
                    let rule = self.http.remove(index);
                    for (method, path) in paths {
                        let s = segs(path);
                        if self.http_matches(&rule, method, &s) {
                            // The rule reached this path; it must be public (with the rule
                            // gone, the reading of the URL prefix can only widen).
                            let mut with = self.clone();
                            with.http.insert(index, rule.clone());
                            assert!(
                                with.public(&s).is_some(),
                                "{rule:?} refused but reaches {method} {path}"
                            );
                        }
                    }
                }
            }
        }
    }

    fn pattern() -> impl Strategy<Value = String> {
        let seg = prop_oneof![
            6 => proptest::sample::select(&LITS[..4]).prop_map(str::to_owned),
            1 => Just(String::new()),
            2 => Just("*".to_owned()),
            2 => Just("{id}".to_owned()),
        ];
        let tail = prop_oneof![
            4 => Just(None),
            1 => Just(Some("**")),
            1 => Just(Some("{*rest}")),
        ];
        (proptest::collection::vec(seg, 0..4), tail).prop_map(|(segs, tail)| {
            let mut all: Vec<String> = segs;
            all.extend(tail.map(str::to_owned));
            format!("/{}", all.join("/"))
        })
    }

    fn roles() -> impl Strategy<Value = Vec<&'static str>> {
        proptest::sample::subsequence(&ROLES[..], 1..3)
    }

    fn model() -> impl Strategy<Value = Model> {
        let http = proptest::collection::vec(
            (
                proptest::sample::select(&RULE_METHODS[..]),
                pattern(),
                roles(),
            )
                .prop_map(|(methods, pattern, roles)| HttpRule {
                    methods,
                    pattern,
                    roles,
                }),
            0..12,
        );
        let grpc = proptest::collection::vec(
            (
                proptest::sample::select(&["*", "/s.A/*", "/s.A/m1", "/s.B/m1", "/s.A/m2"][..]),
                roles(),
            )
                .prop_map(|(pattern, roles)| GrpcRule { pattern, roles }),
            0..5,
        );
        let public = proptest::collection::vec(
            proptest::collection::vec(proptest::sample::select(&LITS[..4]), 1..3)
                .prop_map(|s| format!("/{}", s.join("/"))),
            0..3,
        );
        let public_grpc = proptest::sample::subsequence(&["/s.A/m2", "/s.B/*"][..], 0..2);
        let url = proptest::sample::select(&[None, Some("/p"), Some("/p/a")][..]);
        (
            http,
            grpc,
            public,
            public_grpc,
            url,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(http, grpc, public, public_grpc, url_prefix, inherit, open)| Model {
                    http,
                    grpc,
                    public,
                    public_grpc,
                    url_prefix,
                    inherit,
                    open,
                },
            )
    }

    fn request() -> impl Strategy<Value = (&'static str, String)> {
        let seg = prop_oneof![
            8 => proptest::sample::select(&LITS[..]),
            1 => Just("x%2Fy"),
            1 => Just("q"),
        ];
        (
            proptest::sample::select(&METHODS[..]),
            proptest::collection::vec(seg, 0..6).prop_map(|s| format!("/{}", s.join("/"))),
        )
    }

    fn caller() -> impl Strategy<Value = Vec<&'static str>> {
        proptest::sample::subsequence(&ROLES[..], 0..3).prop_shuffle()
    }

    fn principal_with(roles: &[&str]) -> Principal {
        let mut c = claims("x");
        c["role"] = json!(roles);
        principal(&c)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn indexed_decisions_equal_a_plain_scan(
            mut model in model(),
            requests in proptest::collection::vec((request(), caller()), 1..16),
            grpc_callers in proptest::collection::vec(caller(), 3),
        ) {
            let paths: Vec<(&str, String)> = requests.iter().map(|(r, _)| r.clone()).collect();
            let policy = model.build_dropping_shadowed(&paths);
            for ((method, path), roles) in &requests {
                let m = Method::from_bytes(method.as_bytes()).unwrap();
                let target = policy.target(&m, path).unwrap();
                let d = policy.decide_roles(roles, &target);
                let (allowed, reason) = model.decide_http(method, path, roles);
                prop_assert_eq!(d.reason(), &reason, "{} {} as {:?}, {:?}", method, path, roles, model);
                prop_assert_eq!(d.is_allowed(), allowed);
                prop_assert_eq!(target.is_public(), matches!(reason, RouteReason::Public { .. }));
                // The layer's path agrees with the decision.
                if !target.is_public() {
                    let p = principal_with(roles);
                    let full = policy.decide(&p, &target);
                    prop_assert_eq!(policy.authorize_for_bench(&p, &target).is_ok(), allowed);
                    prop_assert_eq!(full.reason(), &reason);
                }
            }
            for (method, roles) in ["/s.A/m1", "/s.A/m2", "/s.B/m1"].iter().zip(&grpc_callers) {
                let target = policy.grpc_target(method, None).unwrap();
                let d = policy.decide_roles(roles, &target);
                let (allowed, reason) = model.decide_grpc(method, roles);
                prop_assert_eq!(d.reason(), &reason, "{} as {:?}, {:?}", method, roles, model);
                prop_assert_eq!(d.is_allowed(), allowed);
                if !target.is_public() {
                    let p = principal_with(roles);
                    prop_assert_eq!(policy.authorize_for_bench(&p, &target).is_ok(), allowed);
                }
            }
        }
    }
}
