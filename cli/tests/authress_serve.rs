//! The Authress Python SDK (`authress` 3.1.126 from PyPI, in a virtualenv this test makes)
//! against `portcullis serve` on loopback: `user_permissions.authorize_user` succeeds for a
//! granted permission and raises the SDK's not-allowed exception otherwise; the listing
//! returns the granted permissions; tokens the SDK's `get_client_token()` mints from a
//! service-client access key (generated here) verify through the Authress preset, with the
//! client's keys served on 127.0.0.1; and tokens with a foreign issuer host, another `sub`
//! or no `kid` are refused, each with its own message. The records file is rewritten and
//! the next answers follow it.
//!
//! Without python3, its venv module or PyPI the test says why and skips; with
//! `PORTCULLIS_STRICT_TESTS=1` it fails instead.

mod harness;
#[allow(unreachable_pub)]
#[path = "../../tests/python_support/mod.rs"]
mod python_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::*;
use serde_json::{Value, json};

const SDK: &str = "authress==3.1.126";
const ACCOUNT: &str = "acc_portcullis";
const CLIENT: &str = "sc_portcullis";
const KID: &str = "kid-portcullis-1";

/// `DOMAIN` is replaced by the Authress domain's origin: the service client's tokens carry
/// its issuer, the users' tokens none (`issuer = ""`), and `sub` is unique only within its
/// issuer.
const RECORDS: &str = r#"
issuer = ""

[roles]
reader = ["documents:read"]
authress-check = ["authress:check"]

[[records]]
id = "ada-documents"
[[records.statements]]
roles = ["reader"]
resources = ["/documents/A"]
users = ["ada"]

[[records]]
id = "checkers"
[[records.statements]]
roles = ["authress-check"]
resources = ["/authress"]
users = [{ iss = "DOMAIN/v1/clients/sc_portcullis", sub = "sc_portcullis" }]
"#;

/// A test-only service-client access key, made with the SDK's own crypto library, and its
/// public JWK.
const KEYGEN: &str = r#"
import base64, json, os
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
key = Ed25519PrivateKey.generate()
der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
print(json.dumps({
    "access_key": f"{os.environ['CLIENT']}.{os.environ['KID']}.{os.environ['ACCOUNT']}.{base64.b64encode(der).decode()}",
    "jwk": {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": os.environ["KID"],
            "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()},
}))
"#;

/// Every call through the SDK; one JSON line per case: what happened.
const CALLS: &str = r#"
import base64, datetime, json, os
import jwt
from authress import AuthressClient
from authress.exceptions import ApiException

serve = os.environ["SERVE"]
access_key = os.environ["ACCESS_KEY"]

def outcome(f):
    try:
        value = f()
        return {"ok": True, "value": value}
    except ApiException as e:
        body = e.body.decode() if isinstance(e.body, bytes) else e.body
        return {"ok": False, "exception": type(e).__name__, "status": e.status, "body": body}

def client(token):
    c = AuthressClient(authress_api_url=serve)
    c.set_token(token)
    return c

# The service client's own token, minted by the SDK for the domain that serves its keys.
service_token = AuthressClient(authress_api_url=os.environ["DOMAIN"], service_client_access_key=access_key).get_client_token()
sc = client(service_token)
ada = client(os.environ["ADA_TOKEN"])
bob = client(os.environ["BOB_TOKEN"])

def listing(c, user, resource):
    r = c.user_permissions.get_user_permissions_for_resource(user, resource)
    return {"userId": r.user_id, "permissions": [p.to_dict() for p in r.permissions]}

cases = {
    "granted": lambda: sc.user_permissions.authorize_user("ada", "/documents/A/pages/1", "documents:read"),
    "granted_case": lambda: sc.user_permissions.authorize_user("ada", "documents/A", "Documents:Read"),
    "not_granted_resource": lambda: sc.user_permissions.authorize_user("ada", "/documents/B", "documents:read"),
    "not_granted_permission": lambda: sc.user_permissions.authorize_user("ada", "/documents/A", "documents:write"),
    "not_a_segment_prefix": lambda: sc.user_permissions.authorize_user("ada", "/documents/AB", "documents:read"),
    "listing": lambda: listing(sc, "ada", "/documents/A/pages/1"),
    "listing_none": lambda: listing(sc, "ada", "/documents/B"),
    "self_check": lambda: ada.user_permissions.authorize_user("ada", "/documents/A", "documents:read"),
    "self_listing": lambda: listing(ada, "ada", "/documents/A"),
    "other_user_without_role": lambda: bob.user_permissions.authorize_user("ada", "/documents/A", "documents:read"),
    "other_user_listing_without_role": lambda: listing(bob, "ada", "/documents/A"),
    "service_client_self": lambda: sc.user_permissions.authorize_user(os.environ["CLIENT"], "/authress", "authress:check"),
}

# Refused service-client tokens: the SDK's own for a foreign domain, and the same key
# bending sub or leaving out kid.
parts = access_key.split(".")
private = f"-----BEGIN PRIVATE KEY-----\n{parts[3]}\n-----END PRIVATE KEY-----"
claims = jwt.decode(service_token, options={"verify_signature": False})
foreign = AuthressClient(authress_api_url="https://evil.example.com", service_client_access_key=access_key).get_client_token()
other_sub = jwt.encode(dict(claims, sub="sc_someone-else"), private, algorithm="EdDSA", headers={"kid": parts[1]})
no_kid = jwt.encode(claims, private, algorithm="EdDSA")
for name, token in [("foreign_issuer", foreign), ("other_sub", other_sub), ("no_kid", no_kid)]:
    cases[name] = (lambda t: lambda: client(t).user_permissions.authorize_user("ada", "/documents/A", "documents:read"))(token)

only = os.environ.get("ONLY")
out = {name: outcome(f) for name, f in cases.items() if not only or name in only.split(",")}
out["_claims"] = {"iss": claims["iss"], "sub": claims["sub"], "aud": claims["aud"], "kid": jwt.get_unverified_header(service_token).get("kid"), "alg": jwt.get_unverified_header(service_token)["alg"], "foreign_iss": jwt.decode(foreign, options={"verify_signature": False})["iss"]}
print(json.dumps(out))
"#;

/// The Authress domain of the test: serves the service client's key set where the SDKs'
/// verifiers read it, and counts the requests.
struct Domain {
    origin: String,
    hits: Arc<Mutex<Vec<String>>>,
    count: Arc<AtomicUsize>,
}

fn domain(jwk: Value) -> Domain {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (h, c) = (hits.clone(), count.clone());
    let want = format!("/v1/clients/{CLIENT}/.well-known/openid-configuration/jwks");
    let body = json!({ "keys": [jwk] }).to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // Drain the headers.
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let path = line.split(' ').nth(1).unwrap_or("").to_owned();
            c.fetch_add(1, SeqCst);
            h.lock().unwrap().push(path.clone());
            let res = if path == want {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()
            };
            let _ = stream.write_all(res.as_bytes());
        }
    });
    Domain {
        origin,
        hits,
        count,
    }
}

fn case<'v>(out: &'v Value, name: &str) -> &'v Value {
    out.get(name)
        .unwrap_or_else(|| panic!("no case {name} in {out}"))
}

fn assert_raised(out: &Value, name: &str, exception: &str, status: u64, message: &str) {
    let c = case(out, name);
    assert_eq!(c["ok"], false, "{name}: {c}");
    assert_eq!(c["exception"], exception, "{name}: {c}");
    assert_eq!(c["status"], status, "{name}: {c}");
    let body: Value = serde_json::from_str(c["body"].as_str().unwrap_or("null"))
        .unwrap_or_else(|_| panic!("{name}: body is not JSON: {c}"));
    assert_eq!(body["message"], message, "{name}: {c}");
}

#[test]
fn authress_sdk_against_serve() {
    let Some(venv) = python_support::venv("authress_serve", &[SDK]) else {
        return;
    };
    let env = [("CLIENT", CLIENT), ("KID", KID), ("ACCOUNT", ACCOUNT)];
    let key: Value = serde_json::from_str(&venv.run_ok(KEYGEN, &env)).unwrap();
    let access_key = key["access_key"].as_str().unwrap().to_owned();
    let domain = domain(key["jwk"].clone());

    let dir = TempDir::new("authress-serve");
    let records_text = RECORDS.replace("DOMAIN", &domain.origin);
    let records = dir.write("records.toml", &records_text);
    let (mut serve, addr) = serve(
        &[
            "--proxy",
            "nginx",
            "--records",
            records.to_str().unwrap(),
            "--log",
            "debug",
        ],
        &[
            ("FEDN_JWT_SECRET_KEY", SECRET),
            ("PORTCULLIS_AUTHRESS_ACCOUNT", ACCOUNT),
            ("PORTCULLIS_AUTHRESS_DOMAIN", &domain.origin),
        ],
    );
    wait_port(addr.port(), "portcullis serve", Some(&mut serve));
    let url = format!("http://{addr}");
    let ada = token("ada", "", &[]);
    let bob = token("bob", "", &[]);
    let run = |only: &str| -> Value {
        let text = venv.run_ok(
            CALLS,
            &[
                ("SERVE", url.as_str()),
                ("DOMAIN", domain.origin.as_str()),
                ("ACCESS_KEY", access_key.as_str()),
                ("ADA_TOKEN", ada.as_str()),
                ("BOB_TOKEN", bob.as_str()),
                ("CLIENT", CLIENT),
                ("ONLY", only),
            ],
        );
        serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {text}\nserve log:\n{}",
                serve.stderr_text()
            )
        })
    };
    let out = run("");
    let ctx = || format!("{out:#}\nserve log:\n{}", serve.stderr_text());

    // What the SDK minted: the claims the preset checks.
    let claims = &out["_claims"];
    assert_eq!(
        claims["iss"],
        format!("{}/v1/clients/{CLIENT}", domain.origin),
        "{}",
        ctx()
    );
    assert_eq!(claims["sub"], CLIENT);
    assert_eq!(claims["aud"], format!("{ACCOUNT}.accounts.authress.io"));
    assert_eq!(
        (claims["kid"].as_str(), claims["alg"].as_str()),
        (Some(KID), Some("EdDSA"))
    );
    assert_eq!(
        claims["foreign_iss"],
        format!("https://evil.example.com/v1/clients/{CLIENT}")
    );

    // Granted: `authorize_user` returns (None); the service client holds the check role
    // through the records.
    for name in [
        "granted",
        "granted_case",
        "self_check",
        "service_client_self",
    ] {
        assert_eq!(case(&out, name)["ok"], true, "{name}: {}", ctx());
    }
    // Not granted: Authress's 404, the SDK's NotFoundException.
    let not_allowed = "The user does not have the permission to the resource";
    for name in [
        "not_granted_resource",
        "not_granted_permission",
        "not_a_segment_prefix",
    ] {
        assert_raised(&out, name, "NotFoundException", 404, not_allowed);
    }
    // The listing: the granted permission, in Authress's shape.
    let want = json!({"userId": "ada", "permissions": [
        {"action": "documents:read", "allow": true, "grant": false, "delegate": false}
    ]});
    assert_eq!(case(&out, "listing")["value"], want, "{}", ctx());
    assert_eq!(case(&out, "self_listing")["value"], want, "{}", ctx());
    assert_raised(
        &out,
        "listing_none",
        "NotFoundException",
        404,
        "The user does not have any permissions to the resource",
    );
    // A caller without the check role asking about another user: Authress's 403.
    for name in ["other_user_without_role", "other_user_listing_without_role"] {
        assert_raised(
            &out,
            name,
            "ForbiddenException",
            403,
            "Insufficient permissions",
        );
    }
    // Refused service-client tokens, each with its reason.
    assert_raised(
        &out,
        "foreign_issuer",
        "UnauthorizedException",
        401,
        "Token issuer is not the configured Authress domain",
    );
    assert_raised(
        &out,
        "other_sub",
        "UnauthorizedException",
        401,
        "Token sub is not the service client of its issuer",
    );
    assert_raised(
        &out,
        "no_kid",
        "UnauthorizedException",
        401,
        "Token has no kid",
    );
    // Keys came from the service client's own key set, and only from there.
    let hits = domain.hits.lock().unwrap().clone();
    assert!(!hits.is_empty(), "{}", ctx());
    assert!(
        hits.iter()
            .all(|p| p == &format!("/v1/clients/{CLIENT}/.well-known/openid-configuration/jwks")),
        "{hits:?}"
    );
    assert_eq!(
        domain.count.load(SeqCst),
        1,
        "one fetch, then cached: {hits:?}"
    );

    // The raw wire: each parameter percent-decoded once, so `%2F` separates the
    // resource's segments and an encoded `%252F` stays inside one.
    let bearer = format!("Bearer {ada}");
    let get = |target: &str| http(addr.port(), "GET", target, &[("Authorization", &bearer)]);
    let r = get("/v1/users/ada/resources/%2Fdocuments%2FA%2Fx/permissions/documents%3Aread");
    assert_eq!(r.status, 200, "{r:?}");
    let r = get("/v1/users/ada/resources/%2Fdocuments%2FA%252Fx/permissions/documents%3Aread");
    assert_eq!(
        r.status, 404,
        "`A%2Fx` is one segment, not below `A`: {r:?}"
    );
    let r = get("/v1/users/ada/resources/%2Fdocuments%252FA/permissions/documents%3Aread");
    assert_eq!(r.status, 404, "`documents%2FA` is one segment: {r:?}");
    let r = get("/v1/users/ada/resources/%2Fdocuments%2F..%2FA/permissions/documents%3Aread");
    assert_eq!(r.status, 400, "a dot segment: {r:?}");
    let r = http(
        addr.port(),
        "GET",
        "/v1/users/ada/resources/%2Fdocuments%2FA/permissions",
        &[],
    );
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("www-authenticate"), Some(r#"Bearer realm="api""#));
    let r = get("/v1/users/ada/resources/%2Fdocuments%2FA/permissions");
    assert_eq!(r.header("content-type"), Some("application/links+json"));

    // Reloaded on change: ada now reads /documents/B too.
    std::fs::write(
        &records,
        records_text.replace(
            r#"resources = ["/documents/A"]"#,
            r#"resources = ["/documents/A", "/documents/B"]"#,
        ),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = get("/v1/users/ada/resources/%2Fdocuments%2FB/permissions/documents%3Aread");
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the records were not reloaded within 15 s: {r:?}\n{}",
            serve.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = run("not_granted_resource");
    assert_eq!(case(&out, "not_granted_resource")["ok"], true, "{out}");
    assert!(serve.stderr_text().contains("access records reloaded"));
}
