//! `POST /admin/revoke` on `serve`: revocations from a caller holding the admin role, into
//! the list the authenticator checks (Redis-shared with `PORTCULLIS_REDIS_URL`, else this
//! process's own).

use axum::body::Body;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use portcullis::revoke::{MemoryRevocations, RedisRevocations};
use portcullis::{AuthError, AuthLayer, Authenticator, ConfigError, EnvConfig, Policy};
use serde_json::json;

use crate::forward::rejection;
use crate::revoke::Ask;

/// The revocation list the served authenticator checks.
#[derive(Clone)]
pub(crate) enum Store {
    /// Shared by every replica through Redis.
    Redis(RedisRevocations),
    /// This process's own.
    Memory(MemoryRevocations),
}

impl Store {
    /// The list for `config` (Redis when `PORTCULLIS_REDIS_URL` is set, started without
    /// waiting; must run inside the runtime), set as the authenticator's store.
    pub(crate) fn for_config(config: EnvConfig) -> Result<(EnvConfig, Self), ConfigError> {
        let store = match config.redis() {
            Some(o) => Self::Redis(RedisRevocations::start(o)?),
            None => Self::Memory(MemoryRevocations::new()),
        };
        let config = match &store {
            Self::Redis(r) => {
                let r = r.clone();
                config.map_authenticator(|b| b.revocations(r))
            }
            Self::Memory(m) => {
                let m = m.clone();
                config.map_authenticator(|b| b.revocations(m))
            }
        };
        Ok((config, store))
    }

    /// Waits until the list answers: a Redis copy's first sync (until then every token
    /// gets 503 `Revocation list unavailable`, fail-closed); at once in memory. Logs once
    /// while it waits.
    pub(crate) async fn first_sync(&self) {
        let Self::Redis(r) = self else { return };
        let mut warned = false;
        while r.status().age.is_none() {
            if !warned {
                tracing::warn!(
                    "the revocation list has not synced with Redis yet: /readyz answers 503"
                );
                warned = true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// What `POST /admin/revoke` needs.
pub(crate) struct Admin {
    pub(crate) layer: AuthLayer,
    pub(crate) auth: Authenticator,
    /// For its required claims, which hold here as on `/auth`.
    pub(crate) policy: Policy,
    pub(crate) role: String,
    pub(crate) store: Store,
    pub(crate) default_issuer: Option<String>,
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let mut res = Response::new(Body::from(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn bad_request(description: &str) -> Response<Body> {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid_request", "error_description": description}),
    )
}

/// The JSON member for a field of [`Ask`].
fn member(name: &str) -> &'static str {
    match name {
        "jti" => "`jti`",
        "sub" => "`sub`",
        "token" => "`token`",
        "iss" => "`iss`",
        _ => "`expires_in`",
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    jti: Option<String>,
    sub: Option<String>,
    token: Option<String>,
    iss: Option<String>,
    expires_in: Option<u64>,
}

impl Admin {
    /// Answers one `POST /admin/revoke`.
    pub(crate) async fn revoke(&self, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
        let caller = match self.auth.authenticate_async(headers).await {
            Ok(p) => p,
            Err(e) => return rejection(&self.layer, e),
        };
        if let Err(e) = self.policy.check_required_claims(&caller) {
            return rejection(&self.layer, e);
        }
        if !caller.has_role(&self.role) {
            tracing::warn!(
                subject = caller.subject().unwrap_or(""),
                role = %self.role,
                "POST /admin/revoke refused: the caller lacks the admin role"
            );
            return rejection(&self.layer, AuthError::forbidden());
        }
        // JSON only: a browser's cross-site form (text/plain, urlencoded) cannot send it, so
        // a cookie-borne admin token cannot be used from another site.
        let json = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return json_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"error": "invalid_request", "error_description": "send the body as Content-Type: application/json"}),
            );
        }
        let body: RevokeBody = match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(e) => {
                return bad_request(&format!(
                    "the body must be a JSON object with one of `token`, `jti` (with `iss`) or `sub` (with `iss`), and optionally `expires_in`: {e}"
                ));
            }
        };
        let ask = Ask {
            jti: body.jti,
            sub: body.sub,
            token: body.token,
            iss: body.iss,
            seconds: body.expires_in,
        };
        let planned = match ask.plan(self.default_issuer.clone(), member) {
            Ok(p) => p,
            Err(e) => return bad_request(&e),
        };
        let by = caller.subject().unwrap_or("");
        let pending = match &self.store {
            Store::Memory(m) => {
                m.revoke(planned.revocation);
                None
            }
            Store::Redis(r) => match r.revoke(planned.revocation).await {
                Ok(()) => None,
                Err(e) if e.is_pending() => Some(e.to_string()),
                Err(e) => {
                    return json_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"error": "temporarily_unavailable", "error_description": e.to_string()}),
                    );
                }
            },
        };
        tracing::info!(by, what = %planned.what, until = planned.until, pending = pending.is_some(), "revoked");
        match pending {
            None => json_response(
                StatusCode::OK,
                json!({"revoked": planned.what, "until": planned.until}),
            ),
            Some(p) => json_response(
                StatusCode::ACCEPTED,
                json!({"revoked": planned.what, "until": planned.until, "pending": p}),
            ),
        }
    }
}
