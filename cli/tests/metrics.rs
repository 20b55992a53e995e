//! Metrics: the library's decision counters through an installed recorder (any exporter),
//! the key-set metrics and readiness of `portcullis serve` against a JWK set on loopback,
//! and `promtool check metrics` on what `/metrics` serves.

mod harness;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::*;
use http::Request;
use metrics_exporter_prometheus::PrometheusBuilder;
use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer};
use tower::{Layer, ServiceExt};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Heap blocks allocated so far in this process (while the dhat profiler runs).
fn allocations() -> u64 {
    dhat::HeapStats::get().total_blocks
}

/// Polls a future that is ready at once, without a runtime.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("not ready"),
    }
}

#[test]
fn counting_a_decision_costs_no_allocation() {
    let _turn = BOUND
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let recorder = PrometheusBuilder::new().build_recorder();
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .token_cache(portcullis::TokenCache::off())
        .build()
        .unwrap();
    let policy = Policy::builder()
        .allow("GET", "/api/{*rest}", ["client"])
        .build()
        .unwrap();
    let token = Signer::hmac(Algorithm::HS256, SECRET)
        .unwrap()
        .sign(&serde_json::json!({"sub": "ada", "role": "client", "exp": 4_000_000_000u64}))
        .unwrap();
    let inner = tower::service_fn(|_req: Request<String>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    });
    let svc = AuthLayer::new(auth, policy).layer(inner);
    let request = || {
        Request::get("/api/x")
            .header("authorization", format!("Bearer {token}"))
            .body(String::new())
            .unwrap()
    };
    // Allocations of one allowed and one refused request, the request built beforehand.
    let cost = |svc: &portcullis::layer::Auth<_>| {
        let mut out = [0u64; 2];
        for (i, req) in [
            request(),
            Request::get("/api/x").body(String::new()).unwrap(),
        ]
        .into_iter()
        .enumerate()
        {
            let mut s = svc.clone();
            let before = allocations();
            let res = ready(tower::Service::call(&mut s, req)).unwrap();
            out[i] = allocations() - before;
            drop(res);
        }
        out
    };
    // Other tests of this binary run beside this one and may allocate now and then: the
    // fewest allocations over many tries is this thread's own cost.
    let fewest = |f: &dyn Fn() -> [u64; 2]| {
        (0..50)
            .map(|_| f())
            .fold([u64::MAX; 2], |a, b| [a[0].min(b[0]), a[1].min(b[1])])
    };
    let _profiler = dhat::Profiler::builder().testing().build();
    let without = fewest(&|| cost(&svc));
    let with = metrics::with_local_recorder(&recorder, || {
        portcullis::metrics::register();
        fewest(&|| cost(&svc))
    });
    assert_eq!(
        with, without,
        "allocations per request with a recorder vs without"
    );
    let text = recorder.handle().render();
    assert!(text.contains(r#"reason="authorized"} 50"#), "{text}");
}

/// Runs a future that is ready at once (the layer answers without waiting here).
fn now<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// The tests that bind the layer's counters to their own recorder take turns.
static BOUND: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_layer_counts_each_decision_once_by_protocol_outcome_and_reason() {
    let _turn = BOUND
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .build()
        .unwrap();
    let policy = Policy::builder()
        .public_prefix("/health")
        .allow("GET", "/api/{*rest}", ["client"])
        .allow_grpc("/pkg.Svc/*", ["client"])
        .build()
        .unwrap();
    let signer = Signer::hmac(Algorithm::HS256, SECRET).unwrap();
    let client = signer
        .sign(&serde_json::json!({"sub": "ada", "role": "client", "exp": 4_000_000_000u64}))
        .unwrap();
    let other = signer
        .sign(&serde_json::json!({"sub": "bob", "role": "guest", "exp": 4_000_000_000u64}))
        .unwrap();
    let expired = signer
        .sign(&serde_json::json!({"sub": "ada", "role": "client", "exp": 1_000_000_000u64}))
        .unwrap();
    let inner = tower::service_fn(|_req: Request<String>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    });
    let http_svc = AuthLayer::new(auth.clone(), policy.clone()).layer(inner);
    let grpc_svc = AuthLayer::new(auth, policy).for_grpc().layer(inner);
    let req = |path: &str, token: Option<&str>| {
        let mut b = Request::get(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(String::new()).unwrap()
    };
    metrics::with_local_recorder(&recorder, || {
        portcullis::metrics::register();
        now(async {
            let s = &http_svc;
            let g = &grpc_svc;
            assert_eq!(
                s.clone()
                    .oneshot(req("/health", None))
                    .await
                    .unwrap()
                    .status(),
                200
            );
            assert_eq!(
                s.clone()
                    .oneshot(req("/api/x", Some(&client)))
                    .await
                    .unwrap()
                    .status(),
                200
            );
            assert_eq!(
                s.clone()
                    .oneshot(req("/api/y", Some(&client)))
                    .await
                    .unwrap()
                    .status(),
                200
            );
            assert_eq!(
                s.clone()
                    .oneshot(req("/api/x", None))
                    .await
                    .unwrap()
                    .status(),
                401
            );
            assert_eq!(
                s.clone()
                    .oneshot(req("/api/x", Some(&other)))
                    .await
                    .unwrap()
                    .status(),
                403
            );
            assert_eq!(
                s.clone()
                    .oneshot(req("/api/x", Some(&expired)))
                    .await
                    .unwrap()
                    .status(),
                401
            );
            assert_eq!(
                s.clone()
                    .oneshot(req("/api/x", Some("a.b.c")))
                    .await
                    .unwrap()
                    .status(),
                401
            );
            assert_eq!(
                s.clone()
                    .oneshot(req("/api/%2e%2e/x", Some(&client)))
                    .await
                    .unwrap()
                    .status(),
                400
            );
            let res = g
                .clone()
                .oneshot(req("/pkg.Svc/Call", Some(&client)))
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let res = g
                .clone()
                .oneshot(req("/pkg.Svc/Call", Some(&other)))
                .await
                .unwrap();
            assert_eq!(res.status(), 403);
        })
    });
    // `register` creates every decision counter at 0; the ones that moved are these.
    let got: std::collections::BTreeMap<String, f64> = samples(&handle.render())
        .into_iter()
        .filter(|(_, v)| *v != 0.0)
        .collect();
    let want = [
        ("http", "allowed", "public", 1.0),
        ("http", "allowed", "authorized", 2.0),
        ("http", "denied", "missing_credentials", 1.0),
        ("http", "denied", "forbidden", 1.0),
        ("http", "denied", "token_expired", 1.0),
        ("http", "denied", "invalid_token", 1.0),
        ("http", "denied", "invalid_request", 1.0),
        ("grpc", "allowed", "authorized", 1.0),
        ("grpc", "denied", "forbidden", 1.0),
    ];
    let mut expected = std::collections::BTreeMap::new();
    for (p, o, r, n) in want {
        expected.insert(
            format!(r#"portcullis_decisions_total{{protocol="{p}",outcome="{o}",reason="{r}"}}"#),
            n,
        );
    }
    // The token cache: the client token is a miss, a miss (admitted on its second
    // sight), then a hit over gRPC; the others are misses (the path with dot segments is
    // refused before its token is read).
    expected.insert(
        r#"portcullis_token_cache_lookups_total{result="hit"}"#.to_owned(),
        1.0,
    );
    expected.insert(
        r#"portcullis_token_cache_lookups_total{result="miss"}"#.to_owned(),
        6.0,
    );
    assert_eq!(got, expected);
}

/// A JWK set on loopback that fails until `up` is set; returns its port.
fn jwks_server(jwks: String, up: Arc<AtomicBool>) -> u16 {
    use axum::http::StatusCode;
    use axum::routing::get;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().route(
                "/jwks.json",
                get(move || {
                    let (jwks, up) = (jwks.clone(), up.clone());
                    async move {
                        if up.load(Ordering::SeqCst) {
                            (StatusCode::OK, jwks)
                        } else {
                            (StatusCode::INTERNAL_SERVER_ERROR, String::new())
                        }
                    }
                }),
            );
            let _ = axum::serve(listener, app).await;
        });
    });
    port
}

fn wait_ready(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http(addr.port(), "GET", "/readyz", &[]).status == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("/readyz never turned 200");
}

/// SECURITY.md D5: with an issuer pattern, the key-set metrics are labelled by the
/// pattern, never by a token's `iss`: 60 made-up issuers that match the pattern (each
/// costs a failed discovery) add no series.
#[test]
fn issuer_pattern_metrics_never_take_a_label_from_a_token() {
    let _turn = BOUND
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let series = || -> std::collections::BTreeSet<String> {
        handle
            .render()
            .lines()
            .filter(|l| l.starts_with("portcullis_jwks_"))
            .map(|l| l.rsplit_once(' ').map_or(l, |(k, _)| k).to_owned())
            .collect()
    };
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use portcullis::TenantOptions;
            use portcullis::test_util::TestIssuer;
            let idp = TestIssuer::with_realms(Algorithm::ES256, ["a"])
                .await
                .unwrap();
            let base = idp.realm("a");
            let root = base.trim_end_matches("/a");
            let pattern = format!("{root}/*");
            let auth = Authenticator::builder()
                .issuer_pattern(&pattern)
                .tenant_options(TenantOptions::new().discoveries_per_minute(1_000))
                .build()
                .unwrap();
            let claims =
                |iss: &str| serde_json::json!({"sub": "s", "iss": iss, "exp": 4_000_000_000u64});
            let ok = idp.mint_in("a", &claims(&base));
            assert!(auth.verify_async(&ok).await.is_ok());
            let made_up = |i: u32| idp.mint_in("a", &claims(&format!("{root}/made-up-{i}")));
            assert!(auth.verify_async(&made_up(0)).await.is_err());
            let before = series();
            for i in 1..=60 {
                assert!(auth.verify_async(&made_up(i)).await.is_err());
            }
            assert!(
                idp.discovery_requests() >= 60,
                "each made-up issuer was tried"
            );
            let after = series();
            assert_eq!(after, before, "new metric series from token issuers");
            assert!(!after.is_empty());
            for s in &after {
                assert!(
                    s.contains(&format!(r#"issuer="{pattern}""#)),
                    "a label not from configuration: {s}"
                );
            }
        });
    });
}

#[test]
fn serve_reports_key_set_fetches_ages_unknown_kids_and_readiness() {
    let dir = TempDir::new("metrics");
    let prefix = dir.path().join("issuer");
    let out = Command::new(BIN)
        .args(["keygen", "--alg", "ES256", "--kid", "k1", "--out"])
        .arg(&prefix)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let jwks = std::fs::read_to_string(dir.path().join("issuer.jwks.json")).unwrap();
    let key = dir.path().join("issuer.key.pem");
    let up = Arc::new(AtomicBool::new(false));
    let port = jwks_server(jwks, up.clone());
    let url = format!("http://127.0.0.1:{port}/jwks.json");
    let policy = dir.write(
        "policy.toml",
        "[[rule]]\nroles = [\"client\"]\npath = \"/api/{*rest}\"\n",
    );
    let (_serve, addr) = serve(
        &["--proxy", "caddy", "--policy", policy.to_str().unwrap()],
        &[
            ("PORTCULLIS_JWKS_URL", &url),
            ("PORTCULLIS_JWKS_COOLDOWN_SECONDS", "300"),
        ],
    );
    let mint = |kid: &str| {
        let out = Command::new(BIN)
            .args(["mint", "--key"])
            .arg(&key)
            .args([
                "--alg", "ES256", "--kid", kid, "--sub", "ada", "--role", "client",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let good = format!("Bearer {}", mint("k1"));
    let ask = |auth: &str| {
        http(
            addr.port(),
            "GET",
            "/auth",
            &[
                ("X-Forwarded-Method", "GET"),
                ("X-Forwarded-Uri", "/api/items"),
                ("Authorization", auth),
            ],
        )
    };

    // No keys yet: not ready, and a decision that needs them answers 503.
    assert_eq!(http(addr.port(), "GET", "/readyz", &[]).status, 503);
    assert_eq!(http(addr.port(), "GET", "/healthz", &[]).status, 200);
    let before = scrape(addr);
    let res = ask(&good);
    assert_eq!(res.status, 503, "{res:?}");
    assert!(res.header("www-authenticate").is_none());
    let moved = delta(&before, &scrape(addr));
    assert_eq!(
        moved.get(r#"portcullis_decisions_total{protocol="http",outcome="denied",reason="keys_unavailable"}"#),
        Some(&1.0),
        "{moved:?}"
    );
    let errors = format!(r#"portcullis_jwks_fetches_total{{issuer="{url}",result="error"}}"#);
    assert!(value(&scrape(addr), &errors) >= 1.0);

    // The issuer comes up: ready once the keys load, and tokens pass.
    up.store(true, Ordering::SeqCst);
    wait_ready(addr);
    let s = scrape(addr);
    let ok = format!(r#"portcullis_jwks_fetches_total{{issuer="{url}",result="ok"}}"#);
    assert!(value(&s, &ok) >= 1.0, "{s:?}");
    let stamp = value(
        &s,
        &format!(r#"portcullis_jwks_last_success_timestamp_seconds{{issuer="{url}"}}"#),
    );
    assert!(stamp > 1.6e9, "{s:?}");
    let age_key = format!(r#"portcullis_jwks_age_seconds{{issuer="{url}"}}"#);
    assert!(
        s.contains_key(&age_key) && value(&s, &age_key) < 60.0,
        "{s:?}"
    );
    assert_eq!(ask(&good).status, 200);

    // Unknown kids: one refetch, then the cooldown holds, whatever the number of tokens.
    let before = scrape(addr);
    for i in 0..5 {
        let res = ask(&format!("Bearer {}", mint(&format!("ghost-{i}"))));
        assert_eq!(res.status, 401, "{res:?}");
    }
    let moved = delta(&before, &scrape(addr));
    let refetch = format!(r#"portcullis_jwks_unknown_kid_refetches_total{{issuer="{url}"}}"#);
    assert_eq!(moved.get(&refetch), Some(&1.0), "{moved:?}");
    assert_eq!(moved.get(&ok), Some(&1.0), "{moved:?}");
    assert_eq!(
        moved.get(
            r#"portcullis_decisions_total{protocol="http",outcome="denied",reason="invalid_token"}"#
        ),
        Some(&5.0),
        "{moved:?}"
    );
}

#[test]
fn promtool_accepts_the_metrics_output() {
    let Some(promtool) = require("promtool", "prometheus") else {
        return;
    };
    let dir = TempDir::new("promtool");
    let policy = dir.write(
        "policy.toml",
        "public = [\"/public\"]\n[[rule]]\nroles = [\"client\"]\npath = \"/api/{*rest}\"\n",
    );
    let (_serve, addr) = serve(
        &["--proxy", "nginx", "--policy", policy.to_str().unwrap()],
        &[("FEDN_JWT_SECRET_KEY", SECRET)],
    );
    let client = format!("Bearer {}", token("ada", "client", &[]));
    for (uri, auth, status) in [
        ("/api/x", client.as_str(), 200),
        ("/api/x", "", 401),
        ("/api/x", "Bearer", 401),
        ("/public/x", "", 200),
        ("/other", client.as_str(), 403),
    ] {
        let mut h = vec![("X-Original-Method", "GET"), ("X-Original-URI", uri)];
        if !auth.is_empty() {
            h.push(("Authorization", auth));
        }
        assert_eq!(
            http(addr.port(), "GET", "/auth", &h).status,
            status,
            "{uri} {auth}"
        );
    }
    // Without the method header the proxy is misconfigured: a 500, counted, and logged.
    let res = http(addr.port(), "GET", "/auth", &[("X-Original-URI", "/api/x")]);
    assert_eq!(res.status, 500);
    let text = http(addr.port(), "GET", "/metrics", &[]).body;
    assert!(text.contains("# HELP portcullis_decisions_total"), "{text}");
    assert!(
        text.contains("# TYPE portcullis_decisions_total counter"),
        "{text}"
    );
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let s = samples(&text);
    assert_eq!(
        value(
            &s,
            r#"portcullis_forward_auth_responses_total{proxy="nginx",status="500"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            r#"portcullis_forward_auth_responses_total{proxy="nginx",status="401"}"#
        ),
        2.0
    );
}
