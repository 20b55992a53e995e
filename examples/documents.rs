//! A small document API whose handlers call `authorize_user` through the `Authz`
//! extractor: the layer verifies the token, each handler checks the resource permission.
//!
//! ```text
//! cargo run --example documents            # dev secret, 127.0.0.1:3001
//! PORT=8080 cargo run --example documents
//! ```
//!
//! At start it prints curl commands with tokens for four callers and the answer to expect.
//! The access records (TOML below) give:
//! - ada, through the token role `staff`: read on every document;
//! - grace, in the group `editors`: read and write on `/documents/drafts` and below;
//! - admins (token role `admin`): everything;
//! - bob: nothing (a valid token, so 403, not 401).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use portcullis::{
    Algorithm, AuthLayer, AuthRejection, Authenticator, Authorizer, Authz, Policy, RecordSet,
    Signer,
};
use serde_json::json;

const RECORDS: &str = r#"
[roles]
reader = ["documents:read", "documents:list"]
editor = ["documents:read", "documents:write"]
admin = ["*"]

[groups]
editors = ["grace"]

[[records]]
id = "staff-read-all"
[[records.statements]]
roles = ["reader"]
resources = ["/documents"]
token_roles = ["staff"]

[[records]]
id = "editors-drafts"
[[records.statements]]
roles = ["editor"]
resources = ["/documents/drafts"]
groups = ["editors"]

[[records]]
id = "admins"
[[records.statements]]
roles = ["admin"]
resources = ["*"]
token_roles = ["admin"]
"#;

type Docs = Arc<Mutex<BTreeMap<String, String>>>;

fn doc_resource(path: &str) -> String {
    format!("/documents/{}", path.trim_matches('/'))
}

async fn list(authz: Authz, State(docs): State<Docs>) -> Result<Response, AuthRejection> {
    authz.require("/documents", "documents:list")?;
    let names: Vec<String> = docs
        .lock()
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default();
    Ok(Json(json!({ "documents": names })).into_response())
}

async fn read(
    authz: Authz,
    State(docs): State<Docs>,
    Path(path): Path<String>,
) -> Result<Response, AuthRejection> {
    // Authorize first: a refused caller learns nothing about what exists.
    let grant = authz.require(&doc_resource(&path), "documents:read")?;
    let text = docs.lock().ok().and_then(|d| d.get(&path).cloned());
    Ok(match text {
        Some(text) => Json(json!({
            "document": path,
            "text": text,
            "allowed_by": grant.to_string(),
        }))
        .into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"error": "not_found"}))).into_response(),
    })
}

async fn write(
    authz: Authz,
    State(docs): State<Docs>,
    Path(path): Path<String>,
    text: String,
) -> Result<Response, AuthRejection> {
    authz.require(&doc_resource(&path), "documents:write")?;
    if let Ok(mut d) = docs.lock() {
        d.insert(path.clone(), text);
    }
    Ok((StatusCode::CREATED, Json(json!({"document": path}))).into_response())
}

/// What the caller may do on a document, as Kamiwaza's `read_own_permissions`.
async fn permissions(authz: Authz, Path(path): Path<String>) -> Json<serde_json::Value> {
    Json(json!({
        "document": path,
        "permissions": authz.permissions(&doc_resource(&path)),
        "writable": authz.resources("documents:write"),
    }))
}

fn dev_secret() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("documents: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let secret = dev_secret();
    let authenticator = Authenticator::builder().hmac_secret(&secret).build()?;
    // The layer only demands a valid token; each handler decides with authorize_user.
    let policy = Policy::builder()
        .allow("*", "/documents", ["*"])
        .allow("*", "/documents/**", ["*"])
        .allow("GET", "/documents-permissions/**", ["*"])
        .build()?;
    let authorizer = Authorizer::new(RecordSet::from_toml_str(RECORDS)?);

    let docs: Docs = Arc::new(Mutex::new(BTreeMap::from([
        ("A".to_owned(), "the first document".to_owned()),
        ("drafts/plan".to_owned(), "a draft".to_owned()),
    ])));
    let app = Router::new()
        .route("/documents", get(list))
        .route("/documents/{*path}", get(read).put(write))
        .route("/documents-permissions/{*path}", get(permissions))
        .with_state(docs)
        .layer(Extension(authorizer))
        .layer(AuthLayer::new(authenticator, policy));

    let port: u16 = match std::env::var("PORT").ok().filter(|p| !p.trim().is_empty()) {
        Some(p) => p
            .parse()
            .map_err(|_| format!("PORT: `{p}` is not a port number"))?,
        None => 3001,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("PORT: cannot listen on 127.0.0.1:{port}: {e}"))?;
    let base = format!("http://127.0.0.1:{port}");

    let signer = Signer::hmac(Algorithm::HS256, &secret)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mint = |sub: &str, role: Option<&str>| {
        let mut claims = json!({"sub": sub, "iat": now, "exp": now + 3600});
        if let Some(role) = role {
            claims["role"] = json!(role);
        }
        signer.sign(&claims)
    };
    println!("portcullis documents example listening on {base}\n");
    println!("ADA='{}'", mint("ada", Some("staff"))?);
    println!("GRACE='{}'", mint("grace", None)?);
    println!("ADMIN='{}'", mint("root", Some("admin"))?);
    println!("BOB='{}'\n", mint("bob", None)?);
    let h = |who: &str| format!("-H \"Authorization: Bearer ${who}\"");
    println!("# ada (token role staff) reads a document -> 200, with the grant that allowed it");
    println!("curl -i {} {base}/documents/A\n", h("ADA"));
    println!("# ada lists documents -> 200 {{\"documents\":[\"A\",\"drafts/plan\"]}}");
    println!("curl -i {} {base}/documents\n", h("ADA"));
    println!(
        "# ada writes -> 403 {{\"error\":\"insufficient_scope\",\"message\":\"Insufficient permissions\"}}"
    );
    println!(
        "curl -i -X PUT -d 'new text' {} {base}/documents/A\n",
        h("ADA")
    );
    println!("# grace (group editors) writes a draft -> 201");
    println!(
        "curl -i -X PUT -d 'v2' {} {base}/documents/drafts/plan\n",
        h("GRACE")
    );
    println!("# grace reads outside drafts -> 403");
    println!("curl -i {} {base}/documents/A\n", h("GRACE"));
    println!(
        "# grace's permissions on a draft -> 200 {{\"permissions\":[\"documents:read\",\"documents:write\"],...}}"
    );
    println!(
        "curl -i {} {base}/documents-permissions/drafts/plan\n",
        h("GRACE")
    );
    println!("# an admin writes anywhere -> 201");
    println!(
        "curl -i -X PUT -d 'hello' {} {base}/documents/B\n",
        h("ADMIN")
    );
    println!("# bob has a valid token but no records -> 403");
    println!("curl -i {} {base}/documents/A\n", h("BOB"));
    println!("# no token -> 401 {{\"error\":\"missing_token\",\"message\":\"Missing token\"}}");
    println!("curl -i {base}/documents/A\n");

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
