//! Authress: the tokens of an account's service clients, accepted through the core's
//! issuer rules ([`AuthressServiceClients`], feature `jwks`), and the Authress check API
//! answered from your access records ([`CheckApi`], feature `authress`). The calling side
//! (minting a service client's tokens) is in `client`. The guide:
//! [`guides::authress`](crate::guides::authress).

#[cfg(feature = "authress")]
mod check;
#[cfg(feature = "jwks")]
mod service_clients;

#[cfg(feature = "authress")]
#[cfg_attr(docsrs, doc(cfg(feature = "authress")))]
pub use check::{CheckApi, DEFAULT_CHECK_ROLE};
#[cfg(feature = "jwks")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
pub use service_clients::AuthressServiceClients;
