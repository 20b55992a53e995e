//! RFC 9728 protected-resource metadata from `portcullis serve --resource-metadata`, read
//! by the Model Context Protocol's Python SDK (PyPI `mcp`, in a cached virtualenv): from
//! the 401 of a guarded route, `extract_resource_metadata_from_www_auth` finds the URL, and
//! `handle_protected_resource_response` accepts the document, whose issuers and resource
//! are the configuration's. The raw answers are checked over HTTP too.
//!
//! The SDK's test skips, saying why, when Python or the package cannot be installed; with
//! `PORTCULLIS_STRICT_TESTS=1` (CI) it fails instead.

mod harness;
#[allow(unreachable_pub)]
#[path = "../../tests/python_support/mod.rs"]
mod python_support;

use std::process::Command;

use harness::*;
use serde_json::{Value, json};

const MCP: &str = "mcp==2.3.0";
const ISSUER: &str = "https://id.example.com/realms/acme";

const POLICY: &str = r#"
[[rule]]
roles = ["client"]
path = "/mcp/{*rest}"
"#;

/// `serve --proxy nginx --resource-metadata` on a known port, the resource being its own
/// `/mcp` (from the audience unless `resource` names it), the issuer required.
fn start(dir: &TempDir, extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let policy = dir.write("policy.toml", POLICY);
    let audience = format!("http://127.0.0.1:{port}/mcp");
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--proxy", "nginx", "--policy", policy.to_str().unwrap()])
        .arg("--resource-metadata")
        .args(extra)
        .env_remove("PORTCULLIS_POLICY_FILE")
        .env("FEDN_JWT_SECRET_KEY", SECRET)
        .env("PORTCULLIS_ISSUER", ISSUER)
        .env("PORTCULLIS_AUDIENCE", &audience);
    let mut proc = spawn("portcullis serve", cmd);
    wait_port(port, "serve", Some(&mut proc));
    (proc, port)
}

fn metadata_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp")
}

#[test]
fn challenges_name_the_metadata_and_it_is_served() {
    let dir = TempDir::new("rfc9728-http");
    let (_serve, port) = start(&dir, &["--resource-scope", "mcp:tools,mcp:admin"]);
    let guarded = [
        ("X-Original-Method", "GET"),
        ("X-Original-URI", "/mcp/tools"),
    ];
    let challenge = |extra: &str| {
        format!(
            r#"Bearer realm="api"{extra}, resource_metadata="{}""#,
            metadata_url(port)
        )
    };
    // 401 without a token, 403 for a caller without the role, 400 for a malformed one.
    let res = http(port, "GET", "/auth", &guarded);
    assert_eq!(res.status, 401, "{res:?}");
    assert_eq!(res.header("www-authenticate"), Some(challenge("").as_str()));
    let other = {
        let out = Command::new(BIN)
            .args([
                "mint", "--secret", SECRET, "--sub", "ada", "--role", "guest",
            ])
            .args(["--exp", "1h", "--claim", &format!("iss={ISSUER}")])
            .args(["--claim", &format!("aud=http://127.0.0.1:{port}/mcp")])
            .output()
            .expect("mint");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let bearer = format!("Bearer {other}");
    let mut with_token = guarded.to_vec();
    with_token.push(("Authorization", &bearer));
    let res = http(port, "GET", "/auth", &with_token);
    assert_eq!(res.status, 403, "{res:?}");
    assert_eq!(
        res.header("www-authenticate"),
        Some(challenge(r#", error="insufficient_scope""#).as_str())
    );
    // The document, at the path-suffixed well-known URL and at the bare one.
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let res = http(port, "GET", path, &[]);
        assert_eq!(res.status, 200, "{path}: {res:?}");
        assert_eq!(res.header("content-type"), Some("application/json"));
        assert_eq!(res.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            serde_json::from_str::<Value>(&res.body).unwrap(),
            json!({
                "resource": format!("http://127.0.0.1:{port}/mcp"),
                "authorization_servers": [ISSUER],
                "bearer_methods_supported": ["header"],
                "scopes_supported": ["mcp:tools", "mcp:admin"],
            })
        );
    }
}

/// Settings that cannot make a document fail at start, naming the flag.
#[test]
fn bad_resource_settings_are_refused_at_start() {
    let dir = TempDir::new("rfc9728-bad");
    let policy = dir.write("policy.toml", POLICY);
    for (env, args, flag) in [
        (
            None,
            vec![],
            "--resource (PORTCULLIS_RESOURCE): no audience",
        ),
        (
            Some("a,b"),
            vec![],
            "--resource (PORTCULLIS_RESOURCE): several audiences",
        ),
        (
            None,
            vec!["--resource", "http://api.example.com/mcp"],
            "--resource (PORTCULLIS_RESOURCE): `http://api.example.com/mcp` uses plain http",
        ),
        (
            None,
            vec![
                "--resource",
                "https://api.example.com",
                "--authorization-server",
                "acme",
            ],
            "--authorization-server (PORTCULLIS_AUTHORIZATION_SERVERS): `acme`",
        ),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--proxy", "nginx"])
            .args(["--policy", policy.to_str().unwrap(), "--resource-metadata"])
            .args(&args)
            .env_remove("PORTCULLIS_AUDIENCE")
            .env("FEDN_JWT_SECRET_KEY", SECRET);
        if let Some(aud) = env {
            cmd.env("PORTCULLIS_AUDIENCE", aud);
        }
        let out = cmd.output().expect("run serve");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}

const SDK: &str = r#"
import asyncio, json, os
import httpx2
from mcp.client.auth.utils import (
    extract_resource_metadata_from_www_auth, handle_protected_resource_response)

async def main():
    base = os.environ["BASE"]
    async with httpx2.AsyncClient() as client:
        # The guarded route, asked as nginx's auth_request asks.
        denied = await client.get(base + "/auth", headers={
            "X-Original-Method": "POST", "X-Original-URI": "/mcp/tools/call"})
        url = extract_resource_metadata_from_www_auth(denied)
        doc = await client.get(url)
        metadata = await handle_protected_resource_response(doc)
        print(json.dumps({
            "status": denied.status_code,
            "url": url,
            "accepted": metadata is not None,
            "resource": str(metadata.resource) if metadata else None,
            "authorization_servers": [str(s) for s in metadata.authorization_servers] if metadata else None,
            "bearer_methods_supported": metadata.bearer_methods_supported if metadata else None,
        }))

asyncio.run(main())
"#;

#[test]
fn mcp_sdk_discovers_the_metadata_from_a_401() {
    let Some(venv) = python_support::venv("resource_metadata_mcp", &[MCP]) else {
        return;
    };
    let dir = TempDir::new("rfc9728-mcp");
    let (_serve, port) = start(&dir, &[]);
    let out = venv.run_ok(SDK, &[("BASE", &format!("http://127.0.0.1:{port}"))]);
    let got: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        got,
        json!({
            "status": 401,
            "url": metadata_url(port),
            "accepted": true,
            // The configured audience and issuer.
            "resource": format!("http://127.0.0.1:{port}/mcp"),
            "authorization_servers": [ISSUER],
            "bearer_methods_supported": ["header"],
        })
    );
}
