//! `portcullis revoke` and `POST /admin/revoke` on `portcullis serve`, against a real
//! `redis-server` started on a free loopback port: a revocation made through either reaches
//! every `serve` replica sharing that Redis within a second. Without `redis-server` the
//! tests print "skipped: redis-server not installed" (and fail under
//! `PORTCULLIS_STRICT_TESTS=1`).

mod harness;
#[path = "../../tests/revoke_support/mod.rs"]
mod revoke_support;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;
use revoke_support::server::redis_server;

const ISS: &str = "https://issuer.example";

/// Asks `serve` whether a client may add a client (FEDn's built-in policy: the `client`
/// role may), with `token`.
fn decide(port: u16, token: &str) -> Res {
    let bearer = format!("Bearer {token}");
    http(
        port,
        "GET",
        "/auth",
        &[
            ("X-Original-Method", "POST"),
            ("X-Original-URI", "/api/v1/clients/add"),
            ("Authorization", &bearer),
        ],
    )
}

/// The same question as [`decide`], asked the way Caddy and Traefik ask it.
fn decide_caddy(port: u16, token: &str) -> Res {
    let bearer = format!("Bearer {token}");
    http(
        port,
        "GET",
        "/auth",
        &[
            ("X-Forwarded-Method", "POST"),
            ("X-Forwarded-Uri", "/api/v1/clients/add"),
            ("Authorization", &bearer),
        ],
    )
}

/// Polls until `serve` on `port` refuses `token` as revoked, failing after one second.
fn refused_within_a_second(port: u16, token: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let res = decide(port, token);
        if res.status == 401 {
            assert!(res.body.contains("Token revoked"), "{what}: {res:?}");
            assert!(
                res.header("www-authenticate")
                    .is_some_and(|c| c.contains("invalid_token")),
                "{what}: {res:?}"
            );
            return;
        }
        assert_eq!(res.status, 200, "{what}: {res:?}");
        assert!(
            Instant::now() < deadline,
            "{what}: still accepted after 1 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn revoke_cmd(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("revoke")
        .args(args)
        .env("PORTCULLIS_REDIS_URL", url)
        .env_remove("PORTCULLIS_ISSUER")
        .output()
        .expect("portcullis revoke runs")
}

fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn replica(url: &str, extra: &[(&str, &str)]) -> (Proc, u16) {
    let mut env = vec![
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("PORTCULLIS_REDIS_URL", url),
        ("PORTCULLIS_REDIS_RESYNC_SECONDS", "0.2"),
        ("PORTCULLIS_ADMIN_REVOKE", "true"),
    ];
    env.extend_from_slice(extra);
    let (proc, addr) = serve(&["--proxy", "nginx"], &env);
    // Ready once its copy of the list has synced (before that, fail-closed 503s).
    let deadline = Instant::now() + Duration::from_secs(10);
    while http(addr.port(), "GET", "/readyz", &[]).status != 200 {
        assert!(Instant::now() < deadline, "serve not ready within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    (proc, addr.port())
}

#[test]
fn the_command_revokes_on_every_replica() {
    let Some(redis) = redis_server("the_command_revokes_on_every_replica") else {
        return;
    };
    let url = redis.url();
    let (_a, a) = replica(&url, &[]);
    let (_b, b) = replica(&url, &[]);

    let by_jti = token("c1", "client", &[&format!("iss={ISS}"), "jti=t-1"]);
    let by_token = token("c2", "client", &[&format!("iss={ISS}")]);
    let by_sub = token("c3", "client", &[&format!("iss={ISS}")]);
    let other = token("c4", "client", &[&format!("iss={ISS}"), "jti=t-2"]);
    for t in [&by_jti, &by_token, &by_sub, &other] {
        assert_eq!(decide(a, t).status, 200);
        assert_eq!(decide(b, t).status, 200);
    }

    let o = revoke_cmd(&url, &["--issuer", ISS, "--jti", "t-1"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("revoked: jti `t-1` of issuer `https://issuer.example` until"),
        "{out}"
    );
    assert!(out.contains("in 7 d"), "{out}");
    refused_within_a_second(a, &by_jti, "jti on a");
    refused_within_a_second(b, &by_jti, "jti on b");

    let o = revoke_cmd(&url, &["--token", &by_token]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("revoked: the token until"), "{out}");
    assert!(out.contains("in 59 min") || out.contains("in 1 h"), "{out}");
    refused_within_a_second(a, &by_token, "token on a");
    refused_within_a_second(b, &by_token, "token on b");

    let o = revoke_cmd(&url, &["--issuer", ISS, "--subject", "c3", "--for", "2h"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("every token of subject `c3`"), "{out}");
    refused_within_a_second(a, &by_sub, "subject on a");
    refused_within_a_second(b, &by_sub, "subject on b");

    // Nothing else was caught.
    assert_eq!(decide(a, &other).status, 200);
    assert_eq!(decide(b, &other).status, 200);
    // The list lives in Redis, under the default key prefix: one entry per revocation.
    assert_eq!(redis.cli(&["ZCARD", "portcullis:revoked"]), "3");
}

#[test]
fn the_command_says_what_to_fix() {
    // Usage errors come before any connection.
    let o = revoke_cmd("redis://127.0.0.1:1", &["--jti", "t-1"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--issuer is missing"), "{err}");
    assert!(err.contains("PORTCULLIS_ISSUER"), "{err}");

    let o = revoke_cmd("redis://127.0.0.1:1", &["--jti", "t-1", "--subject", "ada"]);
    assert_eq!(o.status.code(), Some(2));

    let o = revoke_cmd("redis://127.0.0.1:1", &["--token", "not-a-token"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--token"), "{err}");

    let o = revoke_cmd(
        "redis://127.0.0.1:1",
        &["--issuer", ISS, "--jti", "t", "--for", "soon"],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--for"), "{err}");

    let o = Command::new(BIN)
        .args(["revoke", "--issuer", ISS, "--jti", "t-1"])
        .env_remove("PORTCULLIS_REDIS_URL")
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("PORTCULLIS_REDIS_URL"), "{err}");

    // A Redis that does not answer: exit 3, nothing revoked, the URL named (its password
    // never).
    let port = free_port();
    let o = Command::new(BIN)
        .args(["revoke", "--issuer", ISS, "--jti", "t-1"])
        .args(["--redis-url", &format!("redis://:hunter2@127.0.0.1:{port}")])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn admin_endpoint_revokes_for_the_admin_role_only() {
    let Some(redis) = redis_server("admin_endpoint_revokes_for_the_admin_role_only") else {
        return;
    };
    let url = redis.url();
    let (_a, a) = replica(&url, &[("PORTCULLIS_ISSUER", ISS)]);
    let (_b, b) = replica(&url, &[("PORTCULLIS_ISSUER", ISS)]);
    let iss = format!("iss={ISS}");
    let admin = format!("Bearer {}", token("root", "admin", &[&iss]));
    let client = token("c1", "client", &[&iss, "jti=t-1"]);
    let other = token("c2", "client", &[&iss]);
    let post = |port: u16, auth: Option<&str>, body: &str| {
        let mut h = vec![("Content-Type", "application/json")];
        if let Some(a) = auth {
            h.push(("Authorization", a));
        }
        http_body(port, "POST", "/admin/revoke", &h, Some(body))
    };

    // Without a token, and with a token lacking the role: the layer's answers.
    let res = post(a, None, r#"{"jti":"t-1"}"#);
    assert_eq!(res.status, 401, "{res:?}");
    assert!(res.header("www-authenticate").is_some(), "{res:?}");
    let not_admin = format!("Bearer {other}");
    let res = post(a, Some(&not_admin), r#"{"jti":"t-1"}"#);
    assert_eq!(res.status, 403, "{res:?}");
    assert_eq!(decide(b, &client).status, 200, "nothing was revoked");

    // Bad bodies: 400 naming what to fix.
    for (body, says) in [
        ("not json", "JSON object"),
        (r#"{"jti":"t-1","sub":"c1"}"#, "exactly one of"),
        (r#"{"token":"x.y"}"#, "`token`"),
        (r#"{"jti":"t-1","color":"red"}"#, "color"),
        (r#"{}"#, "exactly one of"),
        (
            r#"{"jti":"t-1","expires_in":0}"#,
            "from 1 second to 10 years",
        ),
        (
            r#"{"jti":"t-1","expires_in":99999999999}"#,
            "from 1 second to 10 years",
        ),
    ] {
        let res = post(a, Some(&admin), body);
        assert_eq!(res.status, 400, "{body}: {res:?}");
        assert!(res.body.contains(says), "{body}: {res:?}");
    }

    // JSON only: a cross-site form post (text/plain) cannot carry an admin's cookie here.
    let res = http_body(
        a,
        "POST",
        "/admin/revoke",
        &[("Authorization", &admin), ("Content-Type", "text/plain")],
        Some(r#"{"jti":"t-1"}"#),
    );
    assert_eq!(res.status, 415, "{res:?}");
    assert_eq!(decide(b, &client).status, 200, "nothing was revoked");

    // The policy's required claims hold here as on /auth: a replica requiring
    // project=p1 refuses an admin of another project.
    let (_d, d) = replica(
        &url,
        &[
            ("FEDN_JWT_CUSTOM_CLAIM_KEY", "project"),
            ("FEDN_JWT_CUSTOM_CLAIM_VALUE", "p1"),
        ],
    );
    let p2_admin = format!("Bearer {}", token("root", "admin", &["project=p2"]));
    let res = post(d, Some(&p2_admin), r#"{"jti":"t-1","iss":""}"#);
    assert_eq!(res.status, 403, "{res:?}");
    assert!(res.body.contains("insufficient_scope"), "{res:?}");
    let p1_admin = format!("Bearer {}", token("root", "admin", &["project=p1"]));
    let res = post(d, Some(&p1_admin), r#"{"jti":"t-0","iss":""}"#);
    assert_eq!(res.status, 200, "{res:?}");

    // The admin revokes by jti through replica a (the issuer from PORTCULLIS_ISSUER);
    // replica b refuses the token within a second.
    let res = post(a, Some(&admin), r#"{"jti":"t-1","expires_in":3600}"#);
    assert_eq!(res.status, 200, "{res:?}");
    let v: serde_json::Value = serde_json::from_str(&res.body).unwrap();
    assert_eq!(v["revoked"], "jti `t-1` of issuer `https://issuer.example`");
    assert!(v["until"].as_u64().is_some(), "{v}");
    refused_within_a_second(b, &client, "admin jti on b");
    refused_within_a_second(a, &client, "admin jti on a");

    // By exact token, through b; a refuses it.
    let body = serde_json::json!({ "token": other }).to_string();
    let res = post(b, Some(&admin), &body);
    assert_eq!(res.status, 200, "{res:?}");
    refused_within_a_second(a, &other, "admin token on a");

    // The admin's own token is untouched, and the configured role is honoured.
    assert_eq!(decide(a, admin.trim_start_matches("Bearer ")).status, 200);
    let (_c, c) = replica(&url, &[("PORTCULLIS_ADMIN_ROLE", "ops")]);
    let ops = format!("Bearer {}", token("op", "ops", &[]));
    let res = post(c, Some(&admin), r#"{"sub":"c9","iss":""}"#);
    assert_eq!(res.status, 403, "{res:?}");
    let res = post(c, Some(&ops), r#"{"sub":"c9","iss":""}"#);
    assert_eq!(res.status, 200, "{res:?}");
    assert!(res.body.contains("tokens without `iss`"), "{res:?}");
}

#[test]
fn admin_endpoint_without_redis_revokes_in_this_process() {
    // Off unless asked for.
    let (_off, off) = serve(&["--proxy", "caddy"], &[("FEDN_JWT_SECRET_KEY", SECRET)]);
    let admin = format!("Bearer {}", token("root", "admin", &[]));
    let res = http_body(
        off.port(),
        "POST",
        "/admin/revoke",
        &[
            ("Authorization", &admin),
            ("Content-Type", "application/json"),
        ],
        Some(r#"{"sub":"c1","iss":""}"#),
    );
    assert_eq!(res.status, 404, "{res:?}");

    let (_p, addr) = serve(
        &["--proxy", "caddy", "--admin-revoke"],
        &[("FEDN_JWT_SECRET_KEY", SECRET)],
    );
    let port = addr.port();
    let client = token("c1", "client", &[]);
    let ask = |t: &str| decide_caddy(port, t);
    assert_eq!(ask(&client).status, 200);
    let body = serde_json::json!({ "token": client }).to_string();
    let res = http_body(
        port,
        "POST",
        "/admin/revoke",
        &[
            ("Authorization", &admin),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        Some(&body),
    );
    assert_eq!(res.status, 200, "{res:?}");
    let res = ask(&client);
    assert_eq!(res.status, 401, "{res:?}");
    assert!(res.body.contains("Token revoked"), "{res:?}");
}

/// What a person pastes (a scheme word, surrounding whitespace) revokes the token itself;
/// anything that could never verify (a padded or non-JSON header, a bad signature
/// segment) is a 400 naming the fault: never a 200 that revokes nothing.
#[test]
fn pasted_tokens_are_revoked_or_refused_never_acknowledged() {
    let (_p, addr) = serve(
        &["--proxy", "caddy", "--admin-revoke"],
        &[("FEDN_JWT_SECRET_KEY", SECRET)],
    );
    let port = addr.port();
    let admin = format!("Bearer {}", token("root", "admin", &[]));
    let ask = |t: &str| decide_caddy(port, t);
    let post = |text: &str| {
        let body = serde_json::json!({ "token": text }).to_string();
        http_body(
            port,
            "POST",
            "/admin/revoke",
            &[
                ("Authorization", &admin),
                ("Content-Type", "application/json"),
            ],
            Some(&body),
        )
    };
    let pasted: [fn(&str) -> String; 5] = [
        |t| format!("Bearer {t}"),
        |t| format!("bearer   {t}"),
        |t| format!(" {t}"),
        |t| format!("{t}\n"),
        |t| format!("\tToken {t} "),
    ];
    for (i, form) in pasted.iter().enumerate() {
        let t = token(&format!("pasted-{i}"), "client", &[]);
        assert_eq!(ask(&t).status, 200, "form {i}");
        let res = post(&form(&t));
        assert_eq!(res.status, 200, "form {i}: {res:?}");
        let res = ask(&t);
        assert_eq!(res.status, 401, "form {i}: revoked nothing: {res:?}");
        assert!(res.body.contains("Token revoked"), "form {i}: {res:?}");
    }

    let t = token("never-acknowledged", "client", &[]);
    let (h, rest) = t.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    for (text, says) in [
        (
            format!("{h}=.{p}.{s}"),
            "header segment is not strict base64url",
        ),
        (
            format!("{h}.{p}.{s}="),
            "signature segment is not strict base64url",
        ),
        (format!("bm9wZQ.{p}.{s}"), "header is not a JSON object"),
        (format!("{h}.{p}."), "signature segment is empty"),
        (format!("{h}.{p}"), "three segments"),
        (format!("Bearer {h} .{p}.{s}"), "whitespace"),
        (format!("Bea.rer {t}"), "whitespace"),
    ] {
        let res = post(&text);
        assert_eq!(res.status, 400, "{text}: {res:?}");
        assert!(res.body.contains(says), "{text}: {res:?}");
    }
    assert_eq!(ask(&t).status, 200, "nothing was revoked");
}

/// The command reads a pasted token as the endpoint does (one parser).
#[test]
fn the_command_takes_a_pasted_token() {
    let Some(redis) = redis_server("the_command_takes_a_pasted_token") else {
        return;
    };
    let url = redis.url();
    let (_a, a) = replica(&url, &[]);
    let t = token("pasted-cli", "client", &[]);
    assert_eq!(decide(a, &t).status, 200);
    let out = revoke_cmd(&url, &["--token", &format!("Bearer {t}")]);
    assert!(out.status.success(), "{:?}", text(&out));
    refused_within_a_second(a, &t, "pasted through the command");
    let (h, rest) = t.split_once('.').unwrap();
    let out = revoke_cmd(&url, &["--token", &format!("{h}=.{rest}")]);
    assert!(!out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out)
            .1
            .contains("header segment is not strict base64url"),
        "{:?}",
        text(&out)
    );
}
