//! Decisions and their reasons.

use std::fmt;

use super::extension::Refusal;
use crate::error::{AuthError, Reason};

/// What a policy does with a route that no rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Unmatched {
    /// Refuse it with 403 (the default: nothing is reachable unless a rule says so).
    #[default]
    Deny,
    /// Let any valid token through (FEDn's gRPC behaviour).
    Authenticated,
}

/// Why a request was allowed or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteReason {
    /// A public prefix covers the route.
    Public {
        /// The prefix as configured.
        prefix: String,
    },
    /// A rule allowed it.
    Rule {
        /// Position of the rule among the policy's HTTP rules, or among its gRPC rules.
        index: usize,
        /// The rule's method list (`*` for any).
        methods: String,
        /// The rule's path pattern.
        pattern: String,
        /// The caller's role that satisfied it (`*` for a rule open to any valid token).
        role: String,
    },
    /// No rule names the route and the policy lets any valid token through.
    UnmatchedAuthenticated,
    /// No rule names the route and the policy refuses it.
    UnmatchedDenied,
    /// Rules name the route but the caller holds none of their roles.
    MissingRole {
        /// The roles that would have been allowed.
        needs: Vec<String>,
    },
    /// A rule names the route and the caller holds one of its roles, but one of the
    /// rule's [conditions](crate::Condition) failed (and no other rule let it through).
    Condition {
        /// Position of the rule among the policy's HTTP rules, or among its gRPC rules.
        index: usize,
        /// The rule's method list (`*` for any).
        methods: String,
        /// The rule's path pattern.
        pattern: String,
        /// The condition that failed, as written (never the claim's or the request's
        /// value).
        condition: String,
    },
    /// A required claim is missing or different.
    RequiredClaim {
        /// The claim's name (its value is never reported).
        key: String,
    },
    /// A rule an integration added (a rule family of its own) allowed it.
    Extension {
        /// The rule's family, as its settings name it (`<family> rule 0`).
        family: &'static str,
        /// Position of the rule among its family's rules.
        index: usize,
        /// The rule's method list (`*` for any).
        methods: String,
        /// The rule's path pattern.
        pattern: String,
    },
    /// No ordinary rule let the caller through, and the first rule an integration added
    /// that names the route refused.
    ExtensionDenied {
        /// The rule's family, as its settings name it (`<family> rule 0`).
        family: &'static str,
        /// Position of the rule among its family's rules.
        index: usize,
        /// The rule's method list (`*` for any).
        methods: String,
        /// The rule's path pattern.
        pattern: String,
        /// The family's reason.
        refusal: Refusal,
    },
}

impl fmt::Display for RouteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Public { prefix } => write!(f, "public prefix `{prefix}`"),
            Self::Rule {
                index,
                methods,
                pattern,
                role,
            } => {
                write!(f, "rule {index} ({methods} {pattern}) allows role `{role}`")
            }
            Self::UnmatchedAuthenticated => {
                f.write_str("no rule names this route; any valid token passes")
            }
            Self::UnmatchedDenied => {
                f.write_str("no rule names this route; unmatched routes are denied")
            }
            Self::MissingRole { needs } => write!(
                f,
                "no role of the caller is named by the rules for this route (needs one of: {})",
                needs.join(", ")
            ),
            Self::Condition {
                index,
                methods,
                pattern,
                condition,
            } => write!(
                f,
                "rule {index} ({methods} {pattern}) needs {condition}, which does not hold"
            ),
            Self::RequiredClaim { key } => {
                write!(f, "required claim `{key}` is missing or different")
            }
            Self::Extension {
                family,
                index,
                methods,
                pattern,
            } => write!(
                f,
                "{family} rule {index} ({methods} {pattern}) lets the caller through"
            ),
            Self::ExtensionDenied {
                family,
                index,
                methods,
                pattern,
                refusal,
            } => write!(f, "{family} rule {index} ({methods} {pattern}): {refusal}"),
        }
    }
}

/// The outcome of a policy check, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    pub(super) allowed: bool,
    pub(super) reason: RouteReason,
}

impl RouteDecision {
    pub(super) fn allow(reason: RouteReason) -> Self {
        Self {
            allowed: true,
            reason,
        }
    }

    pub(super) fn deny(reason: RouteReason) -> Self {
        Self {
            allowed: false,
            reason,
        }
    }

    /// Whether the request may go on.
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// Which rule allowed it, or why nothing did.
    pub fn reason(&self) -> &RouteReason {
        &self.reason
    }

    /// The decision as a result: a refusal becomes a 403 [`AuthError`].
    pub fn into_result(self) -> Result<RouteReason, AuthError> {
        if self.allowed {
            Ok(self.reason)
        } else {
            Err(match &self.reason {
                RouteReason::RequiredClaim { key } => AuthError::new(
                    crate::AuthErrorKind::Forbidden,
                    Reason::RequiredClaim(key.clone()),
                ),
                other => AuthError::forbidden_because(other.to_string()),
            })
        }
    }
}

impl fmt::Display for RouteDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            if self.allowed { "allowed" } else { "denied" },
            self.reason
        )
    }
}
