//! gRPC: the layer guarding a real tonic server, the interceptor, and FEDn's gRPC policy,
//! called with a real tonic client over 127.0.0.1.

mod common;

use common::grpc::{client, client_stream, serve, server_stream, unary};
use common::*;
use portcullis::grpc::AuthInterceptor;
use portcullis::{AuthLayer, EnvConfig, Policy};
use serde_json::json;
use tonic::Code;

fn bearer(claims: serde_json::Value) -> String {
    format!("Bearer {}", hs256().sign(&claims).unwrap())
}

fn expired() -> String {
    bearer(json!({"sub": "u", "role": "client", "exp": NOW - 3600}))
}

fn quickstart_policy() -> Policy {
    Policy::builder()
        .public_grpc("/grpc.health.v1.Health/Check")
        .allow_grpc("/test.v1.Echo/*", ["client", "admin"])
        .allow_grpc("/test.v1.Echo/Admin", ["admin"])
        .build()
        .unwrap()
}

fn assert_status<T: std::fmt::Debug>(got: Result<T, tonic::Status>, code: Code, message: &str) {
    let status = got.expect_err("expected a status");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message, "{status:?}");
}

async fn guarded() -> std::net::SocketAddr {
    serve(Some(AuthLayer::new(
        hs_builder().build().unwrap(),
        quickstart_policy(),
    )))
    .await
}

#[tokio::test]
async fn layer_allows_a_permitted_unary_call() {
    let mut c = client(guarded().await, None).await;
    let got = unary(
        &mut c,
        "/test.v1.Echo/Hello",
        Some(&bearer(claims("client"))),
    )
    .await;
    assert_eq!(got.unwrap(), "user-1:hi");
}

#[tokio::test]
async fn layer_no_token_is_unauthenticated_missing_token() {
    let mut c = client(guarded().await, None).await;
    assert_status(
        unary(&mut c, "/test.v1.Echo/Hello", None).await,
        Code::Unauthenticated,
        "Missing token",
    );
}

#[tokio::test]
async fn layer_wrong_role_is_permission_denied() {
    let mut c = client(guarded().await, None).await;
    let got = unary(
        &mut c,
        "/test.v1.Echo/Hello",
        Some(&bearer(claims("other"))),
    )
    .await;
    assert_status(got, Code::PermissionDenied, "Insufficient permissions");
    // A method some rule names gets the union of the rules' roles; `client` is in the
    // service-wide rule, so Admin is open to it too: roles add up, none takes away.
    let got = unary(
        &mut c,
        "/test.v1.Echo/Admin",
        Some(&bearer(claims("client"))),
    )
    .await;
    assert!(got.is_ok());
    // A method no rule names is denied by default.
    let got = unary(
        &mut c,
        "/fedn.Combiner/TaskStream",
        Some(&bearer(claims("client"))),
    )
    .await;
    assert_status(got, Code::PermissionDenied, "Insufficient permissions");
}

#[tokio::test]
async fn layer_public_method_needs_no_token() {
    let mut c = client(guarded().await, None).await;
    assert_eq!(
        unary(&mut c, "/grpc.health.v1.Health/Check", None)
            .await
            .unwrap(),
        "anonymous:hi"
    );
    // Only that method: Watch is not public.
    assert_status(
        unary(&mut c, "/grpc.health.v1.Health/Watch", None).await,
        Code::Unauthenticated,
        "Missing token",
    );
}

#[tokio::test]
async fn layer_expired_token_is_unauthenticated_token_expired() {
    let mut c = client(guarded().await, None).await;
    assert_status(
        unary(&mut c, "/test.v1.Echo/Hello", Some(&expired())).await,
        Code::Unauthenticated,
        "Token expired",
    );
    let broken = format!("{}x", bearer(claims("client")));
    assert_status(
        unary(&mut c, "/test.v1.Echo/Hello", Some(&broken)).await,
        Code::Unauthenticated,
        "Invalid token",
    );
    assert_status(
        unary(&mut c, "/test.v1.Echo/Hello", Some("Bearer")).await,
        Code::Unauthenticated,
        "Invalid request",
    );
}

#[tokio::test]
async fn layer_guards_streaming_methods() {
    let mut c = client(guarded().await, None).await;
    let token = bearer(claims("client"));
    assert_eq!(
        server_stream(&mut c, "/test.v1.Echo/ServerStream", Some(&token))
            .await
            .unwrap(),
        ["user-1:0", "user-1:1", "user-1:2"]
    );
    assert_eq!(
        client_stream(&mut c, "/test.v1.Echo/ClientStream", Some(&token))
            .await
            .unwrap(),
        "user-1:3"
    );
    assert_status(
        server_stream(&mut c, "/test.v1.Echo/ServerStream", None).await,
        Code::Unauthenticated,
        "Missing token",
    );
    assert_status(
        client_stream(&mut c, "/test.v1.Echo/ClientStream", None).await,
        Code::Unauthenticated,
        "Missing token",
    );
    let other = bearer(claims("other"));
    assert_status(
        server_stream(&mut c, "/test.v1.Echo/ServerStream", Some(&other)).await,
        Code::PermissionDenied,
        "Insufficient permissions",
    );
    assert_status(
        client_stream(&mut c, "/test.v1.Echo/ClientStream", Some(&expired())).await,
        Code::Unauthenticated,
        "Token expired",
    );
}

#[tokio::test]
async fn layer_user_agent_allow_list_only_when_configured() {
    let with_ua = Policy::builder()
        .allow_grpc("*", ["client"])
        .grpc_user_agent("grpc_health_probe", ["/grpc.health.v1.Health/*"])
        .build()
        .unwrap();
    let addr = serve(Some(AuthLayer::new(hs_builder().build().unwrap(), with_ua))).await;
    let mut probe = client(addr, Some("grpc_health_probe")).await;
    assert!(
        unary(&mut probe, "/grpc.health.v1.Health/Check", None)
            .await
            .is_ok()
    );
    // Scoped: the same user agent opens nothing outside the health service.
    assert_status(
        unary(&mut probe, "/test.v1.Echo/Admin", None).await,
        Code::Unauthenticated,
        "Missing token",
    );
    let mut other = client(addr, Some("grpc_health_probe_x")).await;
    assert_status(
        unary(&mut other, "/grpc.health.v1.Health/Check", None).await,
        Code::Unauthenticated,
        "Missing token",
    );
    // Not configured: the probe's user agent opens nothing.
    let mut probe = client(guarded().await, Some("grpc_health_probe")).await;
    assert_status(
        unary(&mut probe, "/test.v1.Echo/Hello", None).await,
        Code::Unauthenticated,
        "Missing token",
    );
}

#[tokio::test]
async fn e7_several_authorization_entries_are_unauthenticated() {
    let addr = guarded().await;
    let mut c = client(addr, None).await;
    c.ready().await.unwrap();
    let token = bearer(claims("client"));
    let mut req = tonic::Request::new("hi".to_owned());
    req.metadata_mut()
        .append("authorization", token.parse().unwrap());
    req.metadata_mut()
        .append("authorization", token.parse().unwrap());
    let got = c
        .unary(
            req,
            http::uri::PathAndQuery::from_static("/test.v1.Echo/Hello"),
            tonic_prost::ProstCodec::<String, String>::default(),
        )
        .await;
    assert_status(got, Code::Unauthenticated, "Invalid request");
}

#[tokio::test]
async fn plain_http_answers_are_unchanged_through_the_same_layer() {
    use tower::{Layer, ServiceExt};
    let layer = AuthLayer::new(hs_builder().build().unwrap(), quickstart_policy());
    let svc = layer
        .for_grpc()
        .attach_errors()
        .layer(tonic::service::Routes::new(common::grpc::Named::<0>));
    // Not gRPC (no application/grpc content type): the HTTP table answers.
    let req = http::Request::post("/test.v1.Echo/Hello")
        .body(tonic::body::Body::empty())
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api""#);
    assert_eq!(res.headers()["content-type"], "application/json");
    // gRPC: trailers-only, HTTP 200, grpc-status 16.
    let req = http::Request::post("/test.v1.Echo/Hello")
        .header("content-type", "application/grpc+proto")
        .body(tonic::body::Body::empty())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["grpc-status"], "16");
    assert_eq!(res.headers()["grpc-message"], "Missing token");
    assert_eq!(res.headers()["content-type"], "application/grpc");
    assert!(res.headers().get("www-authenticate").is_none());
    assert!(res.extensions().get::<portcullis::AuthError>().is_some());
}

// ---- the interceptor -------------------------------------------------------------

async fn intercepted(interceptor: AuthInterceptor) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc =
        tonic::service::interceptor::InterceptedService::new(common::grpc::Named::<0>, interceptor);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

#[tokio::test]
async fn interceptor_covers_token_roles_and_claims() {
    let interceptor = AuthInterceptor::new(hs_builder().build().unwrap())
        .require_any_role(["client", "admin"])
        .require_claim("tenant", "acme");
    let mut c = client(intercepted(interceptor).await, None).await;
    let ok = bearer(json!({"sub": "c1", "role": "client", "tenant": "acme", "exp": NOW + 60}));
    assert_eq!(
        unary(&mut c, "/test.v1.Echo/Hello", Some(&ok))
            .await
            .unwrap(),
        "c1:hi"
    );
    assert_eq!(
        server_stream(&mut c, "/test.v1.Echo/ServerStream", Some(&ok))
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        client_stream(&mut c, "/test.v1.Echo/ClientStream", Some(&ok))
            .await
            .unwrap(),
        "c1:3"
    );
    assert_status(
        unary(&mut c, "/test.v1.Echo/Hello", None).await,
        Code::Unauthenticated,
        "Missing token",
    );
    assert_status(
        server_stream(&mut c, "/test.v1.Echo/ServerStream", None).await,
        Code::Unauthenticated,
        "Missing token",
    );
    assert_status(
        client_stream(&mut c, "/test.v1.Echo/ClientStream", None).await,
        Code::Unauthenticated,
        "Missing token",
    );
    let wrong_role =
        bearer(json!({"sub": "c1", "role": "other", "tenant": "acme", "exp": NOW + 60}));
    assert_status(
        unary(&mut c, "/test.v1.Echo/Hello", Some(&wrong_role)).await,
        Code::PermissionDenied,
        "Insufficient permissions",
    );
    let wrong_claim =
        bearer(json!({"sub": "c1", "role": "client", "tenant": "other", "exp": NOW + 60}));
    assert_status(
        unary(&mut c, "/test.v1.Echo/Hello", Some(&wrong_claim)).await,
        Code::PermissionDenied,
        "Insufficient permissions",
    );
    let no_claim = bearer(json!({"sub": "c1", "role": "client", "exp": NOW + 60}));
    assert_status(
        unary(&mut c, "/test.v1.Echo/Hello", Some(&no_claim)).await,
        Code::PermissionDenied,
        "Insufficient permissions",
    );
    assert_status(
        unary(&mut c, "/test.v1.Echo/Hello", Some(&expired())).await,
        Code::Unauthenticated,
        "Token expired",
    );
    let other_scheme = ok.replacen("Bearer", "Token", 1);
    assert_status(
        unary(&mut c, "/test.v1.Echo/Hello", Some(&other_scheme)).await,
        Code::Unauthenticated,
        "Invalid token scheme, expected Bearer",
    );
}

// ---- FEDn ---------------------------------------------------------------------------

fn fedn_layer(extra: &[(&str, &str)]) -> AuthLayer {
    let mut vars: Vec<(String, String)> = vec![("FEDN_JWT_SECRET_KEY".into(), SECRET.into())];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    EnvConfig::from_lookup(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        .unwrap()
        .map_authenticator(|a| a.clock(|| NOW))
        .build_layer()
        .unwrap()
}

#[tokio::test]
async fn fedn_grpc_behaviour() {
    let mut c = client(serve(Some(fedn_layer(&[]))).await, None).await;
    let client_token = bearer(claims("client"));
    let admin_token = bearer(claims("admin"));
    let no_role = bearer(json!({"sub": "nobody", "exp": NOW + 60}));
    // A client on TaskStream (server-streaming): OK.
    assert_eq!(
        server_stream(&mut c, "/fedn.Combiner/TaskStream", Some(&client_token))
            .await
            .unwrap()
            .len(),
        3
    );
    // An admin there: PERMISSION_DENIED (FEDn maps TaskStream to client only).
    assert_status(
        server_stream(&mut c, "/fedn.Combiner/TaskStream", Some(&admin_token)).await,
        Code::PermissionDenied,
        "Insufficient permissions",
    );
    // Client-streaming Upload is the client's.
    assert_eq!(
        client_stream(&mut c, "/fedn.ModelService/Upload", Some(&client_token))
            .await
            .unwrap(),
        "user-1:3"
    );
    // AcceptingClients needs no token.
    assert_eq!(
        unary(&mut c, "/fedn.Connector/AcceptingClients", None)
            .await
            .unwrap(),
        "anonymous:hi"
    );
    // An unmapped method takes any valid token, but not none.
    assert!(
        unary(&mut c, "/fedn.Combiner/SendModelMetric", Some(&no_role))
            .await
            .is_ok()
    );
    assert_status(
        unary(&mut c, "/fedn.Combiner/SendModelMetric", None).await,
        Code::Unauthenticated,
        "Missing token",
    );
}

#[tokio::test]
async fn fedn_grpc_custom_claim() {
    let layer = fedn_layer(&[
        ("FEDN_JWT_CUSTOM_CLAIM_KEY", "project"),
        ("FEDN_JWT_CUSTOM_CLAIM_VALUE", "p1"),
    ]);
    let mut c = client(serve(Some(layer)).await, None).await;
    let good = bearer(json!({"sub": "c", "role": "client", "project": "p1", "exp": NOW + 60}));
    let bad = bearer(json!({"sub": "c", "role": "client", "project": "p2", "exp": NOW + 60}));
    let missing = bearer(json!({"sub": "c", "role": "client", "exp": NOW + 60}));
    assert!(
        unary(&mut c, "/fedn.Combiner/SendModelUpdate", Some(&good))
            .await
            .is_ok()
    );
    assert_status(
        unary(&mut c, "/fedn.Combiner/SendModelUpdate", Some(&bad)).await,
        Code::PermissionDenied,
        "Insufficient permissions",
    );
    // FEDn answers UNKNOWN when the claim is missing; we answer PERMISSION_DENIED.
    assert_status(
        unary(&mut c, "/fedn.Combiner/SendModelUpdate", Some(&missing)).await,
        Code::PermissionDenied,
        "Insufficient permissions",
    );
}

#[test]
fn grpc_rules_in_the_policy_file() {
    let policy = Policy::from_toml_str(
        r#"
unmatched_grpc = "authenticated"
public_grpc = ["/grpc.health.v1.Health/*"]
[[grpc_user_agent]]
agent = "grpc_health_probe"
methods = ["/grpc.health.v1.Health/*"]
[[grpc]]
roles = ["client"]
method = "/fedn.Combiner/TaskStream"
[[grpc]]
roles = ["admin"]
method = "/quickstart.v1.Admin/*"
"#,
    )
    .unwrap();
    let t = policy
        .grpc_target("/fedn.Combiner/TaskStream", None)
        .unwrap();
    assert!(policy.decide_roles(&["client"], &t).is_allowed());
    assert!(!policy.decide_roles(&["admin"], &t).is_allowed());
    let t = policy
        .grpc_target("/quickstart.v1.Admin/Stats", None)
        .unwrap();
    assert!(policy.decide_roles(&["admin"], &t).is_allowed());
    assert!(!policy.decide_roles(&["client"], &t).is_allowed());
    let t = policy.grpc_target("/other.Svc/M", None).unwrap();
    assert!(policy.decide_roles(&["anyone"], &t).is_allowed());
    assert!(
        policy
            .grpc_target("/grpc.health.v1.Health/Watch", None)
            .unwrap()
            .is_public()
    );
    let probe = Some("grpc_health_probe grpc-go/1.70");
    assert!(
        policy
            .grpc_target("/grpc.health.v1.Health/Check", probe)
            .unwrap()
            .is_public()
    );
    assert!(!policy.grpc_target("/x.Y/Z", probe).unwrap().is_public());
    // A bad method name is an invalid request; bad patterns are configuration errors.
    for bad in ["/", "/svc", "//m", "/svc/", "/a/b/c", "/a/%2e%2e", "/../m"] {
        let err = policy.grpc_target(bad, None).unwrap_err();
        assert_eq!(
            err.kind(),
            portcullis::AuthErrorKind::InvalidRequest,
            "{bad}"
        );
    }
    for bad in ["svc/M", "/svc/M*", "/s*/M", "/svc"] {
        let err = Policy::builder()
            .allow_grpc(bad, ["r"])
            .build()
            .unwrap_err();
        assert!(err.setting().starts_with("grpc rule 0 ("), "{bad}: {err}");
    }
}

#[tokio::test]
async fn the_server_chooses_the_rules_not_the_content_type() {
    use tower::{Layer, ServiceExt};
    // An HTTP layer (FEDn policy): a gRPC content type does not switch to the gRPC rules,
    // where unmatched methods take any valid token. A client on the combiner's route is
    // refused, and the answer stays HTTP (never a 200 trailers-only form).
    let http_layer = fedn_layer(&[]);
    let app = common::app(
        http_layer.authenticator().clone(),
        http_layer.policy().clone(),
    );
    let req = http::Request::post("/add_combiner")
        .header("content-type", "application/grpc")
        .header("authorization", bearer(claims("client")))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.headers()["content-type"], "application/json");
    // A gRPC layer: a non-gRPC content type does not switch to the HTTP rules (where admin
    // holds every route). An admin on TaskStream is refused, with the HTTP answer.
    let svc = fedn_layer(&[])
        .for_grpc()
        .layer(tonic::service::Routes::new(common::grpc::Named::<1>));
    let req = http::Request::post("/fedn.Combiner/TaskStream")
        .header("content-type", "application/json")
        .header("authorization", bearer(claims("admin")))
        .body(tonic::body::Body::empty())
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 403);
    // gRPC-web counts as gRPC for the answer's form.
    let req = http::Request::post("/fedn.Combiner/TaskStream")
        .header("content-type", "application/grpc-web+proto")
        .body(tonic::body::Body::empty())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["grpc-status"], "16");
}

#[test]
fn grpc_patterns_match_whole_names() {
    let policy = Policy::builder()
        .allow_grpc("/pkg.Svc/*", ["r"])
        .build()
        .unwrap();
    for (method, allowed) in [
        ("/pkg.Svc/M", true),
        ("/pkg.SvcX/M", false),
        ("/pkg.svc/M", false),
        ("/pkg/Svc/M", false),
        ("/xpkg.Svc/M", false),
    ] {
        let decision = match policy.grpc_target(method, None) {
            Ok(t) => policy.decide_roles(&["r"], &t).is_allowed(),
            Err(_) => false,
        };
        assert_eq!(decision, allowed, "{method}");
    }
    let err = Policy::builder()
        .allow_grpc("/*/*", ["r"])
        .build()
        .unwrap_err();
    assert!(err.setting().starts_with("grpc rule 0 ("), "{err}");
}

// Unknown services answer UNIMPLEMENTED when each service is guarded on its own, while the
// served ones stay guarded.
#[tokio::test]
async fn services_guarded_one_by_one_leave_unknown_services_unimplemented() {
    use tower::Layer;
    let layer = AuthLayer::new(
        hs_builder().build().unwrap(),
        portcullis::Policy::builder()
            .allow_grpc("/test.v1.Echo/*", ["client"])
            .build()
            .unwrap(),
    )
    .for_grpc();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(layer.layer(common::grpc::Named::<0>))
            .serve_with_incoming(incoming),
    );
    let mut grpc = common::grpc::client(addr, None).await;
    let client = format!("Bearer {}", hs256().sign(&claims("client")).unwrap());
    let nobody = format!("Bearer {}", hs256().sign(&claims("nobody")).unwrap());
    // A service the server does not serve: UNIMPLEMENTED, with or without a token.
    for auth in [None, Some(client.as_str())] {
        let err = common::grpc::unary(&mut grpc, "/pkg.Unknown/Call", auth)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented, "{auth:?}");
    }
    // The served service stays guarded.
    let err = common::grpc::unary(&mut grpc, "/test.v1.Echo/Hello", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = common::grpc::unary(&mut grpc, "/test.v1.Echo/Hello", Some(&nobody))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        common::grpc::unary(&mut grpc, "/test.v1.Echo/Hello", Some(&client))
            .await
            .is_ok()
    );
}
