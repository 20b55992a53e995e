//! Kamiwaza-compatible read-outs (feature `kamiwaza`): `GET /auth/verify-token` (the
//! verified user) and `GET /auth/users/me/permissions` (the caller's effective rights,
//! roles and groups), in the shapes the `kamiwaza` Python client (PyPI `kamiwaza` 0.5.0,
//! module `kamiwaza_client`) parses.
//!
//! What that client sends and reads (read from its sources):
//! - `KamiwazaClient(base_url, api_key=...)` joins `base_url` and the path; an `api_key`
//!   goes out as `Authorization: Bearer <key>` on every request.
//! - `auth.verify_token(authorization)` sends `GET /auth/verify-token` with the token
//!   (a leading `Bearer ` stripped) in the cookie `access_token`, and validates the JSON
//!   as its pydantic `User`: `id` (UUID), `username`, `email` (a deliverable-looking
//!   address: reserved domains such as `.invalid` are refused) and `created_at` required;
//!   `full_name`, `organization_id`, `is_superuser`, `external_id`, `is_active`, `groups`
//!   (a list of UUIDs), `updated_at`, `last_login` optional.
//! - `auth.read_own_permissions(token)` sends `GET /auth/users/me/permissions?token=<token>`
//!   and validates `UserPermissions`: `user_id` (UUID), `rights`, `roles`, `groups` (lists
//!   of names).
//! - A 401 raises its `AuthenticationError` (after one retry when it has an `api_key`);
//!   any other status from 400 up raises `APIError` with the status and the body.
//!
//! Here the token comes from the `access_token` cookie, then the `Authorization` header,
//! and only with [`KamiwazaApi::dangerous_query_token`] from `?token=`: tokens in URLs end
//! up in access logs, browser history and `Referer` headers. It is verified by the layer's
//! authenticator (keys, issuer, audience, revocations) and must meet the layer's required
//! claims; refusals are the layer's answers (the answer table and its rejection hook),
//! never cached.
//!
//! Mapping onto portcullis, which keeps no user store: `id` is the name-based UUID
//! (version 5) of `portcullis:user:<sub>` in the URL namespace, for every `sub`, a
//! UUID-shaped one too (else a token whose `sub` spells another user's id would get that
//! id); groups likewise, `portcullis:group:<name>`. `external_id` is `sub`;
//! `username` is `preferred_username`, else `sub`; `email` the `email` claim, else
//! `<username>@<domain>` with [`KamiwazaApi::email_domain`], else null (which the client refuses);
//! `full_name` the `name` claim; `created_at` the token's `iat` (the Unix epoch without
//! it); `last_login` its `auth_time`. Rights, roles and groups come from the access
//! records ([`Authorizer::list`]): a group's statements give it roles, roles hold
//! permissions (rights), each listed once; without records, only the token's groups.

//!
//! ```
//! use axum::body::Body;
//! use portcullis::kamiwaza::KamiwazaApi;
//! use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Signer};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let secret = "0123456789abcdef0123456789abcdef";
//! let layer = AuthLayer::new(Authenticator::builder().hmac_secret(secret).build()?, Policy::builder().build()?);
//! let app = KamiwazaApi::new(layer).email_domain("users.example.com")?.into_router::<()>();
//! let token = Signer::hmac(Algorithm::HS256, secret)?
//!     .sign(&serde_json::json!({"sub": "ada", "iat": 1_700_000_000, "exp": 4_000_000_000u64}))?;
//! let req = http::Request::get("/auth/verify-token")
//!     .header("cookie", format!("access_token={token}")).body(Body::empty())?;
//! let res = app.clone().oneshot(req).await?;
//! assert_eq!(res.status(), 200);
//! let user: serde_json::Value = serde_json::from_slice(&axum::body::to_bytes(res.into_body(), 4096).await?)?;
//! assert_eq!(user["username"], "ada");
//! assert_eq!(user["email"], "ada@users.example.com");
//! assert_eq!(user["created_at"], "2023-11-14T22:13:20Z");
//! // No token: the layer's 401, not cached.
//! let res = app.oneshot(http::Request::get("/auth/verify-token").body(Body::empty())?).await?;
//! assert_eq!(res.status(), 401);
//! assert_eq!(res.headers()["cache-control"], "no-store");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! ```

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use serde_json::{Value, json};

use crate::error::{ConfigError, ConfigErrorKind};
use crate::{AuthError, AuthLayer, Authenticator, Authorizer, Policy, Principal, TokenSource};

/// What the handlers share.
struct Kamiwaza {
    layer: AuthLayer,
    auth: Authenticator,
    policy: Policy,
    records: Option<Authorizer>,
    sources: Vec<TokenSource>,
    query_token: bool,
    email_domain: Option<String>,
}

/// The Kamiwaza read-outs as an axum [`Router`]: `GET /auth/verify-token` and
/// `GET /auth/users/me/permissions`, for callers `layer`'s authenticator verifies (see the
/// [module](self) for the shapes and the mapping).
#[derive(Debug, Clone)]
pub struct KamiwazaApi {
    layer: AuthLayer,
    records: Option<Authorizer>,
    query_token: bool,
    email_domain: Option<String>,
}

impl KamiwazaApi {
    /// The read-outs for callers `layer` verifies: without records, rights and roles are
    /// empty and groups are the token's.
    pub fn new(layer: AuthLayer) -> Self {
        Self {
            layer,
            records: None,
            query_token: false,
            email_domain: None,
        }
    }

    /// The access records whose groups, roles and permissions are listed.
    #[must_use]
    pub fn records(mut self, records: Authorizer) -> Self {
        self.records = Some(records);
        self
    }

    /// Risk: tokens in URLs end up in access logs, browser history and `Referer` headers.
    /// Also accept the token in the `token` query parameter, as the kamiwaza client's
    /// `read_own_permissions` sends it (tried after the `access_token` cookie and the
    /// `Authorization` header). Off by default.
    #[must_use]
    pub fn dangerous_query_token(mut self) -> Self {
        self.query_token = true;
        self
    }

    /// The domain of the `email` answered for a token without an `email` claim
    /// (`<username>@domain`); the kamiwaza client requires an address. Default: none
    /// (`email` is null). A domain that is not letters, digits and `-` labels with at
    /// least one dot is a configuration error.
    pub fn email_domain(mut self, domain: &str) -> Result<Self, ConfigError> {
        let d = domain.trim();
        if !domain_ok(d) {
            return Err(ConfigError::new(
                ConfigErrorKind::Other,
                "KamiwazaApi::email_domain",
                format!(
                    "`{d}`: write a domain such as users.example.com (letters, digits, `-`, at least one dot)"
                ),
            ));
        }
        self.email_domain = Some(d.to_ascii_lowercase());
        Ok(self)
    }

    /// The router with both routes.
    pub fn into_router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let mut sources = vec![
            TokenSource::cookie("access_token"),
            TokenSource::Authorization,
        ];
        if self.query_token {
            tracing::warn!(
                "kamiwaza: /auth/verify-token and /auth/users/me/permissions accept ?token=; \
                 tokens in URLs end up in access logs, browser history and Referer headers"
            );
            sources.push(TokenSource::query("token"));
        }
        let k = Arc::new(Kamiwaza {
            auth: self.layer.authenticator().clone(),
            policy: self.layer.policy().clone(),
            layer: self.layer,
            records: self.records,
            sources,
            query_token: self.query_token,
            email_domain: self.email_domain,
        });
        Router::new()
            .route("/auth/verify-token", get(verify_token))
            .route("/auth/users/me/permissions", get(permissions))
            .with_state(k)
    }
}

fn domain_ok(d: &str) -> bool {
    d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

async fn verify_token(State(k): State<Arc<Kamiwaza>>, headers: HeaderMap, uri: Uri) -> Response {
    match k.caller(&headers, uri.query()).await {
        Ok((p, user_id)) => {
            let groups = k.groups(&p);
            json_response(&k.user(&p, &user_id, &groups))
        }
        Err(e) => k.reject(&e),
    }
}

async fn permissions(State(k): State<Arc<Kamiwaza>>, headers: HeaderMap, uri: Uri) -> Response {
    let (p, user_id) = match k.caller(&headers, uri.query()).await {
        Ok(c) => c,
        Err(e) => return k.reject(&e),
    };
    let body = match &k.records {
        Some(authz) => {
            let list = authz.list(&p);
            json!({
                "user_id": user_id,
                "rights": list.permissions(),
                "roles": list.roles(),
                "groups": list.groups(),
            })
        }
        None => json!({
            "user_id": user_id,
            "rights": [],
            "roles": [],
            "groups": token_groups(&p),
        }),
    };
    json_response(&body)
}

impl Kamiwaza {
    /// The verified caller and its user id (a UUID), or why it is refused.
    async fn caller(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(Principal, String), AuthError> {
        let token = self
            .auth
            .token_from_sources(&self.sources, headers, query)
            .inspect_err(|_| {
                if !self.query_token
                    && query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("token=")))
                {
                    tracing::debug!(
                        "kamiwaza: ?token= ignored (the query token is off); send the \
                         access_token cookie or the Authorization header"
                    );
                }
            })?;
        let p = self.auth.verify_async(token).await?;
        // No proof of possession is checked here: a sender-constrained token, or one that
        // needs DPoP, is refused as on every path that reads only a token.
        crate::sender::bearer_only(
            self.auth.sender(),
            &p,
            crate::sender::has_dpop_scheme(headers),
        )?;
        // The policy's required claims hold here as on `/auth`.
        self.policy.check_required_claims(&p)?;
        // The read-outs describe a user: a token that names none has nothing to show.
        let Some(sub) = p.subject() else {
            tracing::debug!("kamiwaza: the verified token has no `sub`");
            return Err(AuthError::forbidden());
        };
        let id = id_for("user", sub);
        Ok((p, id))
    }

    /// The effective groups: the records' memberships and the token's, else the token's.
    fn groups(&self, p: &Principal) -> Vec<String> {
        match &self.records {
            Some(authz) => authz.list(p).groups().to_vec(),
            None => token_groups(p),
        }
    }

    /// Kamiwaza's `User`.
    fn user(&self, p: &Principal, id: &str, groups: &[String]) -> Value {
        let sub = p.subject().unwrap_or_default();
        let text = |name: &str| p.claim(name).and_then(Value::as_str);
        let time = |name: &str| p.claim(name).and_then(Value::as_i64);
        let username = text("preferred_username")
            .filter(|u| !u.is_empty())
            .unwrap_or(sub);
        let email = match (text("email"), &self.email_domain) {
            (Some(e), _) => Some(e.to_owned()),
            (None, Some(domain)) => Some(format!("{}@{domain}", local_part(username, id))),
            (None, None) => None,
        };
        json!({
            "id": id,
            "username": username,
            "email": email,
            "full_name": text("name"),
            "organization_id": null,
            "is_superuser": false,
            "external_id": sub,
            "is_active": true,
            "groups": groups.iter().map(|g| id_for("group", g)).collect::<Vec<_>>(),
            "created_at": utc(time("iat").unwrap_or(0)),
            "updated_at": null,
            "last_login": time("auth_time").map(utc),
        })
    }

    /// The layer's answer (the answer table and the rejection hook); never cached.
    fn reject(&self, err: &AuthError) -> Response {
        tracing::debug!(error = %err, "kamiwaza: refused");
        let mut res = self.layer.rejection::<Body>(err.clone()).into_response();
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

fn token_groups(p: &Principal) -> Vec<String> {
    let mut g: Vec<String> = p.groups().map(str::to_owned).collect();
    g.sort_unstable();
    g.dedup();
    g
}

/// The username as an address's local part when it is a plain one, else the user id.
fn local_part<'a>(username: &'a str, id: &'a str) -> &'a str {
    let plain = !username.is_empty()
        && username.len() <= 64
        && !username.starts_with('.')
        && !username.ends_with('.')
        && !username.contains("..")
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    if plain { username } else { id }
}

fn json_response(body: &Value) -> Response {
    let mut res = crate::endpoint::json(StatusCode::OK, "application/json", body);
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `secs` (Unix time) as RFC 3339 in UTC, `2023-11-14T22:13:20Z`; the number itself
/// outside the years 1 to 9999.
fn utc(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// The version-5 UUID of `portcullis:<kind>:<name>` in the URL namespace (RFC 9562
/// section 5.5), so the same name gives the same id on every replica. Every name is
/// derived, a UUID-shaped one too: no name can choose its id, so no `sub` can pose as the
/// user whose derived id it spells.
fn id_for(kind: &str, name: &str) -> String {
    // The URL namespace, 6ba7b811-9dad-11d1-80b4-00c04fd430c8.
    const NAMESPACE_URL: [u8; 16] = [
        0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30,
        0xc8,
    ];
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&NAMESPACE_URL);
    ctx.update(format!("portcullis:{kind}:{name}").as_bytes());
    let digest = ctx.finish();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = crate::jose::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        // Python: uuid.uuid5(uuid.NAMESPACE_URL, "portcullis:user:ada")
        assert_eq!(
            id_for("user", "ada"),
            "9adbbe68-8f18-529b-81d8-e6a6bc49c2ed"
        );
        // A UUID-shaped name is derived too: ada's id as a `sub` is not ada.
        let ada = id_for("user", "ada");
        assert_eq!(id_for("user", &ada), "facd0c68-9106-5568-a36c-bbfe6758bcf7");
        let u = "6BA7B810-9DAD-11D1-80B4-00C04FD430C8";
        assert_eq!(id_for("user", u), "ee783e4f-d667-5631-8c94-97a8b90b8110");
        assert_ne!(id_for("user", u), id_for("user", &u.to_ascii_lowercase()));
        assert_ne!(id_for("user", "ada"), id_for("group", "ada"));
    }

    #[test]
    fn times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59Z");
        assert_eq!(utc(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn local_parts_and_domains() {
        assert_eq!(local_part("ada.l", "id"), "ada.l");
        assert_eq!(local_part("ada lovelace", "id"), "id");
        assert_eq!(local_part(".ada", "id"), "id");
        assert!(domain_ok("users.example.com"));
        assert!(!domain_ok("localhost") && !domain_ok("a..b") && !domain_ok("-a.b"));
    }
}
