//! Authress (feature `jwks`): the tokens of an account's service clients, accepted
//! through the core's issuer rules
//! ([`authress_service_clients`](crate::AuthenticatorBuilder::authress_service_clients)).
//! The calling side (minting a service client's tokens) is in `client`.

mod service_clients;

pub use service_clients::AuthressServiceClients;
