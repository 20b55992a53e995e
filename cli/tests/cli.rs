//! The `portcullis` binary, run as a user runs it: each subcommand on good and bad input,
//! checking the exit code, stdout and stderr. No bad flag, file or variable may end in a
//! panic or a backtrace.

mod harness;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use harness::*;

/// Runs the binary with a clean environment plus `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    run_in(args, env, None)
}

fn run_in(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run portcullis");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked")
            && !err.contains("RUST_BACKTRACE")
            && !err.contains("internal error"),
        "{args:?} panicked: {err}"
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn expect(o: &Output, code: i32, out_has: &[&str], err_has: &[&str]) {
    let (so, se) = (stdout(o), stderr(o));
    assert_eq!(o.status.code(), Some(code), "stdout: {so}\nstderr: {se}");
    for s in out_has {
        assert!(so.contains(s), "stdout lacks {s:?}: {so}\nstderr: {se}");
    }
    for s in err_has {
        assert!(se.contains(s), "stderr lacks {s:?}: {se}\nstdout: {so}");
    }
}

fn secret_env() -> [(&'static str, &'static str); 1] {
    [("FEDN_JWT_SECRET_KEY", SECRET)]
}

fn mint(args: &[&str]) -> String {
    let mut all = vec!["mint", "--secret", SECRET];
    all.extend_from_slice(args);
    let o = run(&all, &[]);
    expect(&o, 0, &[], &[]);
    stdout(&o).trim().to_owned()
}

#[test]
fn help_and_usage_errors() {
    expect(
        &run(&["--help"], &[]),
        0,
        &[
            "mint",
            "inspect",
            "verify",
            "check",
            "lint",
            "serve",
            "Exit codes",
        ],
        &[],
    );
    expect(&run(&[], &[]), 2, &[], &["Usage"]);
    expect(&run(&["frobnicate"], &[]), 2, &[], &["frobnicate"]);
    for cmd in [
        "mint", "keygen", "inspect", "verify", "check", "lint", "serve",
    ] {
        expect(&run(&[cmd, "--help"], &[]), 0, &["Usage"], &[]);
    }
}

#[test]
fn mint_good_and_bad() {
    let token = mint(&[
        "--sub",
        "ada",
        "--role",
        "client,admin",
        "--claim",
        "tenant=acme",
        "--claim",
        "n=5",
        "--exp",
        "15m",
        "--kid",
        "k1",
    ]);
    assert_eq!(token.split('.').count(), 3);
    let o = run(&["verify", &token], &secret_env());
    expect(&o, 0, &["valid", "\"ada\"", "\"client\", \"admin\""], &[]);
    // 15 min, or 14 when a second passed between minting and verifying (a busy machine).
    let out = stdout(&o);
    assert!(
        out.contains("in 15 min") || out.contains("in 14 min"),
        "{out}"
    );
    let o = run(&["inspect", "--json", &token], &[]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["header"]["kid"], "k1");
    assert_eq!(v["claims"]["tenant"], "acme");
    assert_eq!(v["claims"]["n"], 5);
    assert_eq!(v["claims"]["role"], serde_json::json!(["client", "admin"]));

    // Nested role claims and scope.
    let t = mint(&["--role-claim", "realm_access.roles", "--role", "reader"]);
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["inspect", "--json", &t], &[]))).unwrap();
    assert_eq!(v["claims"]["realm_access"]["roles"], "reader");
    let t = mint(&["--role-claim", "scope", "--role", "a", "--role", "b"]);
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["inspect", "--json", &t], &[]))).unwrap();
    assert_eq!(v["claims"]["scope"], "a b");

    // The secret from the environment, as the dev server reads it.
    let o = run(&["mint", "--sub", "x"], &secret_env());
    expect(&o, 0, &["."], &[]);

    expect(
        &run(&["mint", "--secret", "short"], &[]),
        2,
        &[],
        &["--secret", "at least 32 bytes"],
    );
    expect(
        &run(&["mint", "--secret", SECRET, "--exp", "15 minutes"], &[]),
        2,
        &[],
        &["--exp", "not a duration"],
    );
    expect(
        &run(&["mint", "--secret", SECRET, "--alg", "none"], &[]),
        2,
        &[],
        &["--alg"],
    );
    expect(
        &run(&["mint", "--secret", SECRET, "--claim", "novalue"], &[]),
        2,
        &[],
        &["--claim", "KEY=VALUE"],
    );
    expect(
        &run(&["mint", "--key", "/nonexistent/key.pem"], &[]),
        2,
        &[],
        &["--key", "/nonexistent/key.pem"],
    );
    expect(&run(&["mint"], &[]), 2, &[], &["no key"]);
    expect(
        &run(&["mint", "--secret", SECRET, "--header", "alg=none"], &[]),
        2,
        &[],
        &["--header alg"],
    );
    expect(
        &run(&["mint", "--secret", SECRET, "--claims", "[1]"], &[]),
        2,
        &[],
        &["--claims"],
    );
}

#[test]
fn keygen_writes_pairs_that_mint_and_verify() {
    let dir = TempDir::new("keygen");
    for alg in ["ES256", "ES384", "EdDSA", "RS256", "PS256", "HS256"] {
        let prefix = dir.path().join(alg);
        let p = prefix.to_str().unwrap();
        let o = run(&["keygen", "--alg", alg, "--out", p], &[]);
        expect(&o, 0, &["kid", "wrote"], &[]);
        let jwks = format!("{p}.jwks.json");
        let set: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&jwks).unwrap()).unwrap();
        let jwk = &set["keys"][0];
        assert_eq!(jwk["alg"], alg);
        assert_eq!(jwk["use"], "sig");
        let token = if alg == "HS256" {
            // The oct JWK set is also a private key for mint.
            let t = run(&["mint", "--key", &jwks, "--sub", "ada"], &[]);
            expect(&t, 0, &[], &[]);
            let s = run(
                &[
                    "mint",
                    "--secret-file",
                    &format!("{p}.secret"),
                    "--sub",
                    "ada",
                ],
                &[],
            );
            expect(&s, 0, &[], &[]);
            let v = run(
                &[
                    "verify",
                    "--secret-file",
                    &format!("{p}.secret"),
                    stdout(&s).trim(),
                ],
                &[],
            );
            expect(&v, 0, &["valid"], &[]);
            stdout(&t).trim().to_owned()
        } else {
            assert!(
                jwk.get("d").is_none(),
                "a public JWK set must hold no private member"
            );
            let kid = jwk["kid"].as_str().unwrap();
            let t = run(
                &[
                    "mint",
                    "--key",
                    &format!("{p}.key.pem"),
                    "--alg",
                    alg,
                    "--kid",
                    kid,
                    "--sub",
                    "ada",
                ],
                &[],
            );
            expect(&t, 0, &[], &[]);
            // The PEM public key verifies too (FEDn's set-up).
            let v = run(
                &[
                    "verify",
                    "--alg",
                    alg,
                    "--public-key-file",
                    &format!("{p}.pub.pem"),
                    stdout(&t).trim(),
                ],
                &[],
            );
            expect(&v, 0, &["valid"], &[]);
            stdout(&t).trim().to_owned()
        };
        let v = run(&["verify", "--jwk-set-file", &jwks, &token], &[]);
        expect(&v, 0, &["valid", "\"ada\""], &[]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let private = if alg == "HS256" {
                format!("{p}.secret")
            } else {
                format!("{p}.key.pem")
            };
            let mode = std::fs::metadata(&private).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{private} is readable by others");
        }
    }
    // Never overwrites; bad algorithm; unwritable place.
    let p = dir.path().join("ES256");
    expect(
        &run(
            &["keygen", "--alg", "ES256", "--out", p.to_str().unwrap()],
            &[],
        ),
        2,
        &[],
        &["--force"],
    );
    expect(
        &run(
            &[
                "keygen",
                "--alg",
                "ES256",
                "--force",
                "--out",
                p.to_str().unwrap(),
            ],
            &[],
        ),
        0,
        &[],
        &[],
    );
    expect(
        &run(
            &["keygen", "--alg", "ES512", "--out", p.to_str().unwrap()],
            &[],
        ),
        2,
        &[],
        &["--alg"],
    );
    // A directory that cannot be created (a regular file stands in its way).
    let blocker = dir.write("blocker", "");
    let under = blocker.join("dir").join("k");
    let u = under.to_str().unwrap();
    expect(&run(&["keygen", "--out", u], &[]), 2, &[], &["--out", u]);
}

#[test]
fn keygen_creates_the_out_directory_and_still_never_overwrites() {
    let dir = TempDir::new("keygen-dir");
    for alg in ["ES256", "HS256"] {
        let prefix = dir.path().join(alg).join("nested").join("issuer");
        let p = prefix.to_str().unwrap();
        expect(
            &run(&["keygen", "--alg", alg, "--out", p], &[]),
            0,
            &["wrote"],
            &[],
        );
        assert!(Path::new(&format!("{p}.jwks.json")).is_file());
        let private = if alg == "HS256" {
            format!("{p}.secret")
        } else {
            format!("{p}.key.pem")
        };
        let before = std::fs::read_to_string(&private).unwrap();
        expect(
            &run(&["keygen", "--alg", alg, "--out", p], &[]),
            2,
            &[],
            &["--force"],
        );
        assert_eq!(std::fs::read_to_string(&private).unwrap(), before);
        expect(
            &run(&["keygen", "--alg", alg, "--force", "--out", p], &[]),
            0,
            &["wrote"],
            &[],
        );
        assert_ne!(std::fs::read_to_string(&private).unwrap(), before);
    }
}

/// The `kid` in a token's header, read with `inspect --json`.
fn header_kid(token: &str) -> serde_json::Value {
    let o = run(&["inspect", "--json", token], &[]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["header"]["kid"].clone()
}

#[test]
fn mint_with_a_keygen_pem_key_names_the_jwk_set_kid() {
    let dir = TempDir::new("mint-kid");
    for alg in ["ES256", "ES384", "EdDSA", "RS256"] {
        let prefix = dir.path().join("fresh").join(alg);
        let p = prefix.to_str().unwrap();
        expect(
            &run(&["keygen", "--alg", alg, "--out", p], &[]),
            0,
            &[],
            &[],
        );
        let jwks = format!("{p}.jwks.json");
        let key = format!("{p}.key.pem");
        let set: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&jwks).unwrap()).unwrap();
        let kid = set["keys"][0]["kid"].clone();
        assert!(kid.is_string(), "{set}");

        // No --kid, no --alg: the kid is the thumbprint keygen wrote, and the set verifies.
        let o = run(&["mint", "--key", &key, "--sub", "ada"], &[]);
        expect(&o, 0, &[], &[]);
        let token = stdout(&o).trim().to_owned();
        assert_eq!(header_kid(&token), kid, "{alg}");
        expect(
            &run(&["verify", "--jwk-set-file", &jwks, &token], &[]),
            0,
            &["valid", "\"ada\""],
            &[],
        );
        // Through the hand-built header too.
        let o = run(
            &["mint", "--key", &key, "--alg", alg, "--header", "x=1"],
            &[],
        );
        expect(&o, 0, &[], &[]);
        assert_eq!(header_kid(stdout(&o).trim()), kid, "{alg}");
        // --kid still overrides.
        let o = run(&["mint", "--key", &key, "--kid", "mine"], &[]);
        expect(&o, 0, &[], &[]);
        assert_eq!(header_kid(stdout(&o).trim()), "mine");
    }

    // keygen --kid: the set names that kid, and mint needs the same --kid.
    let prefix = dir.path().join("named").join("k");
    let p = prefix.to_str().unwrap();
    expect(
        &run(
            &["keygen", "--alg", "ES256", "--kid", "issuer-1", "--out", p],
            &[],
        ),
        0,
        &["kid issuer-1"],
        &[],
    );
    let key = format!("{p}.key.pem");
    let o = run(
        &["mint", "--key", &key, "--kid", "issuer-1", "--sub", "ada"],
        &[],
    );
    expect(&o, 0, &[], &[]);
    expect(
        &run(
            &[
                "verify",
                "--jwk-set-file",
                &format!("{p}.jwks.json"),
                stdout(&o).trim(),
            ],
            &[],
        ),
        0,
        &["valid"],
        &[],
    );
    let o = run(&["mint", "--key", &key], &[]);
    expect(&o, 0, &[], &[]);
    let default = header_kid(stdout(&o).trim());
    assert!(default.is_string() && default != "issuer-1", "{default}");
    expect(
        &run(&["mint", "--help"], &[]),
        0,
        &["defaults to the key's RFC 7638 thumbprint, as keygen's"],
        &[],
    );

    // HMAC secrets: no kid unless asked.
    let o = run(&["mint", "--secret", SECRET, "--sub", "ada"], &[]);
    expect(&o, 0, &[], &[]);
    assert!(header_kid(stdout(&o).trim()).is_null());
}

#[test]
fn inspect_shows_unverified_claims_and_never_follows_jku() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let jku = format!("jku=\"http://127.0.0.1:{port}/jwks.json\"");
    let x5u = format!("x5u=\"http://127.0.0.1:{port}/cert.pem\"");
    let token = mint(&[
        "--sub",
        "ada",
        "--exp",
        "14m",
        "--header",
        &jku,
        "--header",
        &x5u,
        "--claim",
        "note=\"\u{1b}[31mred\u{202e}\"",
    ]);

    let o = run(&["inspect", &token], &[]);
    expect(
        &o,
        0,
        &[
            "UNVERIFIED",
            "\"sub\": \"ada\"",
            "expires in 1",
            "UTC",
            "`jku` points at a key; it was not followed",
        ],
        &[],
    );
    let text = stdout(&o);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "raw control characters printed: {text:?}"
    );
    assert!(
        text.contains("\\u001b") && text.contains("\\u202e"),
        "{text}"
    );
    // From stdin too; and verify with the right key follows nothing either.
    expect(
        &run_in(&["inspect", "-"], &[], Some(&format!("{token}\n"))),
        0,
        &["UNVERIFIED"],
        &[],
    );
    expect(&run(&["verify", &token], &secret_env()), 0, &["valid"], &[]);
    std::thread::sleep(Duration::from_millis(200));
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the jku/x5u listener received a connection: {other:?}"),
    }

    expect(
        &run(&["inspect", "not-a-token"], &[]),
        1,
        &["not a token"],
        &[],
    );
    expect(&run(&["inspect", "a.b.c.d.e"], &[]), 1, &["JWE"], &[]);
    expect(
        &run(&["inspect", "e30.bm90IGpzb24.c2ln"], &[]),
        1,
        &["payload is not JSON"],
        &[],
    );
    expect(&run(&["inspect", ""], &[]), 2, &[], &["empty"]);
    let expired = mint(&["--claims", r#"{"exp": 1000000000}"#, "--no-exp"]);
    expect(
        &run(&["inspect", &expired], &[]),
        0,
        &["2001-09-09T01:46:40Z", "expired", "ago"],
        &[],
    );
    let odd = mint(&["--no-exp", "--claims", r#"{"exp": "soon"}"#]);
    expect(
        &run(&["inspect", &odd], &[]),
        0,
        &["not a NumericDate"],
        &[],
    );
}

#[test]
fn verify_answers_as_a_server_would() {
    let good = mint(&["--sub", "ada", "--role", "client"]);
    expect(
        &run(&["verify", &good], &secret_env()),
        0,
        &["valid", "\"ada\"", "\"client\""],
        &[],
    );
    expect(
        &run(&["verify", &format!("Bearer {good}")], &secret_env()),
        0,
        &["valid"],
        &[],
    );
    let expired = mint(&["--claims", r#"{"exp": 1000000000}"#, "--no-exp"]);
    expect(
        &run(&["verify", &expired], &secret_env()),
        1,
        &[
            "refused: token expired",
            "401",
            r#"error="invalid_token""#,
            r#""message":"Token expired""#,
            "UNAUTHENTICATED (16)",
        ],
        &[],
    );
    let other = Command::new(BIN)
        .args([
            "mint",
            "--secret",
            "another-secret-of-at-least-32-bytes!",
            "--sub",
            "x",
        ])
        .output()
        .unwrap();
    let other = String::from_utf8(other.stdout).unwrap();
    expect(
        &run(&["verify", other.trim()], &secret_env()),
        1,
        &["invalid signature", "401"],
        &[],
    );
    let aud = mint(&["--aud", "billing"]);
    expect(
        &run(&["verify", &aud], &secret_env()),
        1,
        &["refused", "401"],
        &[],
    );
    expect(
        &run(&["verify", "--audience", "billing", &aud], &secret_env()),
        0,
        &["valid", "\"billing\""],
        &[],
    );

    // Configuration errors name the variable or flag.
    expect(
        &run(&["verify", &good], &[]),
        2,
        &[],
        &["no key configured", "FEDN_JWT_SECRET_KEY"],
    );
    expect(
        &run(
            &["verify", &good],
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_LEEWAY_SECONDS", "soon"),
            ],
        ),
        2,
        &[],
        &["PORTCULLIS_LEEWAY_SECONDS"],
    );
    expect(
        &run(&["verify", &good], &[("FEDN_JWT_SECRET_KEY", "short")]),
        2,
        &[],
        &["FEDN_JWT_SECRET_KEY"],
    );
    expect(
        &run(
            &["verify", "--jwk-set-file", "/nonexistent.json", &good],
            &[],
        ),
        2,
        &[],
        &["--jwk-set-file", "/nonexistent.json"],
    );
    expect(
        &run(&["verify", "--secret-file", "/nonexistent", &good], &[]),
        2,
        &[],
        &["--secret-file"],
    );
    expect(
        &run(
            &[
                "verify",
                "--alg",
                "XS1",
                "--secret-file",
                "/dev/null",
                &good,
            ],
            &[],
        ),
        2,
        &[],
        &["--alg"],
    );

    // No keys can be loaded: exit 3 and the 503 a server gives.
    let dead = free_port();
    let url = format!("http://127.0.0.1:{dead}/jwks.json");
    expect(
        &run(
            &["verify", "--timeout", "5", "--jwks-url", &url, &good],
            &[],
        ),
        3,
        &["503", "temporarily_unavailable", "UNAVAILABLE (14)"],
        &[],
    );
}

const POLICY: &str = r#"public = ["/health"]
unmatched_grpc = "authenticated"

[[rule]]
roles = ["client"]
methods = ["POST"]
path = "/api/v1/clients/add"

[[rule]]
roles = ["admin"]
path = "/**"

[[grpc]]
roles = ["client"]
method = "/fedn.Combiner/TaskStream"
"#;

const RECORDS: &str = r#"[roles]
reader = ["documents:read"]
writer = ["POST"]

[groups]
staff = ["grace"]

[[records]]
id = "docs"
[[records.statements]]
roles = ["reader"]
resources = ["/documents/*"]
users = ["ada"]

[[records]]
id = "clients"
[[records.statements]]
roles = ["writer"]
resources = ["/api/v1/clients"]
token_roles = ["client"]
"#;

#[test]
fn check_names_the_failing_condition() {
    let dir = TempDir::new("check-conditions");
    let policy = dir.write(
        "policy.toml",
        "[[rule]]\nroles = [\"*\"]\nmethods = [\"GET\"]\npath = \"/tenants/{tenant}/reports\"\nwhen = [{ claim = \"tenant\", equals_param = \"tenant\" }, { claim = \"org\", equals_header = \"x-org\" }]\n",
    );
    let p = policy.to_str().unwrap();
    let ada = mint(&[
        "--sub",
        "ada",
        "--claim",
        "tenant=acme",
        "--claim",
        "org=o1",
    ]);
    let check = |path: &str, header: &str| {
        let mut args = vec!["check", "--policy", p, "--path", path, "--token", &ada];
        if !header.is_empty() {
            args.extend(["--header", header]);
        }
        run(&args, &secret_env())
    };
    expect(
        &check("/tenants/acme/reports", "x-org:o1"),
        0,
        &["allowed: rule 0 (GET /tenants/{tenant}/reports) allows role `*`"],
        &[],
    );
    let o = check("/tenants/globex/reports", "x-org:o1");
    expect(
        &o,
        1,
        &[
            "denied: rule 0 (GET /tenants/{tenant}/reports) needs claim `tenant` = path parameter {tenant}, which does not hold",
        ],
        &[],
    );
    assert!(
        !stdout(&o).contains("acme"),
        "no claim value: {}",
        stdout(&o)
    );
    expect(
        &check("/tenants/acme/reports", ""),
        1,
        &["needs claim `org` = header `x-org`"],
        &[],
    );
    expect(
        &check("/tenants/acme/reports", "x-org"),
        2,
        &[],
        &["--header `x-org`: write NAME:VALUE"],
    );
    // lint names a condition that cannot hold.
    let bad = dir.write(
        "bad.toml",
        "[[rule]]\nroles = [\"*\"]\npath = \"/tenants/{tenant}\"\nwhen = [{ claim = \"tenant\", equals_param = \"org\" }]\n",
    );
    expect(
        &run(&["lint", "--policy", bad.to_str().unwrap()], &[]),
        1,
        &[
            "rule 0 (* /tenants/{tenant}): condition claim `tenant` = path parameter {org}: the pattern `/tenants/{tenant}` has no parameter `{org}`",
        ],
        &[],
    );
}

#[test]
fn check_explains_decisions() {
    let dir = TempDir::new("check");
    let policy = dir.write("policy.toml", POLICY);
    let records = dir.write("access.toml", RECORDS);
    let p = policy.to_str().unwrap();
    let r = records.to_str().unwrap();

    let o = run(
        &[
            "check",
            "--policy",
            p,
            "--method",
            "POST",
            "--path",
            "/api/v1/clients/add?x=1",
            "--roles",
            "client",
        ],
        &[],
    );
    expect(
        &o,
        0,
        &[
            "allowed: rule 0 (POST /api/v1/clients/add) allows role `client`",
            "200",
        ],
        &[],
    );
    let o = run(
        &[
            "check",
            "--policy",
            p,
            "--method",
            "GET",
            "--path",
            "/api/v1/clients/add",
            "--roles",
            "client",
        ],
        &[],
    );
    expect(
        &o,
        1,
        &["denied", "needs one of: admin", "403", "insufficient_scope"],
        &[],
    );
    expect(
        &run(&["check", "--policy", p, "--path", "/health/live"], &[]),
        0,
        &["public prefix `/health`"],
        &[],
    );
    expect(
        &run(&["check", "--policy", p, "--path", "/x"], &[]),
        1,
        &["Missing token", "401"],
        &[],
    );
    expect(
        &run(
            &[
                "check",
                "--policy",
                p,
                "--path",
                "/a/%2e%2e/b",
                "--roles",
                "admin",
            ],
            &[],
        ),
        1,
        &["400", "invalid_request"],
        &[],
    );

    // A token, verified with the configured key.
    let client = mint(&["--sub", "c1", "--role", "client"]);
    let o = run(
        &[
            "check",
            "--policy",
            p,
            "--method",
            "POST",
            "--path",
            "/api/v1/clients/add",
            "--token",
            &client,
        ],
        &secret_env(),
    );
    expect(&o, 0, &["token valid", "allows role `client`"], &[]);
    let o = run(
        &[
            "check",
            "--policy",
            p,
            "--method",
            "POST",
            "--path",
            "/api/v1/clients/add",
            "--token",
            &client,
        ],
        &[],
    );
    expect(&o, 2, &[], &["--token needs a key"]);

    // gRPC.
    expect(
        &run(
            &[
                "check",
                "--policy",
                p,
                "--grpc",
                "/fedn.Combiner/TaskStream",
                "--roles",
                "client",
            ],
            &[],
        ),
        0,
        &["gRPC /fedn.Combiner/TaskStream", "allows role `client`"],
        &[],
    );
    expect(
        &run(
            &[
                "check",
                "--policy",
                p,
                "--grpc",
                "/fedn.Other/Call",
                "--roles",
                "guest",
            ],
            &[],
        ),
        0,
        &["any valid token passes"],
        &[],
    );
    expect(
        &run(
            &["check", "--grpc", "/fedn.Control/Start", "--roles", "guest"],
            &[],
        ),
        0,
        &["public"],
        &[],
    );

    // Routes with records: the policy, then authorize_user(caller, path, method).
    let o = run(
        &[
            "check",
            "--policy",
            p,
            "--records",
            r,
            "--method",
            "POST",
            "--path",
            "/api/v1/clients/add",
            "--roles",
            "client",
        ],
        &[],
    );
    expect(
        &o,
        0,
        &[
            "records: allowed: record `clients` statement 0 gives role `writer`",
            "token role `client`",
        ],
        &[],
    );
    let o = run(
        &[
            "check",
            "--policy",
            p,
            "--records",
            r,
            "--method",
            "GET",
            "--path",
            "/documents/A",
            "--roles",
            "admin",
        ],
        &[],
    );
    expect(&o, 1, &["allowed: rule 1", "records: denied", "403"], &[]);

    // authorize_user alone.
    let o = run(
        &[
            "check",
            "--records",
            r,
            "--subject",
            "ada",
            "--resource",
            "/documents/A",
            "--permission",
            "Documents:Read",
        ],
        &[],
    );
    expect(
        &o,
        0,
        &[
            "allowed: record `docs` statement 0 gives role `reader`",
            "user `ada`",
        ],
        &[],
    );
    let o = run(
        &[
            "check",
            "--records",
            r,
            "--subject",
            "ada",
            "--resource",
            "/documents/A",
            "--permission",
            "documents:write",
        ],
        &[],
    );
    expect(&o, 1, &["denied", "reader"], &[]);

    // Usage errors.
    expect(&run(&["check", "--policy", p], &[]), 2, &[], &["--path"]);
    expect(
        &run(
            &["check", "--policy", "/nonexistent.toml", "--path", "/"],
            &[],
        ),
        2,
        &[],
        &["--policy", "/nonexistent.toml"],
    );
    expect(
        &run(
            &["check", "--policy", p, "--method", "G E T", "--path", "/"],
            &[],
        ),
        2,
        &[],
        &["--method"],
    );
    expect(
        &run(&["check", "--subject", "ada", "--resource", "/d"], &[]),
        2,
        &[],
        &["--permission"],
    );
    let bad = dir.write("bad.toml", "[roles]\nr = [\"a\"]\n[[records]]\nid = \"x\"\n[[records.statements]]\nroles = [\"nope\"]\nresources = [\"/a\"]\nusers = [\"u\"]\n");
    expect(
        &run(
            &[
                "check",
                "--records",
                bad.to_str().unwrap(),
                "--subject",
                "u",
                "--resource",
                "/a",
                "--permission",
                "a",
            ],
            &[],
        ),
        2,
        &[],
        &["--records", "bad.toml:6", "nope"],
    );
    expect(
        &run(
            &["check", "--path", "/x", "--roles", "a"],
            &[("PORTCULLIS_POLICY_FILE", "/nonexistent.toml")],
        ),
        2,
        &[],
        &["PORTCULLIS_POLICY_FILE"],
    );
}

#[test]
fn lint_finds_mistakes_with_file_and_line() {
    let dir = TempDir::new("lint");
    let clean = dir.write("clean.toml", POLICY);
    let o = run(&["lint", "--policy", clean.to_str().unwrap()], &[]);
    expect(&o, 0, &["0 error(s), 0 warning(s)"], &[]);

    let policy = dir.write(
        "policy.toml",
        r#"public = ["/health", "/api/v1/files"]

[inherit]
admin = ["auditor"]

[[rule]]
roles = ["client"]
path = "/health/live"

[[rule]]
roles = ["client"]
methods = ["GET"]
path = "/api/v1/items/{id}"

[[rule]]
roles = ["client"]
methods = ["GET"]
path = "/api/v1/items/*"

[[rule]]
roles = ["ops"]
path = "/api/%2e%2e/admin"

[[rule]]
roles = ["admin"]
path = "/api/{*rest}"

[[rule]]
roles = ["*"]
path = "/me/**"

[[rule]]
roles = ["client"]
methods = ["GET"]
path = "/me/profile"
"#,
    );
    let records = dir.write(
        "access.toml",
        r#"[roles]
reader = ["documents:read"]
unused = ["x"]

[[records]]
id = "docs"
[[records.statements]]
roles = ["reader", "ghost"]
resources = ["/documents"]
token_roles = ["clinet"]
"#,
    );
    let pf = policy.to_str().unwrap();
    let rf = records.to_str().unwrap();
    let o = run(&["lint", "--policy", pf, "--records", rf], &[]);
    expect(
        &o,
        1,
        &[
            &format!(
                "{pf}:8: error: rule 0 (* /health/live) is shadowed by the public prefix `/health` (line 1)"
            ),
            &format!("{pf}:18: warning: rule 2 (GET /api/v1/items/*) duplicates rule 1 (line 13)"),
            &format!("{pf}:22: warning: rule 3 (* /api/%2e%2e/admin) can never match"),
            &format!(
                "{pf}:26: warning: the public prefix `/api/v1/files` (line 1) makes part of what rule 4 (* /api/{{*rest}}) guards public"
            ),
            &format!("{pf}:35: warning: rule 6 (GET /me/profile) grants nothing: rule 5 (line 30)"),
            &format!("{pf}:4: warning: `admin` inherits `auditor`, which no rule names"),
            &format!("{rf}:8: error: unknown role `ghost`"),
            &format!("{rf}:3: warning: role `unused` is never granted"),
            &format!("{rf}:10: warning: token role `clinet` is named by no policy rule"),
            "2 error(s), 7 warning(s)",
        ],
        &[],
    );

    // Warnings alone pass, unless denied; TOML syntax errors have a line; JSON records.
    let warn = dir.write(
        "warn.toml",
        "[[rule]]\nroles = [\"a\"]\npath = \"/x\"\n[[rule]]\nroles = [\"a\"]\npath = \"/x\"\n",
    );
    let w = warn.to_str().unwrap();
    expect(
        &run(&["lint", "--policy", w], &[]),
        0,
        &["duplicates rule 0", "0 error(s), 1 warning(s)"],
        &[],
    );
    expect(
        &run(&["lint", "--policy", w, "--deny-warnings"], &[]),
        1,
        &["1 warning(s)"],
        &[],
    );
    let syntax = dir.write("syntax.toml", "public = [\"/a\"]\n[[rule]\nroles = 1\n");
    let s = syntax.to_str().unwrap();
    expect(
        &run(&["lint", "--policy", s], &[]),
        1,
        &[&format!("{s}:2: error:")],
        &[],
    );
    let unknown = dir.write("unknown.toml", "[[rule]]\nroles = [\"a\"]\npath = \"x\"\n");
    let u = unknown.to_str().unwrap();
    expect(
        &run(&["lint", "--policy", u], &[]),
        1,
        &[&format!(
            "{u}:3: error: rule 0 (* x): path pattern `x` must start with `/`"
        )],
        &[],
    );
    let json = dir.write(
        "access.json",
        "{\n  \"roles\": {\"reader\": [\"documents:read\"]},\n  \"records\": [{\"id\": \"r\", \"statements\": [\n    {\"roles\": [\"writer\"], \"resources\": [\"/d\"], \"users\": [\"ada\"]}\n  ]}]\n}\n",
    );
    let j = json.to_str().unwrap();
    expect(
        &run(
            &["lint", "--policy", clean.to_str().unwrap(), "--records", j],
            &[],
        ),
        1,
        &[
            &format!("{j}:4: error: unknown role `writer`"),
            &format!("{j}:2: warning: role `reader` is never granted"),
        ],
        &[],
    );
    expect(
        &run(&["lint", "--policy", "/nonexistent.toml"], &[]),
        2,
        &[],
        &["--policy", "/nonexistent.toml"],
    );
}

#[test]
fn lint_records_alone() {
    let dir = TempDir::new("lint-records");
    let records = dir.write(
        "access.toml",
        r#"[roles]
reader = ["documents:read"]
unused = ["x"]

[[records]]
id = "docs"
[[records.statements]]
roles = ["reader", "ghost"]
resources = ["/documents"]
token_roles = ["clinet"]
"#,
    );
    let rf = records.to_str().unwrap();
    let o = run(&["lint", "--records", rf], &[]);
    expect(
        &o,
        1,
        &[
            &format!("{rf}:8: error: unknown role `ghost`"),
            &format!("{rf}:3: warning: role `unused` is never granted"),
            "1 error(s), 1 warning(s)",
        ],
        &[],
    );
    // Token roles are checked against a policy only when one is given.
    assert!(!stdout(&o).contains("token role"), "{}", stdout(&o));
    let clean = dir.write(
        "clean.json",
        "{\"roles\": {\"reader\": [\"documents:read\"]}, \"records\": [{\"id\": \"r\", \"statements\": [{\"roles\": [\"reader\"], \"resources\": [\"/d\"], \"users\": [\"ada\"]}]}]}\n",
    );
    expect(
        &run(&["lint", "--records", clean.to_str().unwrap()], &[]),
        0,
        &["0 error(s), 0 warning(s)"],
        &[],
    );
    expect(
        &run(&["lint", "--records", "/nonexistent.toml"], &[]),
        2,
        &[],
        &["--records", "/nonexistent.toml"],
    );
    // Neither file: a usage error naming both flags.
    expect(&run(&["lint"], &[]), 2, &[], &["--policy", "--records"]);
}

#[test]
fn serve_refuses_bad_settings_with_their_names() {
    let key = [("FEDN_JWT_SECRET_KEY", SECRET)];
    /// (arguments, environment, what stderr must name)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            vec!["serve", "--listen", "nope", "--proxy", "nginx"],
            key.to_vec(),
            "--listen",
        ),
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--proxy", "apache"],
            key.to_vec(),
            "apache",
        ),
        (
            vec!["serve", "--listen", "127.0.0.1:0"],
            vec![
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_PROXY", "apache"),
            ],
            "apache",
        ),
        (
            vec!["serve", "--listen", "127.0.0.1:0"],
            key.to_vec(),
            "--proxy",
        ),
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--proxy", "nginx"],
            vec![],
            "FEDN_JWT_SECRET_KEY",
        ),
        (
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--proxy",
                "nginx",
                "--identity-header",
                "tenant",
            ],
            key.to_vec(),
            "--identity-header",
        ),
        (
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--proxy",
                "nginx",
                "--identity-header",
                "sub=Authorization",
            ],
            key.to_vec(),
            "cannot carry a claim",
        ),
        (
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--proxy",
                "nginx",
                "--log",
                "loud",
            ],
            key.to_vec(),
            "--log",
        ),
        (
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--proxy",
                "nginx",
                "--records",
                "/nonexistent.toml",
            ],
            key.to_vec(),
            "--records",
        ),
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--proxy", "nginx"],
            vec![
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_TOKEN_SOURCES", "carrier-pigeon"),
            ],
            "PORTCULLIS_TOKEN_SOURCES",
        ),
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--proxy", "nginx"],
            vec![
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("FEDN_AUTH_WHITELIST_URL_PREFIX", "internal"),
            ],
            "FEDN_AUTH_WHITELIST_URL_PREFIX",
        ),
        (
            vec!["serve", "--listen", "127.0.0.1:0", "--proxy", "nginx"],
            vec![
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_JWKS_URL", "http://example.com/jwks"),
            ],
            "PORTCULLIS_JWKS_URL",
        ),
    ];
    for (args, mut env, named) in cases {
        // A policy is named, so each case reaches the setting it is about.
        env.push(("PORTCULLIS_FEDN_POLICY", "true"));
        let o = run(&args, &env);
        assert_eq!(o.status.code(), Some(2), "{args:?} {env:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(named),
            "{args:?} {env:?}: stderr lacks {named:?}: {}",
            stderr(&o)
        );
    }
    // A port in use.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = run(
        &[
            "serve",
            "--listen",
            &addr,
            "--proxy",
            "nginx",
            "--fedn-policy",
        ],
        &key,
    );
    expect(&o, 2, &[], &["--listen", &addr]);
}

/// serve applies FEDn's role map only when asked (`--fedn-policy`), never silently: with
/// no policy it stops naming both ways; with both it asks to choose; at start it says
/// which policy it applies.
#[test]
fn serve_names_the_policy_it_applies_and_never_picks_fedn_silently() {
    let key = [("FEDN_JWT_SECRET_KEY", SECRET)];
    let base = ["serve", "--listen", "127.0.0.1:0", "--proxy", "nginx"];
    let o = run(&base, &key);
    expect(&o, 2, &[], &["no policy", "--policy", "--fedn-policy"]);
    let dir = TempDir::new("serve-policy");
    let policy = dir.write("policy.toml", "[[rule]]\nroles = [\"a\"]\npath = \"/a\"\n");
    let mut both = base.to_vec();
    both.extend(["--fedn-policy", "--policy", policy.to_str().unwrap()]);
    assert_eq!(run(&both, &key).status.code(), Some(2));
    let env_both = [
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("PORTCULLIS_FEDN_POLICY", "true"),
        ("PORTCULLIS_POLICY_FILE", policy.to_str().unwrap()),
    ];
    expect(&run(&base, &env_both), 2, &[], &["choose one"]);

    let (mut fedn, _) = serve(&["--proxy", "nginx", "--fedn-policy"], &key);
    let (mut file, _) = serve(
        &["--proxy", "nginx", "--policy", policy.to_str().unwrap()],
        &key,
    );
    for (proc, says) in [
        (
            &mut fedn,
            "FEDn's built-in REST and gRPC role map".to_owned(),
        ),
        (&mut file, format!("the policy file {}", policy.display())),
    ] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !proc.stderr_text().contains(&says) {
            assert!(Instant::now() < deadline, "{says}: {}", proc.stderr_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn serve_reads_the_token_from_a_cookie_or_header_and_stops_on_sigterm() {
    let Some(kill) = which("kill") else {
        eprintln!("skipped: no kill command");
        return;
    };
    let (mut proc, addr) = serve(
        &["--proxy", "traefik"],
        &[
            ("FEDN_JWT_SECRET_KEY", SECRET),
            (
                "PORTCULLIS_TOKEN_SOURCES",
                "authorization,cookie:session,header:X-Token",
            ),
        ],
    );
    let client = token("c1", "client", &[]);
    let ask = |extra: &[(&str, &str)]| {
        let mut h = vec![
            ("X-Forwarded-Method", "POST"),
            ("X-Forwarded-Uri", "/api/v1/clients/add"),
        ];
        h.extend_from_slice(extra);
        http(addr.port(), "GET", "/auth", &h)
    };
    let cookie = format!("theme=dark; session={client}");
    let res = ask(&[("Cookie", &cookie)]);
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.header("x-auth-subject"), Some("c1"));
    assert_eq!(res.header("x-auth-roles"), Some("client"));
    assert_eq!(ask(&[("X-Token", &client)]).status, 200);
    assert_eq!(ask(&[]).status, 401);
    // Authorization wins over the other sources; X-Original-* is ignored in this mode.
    assert_eq!(
        ask(&[("Authorization", "Bearer"), ("Cookie", &cookie)]).status,
        400
    );
    let res = http(
        addr.port(),
        "GET",
        "/auth",
        &[
            ("X-Original-Method", "POST"),
            ("X-Original-URI", "/api/v1/clients/add"),
            ("Cookie", &cookie),
        ],
    );
    assert_eq!(res.status, 500, "{res:?}");
    // The warning names the header the proxy left out (the log line may lag a little).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !proc.stderr_text().contains("x-forwarded-method") {
        assert!(
            Instant::now() < deadline,
            "no warning: {}",
            proc.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let pid = proc.child.id().to_string();
    let status = Command::new(kill).args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = proc.child.try_wait().unwrap() {
            assert!(s.success(), "serve exited with {s}: {}", proc.stderr_text());
            break;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(proc.stderr_text().contains("shutting down"));
}

#[test]
fn serve_finishes_decisions_in_flight_on_sigterm() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let Some(kill) = which("kill") else {
        eprintln!("skipped: no kill command");
        return;
    };
    let dir = TempDir::new("drain");
    let prefix = dir.path().join("k");
    expect(
        &run(
            &[
                "keygen",
                "--alg",
                "ES256",
                "--kid",
                "k1",
                "--out",
                prefix.to_str().unwrap(),
            ],
            &[],
        ),
        0,
        &[],
        &[],
    );
    let jwks = std::fs::read_to_string(dir.path().join("k.jwks.json")).unwrap();
    // A slow key set: the first decision waits on its fetch.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicBool::new(false));
    let flag = served.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().route(
                "/jwks.json",
                axum::routing::get(move || {
                    let (jwks, flag) = (jwks.clone(), flag.clone());
                    async move {
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                        flag.store(true, Ordering::SeqCst);
                        jwks
                    }
                }),
            );
            let _ = axum::serve(listener, app).await;
        });
    });
    let url = format!("http://127.0.0.1:{port}/jwks.json");
    let policy = dir.write(
        "p.toml",
        "[[rule]]\nroles = [\"client\"]\npath = \"/api/{*rest}\"\n",
    );
    let (mut proc, addr) = serve(
        &["--proxy", "caddy", "--policy", policy.to_str().unwrap()],
        &[("PORTCULLIS_JWKS_URL", &url)],
    );
    let out = run(
        &[
            "mint",
            "--key",
            dir.path().join("k.key.pem").to_str().unwrap(),
            "--kid",
            "k1",
            "--sub",
            "ada",
            "--role",
            "client",
        ],
        &[],
    );
    let bearer = format!("Bearer {}", stdout(&out).trim());
    let in_flight = std::thread::spawn(move || {
        http(
            addr.port(),
            "GET",
            "/auth",
            &[
                ("X-Forwarded-Method", "GET"),
                ("X-Forwarded-Uri", "/api/x"),
                ("Authorization", &bearer),
            ],
        )
    });
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        !served.load(Ordering::SeqCst),
        "the key set answered too soon for this test"
    );
    let pid = proc.child.id().to_string();
    assert!(
        Command::new(kill)
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let res = in_flight.join().unwrap();
    assert_eq!(res.status, 200, "the decision in flight was cut: {res:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Path::new("");
}

#[test]
fn inspect_tells_at_jwt_access_tokens_other_jwts_and_opaque_tokens_apart() {
    let at = mint(&["--sub", "ada", "--header", "typ=\"application/at+jwt\""]);
    expect(
        &run(&["inspect", &at], &[]),
        0,
        &["type: JWT access token (typ at+jwt, RFC 9068)"],
        &[],
    );
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["inspect", "--json", &at], &[]))).unwrap();
    assert_eq!(v["type"], "at+jwt");
    let id = mint(&["--sub", "ada"]);
    expect(
        &run(&["inspect", &id], &[]),
        0,
        &["type: JWT, not typed as an access token"],
        &[],
    );
    expect(
        &run(&["inspect", "2YotnFZFEjr1zCsicMWpAA"], &[]),
        1,
        &["not a token", "type: opaque (not a JWT)", "introspection"],
        &[],
    );
}
