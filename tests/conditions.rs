//! Rules with conditions: a claim bound to a path parameter, a literal or a header (gRPC:
//! metadata), in the builder and in a policy file, through the layer; and what `build()`
//! refuses.

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use portcullis::{AuthLayer, Authenticator, Condition, ConfigErrorKind, Policy, RouteReason};
use serde_json::{Value, json};
use tower::ServiceExt;

use common::SECRET;

fn token(claims: Value) -> String {
    common::lasting_token(claims)
}

fn app(policy: Policy) -> Router {
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .build()
        .unwrap();
    Router::new()
        .route("/tenants/{tenant}/reports", get(|| async { "reports" }))
        .route("/orgs/{org}/users/{user}", get(|| async { "user" }))
        .route("/billing", get(|| async { "billing" }))
        .layer(AuthLayer::new(auth, policy))
}

async fn status(app: &Router, path: &str, claims: Value, headers: &[(&str, &str)]) -> u16 {
    let mut req = Request::get(path).header("authorization", format!("Bearer {}", token(claims)));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    res.status().as_u16()
}

fn tenant_rule() -> Policy {
    Policy::builder()
        .allow_when(
            "GET",
            "/tenants/{tenant}/reports",
            ["*"],
            [Condition::claim_equals_param("tenant", "tenant")],
        )
        .build()
        .unwrap()
}

const TENANT_FILE: &str = r#"
[[rule]]
roles = ["*"]
methods = ["GET"]
path = "/tenants/{tenant}/reports"
when = [{ claim = "tenant", equals_param = "tenant" }]
"#;

#[tokio::test]
async fn a_claim_bound_to_a_path_parameter_in_the_builder_and_in_a_file() {
    for policy in [tenant_rule(), Policy::from_toml_str(TENANT_FILE).unwrap()] {
        let app = app(policy);
        let path = "/tenants/acme/reports";
        // A string claim equal to the segment; another tenant's.
        assert_eq!(
            status(&app, path, json!({"tenant": "acme"}), &[]).await,
            200
        );
        assert_eq!(
            status(&app, path, json!({"tenant": "globex"}), &[]).await,
            403
        );
        // An array claim holds when it contains the segment.
        assert_eq!(
            status(&app, path, json!({"tenant": ["globex", "acme"]}), &[]).await,
            200
        );
        assert_eq!(
            status(&app, path, json!({"tenant": ["globex"]}), &[]).await,
            403
        );
        // Missing, or of another type: the condition fails.
        assert_eq!(status(&app, path, json!({"sub": "ada"}), &[]).await, 403);
        assert_eq!(
            status(&app, "/tenants/7/reports", json!({"tenant": 7}), &[]).await,
            403
        );
        assert_eq!(
            status(&app, path, json!({"tenant": {"id": "acme"}}), &[]).await,
            403
        );
        // The segment is compared percent-decoded; an empty or undecodable one never holds.
        assert_eq!(
            status(
                &app,
                "/tenants/a%20b/reports",
                json!({"tenant": "a b"}),
                &[]
            )
            .await,
            200
        );
        assert_eq!(
            status(
                &app,
                "/tenants/%FF/reports",
                json!({"tenant": "\u{FFFD}"}),
                &[]
            )
            .await,
            403
        );
    }
}

#[tokio::test]
async fn a_failed_condition_is_403_insufficient_scope_with_the_layers_challenge() {
    let app = app(tenant_rule());
    let req = Request::get("/tenants/acme/reports")
        .header(
            "authorization",
            format!("Bearer {}", token(json!({"tenant": "globex"}))),
        )
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="api", error="insufficient_scope""#
    );
}

#[tokio::test]
async fn rules_add_up_and_every_condition_of_a_rule_must_hold() {
    let policy = Policy::builder()
        .allow_when(
            "GET",
            "/orgs/{org}/users/{user}",
            ["member"],
            [
                Condition::claim_equals_param("org", "org"),
                Condition::claim_equals_param("sub", "user"),
            ],
        )
        // Admins of the org reach every user of it.
        .allow_when(
            "GET",
            "/orgs/{org}/users/{user}",
            ["admin"],
            [Condition::claim_equals_param("org", "org")],
        )
        .build()
        .unwrap();
    let app = app(policy);
    let path = "/orgs/o1/users/ada";
    let ada = json!({"sub": "ada", "org": "o1", "role": "member"});
    assert_eq!(status(&app, path, ada.clone(), &[]).await, 200);
    assert_eq!(status(&app, "/orgs/o1/users/bob", ada, &[]).await, 403);
    let boss = json!({"sub": "eve", "org": "o1", "role": "admin"});
    assert_eq!(
        status(&app, "/orgs/o1/users/bob", boss.clone(), &[]).await,
        200
    );
    assert_eq!(status(&app, "/orgs/o2/users/bob", boss, &[]).await, 403);
    // The roles still count: a condition never lets in a caller the rule does not name.
    let guest = json!({"sub": "ada", "org": "o1", "role": "guest"});
    assert_eq!(status(&app, path, guest, &[]).await, 403);
}

#[tokio::test]
async fn literal_and_header_conditions() {
    let policy = Policy::builder()
        .allow_when(
            "GET",
            "/billing",
            ["*"],
            [
                Condition::claim_equals("plan", "pro"),
                Condition::claim_equals_header("org", "x-org"),
            ],
        )
        .build()
        .unwrap();
    let app = app(policy);
    let pro = json!({"plan": "pro", "org": "o1"});
    assert_eq!(
        status(&app, "/billing", pro.clone(), &[("x-org", "o1")]).await,
        200
    );
    assert_eq!(
        status(&app, "/billing", pro.clone(), &[("x-org", "o2")]).await,
        403
    );
    // No header, or the header twice: the condition fails.
    assert_eq!(status(&app, "/billing", pro.clone(), &[]).await, 403);
    assert_eq!(
        status(&app, "/billing", pro, &[("x-org", "o1"), ("x-org", "o1")]).await,
        403
    );
    let free = json!({"plan": "free", "org": "o1"});
    assert_eq!(
        status(&app, "/billing", free, &[("x-org", "o1")]).await,
        403
    );
}

#[tokio::test]
async fn a_grpc_metadata_condition() {
    let policy = Policy::builder()
        .allow_grpc_when(
            "/billing.v1.Billing/*",
            ["*"],
            [Condition::claim_equals_header("tenant", "x-tenant")],
        )
        .build()
        .unwrap();
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .build()
        .unwrap();
    let svc = AuthLayer::new(auth, policy).for_grpc();
    let grpc = tower::Layer::layer(
        &svc,
        tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
        }),
    );
    let call = |tenant: &'static str| {
        Request::post("/billing.v1.Billing/Charge")
            .header("content-type", "application/grpc")
            .header(
                "authorization",
                format!("Bearer {}", token(json!({"tenant": "t1"}))),
            )
            .header("x-tenant", tenant)
            .body(Body::empty())
            .unwrap()
    };
    let res = grpc.clone().oneshot(call("t1")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("grpc-status").is_none(), "{res:?}");
    let res = grpc.oneshot(call("t2")).await.unwrap();
    // PERMISSION_DENIED
    assert_eq!(res.headers()["grpc-status"], "7");
}

#[test]
fn the_reason_names_the_rule_and_the_condition_never_a_value() {
    let policy = tenant_rule();
    let target = policy
        .target(&http::Method::GET, "/tenants/acme/reports")
        .unwrap();
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .build()
        .unwrap();
    let globex = auth
        .verify(&token(json!({"sub": "ada", "tenant": "globex"})))
        .unwrap();
    let decision = policy.decide(&globex, &target);
    assert!(!decision.is_allowed());
    assert_eq!(
        decision.reason(),
        &RouteReason::Condition {
            index: 0,
            methods: "GET".into(),
            pattern: "/tenants/{tenant}/reports".into(),
            condition: "claim `tenant` = path parameter {tenant}".into(),
        }
    );
    let text = decision.reason().to_string();
    assert!(!text.contains("globex") && !text.contains("acme"), "{text}");
    let err = decision.into_result().unwrap_err();
    assert_eq!(err.status(), 403);
    let acme = auth
        .verify(&token(json!({"sub": "ada", "tenant": "acme"})))
        .unwrap();
    assert!(policy.decide(&acme, &target).is_allowed());
}

#[test]
fn build_refuses_conditions_that_cannot_hold_naming_the_rule_and_the_fix() {
    let err = Policy::builder()
        .allow("GET", "/health", ["*"])
        .allow_when(
            "GET",
            "/tenants/{tenant}/reports",
            ["*"],
            [Condition::claim_equals_param("tenant", "org")],
        )
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Policy);
    assert_eq!(err.setting(), "rule 1 (GET /tenants/{tenant}/reports)");
    assert!(err.message().contains("has no parameter `{org}`"), "{err}");

    let err = Policy::builder()
        .allow_when(
            "GET",
            "/x",
            ["*"],
            [Condition::claim_equals("org..id", "1")],
        )
        .build()
        .unwrap_err();
    assert!(err.message().contains("is not a claim path"), "{err}");

    let err = Policy::builder()
        .allow_when(
            "GET",
            "/x",
            ["*"],
            [Condition::claim_equals_header("org", "x org")],
        )
        .build()
        .unwrap_err();
    assert!(err.message().contains("is not a header name"), "{err}");

    let err = Policy::builder()
        .allow_grpc_when(
            "/a.B/*",
            ["*"],
            [Condition::claim_equals_param("org", "org")],
        )
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "grpc rule 0 (/a.B/*)");
    assert!(err.message().contains("no path parameters"), "{err}");

    // In a file: the same error, and a condition with two comparisons names its place.
    let err = Policy::from_toml_str(
        &TENANT_FILE.replace("equals_param = \"tenant\"", "equals_param = \"org\""),
    )
    .unwrap_err();
    assert_eq!(err.setting(), "rule 0 (GET /tenants/{tenant}/reports)");
    let err = Policy::from_toml_str(
        "[[rule]]\nroles = [\"*\"]\npath = \"/x\"\nwhen = [{ claim = \"a\", equals = \"1\", equals_header = \"x-a\" }]\n",
    )
    .unwrap_err();
    assert_eq!(err.location(), Some("policy: rule[0].when[0]"));
    assert!(err.message().contains("exactly one of"), "{err}");
}

/// A policy under the URL prefix `/eu` with one rule on `pattern` whose `tenant` claim
/// must equal `{tenant}`, and an app that serves every path behind it.
fn under_eu(pattern: &str) -> (Policy, Router) {
    let policy = Policy::builder()
        .url_prefix("/eu")
        .allow_when(
            "GET",
            pattern,
            ["*"],
            [Condition::claim_equals_param("tenant", "tenant")],
        )
        .build()
        .unwrap();
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .build()
        .unwrap();
    let app = Router::new()
        .route("/{*rest}", get(|| async { "any" }))
        .layer(AuthLayer::new(auth, policy.clone()));
    (policy, app)
}

#[tokio::test]
async fn under_a_url_prefix_a_parameter_never_binds_to_the_prefix() {
    // `/{tenant}/**` matches `/eu/acme/reports` as written and with `/eu` stripped: the
    // condition must hold in both readings, so `tenant = "eu"` gains nothing.
    let (policy, app) = under_eu("/{tenant}/**");
    let path = "/eu/acme/reports";
    assert_eq!(status(&app, path, json!({"tenant": "eu"}), &[]).await, 403);
    assert_eq!(
        status(&app, path, json!({"tenant": "acme"}), &[]).await,
        403
    );
    // Without the prefix there is one reading.
    assert_eq!(
        status(&app, "/acme/reports", json!({"tenant": "acme"}), &[]).await,
        200
    );
    // The decision with its reason says the same as the layer.
    let target = policy.target(&http::Method::GET, path).unwrap();
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .build()
        .unwrap();
    let eu = auth.verify(&token(json!({"tenant": "eu"}))).unwrap();
    assert!(!policy.decide(&eu, &target).is_allowed());

    // A pattern that only the stripped reading matches binds there alone.
    let (_, app) = under_eu("/{tenant}/reports");
    assert_eq!(
        status(&app, path, json!({"tenant": "acme"}), &[]).await,
        200
    );
    assert_eq!(status(&app, path, json!({"tenant": "eu"}), &[]).await, 403);
}
