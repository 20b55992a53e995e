//! Claims: the registered claims checked, and the subject, roles and groups read out.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::{Authenticator, malformed};
use crate::error::{AuthError, Reason};
use crate::jose::json::{self, Scalar};
use crate::principal::Identity;

/// Latest NumericDate we accept (9999-12-31T23:59:59Z).
const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// A NumericDate: a non-negative JSON number no later than year 9999, fractions floored.
fn numeric_date(v: &Scalar<'_>) -> Option<u64> {
    match *v {
        Scalar::U64(u) => (u as f64 <= MAX_NUMERIC_DATE).then_some(u),
        Scalar::F64(f) => {
            (f.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(&f)).then_some(f as u64)
        }
        _ => None,
    }
}

fn claim(what: &'static str) -> AuthError {
    AuthError::invalid_token(Reason::Claim(what))
}

/// What the verifier keeps of a payload's claims: the identity for the principal, and the
/// registered claims the token cache and the revocation check need (borrowed).
pub(super) struct Read<'p> {
    pub(super) identity: Identity,
    pub(super) exp: Option<u64>,
    pub(super) nbf: Option<u64>,
    pub(super) iat: Option<u64>,
    pub(super) iss: Option<Cow<'p, str>>,
    pub(super) jti: Option<Cow<'p, str>>,
    pub(super) sub: Option<Cow<'p, str>>,
}

/// The registered claims we read, then the first member name of the role and groups paths.
const NAMES: [&str; 7] = ["exp", "nbf", "iat", "sub", "jti", "iss", "aud"];

impl Authenticator {
    /// Checks the claims of a verified payload and reads the caller's identity from them.
    /// Returns the identity, and the token's registered claims when present.
    pub(super) fn read_claims<'p>(&self, payload: &'p [u8]) -> Result<Read<'p>, AuthError> {
        self.read_claims_as(payload, false)
    }

    /// [`read_claims`](Self::read_claims), for a JWT's payload or, when `introspected`,
    /// an active introspection answer (RFC 7662 section 2.2): there `exp` and `iss` are
    /// optional (the authorization server vouched for the token just now; the caller
    /// checks the answer's `iss` against the introspection's issuers).
    pub(super) fn read_claims_as<'p>(
        &self,
        payload: &'p [u8],
        introspected: bool,
    ) -> Result<Read<'p>, AuthError> {
        let inner = &*self.inner;
        let role_head = inner.role_claim.names()[0].as_str();
        let groups_head = inner.groups_claim.names()[0].as_str();
        let names = [
            NAMES[0],
            NAMES[1],
            NAMES[2],
            NAMES[3],
            NAMES[4],
            NAMES[5],
            NAMES[6],
            role_head,
            groups_head,
            "cnf",
        ];
        let [exp, nbf, iat, sub, jti, iss, aud, roles, groups, cnf] =
            json::scan_object(payload, &names).map_err(malformed)?;
        let now = inner.clock.now();
        let leeway = inner.leeway;
        let exp = match exp.map(Scalar::of) {
            Some(v) => {
                let exp = numeric_date(&v).ok_or_else(|| claim("exp is not a NumericDate"))?;
                if exp.saturating_add(leeway) < now {
                    return Err(AuthError::invalid_token(Reason::Expired));
                }
                Some(exp)
            }
            None if inner.require_exp && !introspected => return Err(claim("exp missing")),
            None => None,
        };
        let nbf = match nbf.map(Scalar::of) {
            Some(v) => {
                let nbf = numeric_date(&v).ok_or_else(|| claim("nbf is not a NumericDate"))?;
                if nbf > now.saturating_add(leeway) {
                    return Err(claim("not valid yet (nbf)"));
                }
                Some(nbf)
            }
            None => None,
        };
        let iat = match iat.map(Scalar::of) {
            Some(v) => {
                let iat = numeric_date(&v).ok_or_else(|| claim("iat is not a NumericDate"))?;
                if iat > now.saturating_add(leeway) {
                    return Err(claim("issued in the future (iat)"));
                }
                Some(iat)
            }
            None => None,
        };
        let string = |v: Option<&'p RawValue>| match v.map(Scalar::of) {
            None => Ok(None),
            Some(Scalar::Str(s)) => Ok(Some(s)),
            Some(_) => Err(claim("sub or jti is not a string")),
        };
        let sub = string(sub)?;
        let jti = string(jti)?;
        let iss = match iss.map(Scalar::of) {
            Some(Scalar::Str(iss))
                if !inner.issuers.is_empty()
                    && !inner.issuers.iter().any(|i| *i == iss)
                    && !self.tenant_issuer(&iss) =>
            {
                return Err(claim("iss does not match"));
            }
            Some(Scalar::Str(iss)) => Some(iss),
            Some(_) => return Err(claim("iss is not a string")),
            None if !inner.issuers.is_empty() && !introspected => {
                return Err(claim("iss missing"));
            }
            None => None,
        };
        // The issuer rule of the token's pattern, if any: its checks, its audience, and
        // whether the token's roles and groups are read.
        let rule = self.issuer_rule(iss.as_deref(), sub.as_deref())?;
        self.check_audience(aud, rule.audience)?;

        let mut id = Identity::default();
        let sub_str = sub.as_deref();
        let (roles, groups) = if rule.reads_roles {
            (roles, groups)
        } else {
            (None, None)
        };
        let roles = roles.and_then(|raw| json::walk(raw, &inner.role_claim.names()[1..]));
        let groups = groups.and_then(|raw| json::walk(raw, &inner.groups_claim.names()[1..]));
        // One allocation for every string: their raw JSON lengths bound them.
        id.reserve(
            sub_str.map_or(0, str::len)
                + roles.map_or(0, |r| r.get().len())
                + groups.map_or(0, |g| g.get().len()),
        );
        if let Some(sub) = sub_str {
            id.subject(sub);
        }
        if cnf.is_some() {
            id.bound();
        }
        if let Some(raw) = roles {
            strings(raw, inner.split_roles, |s| id.role(s));
        }
        if let Some(raw) = groups {
            strings(raw, false, |s| id.group(s));
        }
        Ok(Read {
            identity: id,
            exp,
            nbf,
            iat,
            iss,
            jti,
            sub,
        })
    }

    /// Whether `iss` matches an issuer pattern (its keys were that issuer's own).
    fn tenant_issuer(&self, iss: &str) -> bool {
        #[cfg(feature = "jwks")]
        return self
            .inner
            .remote
            .as_ref()
            .and_then(|r| r.tenants.as_ref())
            .is_some_and(|t| t.matches(iss));
        #[cfg(not(feature = "jwks"))]
        {
            let _ = iss;
            false
        }
    }

    /// What the issuer rule of `iss`'s pattern says of the claims (feature `jwks`): its
    /// refusal, or its audience and whether roles are read.
    #[cfg(feature = "jwks")]
    fn issuer_rule(&self, iss: Option<&str>, sub: Option<&str>) -> Result<RuleView<'_>, AuthError> {
        let tenants = self.inner.remote.as_ref().and_then(|r| r.tenants.as_ref());
        let Some((iss, rule)) = iss.and_then(|iss| Some((iss, tenants?.rule_for(iss)?))) else {
            return Ok(RuleView::NONE);
        };
        rule.check_claims(iss, sub).map_err(super::refused)?;
        Ok(RuleView {
            audience: rule.audience(),
            reads_roles: rule.reads_roles(),
        })
    }

    /// Without remote keys there are no issuer rules.
    #[cfg(not(feature = "jwks"))]
    fn issuer_rule(
        &self,
        _iss: Option<&str>,
        _sub: Option<&str>,
    ) -> Result<RuleView<'_>, AuthError> {
        Ok(RuleView::NONE)
    }

    /// `aud` (a string or an array of strings): it must name a configured audience, or
    /// `extra` (an issuer rule's, for the tokens of its pattern); with neither, a token
    /// that carries `aud` is refused unless the dangerous opt-out is set.
    fn check_audience(&self, aud: Option<&RawValue>, extra: Option<&str>) -> Result<(), AuthError> {
        let inner = &*self.inner;
        let Some(raw) = aud else {
            return if inner.audiences.is_empty() && extra.is_none() {
                Ok(())
            } else {
                Err(claim("aud missing"))
            };
        };
        let mut any = false;
        let mut non_string = false;
        let shape = json::for_each_item(raw, |item, _| {
            match item {
                Some(a) => any |= inner.audiences.iter().any(|x| x == a) || extra == Some(a),
                None => non_string = true,
            }
            !non_string
        });
        match shape {
            json::Shape::Str | json::Shape::Array if non_string => {
                Err(claim("aud holds a non-string"))
            }
            json::Shape::Str | json::Shape::Array => {
                if !inner.audiences.is_empty() || extra.is_some() {
                    return if any {
                        Ok(())
                    } else {
                        Err(claim("aud does not match"))
                    };
                }
                if inner.check_audience {
                    return Err(claim(
                        "the token has aud but no audience is configured; set PORTCULLIS_AUDIENCE or .audience(..) to this service's name (or opt out with .dangerous().allow_unchecked_audience())",
                    ));
                }
                Ok(())
            }
            json::Shape::Other => Err(claim("aud is not a string or an array of strings")),
        }
    }
}

/// What the claim checks take from an issuer rule.
struct RuleView<'r> {
    /// An audience the token may name besides the configured ones (then `aud` is required).
    audience: Option<&'r str>,
    /// Whether the token's roles and groups are read.
    reads_roles: bool,
}

impl RuleView<'_> {
    /// No rule: the configured audiences only, roles and groups read.
    const NONE: Self = Self {
        audience: None,
        reads_roles: true,
    };
}

/// Reads a list of strings from a claim: a string (one item, or split on spaces when
/// `split`), or an array of strings (other items are passed over). Any other type yields
/// nothing, never an error.
fn strings(raw: &RawValue, split: bool, mut push: impl FnMut(&str)) {
    json::for_each_item(raw, |item, in_array| {
        match item {
            Some(s) if in_array => push(s),
            Some(s) if split => s.split(' ').filter(|p| !p.is_empty()).for_each(&mut push),
            Some(s) if !s.is_empty() => push(s),
            _ => {}
        }
        true
    });
}
