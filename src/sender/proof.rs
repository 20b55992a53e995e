//! One DPoP proof (RFC 9449 section 4.2), checked as section 4.3 says: its form, `typ`,
//! an asymmetric `alg` of the allow-list, a public `jwk` in the header, the signature by
//! that key, and the claims the request checks compare. The RFC 7638 thumbprint of the
//! key comes out with it.

use base64::Engine;
use serde_json::{Map, Value};

use crate::jose::{Algorithm, Family, Key, json, sha256, strict_b64, typ_matches};

/// Largest proof we read: an RSA 4096 key in the header and its signature fit well.
pub(super) const MAX_PROOF_BYTES: usize = 8 * 1024;
/// Longest `jti` we remember.
const MAX_JTI: usize = 256;

/// JWK members that hold private key material (RFC 7518 section 6): a proof whose `jwk`
/// has any of them is refused (RFC 9449 section 4.3, point 7).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// What a checked proof says.
#[derive(Debug)]
pub(super) struct Proof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key, base64url.
    pub(super) jkt: String,
    pub(super) jti: String,
    pub(super) htm: String,
    pub(super) htu: String,
    pub(super) iat: u64,
    pub(super) ath: Option<String>,
    pub(super) nonce: Option<String>,
}

fn str_member<'m>(map: &'m Map<String, Value>, name: &str) -> Option<&'m str> {
    map.get(name).and_then(Value::as_str)
}

/// Checks the proof's form, header, key and signature, and reads its claims. The error is
/// a log-safe detail.
pub(super) fn verify(proof: &str, algs: &[Algorithm]) -> Result<Proof, &'static str> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err("proof larger than the size cap");
    }
    let mut parts = proof.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("proof is not a compact JWS");
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err("proof has an empty segment");
    }
    let b64 = strict_b64();
    let header = b64
        .decode(h)
        .map_err(|_| "proof header is not strict base64url")?;
    let header = json::object(&header).map_err(|_| "proof header is not a JSON object")?;
    match str_member(&header, "typ") {
        // `dpop+jwt`, or `application/dpop+jwt` (RFC 7515 section 4.1.9), any case.
        Some(t) if typ_matches(t, "dpop+jwt") => {}
        _ => return Err("proof typ is not dpop+jwt"),
    }
    let alg: Algorithm = str_member(&header, "alg")
        .ok_or("proof has no alg")?
        .parse()
        .map_err(|_| "proof alg is none, unknown or unsupported")?;
    if alg.family() == Family::Hmac {
        return Err("proof alg is symmetric");
    }
    if !algs.contains(&alg) {
        return Err("proof alg is not allowed");
    }
    if header.contains_key("crit") {
        return Err("proof names crit parameters");
    }
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or("proof has no jwk")?;
    let (key, jkt) = public_key(jwk, alg)?;
    let signed = &proof[..h.len() + 1 + p.len()];
    if !key.verify(s, signed.as_bytes(), alg) {
        return Err("proof signature does not verify");
    }
    let claims = b64
        .decode(p)
        .map_err(|_| "proof payload is not strict base64url")?;
    let claims = json::object(&claims).map_err(|_| "proof payload is not a JSON object")?;
    let jti = str_member(&claims, "jti").ok_or("proof has no jti")?;
    if jti.is_empty() || jti.len() > MAX_JTI {
        return Err("proof jti is empty or too long");
    }
    let htm = str_member(&claims, "htm").ok_or("proof has no htm")?;
    let htu = str_member(&claims, "htu").ok_or("proof has no htu")?;
    let iat = match claims.get("iat") {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .ok_or("proof iat is not a NumericDate")?,
        _ => return Err("proof has no iat"),
    };
    let optional = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err("proof ath or nonce is not a string"),
    };
    Ok(Proof {
        jkt,
        jti: jti.to_owned(),
        htm: htm.to_owned(),
        htu: htu.to_owned(),
        iat,
        ath: optional("ath")?,
        nonce: optional("nonce")?,
    })
}

/// The public key of a proof's `jwk` for `alg`, and its RFC 7638 thumbprint: SHA-256 over
/// the required members in lexicographic order, without whitespace.
fn public_key(jwk: &Map<String, Value>, alg: Algorithm) -> Result<(Key, String), &'static str> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err("proof jwk holds private key members");
    }
    let member = |name: &str| str_member(jwk, name).ok_or("proof jwk lacks a member");
    let bytes = |v: &str| {
        strict_b64()
            .decode(v)
            .map_err(|_| "proof jwk member is not strict base64url")
    };
    let kty = member("kty")?;
    let key = match (kty, alg.family()) {
        ("EC", Family::Ec) => {
            let want = if alg == Algorithm::ES256 {
                "P-256"
            } else {
                "P-384"
            };
            if member("crv")? != want {
                return Err("proof jwk curve does not fit alg");
            }
            let (x, y) = (member("x")?, member("y")?);
            Key::ec_point(alg, &bytes(x)?, &bytes(y)?)
                .map_err(|_| "proof jwk is not a usable EC key")?
        }
        ("RSA", Family::Rsa) => {
            let (n, e) = (member("n")?, member("e")?);
            Key::rsa_components(&bytes(n)?, &bytes(e)?, &[alg])
                .map_err(|_| "proof jwk is not a usable RSA key")?
        }
        ("OKP", Family::Ed) => {
            if member("crv")? != "Ed25519" {
                return Err("proof jwk curve does not fit alg");
            }
            let x = member("x")?;
            Key::ed_public(&bytes(x)?).map_err(|_| "proof jwk is not a usable Ed25519 key")?
        }
        ("oct", _) => return Err("proof jwk is a symmetric key"),
        _ => return Err("proof jwk does not fit alg"),
    };
    let jkt = super::thumbprint_of(jwk).ok_or("proof jwk lacks a member")?;
    Ok((key, jkt))
}

/// base64url(SHA-256(input)): an RFC 7638 thumbprint, or an RFC 9449 `ath`.
pub(super) fn thumbprint(input: &str) -> String {
    strict_b64().encode(sha256(input.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7638_example_thumbprint() {
        // RFC 7638 section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let input = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#);
        assert_eq!(
            thumbprint(&input),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
