//! Dry-run rules and shadow policies: decided and recorded on every request they name,
//! never enforced. The counter moves by exactly the expected amounts (a recorder of the
//! test's own) and the DEBUG event names the rule. Every test here sets the subscriber
//! (tracing caches each event site's interest process-wide).
#![cfg(feature = "metrics")]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::events::Events;
use http::Request;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use portcullis::{AuthLayer, Authenticator, Condition, EnvConfig, Policy};
use serde_json::{Value, json};
use tower::ServiceExt;

use common::SECRET;

/// Counters by name and labels (`name{k=v,...}`).
#[derive(Default)]
struct Counters(Mutex<HashMap<String, Arc<AtomicU64>>>);

impl Counters {
    fn get(&self, key: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

impl Recorder for Counters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let c = self.0.lock().unwrap().entry(name).or_default().clone();
        Counter::from_arc(c)
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

const WOULD_ALLOW: &str = "portcullis_shadow_decisions_total{result=would_allow}";
const WOULD_DENY: &str = "portcullis_shadow_decisions_total{result=would_deny}";

fn token(claims: Value) -> String {
    common::lasting_token(claims)
}

fn app(policy: Policy) -> Router {
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .build()
        .unwrap();
    Router::new()
        .route("/reports/{id}", get(|| async { "report" }))
        .route("/health", get(|| async { "ok" }))
        .route("/other", get(|| async { "other" }))
        .layer(AuthLayer::new(auth, policy))
}

/// Runs `f` on this thread with the counters and the events recorded.
fn recorded(f: impl AsyncFnOnce()) -> (Counters, Vec<String>) {
    let counters = Counters::default();
    let events = Events::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    metrics::with_local_recorder(&counters, || {
        tracing::subscriber::with_default(events.clone(), || rt.block_on(f()))
    });
    let lines = events.0.lock().unwrap().clone();
    (counters, lines)
}

async fn status(app: &Router, path: &str, claims: Option<Value>) -> u16 {
    let mut req = Request::get(path);
    if let Some(c) = claims {
        req = req.header("authorization", format!("Bearer {}", token(c)));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    res.status().as_u16()
}

#[test]
fn dry_run_rules_are_counted_and_logged_never_enforced() {
    let policy = Policy::builder()
        .public_prefix("/health")
        .allow("GET", "/reports/{id}", ["staff"])
        .allow("GET", "/other", ["*"])
        // Would deny a staff member without the `pro` plan; would allow analysts.
        .shadow_allow_when(
            "GET",
            "/reports/{id}",
            ["staff", "analyst"],
            [Condition::claim_equals("plan", "pro")],
        )
        .build()
        .unwrap();
    assert_eq!(policy.shadow_count(), 1);
    let (counters, lines) = recorded(async || {
        let app = app(policy);
        let staff_free = json!({"sub": "ada", "role": "staff", "plan": "free"});
        let staff_pro = json!({"sub": "bob", "role": "staff", "plan": "pro"});
        let analyst_pro = json!({"sub": "eve", "role": "analyst", "plan": "pro"});
        // Enforced: staff pass whatever the shadow rule says; analysts do not.
        assert_eq!(
            status(&app, "/reports/1", Some(staff_free.clone())).await,
            200
        );
        assert_eq!(status(&app, "/reports/1", Some(staff_free)).await, 200);
        assert_eq!(status(&app, "/reports/2", Some(staff_pro)).await, 200);
        assert_eq!(status(&app, "/reports/3", Some(analyst_pro)).await, 403);
        // Not named by the shadow rule, public, or no token: not recorded.
        assert_eq!(status(&app, "/other", Some(json!({"sub": "x"}))).await, 200);
        assert_eq!(status(&app, "/health", None).await, 200);
        assert_eq!(status(&app, "/reports/4", None).await, 401);
    });
    assert_eq!(counters.get(WOULD_DENY), 2, "staff without `pro`, twice");
    assert_eq!(
        counters.get(WOULD_ALLOW),
        2,
        "staff with `pro`, the analyst with `pro`"
    );
    let shadow: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("shadow decision"))
        .collect();
    assert_eq!(shadow.len(), 4, "{lines:#?}");
    assert!(
        shadow
            .iter()
            .all(|l| l.starts_with("portcullis::policy DEBUG")),
        "{shadow:#?}"
    );
    assert!(
        shadow.iter().any(|l| l.contains("would_deny")
            && l.contains(r#"rule 0 (GET /reports/{id}) needs claim `plan` = "pro""#)),
        "{shadow:#?}"
    );
    assert!(
        shadow.iter().any(|l| l.contains("would_allow")
            && l.contains("rule 0 (GET /reports/{id}) allows role `analyst`")),
        "{shadow:#?}"
    );
    // Never a claim value.
    assert!(!lines.join("\n").contains("free"), "{lines:#?}");
}

#[test]
fn a_shadow_policy_records_every_decision_and_the_environment_reads_one() {
    let dir = std::env::temp_dir().join(format!("portcullis-shadow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let enforced = dir.join("policy.toml");
    let shadow = dir.join("shadow.toml");
    std::fs::write(
        &enforced,
        "[[rule]]\nroles = [\"*\"]\npath = \"/reports/{id}\"\n[[rule]]\nroles = [\"*\"]\npath = \"/other\"\n",
    )
    .unwrap();
    // Tomorrow's policy: reports for staff only; /other named by no rule (denied).
    std::fs::write(
        &shadow,
        "[[rule]]\nroles = [\"staff\"]\npath = \"/reports/{id}\"\n",
    )
    .unwrap();
    let vars = HashMap::from([
        ("FEDN_JWT_SECRET_KEY", SECRET.to_owned()),
        ("PORTCULLIS_POLICY_FILE", enforced.display().to_string()),
        (
            "PORTCULLIS_SHADOW_POLICY_FILE",
            shadow.display().to_string(),
        ),
    ]);
    let config = EnvConfig::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let layer = config.build_layer().unwrap();
    assert_eq!(layer.policy().shadow_count(), 1);
    let (counters, _) = recorded(async || {
        let app = Router::new()
            .route("/reports/{id}", get(|| async { "report" }))
            .route("/other", get(|| async { "other" }))
            .layer(layer);
        let guest = json!({"sub": "ada", "role": "guest"});
        let staff = json!({"sub": "bob", "role": "staff"});
        assert_eq!(status(&app, "/reports/1", Some(guest.clone())).await, 200);
        assert_eq!(status(&app, "/reports/1", Some(staff.clone())).await, 200);
        assert_eq!(status(&app, "/other", Some(staff)).await, 200);
    });
    assert_eq!(counters.get(WOULD_ALLOW), 1);
    assert_eq!(counters.get(WOULD_DENY), 2);
    let _ = std::fs::remove_dir_all(&dir);
    // A shadow file that does not parse fails at build time, naming its variable.
    let bad = HashMap::from([
        ("FEDN_JWT_SECRET_KEY", SECRET.to_owned()),
        (
            "PORTCULLIS_SHADOW_POLICY_FILE",
            "/nonexistent/shadow.toml".to_owned(),
        ),
    ]);
    let err = EnvConfig::from_lookup(|k| bad.get(k).cloned()).unwrap_err();
    assert_eq!(err.setting(), "PORTCULLIS_SHADOW_POLICY_FILE");
}
