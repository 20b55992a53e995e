//! Introspected tokens (RFC 7662, feature `introspection`): which tokens go to the
//! endpoint, and how an active answer becomes a principal in the verified-token cache.

use std::sync::Arc;

use base64::Engine;

use super::verify::revocation;
use super::{Authenticator, Step, TokenRef, cache, malformed};
use crate::clock::Clock;
use crate::error::{AuthError, ConfigError, ConfigErrorKind, Reason};
use crate::introspection::{Answer, Flight, Flights, Introspection, Introspector};
use crate::jose::{json, sha256, strict_b64};
use crate::keys::Mode;
use crate::keys::RemoteBuilder;
use crate::principal::Principal;

/// The introspection of one authenticator, and its flights.
pub(super) struct Introspected {
    pub(super) introspector: Introspector,
    pub(super) flights: Arc<Flights<Result<Principal, AuthError>>>,
}

impl Introspected {
    pub(super) fn new(introspector: Introspector) -> Self {
        let flights = Arc::new(Flights::new(introspector.max_in_flight()));
        Self {
            introspector,
            flights,
        }
    }
}

/// The builder's part: checks the settings and builds the introspection with the remote
/// key sets' HTTP client. Its issuers are accepted wherever issuers are listed.
pub(super) fn build(
    options: Option<Introspection>,
    cache_on: bool,
    issuers: &mut Vec<String>,
    remote: &mut RemoteBuilder,
    clock: Arc<dyn Clock>,
) -> Result<Option<Introspected>, ConfigError> {
    let Some(options) = options else {
        return Ok(None);
    };
    let fail = |e: String| ConfigError::new(ConfigErrorKind::RemoteKeys, "introspection", e);
    if !cache_on {
        return Err(fail(
            "introspection answers are cached in the verified-token cache, which is off; turn it on (PORTCULLIS_TOKEN_CACHE_ENTRIES > 0)"
                .into(),
        ));
    }
    if !issuers.is_empty() {
        for iss in options.answer_issuers() {
            if !issuers.contains(&iss) {
                issuers.push(iss);
            }
        }
    }
    let client = remote.http_client()?;
    let introspector =
        Introspector::new(options, client, clock, remote.allows_http()).map_err(fail)?;
    Ok(Some(Introspected::new(introspector)))
}

/// Whether `token` is shaped as a compact JWS: three non-empty base64url segments.
fn jwt_shaped(token: &str) -> bool {
    let mut parts = 0;
    for part in token.split('.') {
        parts += 1;
        if part.is_empty()
            || !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    parts == 3
}

/// The `iss` of a JWT-shaped token's payload, read without any check: only to pick the
/// way the token is checked.
fn unverified_iss(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = strict_b64().decode(payload).ok()?;
    let [iss] = json::scan_object(&bytes, &["iss"]).ok()?;
    json::Scalar::of(iss?).as_str().map(str::to_owned)
}

/// The 401 for a token the authorization server says is not active.
fn inactive() -> AuthError {
    AuthError::invalid_token(Reason::Claim("not active (introspection)"))
}

impl Authenticator {
    /// Whether `token` goes to introspection, and the step that says so: `None` for a
    /// token verified here. A token known inactive is refused at once; the sync path
    /// (which never waits) answers 503 and starts the introspection in the background.
    pub(super) fn introspection_step(&self, token: &str, mode: Mode) -> Option<Step> {
        let intro = self.inner.introspection.as_ref()?;
        let i = &intro.introspector;
        if token.len() > self.inner.max_token_bytes {
            return Some(Step::Fail(AuthError::invalid_request(Reason::TooLarge)));
        }
        let introspect = if jwt_shaped(token) {
            i.has_issuers() && unverified_iss(token).is_some_and(|iss| i.introspects_issuer(&iss))
        } else {
            i.opaque()
        };
        if !introspect {
            return None;
        }
        if i.known_inactive(&Introspector::key(token)) {
            return Some(Step::Fail(inactive()));
        }
        Some(match mode {
            Mode::Wait => Step::Introspect,
            Mode::Kick => {
                // As remote keys do on this path: the introspection starts in the
                // background (joining one in flight), so the token is answered from the
                // cache once it lands.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let this = self.clone();
                    let token: Box<str> = token.into();
                    runtime.spawn(async move {
                        let _ = this.introspect(&token).await;
                    });
                }
                Step::Fail(AuthError::introspection_unavailable())
            }
            Mode::Never => Step::Fail(AuthError::introspection_unavailable()),
        })
    }

    /// Introspects `token`: one request per token in flight, shared by every caller that
    /// asks meanwhile; the answer lands in the caches before the flight ends.
    pub(super) async fn introspect(&self, token: &str) -> Result<Principal, AuthError> {
        let Some(intro) = &self.inner.introspection else {
            return Err(AuthError::introspection_unavailable());
        };
        let key = Introspector::key(token);
        let recheck = || {
            let cache = self.inner.cache.as_ref()?;
            let hash = cache.hash(token.as_bytes());
            self.cached(cache, hash, token.as_bytes())
        };
        let this = self.clone();
        let owned: Box<str> = token.into();
        let flight = intro.flights.run(key, recheck, move || async move {
            this.introspect_now(&owned, key).await
        });
        match flight.await {
            Flight::Done(answer) => answer,
            Flight::Busy | Flight::Lost => Err(AuthError::introspection_unavailable()),
        }
    }

    /// One request to the endpoint, and its answer recorded.
    async fn introspect_now(&self, token: &str, key: [u8; 32]) -> Result<Principal, AuthError> {
        let Some(intro) = &self.inner.introspection else {
            return Err(AuthError::introspection_unavailable());
        };
        let i = &intro.introspector;
        match i.ask(token).await {
            Err(why) => {
                tracing::warn!(endpoint = i.name(), %why, "token introspection failed");
                Err(AuthError::introspection_unavailable())
            }
            Ok(Answer::Inactive) => {
                i.remember_inactive(key);
                Err(inactive())
            }
            Ok(Answer::Active(body)) => self.admit(token, &body),
        }
    }

    /// An active answer: its claims checked like a JWT's, the revocation store asked, and
    /// the principal cached until the answer's `exp`, at most the configured bound.
    fn admit(&self, token: &str, body: &[u8]) -> Result<Principal, AuthError> {
        let inner = &*self.inner;
        let Some(intro) = &inner.introspection else {
            return Err(AuthError::introspection_unavailable());
        };
        let i = &intro.introspector;
        // A sender-constrained token (RFC 7800 `cnf`, DPoP) is never a bearer token.
        let [cnf, token_type] =
            json::scan_object(body, &["cnf", "token_type"]).map_err(malformed)?;
        let dpop = token_type
            .map(json::Scalar::of)
            .as_ref()
            .and_then(json::Scalar::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("DPoP"));
        if cnf.is_some() || dpop {
            return Err(AuthError::invalid_token(Reason::Claim(
                "bound to a key (cnf): not a bearer token",
            )));
        }
        // An answer without `iss` (RFC 7662 makes it optional) speaks for the issuer the
        // token was sent here for: a JWT's own `iss` (it was routed by it), else the issuer
        // whose metadata named the endpoint, else the one issuer configured. The answer
        // then reads as if it named it, before its claims are judged, so that issuer's
        // rules apply and the principal names it.
        let [iss] = json::scan_object(body, &["iss"]).map_err(malformed)?;
        let accepted = i.answer_issuers();
        let with_issuer;
        let body = match iss {
            Some(_) => body,
            None => {
                let routed = if jwt_shaped(token) {
                    unverified_iss(token)
                } else {
                    None
                };
                let known = routed
                    .as_deref()
                    .or(i.discovered_issuer())
                    .or(match accepted {
                        [only] => Some(only.as_str()),
                        _ => None,
                    })
                    .or(match inner.issuers.as_slice() {
                        [only] => Some(only.as_str()),
                        _ => None,
                    });
                match known {
                    Some(iss) => {
                        with_issuer = with_iss(body, iss);
                        with_issuer.as_slice()
                    }
                    None => body,
                }
            }
        };
        let read = self.read_claims_as(body, true)?;
        if let Some(iss) = read.iss.as_deref()
            && !accepted.is_empty()
            && !accepted.iter().any(|a| a == iss)
        {
            return Err(AuthError::invalid_token(Reason::Claim(
                "iss of the introspection answer does not match",
            )));
        }
        let issuer = read
            .iss
            .as_deref()
            .or(accepted.first().map(String::as_str))
            .unwrap_or("");
        let now = inner.clock.now();
        let mut revocable = None;
        if let Some(store) = &inner.revocations {
            // Revoked by `jti` or `sub` like a JWT, or exactly: a JWT by the hash of its
            // signing input (as `Revocation::token` keys it), an opaque token by the hash
            // of all of it (`Revocation::opaque_token`), dots and all.
            let whole;
            let t = if jwt_shaped(token) {
                TokenRef::new(
                    issuer,
                    read.jti.as_deref(),
                    read.sub.as_deref(),
                    read.iat,
                    token,
                )
            } else {
                whole = sha256(token.as_bytes());
                TokenRef::hashed(
                    issuer,
                    read.jti.as_deref(),
                    read.sub.as_deref(),
                    read.iat,
                    &whole,
                )
            };
            revocation(&**store, &t)?;
            revocable = Some(cache::Revocable {
                iss: t.issuer().into(),
                jti: t.jti().map(Into::into),
                iat: t.issued_at(),
                sha: t.token_sha256(),
            });
        }
        let (exp, nbf, identity) = (read.exp, read.nbf, read.identity);
        // The principal holds an empty header and the answer as its claims.
        let mut buf = Vec::with_capacity(2 + body.len());
        buf.extend_from_slice(b"{}");
        buf.extend_from_slice(body);
        let principal = Principal::new(inner.answers.clone(), buf, 2, identity);
        if let Some(cache) = &inner.cache {
            let hash = cache.hash(token.as_bytes());
            let verified = cache::Verified {
                exp,
                nbf,
                source: None,
                revocable,
            };
            cache.insert_now(hash, token, &principal, verified, now, i.max_cache);
        }
        Ok(principal)
    }
}

/// The answer `body` (a JSON object without `iss`) with `iss` set to `issuer`, written as
/// text in front of its members, so that nothing else of the answer is read again.
fn with_iss(body: &[u8], issuer: &str) -> Vec<u8> {
    let start = body.iter().position(|&b| b == b'{').map_or(0, |i| i + 1);
    let rest = &body[start..];
    let empty = rest.iter().all(|b| b.is_ascii_whitespace() || *b == b'}');
    let name = serde_json::Value::from(issuer).to_string();
    let mut out = Vec::with_capacity(body.len() + name.len() + 8);
    out.extend_from_slice(b"{\"iss\":");
    out.extend_from_slice(name.as_bytes());
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(jwt_shaped("a.b.c"));
        assert!(jwt_shaped("eyJ-_.e30.AAAA"));
        for t in [
            "abc",
            "a.b",
            "a.b.c.d",
            "a..c",
            "a.b+.c",
            "a.b.c=",
            "2YotnFZFEjr1zCsicMWpAA",
        ] {
            assert!(!jwt_shaped(t), "{t}");
        }
    }
}
