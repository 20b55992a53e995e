//! The Kamiwaza read-outs of `portcullis serve` (`GET /auth/verify-token`,
//! `GET /auth/users/me/permissions`) against the real `kamiwaza` Python client (PyPI
//! `kamiwaza` 0.5.0, in a cached virtualenv), and their raw answers over HTTP.
//!
//! The client's tests skip, saying why, when Python or the package cannot be installed;
//! with `PORTCULLIS_STRICT_TESTS=1` (CI) they fail instead.

mod harness;
#[allow(unreachable_pub)]
#[path = "../../tests/python_support/mod.rs"]
mod python_support;

use std::net::SocketAddr;

use harness::*;
use portcullis::{Algorithm, Signer};
use serde_json::{Value, json};

const KAMIWAZA: &str = "kamiwaza==0.5.0";

/// Groups hold roles (through statements), roles hold rights (permissions). ada is in
/// `team-a` by the records and in `team-b` by her token: `models:read` reaches her through
/// both and is listed once; `admin` is linked only to `ops`, which she is not in.
const RECORDS: &str = r#"
[roles]
reader = ["models:read"]
writer = ["models:read", "models:write"]
admin = ["*"]

[groups]
team-a = ["ada"]
ops = ["5f0c6b5e-2c1b-4c7e-9d43-0b7c1f0e2a11"]

[[records]]
id = "kamiwaza"

[[records.statements]]
roles = ["reader"]
resources = ["*"]
groups = ["team-a"]

[[records.statements]]
roles = ["writer"]
resources = ["*"]
groups = ["team-b"]

[[records.statements]]
roles = ["admin"]
resources = ["*"]
groups = ["ops"]
"#;

/// When the test tokens were issued: a fixed second, so `created_at` is known.
const IAT: u64 = 1_790_000_000;

fn sign(claims: Value) -> String {
    Signer::hmac(Algorithm::HS256, SECRET)
        .unwrap()
        .sign(&claims)
        .unwrap()
}

fn ada() -> String {
    sign(json!({
        "sub": "ada",
        "preferred_username": "ada",
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "groups": ["team-b"],
        "iat": IAT,
        "exp": 4_000_000_000u64,
    }))
}

/// `portcullis serve` with the records and `env`; the key from FEDN_JWT_SECRET_KEY.
fn start(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> (Proc, SocketAddr) {
    let records = dir.write("records.toml", RECORDS);
    let mut all = vec!["--proxy", "nginx", "--records", records.to_str().unwrap()];
    all.extend_from_slice(args);
    let mut env = env.to_vec();
    env.push(("FEDN_JWT_SECRET_KEY", SECRET));
    serve(&all, &env)
}

fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Res {
    http(addr.port(), "GET", target, headers)
}

fn body(res: &Res) -> Value {
    serde_json::from_str(&res.body).unwrap_or_else(|e| panic!("{e}: {}", res.body))
}

/// Asserts one refusal: status, challenge, JSON body, never cached.
fn refused(res: &Res, status: u16, challenge: Option<&str>, error: &str, message: &str) {
    assert_eq!(res.status, status, "{res:?}");
    assert_eq!(res.header("www-authenticate"), challenge, "{res:?}");
    assert_eq!(res.header("cache-control"), Some("no-store"), "{res:?}");
    assert_eq!(
        body(res),
        json!({"error": error, "message": message}),
        "{res:?}"
    );
}

const ADA_ID: &str = "9adbbe68-8f18-529b-81d8-e6a6bc49c2ed";

/// A `sub` that spells a UUID gets the derived id too: a token whose `sub` is ada's id
/// is not ada (nor in her groups).
#[test]
fn a_sub_spelling_another_users_id_gets_its_own_id() {
    let dir = TempDir::new("kamiwaza-uuid-sub");
    let (_serve, addr) = start(&dir, &[], &[]);
    let posing = sign(json!({"sub": ADA_ID, "iat": IAT, "exp": 4_000_000_000u64}));
    let bearer = format!("Bearer {posing}");
    // Python: uuid.uuid5(uuid.NAMESPACE_URL, "portcullis:user:" + ADA_ID)
    let own = "facd0c68-9106-5568-a36c-bbfe6758bcf7";
    let res = get(addr, "/auth/verify-token", &[("authorization", &bearer)]);
    assert_eq!(res.status, 200, "{res:?}");
    let user = body(&res);
    assert_eq!(user["id"], own, "{user}");
    assert_ne!(user["id"], ADA_ID, "{user}");
    assert_eq!(user["external_id"], ADA_ID, "{user}");
    assert_eq!(user["groups"], json!([]), "{user}");
    let res = get(
        addr,
        "/auth/users/me/permissions",
        &[("authorization", &bearer)],
    );
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(
        body(&res),
        json!({"user_id": own, "rights": [], "roles": [], "groups": []}),
        "{res:?}"
    );
}

#[test]
fn answers_over_http() {
    let dir = TempDir::new("kamiwaza-http");
    // `false` in the variable is off.
    let (_serve, addr) = start(&dir, &[], &[("PORTCULLIS_KAMIWAZA_QUERY_TOKEN", "false")]);
    let tok = ada();
    let cookie = format!("theme=dark; access_token={tok}");
    let bearer = format!("Bearer {tok}");

    // The user, from the cookie or from the header.
    for h in [
        ("cookie", cookie.as_str()),
        ("authorization", bearer.as_str()),
    ] {
        let res = get(addr, "/auth/verify-token", &[h]);
        assert_eq!(res.status, 200, "{res:?}");
        assert_eq!(res.header("content-type"), Some("application/json"));
        assert_eq!(res.header("cache-control"), Some("no-store"));
        let user = body(&res);
        assert_eq!(user["id"], ADA_ID);
        assert_eq!(user["username"], "ada");
        assert_eq!(user["email"], "ada@example.com");
        assert_eq!(user["full_name"], "Ada Lovelace");
        assert_eq!(user["external_id"], "ada");
        assert_eq!(user["is_active"], true);
        assert_eq!(user["is_superuser"], false);
        assert_eq!(user["created_at"], "2026-09-21T14:13:20Z");
        assert_eq!(user["last_login"], Value::Null);
        assert_eq!(user["groups"].as_array().unwrap().len(), 2);
    }

    // Effective rights, roles, groups: `models:read` once, `admin` and `*` absent.
    let res = get(
        addr,
        "/auth/users/me/permissions",
        &[("authorization", &bearer)],
    );
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(
        body(&res),
        json!({
            "user_id": ADA_ID,
            "rights": ["models:read", "models:write"],
            "roles": ["reader", "writer"],
            "groups": ["team-a", "team-b"],
        })
    );

    let missing = Some("Bearer realm=\"api\"");
    // No credential; `?token=` is not read while the flag is off.
    for target in [
        "/auth/verify-token",
        &format!("/auth/users/me/permissions?token={tok}"),
    ] {
        refused(
            &get(addr, target, &[]),
            401,
            missing,
            "missing_token",
            "Missing token",
        );
    }
    // A bad token, an expired one, two cookies, a token without `sub`.
    let invalid = Some("Bearer realm=\"api\", error=\"invalid_token\"");
    let forged = format!("{}x", &tok[..tok.len() - 1]);
    refused(
        &get(
            addr,
            "/auth/verify-token",
            &[("cookie", &format!("access_token={forged}"))],
        ),
        401,
        invalid,
        "invalid_token",
        "Invalid token",
    );
    let expired = sign(json!({"sub": "ada", "exp": 1_000_000_000u64}));
    refused(
        &get(
            addr,
            "/auth/users/me/permissions",
            &[("authorization", &format!("Bearer {expired}"))],
        ),
        401,
        invalid,
        "invalid_token",
        "Token expired",
    );
    refused(
        &get(
            addr,
            "/auth/verify-token",
            &[("cookie", &format!("access_token={tok}; access_token={tok}"))],
        ),
        400,
        Some("Bearer realm=\"api\", error=\"invalid_request\""),
        "invalid_request",
        "Invalid request",
    );
    let nobody = sign(json!({"exp": 4_000_000_000u64}));
    refused(
        &get(
            addr,
            "/auth/verify-token",
            &[("authorization", &format!("Bearer {nobody}"))],
        ),
        403,
        Some("Bearer realm=\"api\", error=\"insufficient_scope\""),
        "insufficient_scope",
        "Insufficient permissions",
    );
}

#[test]
fn query_token_only_when_enabled() {
    let dir = TempDir::new("kamiwaza-query");
    let (serve, addr) = start(&dir, &["--kamiwaza-query-token"], &[]);
    let tok = ada();
    let res = get(
        addr,
        &format!("/auth/users/me/permissions?token={tok}"),
        &[],
    );
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(body(&res)["rights"], json!(["models:read", "models:write"]));
    // The cookie and the header come first: a bad query token does not spoil them.
    let res = get(
        addr,
        "/auth/verify-token?token=bad.token.here",
        &[("cookie", &format!("access_token={tok}"))],
    );
    assert_eq!(res.status, 200, "{res:?}");
    assert!(
        serve.stderr_text().contains("--kamiwaza-query-token"),
        "the risk is logged at start: {}",
        serve.stderr_text()
    );
}

#[test]
fn records_of_their_own_or_none() {
    let dir = TempDir::new("kamiwaza-records");
    let tok = ada();
    let bearer = format!("Bearer {tok}");
    let env = [("FEDN_JWT_SECRET_KEY", SECRET)];
    // No records: no rights or roles, the token's groups.
    let (_a, addr) = serve(&["--proxy", "caddy"], &env);
    let res = get(
        addr,
        "/auth/users/me/permissions",
        &[("authorization", &bearer)],
    );
    assert_eq!(
        body(&res),
        json!({"user_id": ADA_ID, "rights": [], "roles": [], "groups": ["team-b"]}),
        "{res:?}"
    );
    // --kamiwaza-records alone: listed here, while /auth checks no records.
    let records = dir.write("kamiwaza.toml", RECORDS);
    let (_b, addr) = serve(
        &[
            "--proxy",
            "caddy",
            "--kamiwaza-records",
            records.to_str().unwrap(),
        ],
        &env,
    );
    let res = get(
        addr,
        "/auth/users/me/permissions",
        &[("authorization", &bearer)],
    );
    assert_eq!(body(&res)["roles"], json!(["reader", "writer"]), "{res:?}");
    // A bad email domain or records file stops the start, naming the flag.
    for (flag, value, want) in [
        (
            "--kamiwaza-email-domain",
            "localhost",
            "--kamiwaza-email-domain",
        ),
        (
            "--kamiwaza-records",
            "/nonexistent/records.toml",
            "--kamiwaza-records",
        ),
    ] {
        let out = std::process::Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--proxy",
                "caddy",
                flag,
                value,
            ])
            .env("FEDN_JWT_SECRET_KEY", SECRET)
            .env("PORTCULLIS_FEDN_POLICY", "true")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{err}");
    }
}

/// Runs `script` with the real client; `None` when the venv cannot be made here.
fn client(test: &str) -> Option<python_support::Venv> {
    python_support::venv(test, &[KAMIWAZA])
}

/// Python helpers every script starts with.
const PRELUDE: &str = r#"
import json, os, sys, uuid, datetime, logging
from kamiwaza_client import KamiwazaClient
from kamiwaza_client.exceptions import AuthenticationError, APIError
BASE = os.environ["BASE"]
TOKEN = os.environ["TOKEN"]
def uid(kind, name):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"portcullis:{kind}:{name}"))
def failure(call):
    try:
        call()
    except (AuthenticationError, APIError) as e:
        return type(e).__name__ + ": " + e.message
    return "no error"
"#;

#[test]
fn the_kamiwaza_client_reads_the_user_and_its_permissions() {
    let Some(venv) = client("the_kamiwaza_client_reads_the_user_and_its_permissions") else {
        return;
    };
    let dir = TempDir::new("kamiwaza-client");
    let (_serve, addr) = start(&dir, &[], &[]);
    let base = format!("http://{addr}");
    let tok = ada();
    let script = format!(
        "{PRELUDE}{}",
        r#"
anon = KamiwazaClient(BASE, log_level=logging.ERROR)
keyed = KamiwazaClient(BASE, api_key=TOKEN, log_level=logging.ERROR)
# verify_token sends the token in the access_token cookie; "Bearer " is stripped.
for user in [anon.auth.verify_token(TOKEN), anon.auth.verify_token("Bearer " + TOKEN),
             keyed.auth.verify_token()]:
    assert str(user.id) == uid("user", "ada"), user.id
    assert user.username == "ada" and user.email == "ada@example.com", user
    assert user.full_name == "Ada Lovelace" and user.external_id == "ada", user
    assert user.is_active and not user.is_superuser, user
    assert sorted(map(str, user.groups)) == sorted([uid("group", "team-a"), uid("group", "team-b")]), user.groups
    assert user.created_at == datetime.datetime(2026, 9, 21, 14, 13, 20, tzinfo=datetime.timezone.utc), user.created_at
# read_own_permissions: ?token= is not read here; the api_key's header is.
perms = keyed.auth.read_own_permissions(TOKEN)
print(json.dumps({
    "user_id": str(perms.user_id),
    "rights": perms.rights,
    "roles": perms.roles,
    "groups": perms.groups,
    "query_only": failure(lambda: anon.auth.read_own_permissions(TOKEN)),
    "bad_cookie": failure(lambda: anon.auth.verify_token("bad.token.here")),
    "bad_key": failure(lambda: KamiwazaClient(BASE, api_key="bad.token.here", log_level=logging.ERROR).auth.read_own_permissions("bad.token.here")),
}))
"#
    );
    let out = venv.run_ok(&script, &[("BASE", base.as_str()), ("TOKEN", tok.as_str())]);
    let got: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        got,
        json!({
            "user_id": ADA_ID,
            "rights": ["models:read", "models:write"],
            "roles": ["reader", "writer"],
            "groups": ["team-a", "team-b"],
            "query_only": "AuthenticationError: Authentication failed. No authenticator provided.",
            "bad_cookie": "AuthenticationError: Authentication failed. No authenticator provided.",
            "bad_key": "AuthenticationError: Authentication failed after token refresh.",
        })
    );
}

#[test]
fn the_kamiwaza_client_sends_the_query_token_where_enabled() {
    let Some(venv) = client("the_kamiwaza_client_sends_the_query_token_where_enabled") else {
        return;
    };
    let dir = TempDir::new("kamiwaza-client-query");
    let (_serve, addr) = start(
        &dir,
        &[],
        &[
            ("PORTCULLIS_KAMIWAZA_QUERY_TOKEN", "true"),
            ("PORTCULLIS_KAMIWAZA_EMAIL_DOMAIN", "users.example.com"),
        ],
    );
    let base = format!("http://{addr}");
    // A token as Kamiwaza's identity provider issues them: `sub` a UUID, no `email`.
    let sub = "5f0c6b5e-2c1b-4c7e-9d43-0b7c1f0e2a11";
    let tok = sign(json!({
        "sub": sub,
        "preferred_username": "grace",
        "iat": IAT,
        "auth_time": IAT,
        "exp": 4_000_000_000u64,
    }));
    let script = format!(
        "{PRELUDE}{}",
        r#"
anon = KamiwazaClient(BASE, log_level=logging.ERROR)
user = anon.auth.verify_token(TOKEN)
assert str(user.id) == uid("user", os.environ["SUB"]), user.id
assert user.external_id == os.environ["SUB"], user
assert user.username == "grace" and user.email == "grace@users.example.com", user
assert user.last_login == user.created_at, user
perms = anon.auth.read_own_permissions(TOKEN)
print(json.dumps({
    "user_id": str(perms.user_id),
    "rights": perms.rights,
    "roles": perms.roles,
    "groups": perms.groups,
    "bad_query": failure(lambda: anon.auth.read_own_permissions("bad.token.here")),
}))
"#
    );
    let out = venv.run_ok(
        &script,
        &[
            ("BASE", base.as_str()),
            ("TOKEN", tok.as_str()),
            ("SUB", sub),
        ],
    );
    let got: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    // grace (by her `sub`) is in `ops` by the records: `admin` gives her `*`. Her id is
    // derived from the `sub` like any other: uuid5(NAMESPACE_URL, "portcullis:user:" + sub).
    assert_eq!(
        got,
        json!({
            "user_id": "37e069bd-3048-55ec-8004-1f7f7265b81e",
            "rights": ["*"],
            "roles": ["admin"],
            "groups": ["ops"],
            "bad_query": "AuthenticationError: Authentication failed. No authenticator provided.",
        })
    );
}
