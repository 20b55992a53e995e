//! tonic support (feature `tonic`): status conversion, an [`AuthInterceptor`], and helpers
//! to read the principal in gRPC handlers.
//!
//! Two ways to guard a tonic server:
//!
//! - [`AuthLayer`](crate::AuthLayer) with `Server::builder().layer(...)`: the full check.
//!   It sees the method name, so it applies the [`Policy`]'s gRPC rules
//!   (per-method roles, public methods, the user-agent allow-list, the unmatched default),
//!   and answers with real gRPC statuses (trailers-only). Prefer it.
//! - [`AuthInterceptor`] with `XServer::with_interceptor(svc, interceptor)`: tonic gives an
//!   interceptor the metadata but not the method name, so it can authenticate the token,
//!   require roles and claims for the whole service, and put the [`Principal`] into the
//!   request extensions, but it cannot decide per method, nor make methods public. It
//!   runs synchronously, from keys already loaded: it never waits on the network.
//!
//! ```
//! use portcullis::grpc::{AuthInterceptor, principal};
//! use portcullis::{Algorithm, Authenticator, Signer};
//! use tonic::service::Interceptor;
//!
//! let secret = "0123456789abcdef0123456789abcdef";
//! let auth = Authenticator::builder().hmac_secret(secret).build()?;
//! let mut interceptor = AuthInterceptor::new(auth).require_any_role(["client"]);
//!
//! let token = Signer::hmac(Algorithm::HS256, secret)?
//!     .sign(&serde_json::json!({"sub": "c1", "role": "client", "exp": 4_000_000_000u64}))?;
//! let mut req = tonic::Request::new(());
//! req.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
//! let req = interceptor.call(req)?;
//! assert_eq!(principal(&req)?.subject(), Some("c1"));
//!
//! let status = interceptor.call(tonic::Request::new(())).unwrap_err();
//! assert_eq!(status.code(), tonic::Code::Unauthenticated);
//! assert_eq!(status.message(), "Missing token");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

use serde::de::DeserializeOwned;
use tonic::{Code, Status};

use crate::authn::Authenticator;
use crate::error::{AuthError, GrpcCode, Reason};
use crate::policy::{Policy, Target};
use crate::principal::Principal;

/// A guarded tonic service keeps its name, so it can be added to a tonic server one by
/// one: `Server::builder().add_service(layer.layer(GreeterServer::new(svc)))` with
/// `layer = AuthLayer::new(..).for_grpc()`. Then calls to services the server does not
/// serve answer `UNIMPLEMENTED` from tonic's router without reaching the layer, while
/// every method of a served service is judged by the policy (its deny-by-default included).
/// Guarding with `Server::builder().layer(..)` instead judges every call, served or not:
/// unknown services then get `PERMISSION_DENIED` (or `UNAUTHENTICATED`), which tells a
/// caller nothing about what the server serves.
impl<S: tonic::server::NamedService> tonic::server::NamedService for crate::layer::Auth<S> {
    const NAME: &'static str = S::NAME;
}

impl From<GrpcCode> for Code {
    fn from(code: GrpcCode) -> Self {
        match code {
            GrpcCode::Internal => Code::Internal,
            GrpcCode::Unavailable => Code::Unavailable,
            GrpcCode::Unauthenticated => Code::Unauthenticated,
            GrpcCode::PermissionDenied => Code::PermissionDenied,
        }
    }
}

impl From<AuthError> for Status {
    /// The status of the answer table, with the fixed message.
    fn from(err: AuthError) -> Self {
        Status::new(err.grpc_code().into(), err.message())
    }
}

/// A tonic interceptor that authenticates the `authorization` metadata.
///
/// What it checks: the token (scheme, format, signature, claims, as the
/// [`Authenticator`] is configured), that the caller holds one of the required roles (if
/// any), and the required claims (if any). What needs [`AuthLayer`](crate::AuthLayer)
/// instead: anything per method (roles per method, public methods such as health checks,
/// the user-agent allow-list), because tonic does not give interceptors the method name.
#[derive(Clone)]
pub struct AuthInterceptor {
    inner: Arc<Inner>,
}

struct Inner {
    authenticator: Authenticator,
    roles: Vec<String>,
    claims: Vec<(String, String)>,
    /// The roles and claims above as a policy: the interceptor decides through the same
    /// code as the layer, with a target that stands for any method of the service.
    policy: Policy,
}

impl std::fmt::Debug for AuthInterceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthInterceptor")
            .field("roles", &self.inner.roles)
            .finish_non_exhaustive()
    }
}

impl AuthInterceptor {
    /// An interceptor that accepts any valid token.
    pub fn new(authenticator: Authenticator) -> Self {
        Self {
            inner: Arc::new(Inner {
                authenticator,
                roles: Vec::new(),
                claims: Vec::new(),
                policy: Policy::for_service(&[], &[]),
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            authenticator: shared.authenticator.clone(),
            roles: shared.roles.clone(),
            claims: shared.claims.clone(),
            policy: shared.policy.clone(),
        });
        f(&mut inner);
        inner.policy = Policy::for_service(&inner.roles, &inner.claims);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Requires one of these roles for every method of the service (PERMISSION_DENIED
    /// otherwise). Default: any valid token. Roles compare exactly: the policy's role
    /// inheritance does not apply here, and `*` is a role name like any other (leave the
    /// list empty to accept any valid token).
    pub fn require_any_role<I, S>(self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let roles: Vec<String> = roles.into_iter().map(Into::into).collect();
        self.with(|i| i.roles.extend(roles))
    }

    /// Requires the claim `key` (a dotted path) to be a string equal to `value`, or an
    /// array containing it (PERMISSION_DENIED otherwise).
    pub fn require_claim(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        self.with(|i| i.claims.push((key, value)))
    }

    /// Checks a request's metadata and returns the principal, or the error to answer with.
    ///
    /// The roles and claims are decided by a [`Policy`] (one rule for every method, or
    /// any valid token without roles), through the same decision as
    /// [`AuthLayer`](crate::AuthLayer): required claims first, then roles.
    pub fn check(&self, metadata: &tonic::metadata::MetadataMap) -> Result<Principal, AuthError> {
        let inner = &self.inner;
        let mut values = metadata.get_all("authorization").iter();
        let value = values.next().ok_or_else(AuthError::missing)?;
        if values.next().is_some() {
            return Err(AuthError::invalid_request(Reason::DuplicateHeader));
        }
        let token = inner.authenticator.token_from_value(value.as_bytes())?;
        let principal = inner.authenticator.verify(token)?;
        // The interceptor sees neither the method nor the connection: it cannot check a
        // DPoP proof or a client certificate, so a token bound by `cnf`, one sent under
        // the DPoP scheme, or one of an issuer that requires DPoP never passes here (the
        // layer checks them).
        crate::sender::bearer_only(
            inner.authenticator.sender(),
            &principal,
            crate::sender::is_dpop_scheme(value.as_bytes()),
        )?;
        inner
            .policy
            .authorize(&principal, &Target::any_grpc_method())?;
        Ok(principal)
    }
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request.extensions_mut().remove::<Principal>();
        match self.check(request.metadata()) {
            Ok(principal) => {
                request.extensions_mut().insert(principal);
                Ok(request)
            }
            Err(err) => {
                tracing::debug!(error = %err, "gRPC request rejected by the interceptor");
                Err(err.into())
            }
        }
    }
}

/// The verified caller of a gRPC request, put there by [`AuthLayer`](crate::AuthLayer)
/// or [`AuthInterceptor`]. Without either (or on a public method) it is `INTERNAL`: the
/// service is misconfigured.
pub fn principal<T>(request: &tonic::Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| {
            AuthError::misuse("principal() without AuthLayer or AuthInterceptor in front").into()
        })
}

/// The verified token's claims, deserialized into `C`. Claims that do not fit are
/// `UNAUTHENTICATED` with `Invalid token`; the log (target `portcullis::extract`, DEBUG)
/// names the field that did not fit.
pub fn claims<C: DeserializeOwned, T>(request: &tonic::Request<T>) -> Result<C, Status> {
    principal(request)?.claims_path_as::<C>().map_err(|field| {
        let error = AuthError::invalid_token(Reason::ClaimsType(field));
        tracing::debug!(target: "portcullis::extract", error = %error, "claims do not fit the handler's type");
        error.into()
    })
}
