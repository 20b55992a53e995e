//! The flags of the Kamiwaza-compatible read-outs on `serve` (`GET /auth/verify-token`,
//! `GET /auth/users/me/permissions`): the library's
//! [`KamiwazaApi`](portcullis::kamiwaza::KamiwazaApi) answers them, in the shapes the
//! `kamiwaza` Python client parses.

use std::path::PathBuf;

use axum::Router;
use portcullis::kamiwaza::KamiwazaApi;
use portcullis::{AuthLayer, Authorizer};

use crate::Fail;

/// The flags of the Kamiwaza endpoints.
#[derive(clap::Args, Debug, Default, Clone)]
pub(crate) struct Flags {
    /// Risk: tokens in URLs end up in access logs, browser history and Referer headers.
    /// Also accept the token of /auth/verify-token and /auth/users/me/permissions in the
    /// `token` query parameter, as the kamiwaza client's read_own_permissions sends it
    /// (tried after the access_token cookie and the Authorization header). Off by default
    #[arg(
        long,
        env = "PORTCULLIS_KAMIWAZA_QUERY_TOKEN",
        help_heading = "Kamiwaza endpoints"
    )]
    kamiwaza_query_token: bool,
    /// Domain of the `email` answered for a token without an `email` claim
    /// (`<username>@DOMAIN`); the kamiwaza client requires an address. Default: none
    /// (email is null)
    #[arg(
        long,
        value_name = "DOMAIN",
        env = "PORTCULLIS_KAMIWAZA_EMAIL_DOMAIN",
        help_heading = "Kamiwaza endpoints"
    )]
    kamiwaza_email_domain: Option<String>,
    /// Access-record file whose groups, roles and permissions the Kamiwaza endpoints list
    /// (default: the --records file). Read once at start; the --records file reloads on
    /// change
    #[arg(
        long,
        value_name = "FILE",
        env = "PORTCULLIS_KAMIWAZA_RECORDS_FILE",
        help_heading = "Kamiwaza endpoints"
    )]
    kamiwaza_records: Option<PathBuf>,
}

/// The routes, checked from the flags; `records` are serve's `--records`.
pub(crate) fn routes(
    flags: &Flags,
    layer: AuthLayer,
    records: Option<Authorizer>,
) -> Result<Router, Fail> {
    let records = match &flags.kamiwaza_records {
        Some(path) => Some(
            Authorizer::from_file(path)
                .and_then(|a| a.issuers_of(layer.authenticator()))
                .map_err(|e| {
                    Fail::usage(format!(
                        "--kamiwaza-records (PORTCULLIS_KAMIWAZA_RECORDS_FILE): {e}"
                    ))
                })?,
        ),
        None => records,
    };
    let mut api = KamiwazaApi::new(layer);
    if let Some(records) = records {
        api = api.records(records);
    }
    if flags.kamiwaza_query_token {
        tracing::info!("--kamiwaza-query-token (PORTCULLIS_KAMIWAZA_QUERY_TOKEN) is on");
        api = api.dangerous_query_token();
    }
    match flags.kamiwaza_email_domain.as_deref().map(str::trim) {
        None | Some("") => {}
        Some(d) => {
            api = api.email_domain(d).map_err(|e| {
                Fail::usage(format!(
                    "--kamiwaza-email-domain (PORTCULLIS_KAMIWAZA_EMAIL_DOMAIN) {}",
                    e.message()
                ))
            })?;
        }
    }
    Ok(api.into_router())
}
