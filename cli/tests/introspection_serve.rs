//! `portcullis serve` with opaque tokens introspected (RFC 7662) at authlib's
//! `IntrospectionEndpoint` behind Flask on loopback (PyPI `authlib`, `flask`, in a cached
//! virtualenv): the flags configure the endpoint and the client (the secret from a file,
//! `client_secret_post`), an active token is allowed with its subject passed upstream, an
//! inactive one gets 401, and with the authorization server gone a token not yet cached
//! gets 503 while a cached one is still served.
//!
//! Skips, saying why, when Python or the packages cannot be installed; with
//! `PORTCULLIS_STRICT_TESTS=1` (CI) it fails instead.

mod harness;
#[allow(unreachable_pub)]
#[path = "../../tests/python_support/mod.rs"]
mod python_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use harness::*;

const PACKAGES: &[&str] = &["authlib==1.6.5", "flask==3.1.2"];
const SERVER: &str = include_str!("../../tests/fixtures/authlib_introspection.py");

const POLICY: &str = r#"
[[rule]]
roles = ["read"]
path = "/api/{*rest}"
"#;

#[test]
fn serve_introspects_opaque_tokens() {
    let Some(venv) = python_support::venv("serve_introspects_opaque_tokens", PACKAGES) else {
        return;
    };
    let mut auth_server = Command::new(venv.python())
        .arg("-c")
        .arg(SERVER)
        .env("AUTHLIB_INSECURE_TRANSPORT", "1")
        .env("BASIC_ID", "rs-basic")
        .env("BASIC_SECRET", "basic-secret")
        .env("POST_ID", "rs-post")
        .env("POST_SECRET", "p0st-secret")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python starts");
    let mut line = String::new();
    BufReader::new(auth_server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let hello: serde_json::Value = serde_json::from_str(&line).unwrap();
    let iss = hello["iss"].as_str().unwrap().to_owned();

    let dir = TempDir::new("introspection-serve");
    let policy = dir.write("policy.toml", POLICY);
    let secret = dir.write("secret", "p0st-secret\n");
    let endpoint = format!("{iss}/introspect");
    let (_serve, addr) = serve(
        &[
            "--proxy",
            "traefik",
            "--policy",
            policy.to_str().unwrap(),
            "--role-claim",
            "scope",
            "--introspection-url",
            &endpoint,
            "--introspection-client-id",
            "rs-post",
            "--introspection-client-secret-file",
            secret.to_str().unwrap(),
            "--introspection-auth",
            "client_secret_post",
        ],
        &[("FEDN_JWT_SECRET_KEY", "")],
    );
    let ask = |token: &str| {
        http(
            addr.port(),
            "GET",
            "/auth",
            &[
                ("X-Forwarded-Method", "GET"),
                ("X-Forwarded-Uri", "/api/orders"),
                ("Authorization", &format!("Bearer {token}")),
            ],
        )
    };
    let ok = ask("opaque-ada");
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.header("x-auth-subject"), Some("ada"));
    let inactive = ask("opaque-unknown");
    assert_eq!(inactive.status, 401, "{inactive:?}");
    assert!(
        inactive
            .header("www-authenticate")
            .is_some_and(|c| c.contains("invalid_token"))
    );

    let _ = auth_server.kill();
    let _ = auth_server.wait();
    assert_eq!(ask("opaque-ada").status, 200, "cached before the outage");
    let down = ask("opaque-post");
    assert_eq!(down.status, 503, "{down:?}");
    assert!(
        down.body.contains("Token introspection unavailable"),
        "{down:?}"
    );
    assert_eq!(down.header("www-authenticate"), None);
}

#[test]
fn serve_refuses_a_plain_http_endpoint_at_start() {
    let dir = TempDir::new("introspection-http");
    let secret = dir.write("secret", "s");
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--proxy",
            "caddy",
            "--fedn-policy",
        ])
        .args(["--introspection-url", "http://as.example/introspect"])
        .args(["--introspection-client-id", "rs"])
        .arg("--introspection-client-secret-file")
        .arg(&secret)
        .env_remove("PORTCULLIS_POLICY_FILE")
        .env_remove("FEDN_JWT_SECRET_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("introspection") && err.contains("http"),
        "{err}"
    );
}
