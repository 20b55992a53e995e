//! `portcullis serve` as Envoy's external authorization service.
//!
//! gRPC: `envoy.service.auth.v3.Authorization/Check` driven by Envoy's own generated
//! messages (PyPI `xds-protos`, through `grpcio`, in a cached virtualenv): allowed with the
//! identity headers set and forged ones removed, 401/403/400 denials with status, challenge
//! and body, the `header_map` form, a request without attributes, dot-segment and `..;`
//! paths, malformed requests (never OK), gRPC health, and the metrics by proxy kind. The
//! Python tests skip, saying why, when Python or the packages cannot be installed; with
//! `PORTCULLIS_STRICT_TESTS=1` (CI) they fail instead.
//!
//! HTTP: `--proxy envoy` sent what Envoy's `http_service` sends (the original method, the
//! path under the configured prefix, `Content-Length: 0`, the allowed headers): 200 only
//! on allow.

mod harness;
#[allow(unreachable_pub)]
#[path = "../../tests/python_support/mod.rs"]
mod python_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use harness::*;
use serde_json::{Value, json};

const PACKAGES: &[&str] = &[
    "xds-protos==1.85.0",
    "grpcio==1.85.4",
    "grpcio-health-checking==1.85.1",
];

const POLICY: &str = r#"
public = ["/public"]

[[rule]]
roles = ["client"]
path = "/api/{*rest}"

[[rule]]
roles = ["admin"]
path = "/admin/{*rest}"
"#;

/// `serve` with the policy, a tenant identity header and `args`.
fn start(dir: &TempDir, args: &[&str]) -> (Proc, SocketAddr) {
    let policy = dir.write("policy.toml", POLICY);
    let mut all = vec![
        "--policy",
        policy.to_str().unwrap(),
        "--identity-header",
        "tenant=X-Auth-Tenant",
    ];
    all.extend_from_slice(args);
    serve(&all, &[("FEDN_JWT_SECRET_KEY", SECRET)])
}

fn answered(proxy: &str, status: u16) -> String {
    format!(r#"portcullis_forward_auth_responses_total{{proxy="{proxy}",status="{status}"}}"#)
}

/// The Python side: one function per case, each sends a `CheckRequest` built from Envoy's
/// generated messages and prints what came back, as JSON, one object per case.
const CHECKS: &str = r#"
import json, os, sys
import grpc
from envoy.service.auth.v3 import external_auth_pb2 as ea, external_auth_pb2_grpc as ea_grpc
from envoy.service.auth.v3 import attribute_context_pb2 as ac
from envoy.config.core.v3 import base_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

env = os.environ
channel = grpc.insecure_channel(env["ADDR"])
stub = ea_grpc.AuthorizationStub(channel)

def http(method="GET", path="/api/items", headers=None, header_map=None, **kw):
    h = ac.AttributeContext.HttpRequest(method=method, path=path, host="app.example.com",
                                        scheme="https", protocol="HTTP/1.1", **kw)
    for k, v in (headers or {}).items():
        h.headers[k] = v
    if header_map is not None:
        for k, v in header_map:
            h.header_map.headers.append(base_pb2.HeaderValue(key=k, raw_value=v))
    return ea.CheckRequest(attributes=ac.AttributeContext(
        request=ac.AttributeContext.Request(http=h)))

def show(res):
    out = {"code": res.status.code, "message": res.status.message,
           "kind": res.WhichOneof("http_response")}
    if out["kind"] == "ok_response":
        ok = res.ok_response
        out["set"] = {o.header.key: o.header.value for o in ok.headers}
        out["actions"] = sorted({o.append_action for o in ok.headers})
        out["appends"] = [o.HasField("append") for o in ok.headers]
        out["remove"] = list(ok.headers_to_remove)
    elif out["kind"] == "denied_response":
        d = res.denied_response
        out["status"] = d.status.code
        out["headers"] = {o.header.key: o.header.value for o in d.headers}
        out["body"] = d.body
    return out

bearer = lambda t: "Bearer " + t
pseudo = {":method": "GET", ":path": "/api/items", ":authority": "app.example.com", ":scheme": "https"}
cases = {
    "allowed, forged identity headers": http(headers={
        **pseudo, "authorization": bearer(env["CLIENT"]),
        "x-auth-subject": "root", "x-auth-roles": "admin", "x-auth-tenant": "evil",
        "x_auth_roles": "admin", "x-auth_subject": "root", "user-agent": "curl/8"}),
    "allowed, no tenant claim": http(headers={"authorization": bearer(env["NO_TENANT"])}),
    "public path": http(path="/public/page?x=1", headers={"x-auth-subject": "root"}),
    "header_map form": http(header_map=[("authorization", bearer(env["CLIENT"]).encode()),
                                        ("x-auth-roles", b"admin")]),
    "header_map, two Authorization entries": http(header_map=[
        ("authorization", bearer(env["CLIENT"]).encode()),
        ("authorization", bearer(env["CLIENT"]).encode())]),
    "missing token": http(headers={"x-auth-subject": "root"}),
    "wrong role": http(path="/admin/users", headers={"authorization": bearer(env["CLIENT"])}),
    "malformed credential": http(headers={"authorization": "Bearer a,b"}),
    "expired token": http(headers={"authorization": bearer(env["EXPIRED"])}),
    "dot segment": http(path="/api/../admin/users", headers={"authorization": bearer(env["CLIENT"])}),
    "encoded dot segment": http(path="/api/%2e%2e/admin/users", headers={"authorization": bearer(env["CLIENT"])}),
    "dot segment with a path parameter": http(path="/public/..;/admin/users"),
    "encoded dot segment with a path parameter": http(path="/public/%2e%2e;x/admin/users"),
    "missing attributes": ea.CheckRequest(),
    "attributes without a request": ea.CheckRequest(attributes=ac.AttributeContext()),
    "request without http": ea.CheckRequest(attributes=ac.AttributeContext(
        request=ac.AttributeContext.Request())),
    "empty method": http(method="", headers={"authorization": bearer(env["CLIENT"])}),
    "empty path": http(path="", headers={"authorization": bearer(env["CLIENT"])}),
    "method with a space": http(method="G T", headers={"authorization": bearer(env["CLIENT"])}),
    "relative path": http(path="api/items", headers={"authorization": bearer(env["CLIENT"])}),
    "absolute URI as path": http(path="https://evil.example/api/items", headers={"authorization": bearer(env["CLIENT"])}),
    "asterisk path": http(method="OPTIONS", path="*", headers={"authorization": bearer(env["CLIENT"])}),
    "header name with a space": http(header_map=[("authorization", bearer(env["CLIENT"]).encode()),
                                                 ("bad name", b"x")]),
    "header value with a newline": http(header_map=[("authorization", bearer(env["CLIENT"]).encode()),
                                                    ("x-note", b"a\nb")]),
    "authorization value with a newline": http(header_map=[
        ("authorization", (bearer(env["CLIENT"]) + "\r\nx-auth-roles: admin").encode())]),
}
results = {name: show(stub.Check(req, timeout=10)) for name, req in cases.items()}

# Bytes that are no CheckRequest at all: a gRPC error, which Envoy treats as a failure of
# the service (denied, unless failure_mode_allow is set: keep it off).
raw = channel.unary_unary("/envoy.service.auth.v3.Authorization/Check",
                          request_serializer=lambda b: b, response_deserializer=lambda b: b)
try:
    raw(b"\xff\xff\xff\xff", timeout=10)
    results["undecodable"] = {"code": 0}
except grpc.RpcError as e:
    results["undecodable"] = {"code": e.code().value[0], "rpc_error": True}

health = health_pb2_grpc.HealthStub(channel)
for service in ["", "envoy.service.auth.v3.Authorization"]:
    r = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    results["health " + (service or "(server)")] = {
        "status": health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)}
try:
    health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    results["health unknown"] = {"code": 0}
except grpc.RpcError as e:
    results["health unknown"] = {"code": e.code().name}
print(json.dumps(results))
"#;

/// The body of a denial, parsed.
fn body(r: &Value) -> Value {
    serde_json::from_str(r["body"].as_str().unwrap_or("")).unwrap_or(Value::Null)
}

/// A denial: gRPC code, HTTP status, challenge and JSON body; never OK.
fn denied(
    name: &str,
    r: &Value,
    code: i64,
    status: i64,
    challenge: Option<&str>,
    error: &str,
    message: &str,
) {
    assert_eq!(r["kind"], "denied_response", "{name}: {r}");
    assert_ne!(r["code"], 0, "{name}: OK for a denial: {r}");
    assert_eq!(r["code"], code, "{name}: {r}");
    assert_eq!(r["status"], status, "{name}: {r}");
    assert_eq!(
        r["headers"].get("www-authenticate").and_then(Value::as_str),
        challenge,
        "{name}: {r}"
    );
    assert_eq!(
        r["headers"]["content-type"], "application/json",
        "{name}: {r}"
    );
    assert_eq!(
        body(r),
        json!({"error": error, "message": message}),
        "{name}: {r}"
    );
}

#[test]
fn grpc_check_with_envoys_own_messages() {
    let Some(venv) = python_support::venv("envoy_ext_authz", PACKAGES) else {
        return;
    };
    let dir = TempDir::new("envoy-grpc");
    let grpc_port = free_port();
    let grpc_addr = format!("127.0.0.1:{grpc_port}");
    let (mut serve_proc, addr) = start(&dir, &["--proxy", "nginx", "--grpc-listen", &grpc_addr]);
    wait_port(grpc_port, "serve's gRPC listener", Some(&mut serve_proc));
    let client = token("ada", "client", &["tenant=acme"]);
    let no_tenant = token("bob", "client", &[]);
    let expired = {
        let out = std::process::Command::new(BIN)
            .args([
                "mint", "--secret", SECRET, "--sub", "ada", "--role", "client",
            ])
            .args(["--claims", r#"{"exp": 1000000000}"#, "--no-exp"])
            .output()
            .expect("mint");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let before = scrape(addr);
    let out = venv.run_ok(
        CHECKS,
        &[
            ("ADDR", &grpc_addr),
            ("CLIENT", &client),
            ("NO_TENANT", &no_tenant),
            ("EXPIRED", &expired),
        ],
    );
    let after = scrape(addr);
    let results: BTreeMap<String, Value> =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let r = |name: &str| {
        results
            .get(name)
            .unwrap_or_else(|| panic!("no result for {name}: {out}"))
            .clone()
    };

    // Allowed: every identity header set (overwriting the client's), forged `_` twins
    // removed; never the names it sets (Envoy removes after it sets).
    let ok = r("allowed, forged identity headers");
    assert_eq!(ok["code"], 0, "{ok}");
    assert_eq!(ok["kind"], "ok_response", "{ok}");
    assert_eq!(
        ok["set"],
        json!({"x-auth-subject": "ada", "x-auth-roles": "client", "x-auth-tenant": "acme"}),
        "{ok}"
    );
    assert_eq!(
        ok["actions"],
        json!([2]),
        "OVERWRITE_IF_EXISTS_OR_ADD: {ok}"
    );
    assert_eq!(ok["appends"], json!([false, false, false]), "{ok}");
    let mut removed: Vec<String> = serde_json::from_value(ok["remove"].clone()).unwrap();
    removed.sort();
    assert_eq!(removed, ["x-auth_subject", "x_auth_roles"], "{ok}");

    let r2 = r("allowed, no tenant claim");
    assert_eq!(r2["code"], 0, "{r2}");
    assert_eq!(
        r2["set"],
        json!({"x-auth-subject": "bob", "x-auth-roles": "client"}),
        "{r2}"
    );
    assert_eq!(r2["remove"], json!(["x-auth-tenant"]), "{r2}");

    // Public: nothing verified, so every identity header is removed.
    let public = r("public path");
    assert_eq!(public["code"], 0, "{public}");
    assert_eq!(public["set"], json!({}), "{public}");
    assert_eq!(
        public["remove"],
        json!(["x-auth-subject", "x-auth-roles", "x-auth-tenant"]),
        "{public}"
    );

    // `header_map` (raw_value bytes), as Envoy sends it with encode_raw_headers.
    let map = r("header_map form");
    assert_eq!(map["code"], 0, "{map}");
    assert_eq!(map["set"]["x-auth-subject"], "ada", "{map}");
    assert_eq!(map["set"]["x-auth-roles"], "client", "{map}");

    let bearer = r#"Bearer realm="api""#;
    let invalid_request = r#"Bearer realm="api", error="invalid_request""#;
    denied(
        "header_map, two Authorization entries",
        &r("header_map, two Authorization entries"),
        16,
        400,
        Some(invalid_request),
        "invalid_request",
        "Invalid request",
    );
    denied(
        "missing token",
        &r("missing token"),
        16,
        401,
        Some(bearer),
        "missing_token",
        "Missing token",
    );
    denied(
        "wrong role",
        &r("wrong role"),
        7,
        403,
        Some(r#"Bearer realm="api", error="insufficient_scope""#),
        "insufficient_scope",
        "Insufficient permissions",
    );
    denied(
        "malformed credential",
        &r("malformed credential"),
        16,
        400,
        Some(invalid_request),
        "invalid_request",
        "Invalid request",
    );
    denied(
        "expired token",
        &r("expired token"),
        16,
        401,
        Some(r#"Bearer realm="api", error="invalid_token""#),
        "invalid_token",
        "Token expired",
    );
    for name in [
        "dot segment",
        "encoded dot segment",
        "dot segment with a path parameter",
        "encoded dot segment with a path parameter",
    ] {
        denied(
            name,
            &r(name),
            16,
            400,
            Some(invalid_request),
            "invalid_request",
            "Invalid request path",
        );
    }
    // Nothing described: Envoy's side is misconfigured; denied with the table's 500.
    for name in [
        "missing attributes",
        "attributes without a request",
        "request without http",
        "empty method",
        "empty path",
    ] {
        denied(
            name,
            &r(name),
            13,
            500,
            None,
            "server_error",
            "Internal error",
        );
    }
    for name in [
        "method with a space",
        "relative path",
        "absolute URI as path",
        "asterisk path",
        "header name with a space",
        "header value with a newline",
        "authorization value with a newline",
    ] {
        denied(
            name,
            &r(name),
            16,
            400,
            Some(invalid_request),
            "invalid_request",
            "Invalid request path",
        );
    }
    let undecodable = r("undecodable");
    assert_eq!(undecodable["rpc_error"], true, "{undecodable}");
    assert_ne!(undecodable["code"], 0, "{undecodable}");

    // No OK for anything but the allowed cases.
    let allowed = [
        "allowed, forged identity headers",
        "allowed, no tenant claim",
        "public path",
        "header_map form",
    ];
    for (name, res) in &results {
        if name.starts_with("health") {
            continue;
        }
        if !allowed.contains(&name.as_str()) {
            assert_ne!(
                res["code"], 0,
                "{name}: OK for a request that must be denied: {res}"
            );
        }
    }

    // gRPC health on the ext_authz port.
    assert_eq!(r("health (server)")["status"], "SERVING");
    assert_eq!(
        r("health envoy.service.auth.v3.Authorization")["status"],
        "SERVING"
    );
    assert_eq!(r("health unknown")["code"], "NOT_FOUND");

    // The answers counted under proxy "envoy-grpc", by status; the undecodable message
    // never reached the decision.
    let moved = delta(&before, &after);
    let count = |status: u16| moved.get(&answered("envoy-grpc", status)).copied();
    assert_eq!(count(200), Some(4.0), "{moved:?}");
    assert_eq!(count(401), Some(2.0), "{moved:?}");
    assert_eq!(count(403), Some(1.0), "{moved:?}");
    assert_eq!(count(400), Some(13.0), "{moved:?}");
    assert_eq!(count(500), Some(5.0), "{moved:?}");
}

/// What Envoy's `http_service` sends: the original method, the original path under the
/// configured `path_prefix`, `Content-Length: 0`, and the headers `allowed_headers` lets
/// through.
#[test]
fn http_service_mode_allows_only_with_200() {
    let dir = TempDir::new("envoy-http");
    let (_serve, addr) = start(
        &dir,
        &["--proxy", "envoy", "--envoy-path-prefix", "/ext-authz"],
    );
    let port = addr.port();
    let client = format!("Bearer {}", token("ada", "client", &["tenant=acme"]));
    let envoy = |method: &str, target: &str, extra: &[(&str, &str)]| {
        let mut headers = vec![("Content-Length", "0"), ("x-envoy-internal", "true")];
        headers.extend_from_slice(extra);
        http(port, method, target, &headers)
    };
    let before = scrape(addr);

    let res = envoy(
        "GET",
        "/ext-authz/api/items?page=2",
        &[
            ("Authorization", &client),
            ("X-Auth-Subject", "root"),
            ("X_Auth_Roles", "admin"),
        ],
    );
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.header("x-auth-subject"), Some("ada"), "{res:?}");
    assert_eq!(res.header("x-auth-roles"), Some("client"), "{res:?}");
    assert_eq!(res.header("x-auth-tenant"), Some("acme"), "{res:?}");
    assert_eq!(
        res.header("x-envoy-auth-headers-to-remove"),
        Some("x_auth_roles"),
        "{res:?}"
    );
    // The original method, whatever it is.
    let res = envoy(
        "POST",
        "/ext-authz/api/items",
        &[("Authorization", &client)],
    );
    assert_eq!(res.status, 200, "{res:?}");
    let res = envoy(
        "DELETE",
        "/ext-authz/api/items/7",
        &[("Authorization", &client)],
    );
    assert_eq!(res.status, 200, "{res:?}");

    // Refusals: the answer table's status, challenge and body, which Envoy sends back.
    let res = envoy("GET", "/ext-authz/api/items", &[]);
    assert_eq!(res.status, 401, "{res:?}");
    assert_eq!(
        res.header("www-authenticate"),
        Some(r#"Bearer realm="api""#)
    );
    assert_eq!(
        serde_json::from_str::<Value>(&res.body).unwrap(),
        json!({"error": "missing_token", "message": "Missing token"})
    );
    let res = envoy(
        "GET",
        "/ext-authz/admin/users",
        &[("Authorization", &client)],
    );
    assert_eq!(res.status, 403, "{res:?}");
    assert_eq!(
        res.header("www-authenticate"),
        Some(r#"Bearer realm="api", error="insufficient_scope""#)
    );
    for target in [
        "/ext-authz/api/%2e%2e/admin/users",
        "/ext-authz/public/..;/admin/users",
        "/ext-authz/api/../admin/users",
    ] {
        let res = envoy("GET", target, &[("Authorization", &client)]);
        assert_eq!(res.status, 400, "{target}: {res:?}");
        assert_eq!(
            res.header("www-authenticate"),
            Some(r#"Bearer realm="api", error="invalid_request""#),
            "{target}"
        );
    }
    let res = envoy(
        "GET",
        "/ext-authz/api/items",
        &[("Authorization", "Bearer a,b")],
    );
    assert_eq!(res.status, 400, "{res:?}");

    // Under the prefix every path is a decision: serve's own endpoints never answer for
    // a client's request (a 200 there would let it through).
    for target in [
        "/ext-authz/healthz",
        "/ext-authz/readyz",
        "/ext-authz/metrics",
        "/ext-authz/auth/verify-token",
        "/ext-authz/.well-known/oauth-protected-resource",
    ] {
        let res = envoy("GET", target, &[]);
        assert_eq!(res.status, 401, "{target}: {res:?}");
    }
    // The prefix alone, or a path beside it: not Envoy's request; never a 200.
    assert_eq!(envoy("GET", "/ext-authz", &[]).status, 500);
    assert_eq!(envoy("GET", "/ext-authzx/api/items", &[]).status, 404);
    // The header-described endpoint is not there for Envoy.
    assert_eq!(http(port, "GET", "/auth", &[]).status, 404);
    assert_eq!(http(port, "GET", "/healthz", &[]).status, 200);

    let moved = delta(&before, &scrape(addr));
    let count = |status: u16| moved.get(&answered("envoy", status)).copied();
    assert_eq!(count(200), Some(3.0), "{moved:?}");
    assert_eq!(count(401), Some(6.0), "{moved:?}");
    assert_eq!(count(403), Some(1.0), "{moved:?}");
    assert_eq!(count(400), Some(4.0), "{moved:?}");
    assert_eq!(count(500), Some(1.0), "{moved:?}");
}

/// A prefix that is not a path of whole segments is refused at start, naming the flag.
#[test]
fn bad_envoy_path_prefix_is_refused_at_start() {
    let dir = TempDir::new("envoy-prefix");
    let policy = dir.write("policy.toml", POLICY);
    for prefix in ["ext-authz", "/ext-authz/", "/a/../b", "/"] {
        let out = std::process::Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--proxy", "envoy"])
            .args([
                "--policy",
                policy.to_str().unwrap(),
                "--envoy-path-prefix",
                prefix,
            ])
            .env("FEDN_JWT_SECRET_KEY", SECRET)
            .output()
            .expect("run serve");
        assert_eq!(out.status.code(), Some(2), "{prefix}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--envoy-path-prefix (PORTCULLIS_ENVOY_PATH_PREFIX)"),
            "{prefix}: {err}"
        );
    }
}
