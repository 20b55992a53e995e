//! JWK set parsing with the loading rules of the parent module.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::{KeySet, VerifyingKey};
use crate::jose::{self, Algorithm, Family, Key, strict_b64};

/// The longest `kid` we keep; longer ones make the key unusable.
pub(crate) const MAX_KID_LEN: usize = 256;

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<Value>,
}

/// The public members we read. Private members (`d`, `p`, `q`, ...) are never read.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    #[serde(rename = "use")]
    use_: Option<Value>,
    key_ops: Option<Value>,
    alg: Option<Value>,
    kid: Option<Value>,
    crv: Option<Value>,
    x: Option<Value>,
    y: Option<Value>,
    n: Option<Value>,
    e: Option<Value>,
    k: Option<Value>,
}

/// What became of one key of a set.
#[derive(Debug)]
pub(crate) struct Skipped {
    pub(crate) index: usize,
    pub(crate) why: String,
}

/// Parses a JWK set document. Keys that break a rule are skipped (and reported); a set
/// with a duplicate `kid`, or mixing `oct` with asymmetric keys, is refused whole.
pub(crate) fn parse_jwk_set(
    json: &[u8],
    allow_hmac: bool,
    min_hmac_override: Option<usize>,
) -> Result<(KeySet, Vec<Skipped>), String> {
    let raw: RawSet = jose::json::from_slice_strict(json)
        .map_err(|e| format!("not a JWK set (a JSON object with `keys`): {e}"))?;
    parse_values(raw.keys, allow_hmac, min_hmac_override)
}

/// Parses a JWK set fetched from the network: at most `max_keys`
/// entries, and never an `oct` key: a set that holds one is refused whole, so a remote set
/// can neither yield an HMAC key nor mix one with asymmetric keys.
#[cfg(feature = "jwks")]
pub(crate) fn parse_remote_jwk_set(
    json: &[u8],
    max_keys: usize,
) -> Result<(KeySet, Vec<Skipped>), String> {
    let raw: RawSet = jose::json::from_slice_strict(json)
        .map_err(|e| format!("not a JWK set (a JSON object with `keys`): {e}"))?;
    if raw.keys.len() > max_keys {
        return Err(format!(
            "the set has {} keys, more than the cap of {max_keys}",
            raw.keys.len()
        ));
    }
    if raw
        .keys
        .iter()
        .any(|k| k.get("kty").and_then(Value::as_str) == Some("oct"))
    {
        return Err(
            "the set holds an `oct` (HMAC) key; a remote set must publish public keys only".into(),
        );
    }
    parse_values(raw.keys, false, None)
}

fn parse_values(
    keys: Vec<Value>,
    allow_hmac: bool,
    min_hmac_override: Option<usize>,
) -> Result<(KeySet, Vec<Skipped>), String> {
    let raw = RawSet { keys };
    let mut set = KeySet::default();
    let mut skipped = Vec::new();
    // A kid names one key of the published set, whether or not we can use that key: two
    // entries sharing one make the set ambiguous, so refuse it even when one would be
    // skipped (Wycheproof JWK tcId 4: a duplicate whose `k` we cannot decode).
    let mut kids = std::collections::HashSet::new();
    for value in &raw.keys {
        if let Some(kid) = value.get("kid").and_then(Value::as_str)
            && !kids.insert(kid)
        {
            return Err("two keys share one `kid`; give every key its own kid".into());
        }
    }
    for (index, value) in raw.keys.into_iter().enumerate() {
        match parse_one(value, allow_hmac, min_hmac_override) {
            Ok(key) => set.push(key)?,
            Err(why) => skipped.push(Skipped { index, why }),
        }
    }
    if set.has_hmac() && set.has_asymmetric() {
        return Err("the set mixes `oct` and asymmetric keys; keep HMAC secrets apart".into());
    }
    Ok((set, skipped))
}

fn string(v: &Option<Value>, name: &str) -> Result<Option<String>, String> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{name}` is not a string")),
    }
}

fn bytes(v: &Option<Value>, name: &str) -> Result<Vec<u8>, String> {
    let s = string(v, name)?.ok_or_else(|| format!("`{name}` is missing"))?;
    strict_b64()
        .decode(s.as_bytes())
        .map_err(|_| format!("`{name}` is not strict base64url"))
}

fn parse_one(
    value: Value,
    allow_hmac: bool,
    min_hmac_override: Option<usize>,
) -> Result<VerifyingKey, String> {
    let raw: RawJwk = serde_json::from_value(value).map_err(|e| format!("not a JWK: {e}"))?;
    let kty = raw.kty.as_deref().ok_or("no `kty`")?;
    if string(&raw.use_, "use")?.is_some_and(|u| u != "sig") {
        return Err("`use` is not `sig`".into());
    }
    if let Some(ops) = &raw.key_ops {
        let ops = ops.as_array().ok_or("`key_ops` is not an array")?;
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return Err("`key_ops` does not include `verify`".into());
        }
    }
    let kid = string(&raw.kid, "kid")?;
    if kid.as_ref().is_some_and(|k| k.len() > MAX_KID_LEN) {
        return Err("`kid` is too long".into());
    }
    let alg = match string(&raw.alg, "alg")? {
        Some(a) => Some(a.parse::<Algorithm>().map_err(|e| e.to_string())?),
        None => None,
    };
    let crv = string(&raw.crv, "crv")?;
    let key = match kty {
        "RSA" => {
            if let Some(alg) = alg
                && alg.family() != Family::Rsa
            {
                return Err(format!("`alg` {alg} does not fit kty RSA"));
            }
            let n = bytes(&raw.n, "n")?;
            let e = bytes(&raw.e, "e")?;
            // Without `alg`, an RSA key verifies every RS* and PS* algorithm.
            let algs = alg
                .as_ref()
                .map_or(jose::RSA_ALGORITHMS, std::slice::from_ref);
            Key::rsa_components(&n, &e, algs)?
        }
        "EC" => {
            let (want, len) = match crv.as_deref() {
                Some("P-256") => (Algorithm::ES256, 32),
                Some("P-384") => (Algorithm::ES384, 48),
                _ => return Err("unsupported `crv` for kty EC (P-256 and P-384 are)".into()),
            };
            let alg = alg.unwrap_or(want);
            if alg != want {
                return Err(format!("`alg` {alg} does not fit the curve"));
            }
            let x = bytes(&raw.x, "x")?;
            let y = bytes(&raw.y, "y")?;
            if x.len() != len || y.len() != len {
                return Err("`x` or `y` has the wrong length for the curve".into());
            }
            Key::ec_point(alg, &x, &y)?
        }
        "OKP" => {
            if crv.as_deref() != Some("Ed25519") {
                return Err("unsupported `crv` for kty OKP (Ed25519 is)".into());
            }
            let alg = alg.unwrap_or(Algorithm::EdDSA);
            if alg != Algorithm::EdDSA {
                return Err(format!("`alg` {alg} does not fit Ed25519"));
            }
            let x = bytes(&raw.x, "x")?;
            if x.len() != 32 {
                return Err("`x` is not 32 bytes".into());
            }
            Key::ed_public(&x)?
        }
        "oct" => {
            if !allow_hmac {
                return Err("`oct` keys are not accepted from this source".into());
            }
            if let Some(alg) = alg
                && alg.family() != Family::Hmac
            {
                return Err(format!("`alg` {alg} does not fit kty oct"));
            }
            let k = bytes(&raw.k, "k")?;
            let algs: Vec<Algorithm> = match (alg, min_hmac_override) {
                (Some(alg), _) => {
                    let min = min_hmac_override.unwrap_or(alg.min_hmac_len()).max(1);
                    if k.len() < min {
                        return Err(format!("`k` is shorter than {min} bytes"));
                    }
                    vec![alg]
                }
                // Without `alg`: the HMAC algorithms the secret is long enough for.
                (None, None) => jose::hmac_algorithms_for(k.len()).collect(),
                // Short secrets allowed on purpose: HS256 only, as before.
                (None, Some(min)) => {
                    if k.len() < min.max(1) {
                        return Err(format!("`k` is shorter than {} bytes", min.max(1)));
                    }
                    let mut algs: Vec<Algorithm> = jose::hmac_algorithms_for(k.len()).collect();
                    if algs.is_empty() {
                        algs.push(Algorithm::HS256);
                    }
                    algs
                }
            };
            if algs.is_empty() {
                return Err(format!(
                    "`k` is shorter than {} bytes",
                    Algorithm::HS256.min_hmac_len()
                ));
            }
            Key::hmac(&algs, &k)
        }
        other => {
            return Err(format!(
                "unknown kty `{}`",
                other.chars().take(16).collect::<String>()
            ));
        }
    };
    Ok(VerifyingKey { kid, key })
}
