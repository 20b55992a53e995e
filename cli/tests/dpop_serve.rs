//! `portcullis serve` with DPoP (RFC 9449) and certificate-bound tokens (RFC 8705): the
//! original method and URI come from the proxy's headers (nginx's `X-Original-*`), the
//! public URL from `--dpop-public-url`; proofs are made here with a key of the test kit.
//! `portcullis inspect` shows a token's binding.

mod harness;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use harness::*;
use portcullis::sender::jwk_thumbprint;
use portcullis::{Algorithm, Signer};
use serde_json::{Value, json};

const PUBLIC: &str = "https://api.example.com";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn proof(key: &Signer, htm: &str, path: &str, token: &str, jti: &str) -> String {
    let ath = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ));
    let h = b64(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk().unwrap()}));
    let p = b64(
        &json!({"jti": jti, "htm": htm, "htu": format!("{PUBLIC}{path}"), "iat": now(), "ath": ath}),
    );
    format!("{h}.{p}.{}", key.sign_segments(&h, &p).unwrap())
}

#[test]
fn serve_checks_dpop_proofs_from_the_proxy_s_description() {
    let key = Signer::generate(Algorithm::ES256).unwrap();
    let jkt = jwk_thumbprint(key.public_jwk().unwrap()).unwrap();
    let token = token("ada", "admin", &[&format!(r#"cnf={{"jkt":"{jkt}"}}"#)]);
    let (_serve, addr) = serve(
        &[
            "--proxy",
            "nginx",
            "--dpop",
            "allowed",
            "--dpop-public-url",
            PUBLIC,
        ],
        &[("FEDN_JWT_SECRET_KEY", SECRET)],
    );
    let port = addr.port();
    let auth = format!("DPoP {token}");
    let ask = |proof: &str| {
        http(
            port,
            "GET",
            "/auth",
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/list_clients?page=2"),
                ("Authorization", &auth),
                ("DPoP", proof),
            ],
        )
    };
    let good = proof(&key, "GET", "/list_clients", &token, "serve-1");
    assert_eq!(ask(&good).status, 200);
    // nginx answers 401 for any refusal; the challenge says why.
    let res = ask(&good);
    assert_eq!(res.status, 401, "a replayed proof");
    assert!(
        res.header("www-authenticate")
            .is_some_and(|c| c.starts_with(r#"DPoP realm="api", error="invalid_dpop_proof""#)),
        "{res:?}"
    );
    let wrong_uri = proof(&key, "GET", "/other", &token, "serve-2");
    assert_eq!(ask(&wrong_uri).status, 401);
    // The bound token as a bearer token.
    let res = http(
        port,
        "GET",
        "/auth",
        &[
            ("X-Original-Method", "GET"),
            ("X-Original-URI", "/list_clients"),
            ("Authorization", &format!("Bearer {token}")),
        ],
    );
    assert_eq!(res.status, 401);
}

#[test]
fn serve_reads_the_client_certificate_from_a_trusted_header() {
    let der = b"a client certificate's DER bytes, for the thumbprint only";
    let x5t = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der));
    let token = token("ada", "admin", &[&format!(r#"cnf={{"x5t#S256":"{x5t}"}}"#)]);
    let (_serve, addr) = serve(
        &["--proxy", "nginx", "--client-cert-header", "Client-Cert"],
        &[("FEDN_JWT_SECRET_KEY", SECRET)],
    );
    let bearer = format!("Bearer {token}");
    let ask = |cert: Option<String>| {
        let mut headers = vec![
            ("X-Original-Method", "GET".to_owned()),
            ("X-Original-URI", "/list_clients".to_owned()),
            ("Authorization", bearer.clone()),
        ];
        if let Some(c) = cert {
            headers.push(("Client-Cert", c));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http(addr.port(), "GET", "/auth", &headers).status
    };
    assert_eq!(ask(Some(format!(":{}:", STANDARD.encode(der)))), 200);
    assert_eq!(ask(Some(format!(":{}:", STANDARD.encode(b"another")))), 401);
    assert_eq!(ask(None), 401);
}

#[test]
fn serve_refuses_dpop_without_a_public_url_naming_the_flag() {
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--proxy",
            "nginx",
            "--fedn-policy",
            "--dpop",
            "required",
        ])
        .env("FEDN_JWT_SECRET_KEY", SECRET)
        .env_remove("PORTCULLIS_POLICY_FILE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("PORTCULLIS_DPOP_PUBLIC_URL"), "{err}");
}

#[test]
fn inspect_shows_the_binding() {
    let token = token(
        "ada",
        "",
        &[r#"cnf={"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}"#],
    );
    let out = std::process::Command::new(BIN)
        .args(["inspect", &format!("DPoP {token}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(r#"binding: DPoP-bound (RFC 9449): cnf.jkt "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I""#),
        "{text}"
    );
    let out = std::process::Command::new(BIN)
        .args(["inspect", "--json", &token])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["binding"][0].as_str().unwrap().starts_with("DPoP-bound"));
}
