//! The `PORTCULLIS_INTROSPECTION_*` variables, read by [`EnvConfig`](crate::EnvConfig).

use std::time::Duration;

use super::{ClientAuth, Introspection};
use crate::error::{ConfigError, ConfigErrorKind};

/// Every variable this file reads, for the error without the feature.
pub(crate) const VARS: [&str; 9] = [
    "PORTCULLIS_INTROSPECTION_URL",
    "PORTCULLIS_INTROSPECTION_ISSUER",
    "PORTCULLIS_INTROSPECTION_CLIENT_ID",
    "PORTCULLIS_INTROSPECTION_CLIENT_SECRET",
    "PORTCULLIS_INTROSPECTION_AUTH",
    "PORTCULLIS_INTROSPECTION_JWT_ISSUERS",
    "PORTCULLIS_INTROSPECTION_OPAQUE",
    "PORTCULLIS_INTROSPECTION_CACHE_SECONDS",
    "PORTCULLIS_INTROSPECTION_INACTIVE_SECONDS",
];

fn error(var: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::new(ConfigErrorKind::RemoteKeys, var, why)
}

/// The introspection the variables describe, if any (`get` returns a set, non-empty
/// value).
pub(crate) fn from_vars(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Introspection>, ConfigError> {
    let url = get("PORTCULLIS_INTROSPECTION_URL");
    let issuer = get("PORTCULLIS_INTROSPECTION_ISSUER");
    if url.is_none() && issuer.is_none() {
        if let Some(var) = VARS[2..].iter().find(|v| get(v).is_some()) {
            return Err(error(
                var,
                "introspection settings without an endpoint; set PORTCULLIS_INTROSPECTION_URL or PORTCULLIS_INTROSPECTION_ISSUER",
            ));
        }
        return Ok(None);
    }
    let id = get("PORTCULLIS_INTROSPECTION_CLIENT_ID").ok_or_else(|| {
        error(
            "PORTCULLIS_INTROSPECTION_CLIENT_ID",
            "introspection needs the client id the authorization server registered for this service",
        )
    })?;
    let secret = get("PORTCULLIS_INTROSPECTION_CLIENT_SECRET").ok_or_else(|| {
        error(
            "PORTCULLIS_INTROSPECTION_CLIENT_SECRET",
            "introspection needs the client's secret",
        )
    })?;
    let (id, secret) = (id.trim().to_owned(), secret.trim().to_owned());
    let mut intro = match (url, issuer) {
        (Some(url), None) => Introspection::new(url.trim(), id, secret),
        (None, Some(iss)) => Introspection::discover(iss.trim(), id, secret),
        _ => {
            return Err(error(
                "PORTCULLIS_INTROSPECTION_URL",
                "set either PORTCULLIS_INTROSPECTION_URL or PORTCULLIS_INTROSPECTION_ISSUER, not both",
            ));
        }
    };
    if let Some(v) = get("PORTCULLIS_INTROSPECTION_AUTH") {
        let auth = ClientAuth::parse(&v)
            .filter(|a| *a != ClientAuth::PrivateKeyJwt)
            .ok_or_else(|| {
                error(
                    "PORTCULLIS_INTROSPECTION_AUTH",
                    "use client_secret_basic or client_secret_post (private_key_jwt is set in code, with Introspection::private_key)",
                )
            })?;
        intro = intro.client_auth(auth);
    }
    for iss in get("PORTCULLIS_INTROSPECTION_JWT_ISSUERS")
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        intro = intro.issuer(iss);
    }
    if let Some(v) = get("PORTCULLIS_INTROSPECTION_OPAQUE") {
        intro = intro.opaque_tokens(match v.trim() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => {
                return Err(error(
                    "PORTCULLIS_INTROSPECTION_OPAQUE",
                    "use `true` or `false`",
                ));
            }
        });
    }
    let seconds = |var: &str| -> Result<Option<Duration>, ConfigError> {
        get(var)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| error(var, "not a whole number of seconds"))
            })
            .transpose()
    };
    if let Some(d) = seconds("PORTCULLIS_INTROSPECTION_CACHE_SECONDS")? {
        intro = intro.max_cache(d);
    }
    if let Some(d) = seconds("PORTCULLIS_INTROSPECTION_INACTIVE_SECONDS")? {
        intro = intro.inactive_cache(d);
    }
    Ok(Some(intro))
}
