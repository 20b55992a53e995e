//! Logs: one event per decision with method, path and reason; extractor and Authz refusals
//! logged too; never a token or a claim value. In a binary of its own: tracing caches each
//! event site's interest process-wide, so a test running beside others without a subscriber
//! could make the sites look uninteresting here.

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::events::Events;
use common::*;
use http::{Request, header};
use portcullis::{AuthLayer, Policy};
use serde_json::{Value, json};
use tower::ServiceExt;

fn token(extra: Value) -> String {
    let mut c = json!({"sub": "ada", "exp": NOW + 600});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    hs256().sign(&c).unwrap()
}

async fn call(app: &Router, req: Request<Body>) -> (u16, http::HeaderMap, Value) {
    split(app.clone().oneshot(req).await.unwrap()).await
}

fn get_with(path: &str, auth: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path);
    if let Some(t) = auth {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    r.body(Body::empty()).unwrap()
}

#[test]
fn decisions_are_logged_without_tokens_or_claim_values() {
    use portcullis::{Authorizer, Authz, RecordSet};
    let events = Events::default();
    let secret_claim = "s3cr3t-tenant-name";
    let t = token(json!({"role": "user", "tenant": secret_claim}));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    tracing::subscriber::with_default(events.clone(), || {
        rt.block_on(async {
            let authz = Authorizer::new(RecordSet::empty());
            let app = Router::new()
                .route("/admin", get(|| async { "admin" }))
                .route(
                    "/doc",
                    get(|a: Authz| async move { a.require("/docs/1", "docs:read").map(|_| "ok") }),
                )
                .layer(axum::Extension(authz))
                .layer(AuthLayer::new(
                    hs_builder().build().unwrap(),
                    Policy::builder()
                        .allow("GET", "/admin", ["admin"])
                        .allow("GET", "/doc", ["*"])
                        .build()
                        .unwrap(),
                ));
            assert_eq!(call(&app, get_with("/admin", Some(&t))).await.0, 403);
            assert_eq!(call(&app, get_with("/doc", Some(&t))).await.0, 403);
        })
    });
    let lines = events.0.lock().unwrap().clone();
    let all = lines.join("\n");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("portcullis::layer DEBUG")
                && l.contains("method=GET")
                && l.contains("path=\"/admin\"")
                && l.contains("outcome=\"rejected\"")
                && l.contains("status=403")
                && l.contains("needs one of: admin")),
        "{all}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("portcullis::layer TRACE") && l.contains("path=\"/doc\"")),
        "{all}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("portcullis::authz DEBUG") && l.contains("docs:read")),
        "{all}"
    );
    assert!(!all.contains(&t), "a token was logged");
    assert!(
        !all.contains(&t[t.len() - 20..]),
        "part of a token was logged"
    );
    assert!(!all.contains(secret_claim), "a claim value was logged");
}

/// Introspection (RFC 7662): a failed introspection is logged with the endpoint and what
/// failed, never the token.
#[cfg(feature = "introspection")]
#[test]
fn introspection_failures_are_logged_without_the_token() {
    use portcullis::introspection::Introspection;
    let events = Events::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!(
        "http://127.0.0.1:{}/introspect",
        listener.local_addr().unwrap().port()
    );
    drop(listener);
    let opaque = "Zm9vYmFyLXNlY3JldC1vcGFxdWUtdG9rZW4";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(events.clone(), || {
        rt.block_on(async {
            let auth = portcullis::Authenticator::builder()
                .introspection(Introspection::new(&endpoint, "rs", "client-secret-value"))
                .build()
                .unwrap();
            let app = Router::new()
                .route("/me", get(|| async { "me" }))
                .layer(AuthLayer::new(
                    auth,
                    Policy::builder()
                        .allow("GET", "/me", ["*"])
                        .build()
                        .unwrap(),
                ));
            assert_eq!(call(&app, get_with("/me", Some(opaque))).await.0, 503);
        })
    });
    let all = events.0.lock().unwrap().join("\n");
    assert!(
        all.contains("token introspection failed") && all.contains(&endpoint),
        "{all}"
    );
    assert!(!all.contains(opaque), "the token was logged: {all}");
    assert!(
        !all.contains("client-secret-value"),
        "the secret was logged: {all}"
    );
}
