//! FEDn's environment variables, read through
//! `EnvConfig::from_lookup`, guarding an axum app with FEDn's REST routes.

mod common;

use axum::Router;
use portcullis::{Algorithm, ConfigError, EnvConfig, Signer};
use serde_json::{Value, json};

use common::{NOW, SECRET, app, assert_rejected, claims, hs256, send};

/// 64 bytes: long enough for HS512.
const SECRET_64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const BEARER_MISSING: (u16, Option<&str>, &str, &str) = (
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
const INVALID_TOKEN: (u16, Option<&str>, &str, &str) = (
    401,
    Some(r#"Bearer realm="api", error="invalid_token""#),
    "invalid_token",
    "Invalid token",
);

fn lookup(vars: &[(&str, &str)]) -> Result<EnvConfig, ConfigError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    EnvConfig::from_lookup(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

/// The app configured only through the environment, plus `GET /me` for any valid token
/// and the fixed clock.
fn fedn(vars: &[(&str, &str)]) -> Router {
    let (auth, policy) = lookup(vars)
        .unwrap()
        .map_authenticator(|a| a.clock(|| NOW))
        .map_policy(|p| p.allow("GET", "/me", ["*"]))
        .build()
        .unwrap();
    app(auth, policy)
}

/// The configuration error, whether reading or building finds it.
fn config_error(vars: &[(&str, &str)]) -> ConfigError {
    match lookup(vars) {
        Err(e) => e,
        Ok(c) => match c.build() {
            Err(e) => e,
            Ok(_) => panic!("{vars:?} configured without error"),
        },
    }
}

fn token(role: &str) -> String {
    hs256().sign(&claims(role)).unwrap()
}

fn bearer(role: &str) -> String {
    format!("Bearer {}", token(role))
}

fn with(claims: Value, extra: Value) -> Value {
    let mut c = claims;
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    c
}

fn check(got: &(u16, http::HeaderMap, Value), want: (u16, Option<&str>, &str, &str), case: &str) {
    assert_eq!(got.0, want.0, "{case}: body {:?}", got.2);
    assert_rejected(got, want.0, want.1, want.2, want.3);
}

/// A 200 from the handler: `body` is its text (`[]` comes back parsed as JSON).
fn check_ok(got: &(u16, http::HeaderMap, Value), body: &str, case: &str) {
    assert_eq!(got.0, 200, "{case}: body {:?}", got.2);
    let want = serde_json::from_str(body).unwrap_or_else(|_| json!(body));
    assert_eq!(got.2, want, "{case}");
    assert!(got.1.get("www-authenticate").is_none(), "{case}");
}

#[tokio::test]
async fn client_role_on_fedn_routes() {
    let app = fedn(&[("FEDN_JWT_SECRET_KEY", SECRET)]);
    check_ok(
        &send(&app, "POST", "/api/v1/clients/add", Some(&bearer("client"))).await,
        "added",
        "client add",
    );
    check(
        &send(&app, "GET", "/api/v1/clients/", Some(&bearer("client"))).await,
        FORBIDDEN,
        "client list",
    );
    check(
        &send(
            &app,
            "POST",
            "/api/v1/clients/add",
            Some(&bearer("combiner")),
        )
        .await,
        FORBIDDEN,
        "combiner add",
    );
    check_ok(
        &send(&app, "GET", "/api/v1/clients/", Some(&bearer("admin"))).await,
        "[]",
        "admin list",
    );
    check_ok(
        &send(&app, "POST", "/api/v1/clients/add", Some(&bearer("admin"))).await,
        "added",
        "admin add",
    );
    check(
        &send(&app, "POST", "/api/v1/clients/add", None).await,
        BEARER_MISSING,
        "no token",
    );
    check_ok(&send(&app, "GET", "/health", None).await, "ok", "health");
    // `/me` was added in code after the environment.
    let me = send(&app, "GET", "/me", Some(&bearer("client"))).await;
    assert_eq!(me.0, 200);
    assert_eq!(me.2, json!({"sub": "user-1", "roles": ["client"]}));
}

#[tokio::test]
async fn auth_scheme_token() {
    let app = fedn(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_AUTH_SCHEME", "Token"),
    ]);
    let t = token("client");
    check_ok(
        &send(
            &app,
            "POST",
            "/api/v1/clients/add",
            Some(&format!("Token {t}")),
        )
        .await,
        "added",
        "Token",
    );
    let wrong_scheme = (
        401,
        Some(r#"Token realm="api""#),
        "missing_token",
        "Invalid token scheme, expected Token",
    );
    check(
        &send(
            &app,
            "POST",
            "/api/v1/clients/add",
            Some(&format!("Bearer {t}")),
        )
        .await,
        wrong_scheme,
        "Bearer",
    );
    check(
        &send(
            &app,
            "POST",
            "/api/v1/clients/add",
            Some(&format!("Basic {t}")),
        )
        .await,
        wrong_scheme,
        "Basic",
    );
    let missing = (
        401,
        Some(r#"Token realm="api""#),
        "missing_token",
        "Missing token",
    );
    check(
        &send(&app, "POST", "/api/v1/clients/add", None).await,
        missing,
        "no header",
    );
    let forbidden = (
        403,
        Some(r#"Token realm="api", error="insufficient_scope""#),
        "insufficient_scope",
        "Insufficient permissions",
    );
    check(
        &send(&app, "GET", "/api/v1/clients/", Some(&format!("Token {t}"))).await,
        forbidden,
        "client list",
    );
    let bad = (
        400,
        Some(r#"Token realm="api", error="invalid_request""#),
        "invalid_request",
        "Invalid request",
    );
    check(
        &send(&app, "GET", "/me", Some("Token")).await,
        bad,
        "Token alone",
    );

    // The default scheme says Bearer.
    let app = fedn(&[("FEDN_JWT_SECRET_KEY", SECRET)]);
    let wrong = (
        401,
        Some(r#"Bearer realm="api""#),
        "missing_token",
        "Invalid token scheme, expected Bearer",
    );
    check(
        &send(&app, "GET", "/me", Some(&format!("Token {t}"))).await,
        wrong,
        "Token on default",
    );
}

#[tokio::test]
async fn e3_schemes_compare_case_insensitively() {
    let t = token("client");
    let bearer_app = fedn(&[("FEDN_JWT_SECRET_KEY", SECRET)]);
    let token_app = fedn(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_AUTH_SCHEME", "Token"),
    ]);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let case = format!("{scheme} <jwt>");
        check_ok(
            &send(
                &bearer_app,
                "POST",
                "/api/v1/clients/add",
                Some(&format!("{scheme} {t}")),
            )
            .await,
            "added",
            &case,
        );
        check_ok(
            &send(
                &bearer_app,
                "POST",
                "/api/v1/clients/add",
                Some(&format!("{scheme}   {t}")),
            )
            .await,
            "added",
            &case,
        );
        // The scheme is recognised: a bad credential is an invalid token, not a missing one.
        check(
            &send(&bearer_app, "GET", "/me", Some(&format!("{scheme} x"))).await,
            INVALID_TOKEN,
            &format!("{scheme} x"),
        );
    }
    let invalid = (
        401,
        Some(r#"Token realm="api", error="invalid_token""#),
        "invalid_token",
        "Invalid token",
    );
    for scheme in ["Token", "token", "TOKEN", "tOkEn"] {
        let case = format!("{scheme} <jwt>");
        check_ok(
            &send(
                &token_app,
                "POST",
                "/api/v1/clients/add",
                Some(&format!("{scheme} {t}")),
            )
            .await,
            "added",
            &case,
        );
        check(
            &send(&token_app, "GET", "/me", Some(&format!("{scheme} x"))).await,
            invalid,
            &format!("{scheme} x"),
        );
    }
}

#[tokio::test]
async fn e4_scheme_alone_is_400_never_500() {
    let app = fedn(&[("FEDN_JWT_SECRET_KEY", SECRET)]);
    let bad = (
        400,
        Some(r#"Bearer realm="api", error="invalid_request""#),
        "invalid_request",
        "Invalid request",
    );
    for value in [
        "Bearer",
        "bearer",
        "Bearer ",
        "Bearer    ",
        "Bearer\t",
        "Bearer\tx",
        "Bearer x y",
        "Bearer a,b",
    ] {
        check(
            &send(&app, "GET", "/me", Some(value)).await,
            bad,
            &format!("{value:?}"),
        );
        check(
            &send(&app, "POST", "/api/v1/clients/add", Some(value)).await,
            bad,
            &format!("{value:?}"),
        );
    }
}

#[tokio::test]
async fn expired_token_says_token_expired() {
    let app = fedn(&[("FEDN_JWT_SECRET_KEY", SECRET)]);
    let expired = hs256()
        .sign(&with(claims("client"), json!({"exp": NOW - 3600})))
        .unwrap();
    let want = (
        401,
        Some(r#"Bearer realm="api", error="invalid_token""#),
        "invalid_token",
        "Token expired",
    );
    check(
        &send(
            &app,
            "POST",
            "/api/v1/clients/add",
            Some(&format!("Bearer {expired}")),
        )
        .await,
        want,
        "expired",
    );
    // Within the default 60 s leeway it still passes.
    let recent = hs256()
        .sign(&with(claims("client"), json!({"exp": NOW - 30})))
        .unwrap();
    check_ok(
        &send(
            &app,
            "POST",
            "/api/v1/clients/add",
            Some(&format!("Bearer {recent}")),
        )
        .await,
        "added",
        "leeway",
    );
}

#[tokio::test]
async fn r3_whitelist_prefixes_match_whole_segments() {
    for var in ["FEDN_AUTH_WHITELIST_URL_PREFIX", "FEDN_AUTH_WHITELIST_URL"] {
        let app = fedn(&[("FEDN_JWT_SECRET_KEY", SECRET), (var, "/internal")]);
        for path in [
            "/internal",
            "/internal/",
            "/internal/x",
            "/internal/api/v1/clients/",
        ] {
            check_ok(
                &send(&app, "GET", path, None).await,
                "fallback",
                &format!("{var} {path}"),
            );
        }
        for path in [
            "/internalx",
            "/internalx/y",
            "/internal-y",
            "/api/v1/clients/?x=/internal",
        ] {
            check(
                &send(&app, "GET", path, None).await,
                BEARER_MISSING,
                &format!("{var} {path}"),
            );
        }
        // Other routes still need their role.
        check(
            &send(&app, "GET", "/api/v1/clients/", Some(&bearer("client"))).await,
            FORBIDDEN,
            var,
        );
    }
    // Both names and comma-separated lists add up.
    let app = fedn(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_AUTH_WHITELIST_URL_PREFIX", "/a, /b"),
        ("FEDN_AUTH_WHITELIST_URL", "/c"),
    ]);
    for path in ["/a/x", "/b/x", "/c/x"] {
        check_ok(&send(&app, "GET", path, None).await, "fallback", path);
    }
    check(
        &send(&app, "GET", "/d/x", None).await,
        BEARER_MISSING,
        "/d/x",
    );
    // A prefix without a leading slash is a configuration error naming the variable.
    let err = config_error(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_AUTH_WHITELIST_URL_PREFIX", "internal"),
    ]);
    assert_eq!(err.setting(), "FEDN_AUTH_WHITELIST_URL_PREFIX", "{err}");
}

#[tokio::test]
async fn custom_url_prefix_needs_the_same_role() {
    let app = fedn(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_CUSTOM_URL_PREFIX", "/internal"),
    ]);
    for path in ["/api/v1/clients/add", "/internal/api/v1/clients/add"] {
        let got = send(&app, "POST", path, Some(&bearer("client"))).await;
        assert_eq!(got.0, 200, "{path}: {:?}", got.2);
        check(
            &send(&app, "POST", path, Some(&bearer("combiner"))).await,
            FORBIDDEN,
            path,
        );
        check(
            &send(&app, "POST", path, Some(&bearer("clientx"))).await,
            FORBIDDEN,
            path,
        );
        check(&send(&app, "POST", path, None).await, BEARER_MISSING, path);
    }
    check(
        &send(
            &app,
            "GET",
            "/internal/api/v1/clients/",
            Some(&bearer("client")),
        )
        .await,
        FORBIDDEN,
        "list",
    );
    // Only whole segments are stripped.
    check(
        &send(
            &app,
            "POST",
            "/internalx/api/v1/clients/add",
            Some(&bearer("client")),
        )
        .await,
        FORBIDDEN,
        "internalx",
    );
    // The public `/health` is public under the prefix too.
    let got = send(&app, "GET", "/internal/health", None).await;
    assert_eq!(got.0, 200, "{:?}", got.2);
}

/// The policy and the router never read one path two ways: with the URL prefix `/api`
/// (FEDn's routes are written under it) and the public prefix `/v1/clients`, FEDn's
/// admin-only `/api/v1/clients/` is not made public by reading it as `/v1/clients/`.
#[tokio::test]
async fn url_prefix_never_makes_a_named_route_public() {
    let app = fedn(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_CUSTOM_URL_PREFIX", "/api"),
        ("FEDN_AUTH_WHITELIST_URL_PREFIX", "/v1/clients"),
    ]);
    for path in [
        "/api/v1/clients/",
        "/api/v1/clients",
        "/api/v1/clients/x",
        "/api/v1/clients/add",
    ] {
        check(&send(&app, "GET", path, None).await, BEARER_MISSING, path);
    }
    // The admin list still needs admin; the client still adds.
    check(
        &send(&app, "GET", "/api/v1/clients/", Some(&bearer("client"))).await,
        FORBIDDEN,
        "client list",
    );
    check_ok(
        &send(&app, "GET", "/api/v1/clients/", Some(&bearer("admin"))).await,
        "[]",
        "admin list",
    );
    check_ok(
        &send(&app, "POST", "/api/v1/clients/add", Some(&bearer("client"))).await,
        "added",
        "client add",
    );
    // What is public as it stands stays public.
    for path in ["/v1/clients/x", "/v1/clients", "/v1/clients/"] {
        check_ok(&send(&app, "GET", path, None).await, "fallback", path);
    }
    check_ok(&send(&app, "GET", "/health", None).await, "ok", "health");
}

/// FEDn's gRPC preset builds, and its whitelisted `fedn.Control` methods stay public:
/// FEDn never checks the `controller` role on them, and a rule there is refused.
#[test]
fn fedn_grpc_preset_whitelists_control_methods() {
    let policy = portcullis::Policy::fedn().build().unwrap();
    for method in [
        "/fedn.Control/Start",
        "/fedn.Control/Stop",
        "/fedn.Control/FlushAggregationQueue",
        "/fedn.Control/SetAggregator",
        "/fedn.Control/SetServerFunctions",
        "/fedn.Control/SendCommand",
        "/fedn.Control/GetState",
        "/fedn.Connector/AcceptingClients",
        "/fedn.Connector/ListActiveClients",
    ] {
        let t = policy.grpc_target(method, None).unwrap();
        assert!(t.is_public(), "{method}");
        assert_eq!(
            policy.decide_roles::<&str>(&[], &t).reason(),
            &portcullis::RouteReason::Public {
                prefix: method.into()
            },
            "{method}"
        );
    }
    // The client methods need the client role; the first is rule 0, the last rule 6.
    let t = policy
        .grpc_target("/fedn.Combiner/TaskStream", None)
        .unwrap();
    assert_eq!(
        policy.decide_roles(&["client"], &t).reason(),
        &portcullis::RouteReason::Rule {
            index: 0,
            methods: "gRPC".into(),
            pattern: "/fedn.Combiner/TaskStream".into(),
            role: "client".into()
        }
    );
    let t = policy
        .grpc_target("/fedn.ModelService/Upload", None)
        .unwrap();
    assert!(matches!(
        policy.decide_roles(&["client"], &t).reason(),
        portcullis::RouteReason::Rule { index: 6, .. }
    ));
    assert_eq!(
        policy.decide_roles(&["controller"], &t).reason(),
        &portcullis::RouteReason::MissingRole {
            needs: vec!["client".into()]
        }
    );
    // Unmapped methods take any valid token.
    let t = policy
        .grpc_target("/fedn.Combiner/SendModelMetric", None)
        .unwrap();
    assert_eq!(
        policy.decide_roles::<&str>(&[], &t).reason(),
        &portcullis::RouteReason::UnmatchedAuthenticated
    );
    // A controller rule on a whitelisted method could never apply: refused, naming both.
    let err = portcullis::Policy::fedn()
        .allow_grpc("/fedn.Control/Start", ["controller"])
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "grpc rule 7 (/fedn.Control/Start)", "{err}");
    assert!(
        err.to_string()
            .contains("public gRPC method `/fedn.Control/Start`"),
        "{err}"
    );
}

#[tokio::test]
async fn custom_claim_must_match() {
    let vars = [
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_JWT_CUSTOM_CLAIM_KEY", "tenant"),
        ("FEDN_JWT_CUSTOM_CLAIM_VALUE", "acme"),
    ];
    let app = fedn(&vars);
    let table: Vec<(Value, bool)> = vec![
        (json!({"tenant": "acme"}), true),
        (json!({"tenant": ["x", "acme"]}), true),
        (json!({"tenant": "other"}), false),
        (json!({"tenant": "ACME"}), false),
        (json!({"tenant": 1}), false),
        (json!({"tenant": null}), false),
        (json!({}), false),
    ];
    for (extra, allowed) in table {
        let case = extra.to_string();
        let t = hs256().sign(&with(claims("client"), extra)).unwrap();
        let got = send(
            &app,
            "POST",
            "/api/v1/clients/add",
            Some(&format!("Bearer {t}")),
        )
        .await;
        if allowed {
            check_ok(&got, "added", &case);
        } else {
            check(&got, FORBIDDEN, &case);
        }
    }
    // Public routes skip it.
    check_ok(&send(&app, "GET", "/health", None).await, "ok", "health");
    // Half a pair is a configuration error naming the missing half.
    let err = config_error(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_JWT_CUSTOM_CLAIM_KEY", "tenant"),
    ]);
    assert_eq!(err.setting(), "FEDN_JWT_CUSTOM_CLAIM_VALUE", "{err}");
    let err = config_error(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_JWT_CUSTOM_CLAIM_VALUE", "acme"),
    ]);
    assert_eq!(err.setting(), "FEDN_JWT_CUSTOM_CLAIM_KEY", "{err}");
}

#[tokio::test]
async fn hs512_accepts_hs512_and_refuses_hs256() {
    let app = fedn(&[
        ("FEDN_JWT_SECRET_KEY", SECRET_64),
        ("FEDN_JWT_ALGORITHM", "HS512"),
    ]);
    let sign = |alg| {
        format!(
            "Bearer {}",
            Signer::hmac(alg, SECRET_64)
                .unwrap()
                .sign(&claims("client"))
                .unwrap()
        )
    };
    check_ok(
        &send(
            &app,
            "POST",
            "/api/v1/clients/add",
            Some(&sign(Algorithm::HS512)),
        )
        .await,
        "added",
        "HS512",
    );
    check(
        &send(
            &app,
            "POST",
            "/api/v1/clients/add",
            Some(&sign(Algorithm::HS256)),
        )
        .await,
        INVALID_TOKEN,
        "HS256",
    );
    check(
        &send(
            &app,
            "POST",
            "/api/v1/clients/add",
            Some(&sign(Algorithm::HS384)),
        )
        .await,
        INVALID_TOKEN,
        "HS384",
    );
}

#[test]
fn short_secret_is_a_config_error() {
    let secret = "short-secret";
    let err = config_error(&[("FEDN_JWT_SECRET_KEY", secret)]);
    assert_eq!(err.setting(), "FEDN_JWT_SECRET_KEY", "{err}");
    assert!(err.to_string().contains("FEDN_JWT_SECRET_KEY"), "{err}");
    assert!(err.to_string().contains("32 bytes"), "{err}");
    assert!(
        !err.to_string().contains(secret),
        "the secret is echoed: {err}"
    );
    // 32 bytes are too short for HS512.
    let err = config_error(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_JWT_ALGORITHM", "HS512"),
    ]);
    assert_eq!(err.setting(), "FEDN_JWT_SECRET_KEY", "{err}");
    assert!(err.to_string().contains("64"), "{err}");
    // The documented opt-in accepts it.
    assert!(
        lookup(&[
            ("FEDN_JWT_SECRET_KEY", secret),
            ("PORTCULLIS_INSECURE_ALLOW_SHORT_SECRET", "true")
        ])
        .unwrap()
        .build()
        .is_ok()
    );
}

#[test]
fn no_key_is_a_config_error_not_auth_off() {
    for vars in [
        &[][..],
        &[("FEDN_JWT_SECRET_KEY", "")][..],
        &[
            ("FEDN_JWT_SECRET_KEY", "   "),
            ("FEDN_AUTH_SCHEME", "Token"),
        ][..],
    ] {
        let config = lookup(vars).unwrap();
        assert!(!config.has_keys(), "{vars:?}");
        let err = config.build_layer().unwrap_err();
        assert!(
            err.setting().starts_with("FEDN_JWT_SECRET_KEY"),
            "{vars:?}: {err}"
        );
        assert!(err.to_string().contains("no key source"), "{err}");
    }
}

#[test]
fn unknown_algorithm_is_a_config_error() {
    for alg in ["HS999", "none", "hs256", "ES512", "RSA"] {
        let err = config_error(&[
            ("FEDN_JWT_SECRET_KEY", SECRET_64),
            ("FEDN_JWT_ALGORITHM", alg),
        ]);
        assert_eq!(err.setting(), "FEDN_JWT_ALGORITHM", "{alg}: {err}");
        assert!(
            err.to_string().contains(&format!("`{alg}`")),
            "{alg}: {err}"
        );
    }
    // A known algorithm that does not fit an HMAC secret also names the variable.
    let err = config_error(&[
        ("FEDN_JWT_SECRET_KEY", SECRET_64),
        ("FEDN_JWT_ALGORITHM", "RS256"),
    ]);
    assert_eq!(err.setting(), "FEDN_JWT_ALGORITHM", "{err}");
}

/// FEDn accepts a public prefix over routes its own policy guards: the operator makes
/// them public. A prefix from the environment wins over the rules of the FEDn preset and
/// of the application's code (the shadowed rules are dropped with a warning), where it
/// used to stop the service at start.
#[tokio::test]
async fn environment_prefixes_win_over_preset_and_code_rules() {
    for prefix in ["/api/v1/clients", "/api/v1"] {
        let app = fedn(&[
            ("FEDN_JWT_SECRET_KEY", SECRET),
            ("FEDN_AUTH_WHITELIST_URL_PREFIX", prefix),
        ]);
        check_ok(
            &send(&app, "POST", "/api/v1/clients/add", None).await,
            "added",
            prefix,
        );
        check_ok(
            &send(&app, "GET", "/api/v1/clients/", None).await,
            "[]",
            prefix,
        );
        // Outside the prefix, nothing changed.
        check(
            &send(&app, "GET", "/api/v2/x", None).await,
            BEARER_MISSING,
            prefix,
        );
    }
    // `FEDN_AUTH_WHITELIST_URL=/me` beside the code's rule for `/me`.
    let (_, policy) = lookup(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_AUTH_WHITELIST_URL", "/me"),
    ])
    .unwrap()
    .map_policy(|p| p.allow("GET", "/me", ["*"]))
    .build()
    .unwrap();
    assert!(
        policy
            .target(&http::Method::GET, "/me")
            .unwrap()
            .is_public()
    );
    assert!(
        !policy
            .target(&http::Method::GET, "/mex")
            .unwrap()
            .is_public()
    );
    // A rule and a prefix written in the same source still fail to build.
    let err = lookup(&[("FEDN_JWT_SECRET_KEY", SECRET)])
        .unwrap()
        .map_policy(|p| p.public_prefix("/me").allow("GET", "/me", ["*"]))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("public prefix `/me`"), "{err}");
}

/// The quickstart itself starts with those variables, and a request under the prefix is
/// public (the example binary that `cargo test` builds).
#[test]
fn the_quickstart_starts_with_environment_prefixes_over_its_rules() {
    use std::io::{BufRead, Read, Write};
    let exe = std::env::current_exe().unwrap();
    let examples = exe.parent().unwrap().parent().unwrap().join("examples");
    let bin = examples.join(format!("quickstart{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "{} not built", bin.display());
    for (var, value, path) in [
        (
            "FEDN_AUTH_WHITELIST_URL_PREFIX",
            "/api/v1/clients",
            "/api/v1/clients/",
        ),
        ("FEDN_AUTH_WHITELIST_URL", "/me", "/health"),
    ] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let grpc = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new(&bin)
            .env("PORT", port.to_string())
            .env("GRPC_PORT", grpc.to_string())
            .env("FEDN_JWT_SECRET_KEY", SECRET)
            .env(var, value)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        let started = loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap_or(0) == 0 {
                break false;
            }
            seen.push_str(&line);
            if line.contains("listening on") {
                break true;
            }
        };
        if !started {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            let _ = child.kill();
            panic!("{var}={value}: the quickstart did not start: {seen}{err}");
        }
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            conn,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut res = String::new();
        conn.read_to_string(&mut res).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            res.starts_with("HTTP/1.1 200"),
            "{var}={value}: {path} without a token: {res}"
        );
    }
}
