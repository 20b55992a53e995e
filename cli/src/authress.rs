//! The flags of the Authress-compatible check API on `serve`: the library's
//! [`CheckApi`](portcullis::authress::CheckApi) answers it from the access records, so the
//! Authress SDKs' `authorize_user` and `get_user_permissions_for_resource` work against
//! portcullis unchanged.

use axum::Router;
use portcullis::authress::CheckApi;
use portcullis::{AuthLayer, Authorizer};

use crate::Fail;

/// The flags of the check API (a name of its own: clap groups flattened flags by it).
#[derive(clap::Args, Debug)]
pub(crate) struct AuthressFlags {
    /// The role a caller needs to check another user's permissions on the Authress check
    /// API (/v1/users/...): in its token's roles, or given to it by the access records.
    /// Checking one's own permissions needs none
    #[arg(
        long,
        value_name = "ROLE",
        env = "PORTCULLIS_AUTHRESS_CHECK_ROLE",
        default_value = "authress-check",
        help_heading = "Authress check API"
    )]
    authress_check_role: String,
}

/// The check API's routes, answered from `records` for callers `auth` verifies.
pub(crate) fn routes(
    layer: AuthLayer,
    records: Authorizer,
    flags: &AuthressFlags,
) -> Result<Router, Fail> {
    let api = CheckApi::new(layer, records)
        .check_role(&flags.authress_check_role)
        .map_err(|_| {
            Fail::usage(
                "--authress-check-role (PORTCULLIS_AUTHRESS_CHECK_ROLE) is empty; name the role that may check other users' permissions",
            )
        })?;
    Ok(api.into_router())
}
