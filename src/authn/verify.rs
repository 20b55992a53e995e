//! The verification pipeline behind [`Authenticator::verify`]: the size cap and segments,
//! the JOSE header, the key, the signature, then the claims and the revocation check.

#[cfg(feature = "jwks")]
use std::sync::Arc;

use base64::Engine;

#[cfg(feature = "token-cache")]
use super::cache;
#[cfg(feature = "jwks")]
use super::refused;
use super::token::Credential;
use super::{Authenticator, KeyEpoch, RevocationStore, TokenRef, Verdict, claims, malformed};
use crate::error::{AuthError, Reason};
use crate::jose::{Algorithm, json, strict_b64, typ_matches};
use crate::keys::{Lookup, Mode, Pending, Selection};
use crate::principal::Principal;

/// Longest `kid` we look up; longer ones are refused.
const MAX_KID_LEN: usize = 256;

/// Why verification stopped before an answer.
pub(crate) enum Step {
    /// The answer is this error.
    Fail(AuthError),
    /// Keys must be fetched first (only with remote key sets, in [`Mode::Wait`]).
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    Fetch(Pending),
    /// The token must be introspected first (feature `introspection`, in [`Mode::Wait`]).
    #[cfg_attr(not(feature = "introspection"), allow(dead_code))]
    Introspect,
}

impl From<AuthError> for Step {
    fn from(e: AuthError) -> Self {
        Self::Fail(e)
    }
}

impl From<Lookup> for Step {
    fn from(l: Lookup) -> Self {
        match l {
            Lookup::NoKey(s) => Self::Fail(no_key_error(s)),
            Lookup::Unavailable => Self::Fail(AuthError::keys_unavailable()),
            Lookup::Fetch(p) => Self::Fetch(p),
        }
    }
}

impl Step {
    /// The answer of a path that cannot wait.
    pub(crate) fn into_error(self) -> AuthError {
        match self {
            Self::Fail(e) => e,
            // Only `Mode::Wait` asks for a fetch; answer as if no keys were loaded.
            Self::Fetch(_) => AuthError::keys_unavailable(),
            Self::Introspect => AuthError::introspection_unavailable(),
        }
    }
}

/// The 401 for a token no key fits.
fn no_key_error(e: Selection) -> AuthError {
    AuthError::invalid_token(Reason::NoKey(match e {
        Selection::NoKey => "no key for this token",
        Selection::Ambiguous => "several keys fit and the token names no kid",
        Selection::WrongAlgorithm => "the token's alg is not the key's",
    }))
}

/// The answer of a revocation store, as the verifier's result.
pub(super) fn revocation(
    store: &dyn RevocationStore,
    token: &TokenRef<'_>,
) -> Result<(), AuthError> {
    match store.check(token) {
        Verdict::Valid => Ok(()),
        Verdict::Revoked => Err(AuthError::revoked()),
        Verdict::Unavailable => Err(AuthError::revocation_unavailable()),
    }
}

/// The header parameters we look at, after the strict parse.
struct Header<'a> {
    alg: Algorithm,
    kid: Option<std::borrow::Cow<'a, str>>,
}

/// The three segments of a compact JWS.
pub(super) struct Segments<'t> {
    header: &'t str,
    payload: &'t str,
    signature: &'t str,
    /// `header.payload`: what the signature covers.
    signed: &'t str,
}

fn segments(token: &str) -> Result<Segments<'_>, AuthError> {
    // `str::find` with an ASCII char scans a word at a time (memchr), not byte by byte.
    let Some(d1) = token.find('.') else {
        return Err(malformed("not three segments"));
    };
    let Some(d2) = token[d1 + 1..].find('.').map(|i| i + d1 + 1) else {
        return Err(malformed("not three segments"));
    };
    if token.as_bytes()[d2 + 1..].contains(&b'.') {
        return Err(malformed("not three segments"));
    }
    let (header, payload, signature) = (&token[..d1], &token[d1 + 1..d2], &token[d2 + 1..]);
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(malformed("empty segment"));
    }
    Ok(Segments {
        header,
        payload,
        signature,
        signed: &token[..d2],
    })
}

impl Authenticator {
    pub(super) fn verify_mode(&self, token: &str, mode: Mode) -> Result<Principal, Step> {
        self.verify_credential(Credential::text(token), mode)
    }

    /// Verifies a credential. The verified-token cache is asked first, with the bytes as
    /// they came: a cached token is byte for byte one that passed every check, so the
    /// format and JWS checks run only on a miss.
    pub(super) fn verify_credential(
        &self,
        credential: Credential<'_>,
        mode: Mode,
    ) -> Result<Principal, Step> {
        let inner = &*self.inner;
        #[cfg(feature = "token-cache")]
        let cached = match &inner.cache {
            Some(cache) => {
                let hash = cache.hash(credential.bytes);
                if let Some(answer) = self.cached(cache, hash, credential.bytes) {
                    return answer.map_err(Step::Fail);
                }
                Some((cache, hash))
            }
            _ => None,
        };
        let token = credential.checked()?;
        #[cfg(feature = "introspection")]
        if let Some(step) = self.introspection_step(token, mode) {
            return Err(step);
        }
        let seg = self.segments(token)?;
        let (buf, header_len, source) = self.check_jws(seg, mode)?;
        let claims::Read {
            identity,
            exp,
            nbf,
            iat,
            iss,
            jti,
            sub,
        } = self.read_claims(&buf[header_len..])?;
        // RFC 9068 explicit typing per issuer: an ID token of that issuer, with the same
        // claims, is not an access token.
        if let Some(want) = iss.as_deref().and_then(|i| {
            inner
                .typ_by_issuer
                .iter()
                .find_map(|(iss, typ)| (iss == i).then_some(typ))
        }) {
            check_issuer_typ(&buf[..header_len], want)?;
        }
        #[cfg(feature = "token-cache")]
        let mut revocable = None;
        if let Some(store) = &inner.revocations {
            let t = TokenRef::new(
                iss.as_deref().unwrap_or(""),
                jti.as_deref(),
                sub.as_deref(),
                iat,
                token,
            );
            revocation(&**store, &t)?;
            // Kept with the cache entry (so a hit checks by look-up), only when the token
            // is about to be cached: on its second sight.
            #[cfg(feature = "token-cache")]
            if let Some((cache, hash)) = cached
                && cache.admits(hash)
            {
                revocable = Some(cache::Revocable {
                    iss: t.issuer().into(),
                    jti: t.jti().map(Into::into),
                    iat: t.issued_at(),
                    sha: t.token_sha256(),
                });
            }
        }
        // The claims borrowed from the buffer end here; the principal takes it.
        drop((iss, jti, sub));
        #[cfg(not(feature = "token-cache"))]
        let _ = (exp, nbf);
        let principal = Principal::new(inner.answers.clone(), buf, header_len, identity);
        #[cfg(feature = "token-cache")]
        if let Some((cache, hash)) = cached {
            let verified = cache::Verified {
                exp,
                nbf,
                source,
                revocable,
            };
            cache.insert(
                hash,
                token,
                &principal,
                verified,
                inner.clock.now(),
                inner.leeway,
            );
        }
        #[cfg(not(feature = "token-cache"))]
        let _ = source;
        Ok(principal)
    }

    /// The verified-token cache's answer for a token, if it has one: a hit is checked
    /// against revocation like a fresh verification, from what the entry kept (an entry
    /// without it, cached in a race with its admission, is verified again, never passed
    /// unchecked).
    #[cfg(feature = "token-cache")]
    pub(super) fn cached(
        &self,
        cache: &cache::Cache,
        hash: u64,
        bytes: &[u8],
    ) -> Option<Result<Principal, AuthError>> {
        let inner = &*self.inner;
        let check = |entry: &cache::Entry| match (&inner.revocations, &entry.revocable) {
            (None, _) => Ok(true),
            (Some(store), Some(r)) => {
                let t = TokenRef::hashed(
                    &r.iss,
                    r.jti.as_deref(),
                    entry.principal.subject(),
                    r.iat,
                    &r.sha,
                );
                revocation(&**store, &t).map(|()| true)
            }
            (Some(_), None) => Ok(false),
        };
        let found = cache.lookup(hash, bytes, inner.clock.now(), inner.leeway, check);
        crate::metrics::token_cache(matches!(found, cache::Found::Hit(_)));
        match found {
            cache::Found::Hit(principal) => Some(Ok(principal)),
            cache::Found::Refused(e) => {
                if e.is_revoked() {
                    cache.invalidate(hash);
                }
                Some(Err(e))
            }
            cache::Found::Miss => None,
        }
    }

    /// Checks the JWS layer and returns one buffer with the decoded header, then the
    /// decoded payload, where the payload starts, and the remote set whose key verified
    /// it (with its key epoch).
    pub(super) fn check_jws(
        &self,
        seg: Segments<'_>,
        mode: Mode,
    ) -> Result<(Vec<u8>, usize, Option<KeyEpoch>), Step> {
        let b64 = strict_b64();
        // One buffer for both: the header, then the payload (decoded now, its errors
        // reported where they were always reported: after the signature).
        let mut buf = Vec::with_capacity(
            base64::decoded_len_estimate(seg.header.len())
                + base64::decoded_len_estimate(seg.payload.len()),
        );
        b64.decode_vec(seg.header, &mut buf)
            .map_err(|_| malformed("header is not strict base64url"))?;
        let header_len = buf.len();
        let payload_ok = b64.decode_vec(seg.payload, &mut buf).is_ok();
        let (header_bytes, payload) = buf.split_at(header_len);
        let header = self.check_header(header_bytes)?;
        #[cfg(feature = "jwks")]
        let snapshot;
        #[cfg(feature = "jwks")]
        let mut source = None;
        #[cfg(feature = "jwks")]
        let key = match self.remote_set(payload_ok.then_some(payload), header.kid.as_deref())? {
            Some(set) => {
                // The epoch first, then the keys: a key swapped out after this load is
                // recorded under the old epoch.
                source = Some(KeyEpoch {
                    set: set.clone(),
                    epoch: set.epoch(),
                });
                snapshot = set.snapshot();
                set.select(&snapshot, header.kid.as_deref(), header.alg, mode)?
            }
            None => self.static_key(&header)?,
        };
        #[cfg(not(feature = "jwks"))]
        let (key, source) = {
            let _ = (mode, payload);
            (self.static_key(&header)?, None)
        };
        if !key.verify(seg.signature, seg.signed.as_bytes(), header.alg) {
            return Err(AuthError::invalid_token(Reason::BadSignature).into());
        }
        if !payload_ok {
            return Err(malformed("payload is not strict base64url").into());
        }
        drop(header);
        Ok((buf, header_len, source))
    }

    /// The size cap, then the three segments of a compact JWS.
    pub(super) fn segments<'t>(&self, token: &'t str) -> Result<Segments<'t>, AuthError> {
        if token.len() > self.inner.max_token_bytes {
            return Err(AuthError::invalid_request(Reason::TooLarge));
        }
        segments(token)
    }

    fn static_key(&self, header: &Header<'_>) -> Result<&crate::keys::VerifyingKey, AuthError> {
        self.inner
            .keys
            .select(header.kid.as_deref(), header.alg)
            .map_err(no_key_error)
    }

    /// The remote set a token's key comes from, if any: the one bound to its `iss`, else
    /// the one for any token. `kid`: the header's, for the issuer rules' checks.
    #[cfg(feature = "jwks")]
    fn remote_set(
        &self,
        payload: Option<&[u8]>,
        kid: Option<&str>,
    ) -> Result<Option<Arc<crate::keys::RemoteSet>>, AuthError> {
        let Some(remote) = &self.inner.remote else {
            return Ok(None);
        };
        // The token's `iss` picks its issuer's keys (a map look-up), so the claims are
        // read before the signature; `iss` is checked again with the other claims.
        if remote.by_issuer.is_empty() && remote.tenants.is_none() {
            return Ok(remote.any.clone());
        }
        let payload = payload.ok_or_else(|| malformed("payload is not strict base64url"))?;
        let [iss] = json::scan_object(payload, &["iss"]).map_err(malformed)?;
        let iss = iss.map(json::Scalar::of);
        let Some(iss) = iss.as_ref().and_then(json::Scalar::as_str) else {
            return Ok(remote.any.clone());
        };
        if let Some(set) = remote.by_issuer.get(iss) {
            return Ok(Some(set.clone()));
        }
        if let Some(tenants) = &remote.tenants
            && tenants.matches(iss)
        {
            // An issuer rule's header checks come before any fetch.
            if let Some(rule) = tenants.rule_for(iss) {
                rule.check_header(kid).map_err(refused)?;
            }
            // A pattern's issuer uses its own discovered keys and no others; refused
            // without a fetch when the discovery budget is spent or it failed lately.
            return tenants
                .set_for(iss)
                .map(Some)
                .ok_or_else(|| AuthError::invalid_token(Reason::NoKey("issuer not known (yet)")));
        }
        if let Some(tenants) = &remote.tenants {
            // An issuer of a rule's kind on a host no rule was told to trust.
            tenants.unmatched(iss).map_err(refused)?;
        }
        Ok(remote.any.clone())
    }

    fn check_header<'h>(&self, bytes: &'h [u8]) -> Result<Header<'h>, AuthError> {
        use json::Scalar;
        let bad_alg = |what| AuthError::invalid_token(Reason::BadAlgorithm(what));
        let [alg, kid, typ, cty, b64, crit, enc, zip] = json::scan_object(
            bytes,
            &["alg", "kid", "typ", "cty", "b64", "crit", "enc", "zip"],
        )
        .map_err(malformed)?;
        let alg = match alg.map(Scalar::of) {
            Some(Scalar::Str(s)) => s
                .parse::<Algorithm>()
                .map_err(|_| bad_alg("none, unknown or unsupported"))?,
            Some(_) => return Err(bad_alg("alg is not a string")),
            None => return Err(bad_alg("no alg")),
        };
        if enc.is_some() || zip.is_some() {
            return Err(malformed("encrypted or compressed token (JWE)"));
        }
        if let Some(cty) = cty.map(Scalar::of) {
            let cty = cty
                .as_str()
                .ok_or_else(|| malformed("cty is not a string"))?;
            if cty.eq_ignore_ascii_case("JWT") || cty.eq_ignore_ascii_case("application/jwt") {
                return Err(malformed("nested token (cty JWT)"));
            }
        }
        match b64.map(Scalar::of) {
            None | Some(Scalar::Bool(true)) => {}
            Some(_) => return Err(malformed("unencoded payload (b64)")),
        }
        if crit.is_some() {
            self.check_crit(bytes)?;
        }
        if let Some(want) = &self.inner.typ {
            let typ = typ.map(Scalar::of);
            let typ = typ
                .as_ref()
                .and_then(Scalar::as_str)
                .ok_or_else(|| malformed("typ missing"))?;
            if !typ_matches(typ, want) {
                return Err(malformed("typ is not the required type"));
            }
        }
        let kid = match kid.map(Scalar::of) {
            None => None,
            Some(Scalar::Str(k)) if k.len() <= MAX_KID_LEN => Some(k),
            Some(_) => return Err(malformed("kid is not a short string")),
        };
        Ok(Header { alg, kid })
    }

    /// `crit`: every name must be one the application declared and present in the header.
    /// Rare (no name is understood by default), so it reads the header in full.
    fn check_crit(&self, bytes: &[u8]) -> Result<(), AuthError> {
        let header = json::object(bytes).map_err(malformed)?;
        let Some(crit) = header.get("crit") else {
            return Ok(());
        };
        let names = crit
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| malformed("crit is not a non-empty array"))?;
        for name in names {
            let name = name
                .as_str()
                .ok_or_else(|| malformed("crit holds a non-string"))?;
            if !self.inner.crit.iter().any(|c| c == name) || !header.contains_key(name) {
                return Err(malformed("crit names a parameter we do not understand"));
            }
        }
        Ok(())
    }
}

/// The required `typ` of tokens of one issuer, when one is configured: checked after
/// the signature and claims, once the token's `iss` is known.
pub(super) fn check_issuer_typ(header: &[u8], want: &str) -> Result<(), AuthError> {
    use json::Scalar;
    let [typ] = json::scan_object(header, &["typ"]).map_err(malformed)?;
    let typ = typ.map(Scalar::of);
    let typ = typ
        .as_ref()
        .and_then(Scalar::as_str)
        .ok_or_else(|| malformed("typ missing (the issuer's tokens must be typed)"))?;
    if typ_matches(typ, want) {
        Ok(())
    } else {
        Err(malformed("typ is not the issuer's required type"))
    }
}

#[cfg(test)]
mod tests {
    use crate::jose::typ_matches;

    /// NumericDates with a fraction (RFC 7519 section 2) verify, and their claims read
    /// back as numbers, whatever features of serde_json the build turns on (`.ci/run`
    /// runs the library's unit tests with `arbitrary_precision` too).
    #[test]
    fn fractional_numeric_dates_verify() {
        use crate::{Algorithm, Authenticator, Signer};
        let secret = "0123456789abcdef0123456789abcdef";
        let auth = Authenticator::builder()
            .hmac_secret(secret)
            .build()
            .unwrap();
        let sign = |claims| {
            Signer::hmac(Algorithm::HS256, secret)
                .unwrap()
                .sign(&claims)
        };
        let token = sign(serde_json::json!({
            "sub": "ada", "exp": 4_000_000_000.5, "nbf": 1.5, "iat": 1_700_000_000.25,
        }))
        .unwrap();
        let p = auth.verify(&token).unwrap();
        assert_eq!(p.subject(), Some("ada"));
        assert_eq!(p.claims()["exp"].as_f64(), Some(4_000_000_000.5));
        let expired = sign(serde_json::json!({"sub": "ada", "exp": 1_000_000_000.5})).unwrap();
        assert!(auth.verify(&expired).is_err());
    }

    /// RFC 9068 section 2.1 with RFC 7515 section 4.1.9: `application/` is implied when
    /// the value has no `/`; media types compare case-insensitively.
    #[test]
    fn typ_media_types() {
        for (typ, want, same) in [
            ("at+jwt", "at+jwt", true),
            ("application/at+jwt", "at+jwt", true),
            ("AT+JWT", "application/at+jwt", true),
            ("Application/At+Jwt", "at+jwt", true),
            ("JWT", "at+jwt", false),
            ("jwt", "at+jwt", false),
            ("", "at+jwt", false),
            ("text/at+jwt", "at+jwt", false),
            ("application/application/at+jwt", "at+jwt", false),
            ("at+jwt ", "at+jwt", false),
            ("application/at+jwt; charset=utf-8", "at+jwt", false),
        ] {
            assert_eq!(typ_matches(typ, want), same, "{typ:?} vs {want:?}");
        }
    }
}
