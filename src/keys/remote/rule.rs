//! Issuer rules: what an integration adds to the issuers of one issuer pattern: where
//! their keys are, what their tokens must carry beyond the usual claims, and which
//! issuers that match no pattern it refuses.
//!
//! The core knows no rule: a rule names its pattern and setting, and refuses with an
//! [`IssuerRefusal`] (a fixed message and a log-safe detail, both `'static`), which the
//! verifier turns into a 401 `invalid_token` answer with that message.

use std::fmt;

use crate::error::ConfigError;

/// Why an issuer rule refused a token: the fixed text of the answer's body and a
/// log-safe detail. Neither holds a value taken from the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IssuerRefusal {
    /// The answer's message (`{"error": "invalid_token", "message": ...}`).
    pub(crate) message: &'static str,
    /// What the error's `Display` says, for logs.
    pub(crate) detail: &'static str,
}

/// Where the issuers of a pattern keep their keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IssuerKeys {
    /// OIDC discovery at `<iss>/.well-known/openid-configuration` (the default).
    Discovery,
    /// A JWK set at this URL, derived from the issuer (checked like any configured URL).
    KeySet(String),
}

/// What a rule says of an issuer that matches no configured pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unmatched {
    /// Not an issuer of the rule's kind: no opinion.
    Unrelated,
    /// An issuer of the rule's kind on the rule's own host: not refused (by this rule).
    Own,
    /// An issuer of the rule's kind on a host the rule was not told to trust: refused,
    /// unless another rule calls it its [`Own`](Self::Own).
    Foreign(IssuerRefusal),
}

/// An integration's rule over the issuers of one pattern. Every check defaults to
/// "nothing more to check".
pub(crate) trait IssuerRule: fmt::Debug + Send + Sync + 'static {
    /// The setting that configuration errors about the rule name (a builder method).
    fn setting(&self) -> &'static str;

    /// The issuer pattern (as in `issuer_pattern`), checked; `allow_http` allows plain
    /// http beyond loopback hosts (the dangerous opt-in).
    fn pattern(&self, allow_http: bool) -> Result<String, ConfigError>;

    /// Where the keys of `iss`, an issuer of the pattern, are.
    fn keys(&self, iss: &str) -> IssuerKeys {
        let _ = iss;
        IssuerKeys::Discovery
    }

    /// Before any key is looked up or fetched: the header's `kid`.
    fn check_header(&self, kid: Option<&str>) -> Result<(), IssuerRefusal> {
        let _ = kid;
        Ok(())
    }

    /// After the signature, before the audience: `iss` (an issuer of the pattern) and
    /// the token's `sub`.
    fn check_claims(&self, iss: &str, sub: Option<&str>) -> Result<(), IssuerRefusal> {
        let _ = (iss, sub);
        Ok(())
    }

    /// An audience the pattern's tokens may name besides the configured ones. With one,
    /// `aud` is required of them.
    fn audience(&self) -> Option<&str> {
        None
    }

    /// Whether the token's roles and groups are read. `false` when the token's signer
    /// speaks only for itself (it could grant itself anything): the principal then has
    /// its subject and no roles or groups.
    fn reads_roles(&self) -> bool {
        true
    }

    /// What the rule says of `iss`, which matches no pattern; `origin` is the scheme and
    /// host (and port) of the rule's pattern.
    fn unmatched(&self, iss: &str, origin: &str) -> Unmatched {
        let _ = (iss, origin);
        Unmatched::Unrelated
    }

    /// Every message the rule refuses with: their answers are built once, with the
    /// authenticator's.
    fn messages(&self) -> &'static [&'static str] {
        &[]
    }
}
