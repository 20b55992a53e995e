//! `portcullis serve` behind a real nginx (`auth_request`) and a real Caddy
//! (`forward_auth`), in front of an upstream that echoes the headers it got: allowed,
//! missing token, wrong role, public path, malformed credential, expired token, encoded dot
//! segment, forged identity headers, identity values with whitespace at an end; and the
//! metrics move by exactly one per case.
//!
//! nginx and Caddy run unprivileged on free loopback ports with their own temp dir; a
//! missing binary skips the test, or fails it with `PORTCULLIS_STRICT_TESTS=1`.

mod harness;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;

use harness::*;

const POLICY: &str = r#"
public = ["/public"]

[[rule]]
roles = ["client"]
path = "/api/{*rest}"

[[rule]]
roles = ["admin"]
path = "/admin/{*rest}"
"#;

/// The nginx configuration the README documents, with the test's ports and paths.
pub fn nginx_conf(dir: &str, listen: u16, serve: SocketAddr, upstream: u16) -> String {
    format!(
        r#"worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    # The challenge for refusals but 401: auth_request copies a 401's challenge itself.
    map $status $auth_challenge_403 {{ 401 ""; default $auth_challenge; }}
    upstream portcullis {{ server {serve}; keepalive 16; }}
    upstream app {{ server 127.0.0.1:{upstream}; keepalive 16; }}

    server {{
        listen 127.0.0.1:{listen};

        location = /_portcullis {{
            internal;
            proxy_pass http://portcullis/auth;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
        }}

        location / {{
            auth_request /_portcullis;
            auth_request_set $auth_subject $upstream_http_x_auth_subject;
            auth_request_set $auth_roles $upstream_http_x_auth_roles;
            auth_request_set $auth_tenant $upstream_http_x_auth_tenant;
            auth_request_set $auth_challenge $upstream_http_www_authenticate;
            add_header WWW-Authenticate $auth_challenge_403 always;

            # Set from the decision, never from the client: an empty value removes it.
            proxy_set_header X-Auth-Subject $auth_subject;
            proxy_set_header X-Auth-Roles $auth_roles;
            proxy_set_header X-Auth-Tenant $auth_tenant;
            proxy_set_header Host $host;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://app;
        }}
    }}
}}
"#
    )
}

/// The Caddyfile the README documents, with the test's ports.
pub fn caddyfile(listen: u16, serve: SocketAddr, upstream: u16) -> String {
    format!(
        r#"{{
    admin off
    auto_https off
}}

http://127.0.0.1:{listen} {{
    bind 127.0.0.1
    route {{
        # Identity headers come only from the decision: drop the client's first, in
        # every separator spelling (WSGI and CGI read X_Auth_Roles as X-Auth-Roles).
        request_header -X-Auth-*
        request_header -X-Auth_*
        request_header -X_auth-*
        request_header -X_auth_*
        forward_auth {serve} {{
            uri /auth
            copy_headers X-Auth-Subject X-Auth-Roles X-Auth-Tenant
        }}
        reverse_proxy 127.0.0.1:{upstream}
    }}
}}
"#
    )
}

fn start_serve(dir: &TempDir, proxy: &str) -> (Proc, SocketAddr) {
    let policy = dir.write("policy.toml", POLICY);
    serve(
        &[
            "--proxy",
            proxy,
            "--policy",
            policy.to_str().unwrap(),
            "--identity-header",
            "tenant=X-Auth-Tenant",
        ],
        &[("FEDN_JWT_SECRET_KEY", SECRET)],
    )
}

/// The metric keys, as the exporter prints them.
fn decision(outcome: &str, reason: &str) -> String {
    format!(
        r#"portcullis_decisions_total{{protocol="http",outcome="{outcome}",reason="{reason}"}}"#
    )
}

fn answered(proxy: &str, status: u16) -> String {
    format!(r#"portcullis_forward_auth_responses_total{{proxy="{proxy}",status="{status}"}}"#)
}

/// One case: the request, what the client must see, and the exact metric moves.
struct Case {
    name: &'static str,
    target: &'static str,
    headers: Vec<(&'static str, String)>,
    status: u16,
    /// The client's `WWW-Authenticate`, when one is expected.
    challenge: Option<&'static str>,
    /// (decision outcome, reason, status serve answered with)
    metric: (&'static str, &'static str, u16),
    /// What the upstream must have seen, on success: header -> values.
    upstream: Option<Vec<(&'static str, Vec<&'static str>)>>,
}

/// A token minted by the binary with `args` (the key and a lifetime added).
fn mint(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["mint", "--secret", SECRET, "--exp", "1h"])
        .args(args)
        .output()
        .expect("mint");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn cases(nginx: bool) -> Vec<Case> {
    let client = token("ada", "client", &["tenant=acme"]);
    let expired = {
        let out = Command::new(BIN)
            .args([
                "mint", "--secret", SECRET, "--sub", "ada", "--role", "client",
            ])
            .args(["--claims", r#"{"exp": 1000000000}"#, "--no-exp"])
            .output()
            .expect("mint");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    // Identity values a trimming or list-splitting reader would read as others: `sub`
    // and `tenant` with whitespace at an end, roles with whitespace at an end (a space,
    // a tab, a no-break space) or empty. The policy judged `" admin"`, not `admin`.
    let spaced = mint(&[
        "--sub",
        " root ",
        "--claims",
        r#"{"role": [" admin", "client", "admin\t", "", "admin\u00a0"], "tenant": " acme"}"#,
    ]);
    let items = mint(&[
        "--sub",
        "ada",
        "--role",
        "client",
        "--claims",
        r#"{"tenant": [" acme", "", "beta", "gamma ", "a,b", 7]}"#,
    ]);
    // Quoted items: an RFC 9110 list reader (werkzeug's parse_list_header) unquotes
    // `"admin"` to `admin`, and joins `"a` and `b"` into one item.
    let quoted = mint(&[
        "--sub",
        "ada",
        "--claims",
        r#"{"role": ["\"admin\"", "client", "\"x", "y\""], "tenant": ["\"beta\"", "gamma"]}"#,
    ]);
    let bearer = |t: &str| format!("Bearer {t}");
    // nginx's auth_request cannot pass a 400: it comes back as 401, still invalid_request.
    let bad_request = if nginx { 401 } else { 400 };
    vec![
        Case {
            name: "allowed, with forged identity headers from the client",
            target: "/api/items?page=2",
            headers: vec![
                ("Authorization", bearer(&client)),
                ("X-Auth-Subject", "root".into()),
                ("X-Auth-Roles", "admin".into()),
                ("X-Auth-Tenant", "evil".into()),
            ],
            status: 200,
            challenge: None,
            metric: ("allowed", "authorized", 200),
            upstream: Some(vec![
                ("x-auth-subject", vec!["ada"]),
                ("x-auth-roles", vec!["client"]),
                ("x-auth-tenant", vec!["acme"]),
            ]),
        },
        Case {
            name: "whitespace around sub, a role or a claim: left out, never trimmed",
            target: "/api/items",
            headers: vec![("Authorization", bearer(&spaced))],
            status: 200,
            challenge: None,
            metric: ("allowed", "authorized", 200),
            upstream: Some(vec![
                ("x-auth-subject", vec![]),
                ("x-auth-roles", vec!["client"]),
                ("x-auth-tenant", vec![]),
            ]),
        },
        Case {
            name: "a role with whitespace at an end is not that role",
            target: "/admin/users",
            headers: vec![("Authorization", bearer(&spaced))],
            status: 403,
            challenge: Some(r#"Bearer realm="api", error="insufficient_scope""#),
            metric: ("denied", "forbidden", 403),
            upstream: None,
        },
        Case {
            name: "array claim: empty items, items with whitespace at an end or a comma dropped",
            target: "/api/items",
            headers: vec![("Authorization", bearer(&items))],
            status: 200,
            challenge: None,
            metric: ("allowed", "authorized", 200),
            upstream: Some(vec![
                ("x-auth-subject", vec!["ada"]),
                ("x-auth-roles", vec!["client"]),
                ("x-auth-tenant", vec!["beta,7"]),
            ]),
        },
        Case {
            name: "list items holding a quote dropped",
            target: "/api/items",
            headers: vec![("Authorization", bearer(&quoted))],
            status: 200,
            challenge: None,
            metric: ("allowed", "authorized", 200),
            upstream: Some(vec![
                ("x-auth-subject", vec!["ada"]),
                ("x-auth-roles", vec!["client"]),
                ("x-auth-tenant", vec!["gamma"]),
            ]),
        },
        Case {
            name: "missing token",
            target: "/api/items",
            headers: vec![],
            status: 401,
            challenge: Some(r#"Bearer realm="api""#),
            metric: ("denied", "missing_credentials", 401),
            upstream: None,
        },
        Case {
            name: "wrong role",
            target: "/admin/users",
            headers: vec![("Authorization", bearer(&client))],
            status: 403,
            challenge: Some(r#"Bearer realm="api", error="insufficient_scope""#),
            metric: ("denied", "forbidden", 403),
            upstream: None,
        },
        Case {
            name: "public path, forged subject dropped",
            target: "/public/page",
            headers: vec![("X-Auth-Subject", "root".into())],
            status: 200,
            challenge: None,
            metric: ("allowed", "public", 200),
            upstream: Some(vec![("x-auth-subject", vec![]), ("x-auth-roles", vec![])]),
        },
        Case {
            name: "malformed credential",
            target: "/api/items",
            headers: vec![("Authorization", "Bearer a,b".into())],
            status: bad_request,
            challenge: Some(r#"Bearer realm="api", error="invalid_request""#),
            metric: ("denied", "invalid_request", bad_request),
            upstream: None,
        },
        Case {
            name: "empty credential",
            target: "/api/items",
            headers: vec![("Authorization", "Bearer".into())],
            status: bad_request,
            challenge: Some(r#"Bearer realm="api", error="invalid_request""#),
            metric: ("denied", "invalid_request", bad_request),
            upstream: None,
        },
        Case {
            name: "expired token",
            target: "/api/items",
            headers: vec![("Authorization", bearer(&expired))],
            status: 401,
            challenge: Some(r#"Bearer realm="api", error="invalid_token""#),
            metric: ("denied", "token_expired", 401),
            upstream: None,
        },
        Case {
            name: "bad signature",
            target: "/api/items",
            headers: vec![(
                "Authorization",
                bearer(&format!("{}x", &client[..client.len() - 1])),
            )],
            status: 401,
            challenge: Some(r#"Bearer realm="api", error="invalid_token""#),
            metric: ("denied", "invalid_token", 401),
            upstream: None,
        },
        Case {
            name: "encoded dot segment",
            target: "/api/%2e%2e/admin/users",
            headers: vec![("Authorization", bearer(&client))],
            status: bad_request,
            challenge: Some(r#"Bearer realm="api", error="invalid_request""#),
            metric: ("denied", "invalid_request", bad_request),
            upstream: None,
        },
        Case {
            name: "dot segment with a path parameter under a public prefix",
            target: "/public/..;/admin/users",
            headers: vec![],
            status: bad_request,
            challenge: Some(r#"Bearer realm="api", error="invalid_request""#),
            metric: ("denied", "invalid_request", bad_request),
            upstream: None,
        },
        Case {
            name: "encoded dot segment with a path parameter",
            target: "/public/%2e%2e;x/admin/users",
            headers: vec![],
            status: bad_request,
            challenge: Some(r#"Bearer realm="api", error="invalid_request""#),
            metric: ("denied", "invalid_request", bad_request),
            upstream: None,
        },
        Case {
            name: "single dot with a path parameter",
            target: "/api/.;/admin/users",
            headers: vec![("Authorization", bearer(&client))],
            status: bad_request,
            challenge: Some(r#"Bearer realm="api", error="invalid_request""#),
            metric: ("denied", "invalid_request", bad_request),
            upstream: None,
        },
    ]
}

fn run_cases(proxy: &str, listen: u16, serve_addr: SocketAddr) {
    let nginx = proxy == "nginx";
    for case in cases(nginx) {
        let before = scrape(serve_addr);
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = http(listen, "GET", case.target, &headers);
        let after = scrape(serve_addr);
        let name = format!("{proxy}: {}", case.name);
        assert_eq!(res.status, case.status, "{name}: {res:?}");
        assert_eq!(
            res.header("www-authenticate"),
            case.challenge,
            "{name}: {res:?}"
        );
        // Exactly one challenge on a refusal: nginx's auth_request copies the decision's on
        // a 401 itself, so the recipe adds it only to the other statuses.
        if matches!(res.status, 401 | 403) {
            let challenges = res
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
                .count();
            assert_eq!(challenges, 1, "{name}: WWW-Authenticate count: {res:?}");
        }
        if let Some(want) = &case.upstream {
            let seen = res.echoed();
            for (h, values) in want {
                // Absent or empty both mean "none".
                let got: Vec<&str> = seen
                    .get(*h)
                    .map(|v| {
                        v.iter()
                            .map(String::as_str)
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(&got, values, "{name}: upstream header {h}: {seen:?}");
            }
        } else {
            assert!(
                !res.body.contains("\"headers\""),
                "{name}: reached the upstream: {res:?}"
            );
        }
        let (outcome, reason, status) = case.metric;
        let mut want = BTreeMap::new();
        want.insert(decision(outcome, reason), 1.0);
        want.insert(answered(proxy, status), 1.0);
        let moved: BTreeMap<String, f64> = delta(&before, &after)
            .into_iter()
            .filter(|(k, _)| {
                k.starts_with("portcullis_decisions_total")
                    || k.starts_with("portcullis_forward_auth_responses_total")
            })
            .collect();
        assert_eq!(moved, want, "{name}: metric moves");
    }
}

/// Forged identity headers in every separator and case spelling never reach the upstream:
/// a WSGI or CGI server maps `X_Auth_Roles` to the variable of `X-Auth-Roles`
/// (`HTTP_X_AUTH_ROLES`). nginx drops every header whose name holds `_`
/// (`underscores_in_headers off`, its default); Caddy forwards them, so the recipe drops
/// each spelling before `forward_auth`.
fn forged_twins(proxy: &str, listen: u16) {
    let bearer = format!("Bearer {}", token("ada", "client", &["tenant=acme"]));
    let forged = [
        "X_Auth_Roles",
        "x_auth_roles",
        "X-Auth_Roles",
        "X_Auth-Roles",
        "X_AUTH_SUBJECT",
        "x-AUTH-subject",
        "X_auth_Tenant",
        "X-Auth_tenant",
    ];
    let mut headers: Vec<(&str, &str)> = vec![("Authorization", &bearer)];
    headers.extend(forged.iter().map(|h| (*h, "forged")));
    // Caddy's recipe drops the whole family; nginx's overwrites the headers it names.
    if proxy == "caddy" {
        headers.push(("X-Auth-Other", "forged"));
    }
    // Not an identity header: shows whether underscores pass this proxy at all.
    headers.push(("X_Probe", "probe"));
    let res = http(listen, "GET", "/api/items", &headers);
    assert_eq!(res.status, 200, "{proxy}: {res:?}");
    // The echo upstream (hyper) keeps `_` in names and lowercases them.
    let seen = res.echoed();
    for (name, values) in &seen {
        let family = name.to_ascii_lowercase().replace('_', "-");
        if family.starts_with("x-auth-") {
            assert!(
                !values.iter().any(|v| v.contains("forged")),
                "{proxy}: a forged {name} reached the upstream: {seen:?}"
            );
            assert!(!name.contains('_'), "{proxy}: {name} reached the upstream");
        }
    }
    assert_eq!(seen.get("x-auth-subject"), Some(&vec!["ada".to_owned()]));
    assert_eq!(seen.get("x-auth-roles"), Some(&vec!["client".to_owned()]));
    assert_eq!(seen.get("x-auth-tenant"), Some(&vec!["acme".to_owned()]));
    let probe = seen.get("x_probe");
    if proxy == "nginx" {
        assert_eq!(
            probe, None,
            "nginx: underscores_in_headers is off: {seen:?}"
        );
    } else {
        // Caddy passes `_` names on: only the recipe's drops keep the twins out.
        assert_eq!(probe, Some(&vec!["probe".to_owned()]), "{proxy}: {seen:?}");
    }
}

/// nginx on a free port in `dir`, in front of `serve_addr` and `upstream`.
fn start_nginx(
    nginx: &std::path::Path,
    dir: &TempDir,
    serve_addr: SocketAddr,
    upstream: u16,
) -> (Proc, u16) {
    let listen = free_port();
    let conf = dir.write(
        "nginx.conf",
        &nginx_conf(dir.path().to_str().unwrap(), listen, serve_addr, upstream),
    );
    let mut cmd = Command::new(nginx);
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"]);
    let mut proxy = spawn("nginx", cmd);
    wait_port(listen, "nginx", Some(&mut proxy));
    (proxy, listen)
}

#[test]
fn nginx_auth_request() {
    let Some(nginx) = require("nginx", "nginx") else {
        return;
    };
    let dir = TempDir::new("nginx");
    let upstream = echo_upstream();
    let (mut serve_proc, serve_addr) = start_serve(&dir, "nginx");
    let (_proxy, listen) = start_nginx(&nginx, &dir, serve_addr, upstream);
    wait_port(serve_addr.port(), "serve", Some(&mut serve_proc));
    run_cases("nginx", listen, serve_addr);
    forged_twins("nginx", listen);
    let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert!(!log.contains("[emerg]"), "nginx error log: {log}");
}

#[test]
fn caddy_forward_auth() {
    let Some(caddy) = require("caddy", "caddy") else {
        return;
    };
    let dir = TempDir::new("caddy");
    let upstream = echo_upstream();
    let (mut serve_proc, serve_addr) = start_serve(&dir, "caddy");
    let listen = free_port();
    let conf = dir.write("Caddyfile", &caddyfile(listen, serve_addr, upstream));
    let mut cmd = Command::new(caddy);
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&conf);
    for var in ["HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"] {
        cmd.env(var, dir.path());
    }
    let mut proxy = spawn("caddy", cmd);
    wait_port(listen, "caddy", Some(&mut proxy));
    wait_port(serve_addr.port(), "serve", Some(&mut serve_proc));
    run_cases("caddy", listen, serve_addr);
    forged_twins("caddy", listen);
}

/// With no keys ever loaded, serve answers 503; nginx's `auth_request` turns any status
/// but 2xx, 401 and 403 into a 500 for the client (the README says so).
#[test]
fn nginx_turns_keys_unavailable_into_500() {
    let Some(nginx) = require("nginx", "nginx") else {
        return;
    };
    let dir = TempDir::new("nginx503");
    let upstream = echo_upstream();
    let policy = dir.write("policy.toml", POLICY);
    let url = format!("http://127.0.0.1:{}/jwks.json", free_port());
    let (_serve, serve_addr) = serve(
        &["--proxy", "nginx", "--policy", policy.to_str().unwrap()],
        &[("PORTCULLIS_JWKS_URL", &url)],
    );
    let (_proxy, listen) = start_nginx(&nginx, &dir, serve_addr, upstream);
    let before = scrape(serve_addr);
    let bearer = format!("Bearer {}", token("ada", "client", &[]));
    let res = http(listen, "GET", "/api/items", &[("Authorization", &bearer)]);
    assert_eq!(res.status, 500, "{res:?}");
    assert!(
        !res.body.contains("\"headers\""),
        "reached the upstream: {res:?}"
    );
    let moved = delta(&before, &scrape(serve_addr));
    assert_eq!(
        moved.get(&decision("denied", "keys_unavailable")),
        Some(&1.0),
        "{moved:?}"
    );
    assert_eq!(moved.get(&answered("nginx", 503)), Some(&1.0), "{moved:?}");
    // Public paths need no keys.
    assert_eq!(http(listen, "GET", "/public/x", &[]).status, 200);
}
