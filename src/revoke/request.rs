//! [`RevocationRequest`]: one revocation as a caller asks for it (a token, a `jti` or a
//! subject, with an issuer and a duration), checked and turned into a [`Revocation`].
//! The admin endpoint reads it from JSON; the `portcullis revoke` command from its flags.

use serde::Deserialize;

use super::Revocation;
use crate::clock::{Clock, SystemClock};

/// How long a `jti` or subject revocation holds when the request does not say: 7 days.
pub const DEFAULT_REVOCATION_SECONDS: u64 = 7 * 86_400;
/// The longest a revocation may be asked to hold: 10 years.
pub const MAX_REVOCATION_SECONDS: u64 = 10 * 365 * 86_400;

/// One revocation as asked for: exactly one of `token`, `jti` or `sub`; `iss` for a `jti`
/// or subject; `expires_in` seconds from now (default 7 days for a `jti` or subject; a
/// token holds until its own `exp` unless given).
///
/// As JSON (the admin endpoint's body), unknown members are refused:
///
/// ```
/// use portcullis::revoke::RevocationRequest;
///
/// let ask: RevocationRequest = serde_json::from_str(r#"{"jti": "4f1c", "iss": "https://id.example"}"#)?;
/// let planned = ask.plan(None, |field| field)?;
/// assert_eq!(planned.what(), "jti `4f1c` of issuer `https://id.example`");
///
/// // The field names in messages are the caller's: a flag, a JSON member.
/// let mut ask = RevocationRequest::default();
/// ask.sub = Some("ada".into());
/// let err = ask.plan(None, |field| if field == "iss" { "--issuer" } else { field }).unwrap_err();
/// assert!(err.starts_with("--issuer is missing"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RevocationRequest {
    /// Revoke the token with this `jti` (with `iss`).
    pub jti: Option<String>,
    /// Revoke every token of this subject issued up to now (with `iss`).
    pub sub: Option<String>,
    /// Revoke this exact token (pasted as it comes: a scheme word and whitespace are
    /// taken off).
    pub token: Option<String>,
    /// The issuer of a `jti` or subject (`""` for tokens without `iss`).
    pub iss: Option<String>,
    /// Seconds the revocation holds from now.
    pub expires_in: Option<u64>,
}

/// A checked [`RevocationRequest`]: the revocation, what it revokes in words, and until
/// when.
#[derive(Debug, Clone)]
pub struct PlannedRevocation {
    revocation: Revocation,
    what: String,
    until: u64,
}

impl PlannedRevocation {
    /// The revocation to apply.
    pub fn revocation(&self) -> &Revocation {
        &self.revocation
    }

    /// The revocation, taken out.
    pub fn into_revocation(self) -> Revocation {
        self.revocation
    }

    /// What it revokes, in words (for logs and answers).
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Until when it holds (Unix seconds).
    pub fn until(&self) -> u64 {
        self.until
    }
}

impl RevocationRequest {
    /// Checks the request and makes the revocation. `default_issuer` stands in for a
    /// missing `iss` of a `jti` or subject. Messages name fields through `field`, which
    /// turns `jti`, `sub`, `token`, `iss` and `expires_in` into the caller's word for
    /// them (a flag, a JSON member).
    pub fn plan<'f>(
        self,
        default_issuer: Option<&str>,
        field: impl Fn(&'static str) -> &'f str,
    ) -> Result<PlannedRevocation, String> {
        let now = SystemClock.now();
        let count = [&self.jti, &self.sub, &self.token]
            .iter()
            .filter(|v| v.is_some())
            .count();
        if let Some(secs) = self.expires_in
            && !(1..=MAX_REVOCATION_SECONDS).contains(&secs)
        {
            return Err(format!(
                "{} must be from 1 second to 10 years ({MAX_REVOCATION_SECONDS} seconds)",
                field("expires_in")
            ));
        }
        if count != 1 {
            return Err(format!(
                "give exactly one of {}, {} and {}",
                field("jti"),
                field("sub"),
                field("token")
            ));
        }
        if let Some(token) = self.token {
            if self.iss.is_some() {
                return Err(format!(
                    "{} is read from the token itself; leave {} out",
                    field("iss"),
                    field("iss")
                ));
            }
            let revocation = match self.expires_in {
                Some(s) => Revocation::token_until(&token, now.saturating_add(s)),
                None => Revocation::token(&token),
            }
            .map_err(|e| {
                let e = e.to_string();
                if e.contains("no `exp`") {
                    format!(
                        "{}: the token has no `exp`; give {} for how long to refuse it",
                        field("token"),
                        field("expires_in")
                    )
                } else {
                    format!("{}: {e}", field("token"))
                }
            })?;
            let until = revocation.expires_at();
            return Ok(PlannedRevocation {
                revocation,
                what: "the token".to_owned(),
                until,
            });
        }
        let issuer = self
            .iss
            .or_else(|| default_issuer.map(str::to_owned))
            .ok_or_else(|| {
                format!(
                    "{} is missing: name the tokens' `iss` ('' for tokens without one), or set PORTCULLIS_ISSUER to the one issuer",
                    field("iss")
                )
            })?;
        let until = now.saturating_add(self.expires_in.unwrap_or(DEFAULT_REVOCATION_SECONDS));
        let shown = if issuer.is_empty() {
            "tokens without `iss`".to_owned()
        } else {
            format!("issuer `{issuer}`")
        };
        if let Some(jti) = self.jti {
            if jti.is_empty() {
                return Err(format!("{} is empty", field("jti")));
            }
            let what = format!("jti `{jti}` of {shown}");
            return Ok(PlannedRevocation {
                revocation: Revocation::jti(issuer, jti, until),
                what,
                until,
            });
        }
        let sub = self.sub.unwrap_or_default();
        if sub.is_empty() {
            return Err(format!("{} is empty", field("sub")));
        }
        // Every token issued up to now, this second included.
        let what = format!("every token of subject `{sub}` from {shown} issued up to now");
        Ok(PlannedRevocation {
            revocation: Revocation::subject(issuer, sub, now + 1, until),
            what,
            until,
        })
    }
}
