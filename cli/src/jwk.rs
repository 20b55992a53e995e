//! Key material for `mint` and `keygen`: private JWKs to signers, public JWKs, PEM,
//! RFC 7638 thumbprints.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use portcullis::{Algorithm, Signer};
use serde_json::{Map, Value, json};

/// base64url without padding.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64url(what: &str, text: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("`{what}` is not base64url"))
}

/// A PEM block.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The RFC 7638 thumbprint of a public JWK: SHA-256 over its required members in
/// lexicographic order, base64url.
pub(crate) fn thumbprint(jwk: &Map<String, Value>) -> String {
    let members: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("OKP") => &["crv", "kty", "x"],
        Some("RSA") => &["e", "kty", "n"],
        _ => &["k", "kty"],
    };
    let canonical: Map<String, Value> = members
        .iter()
        .map(|m| ((*m).to_owned(), jwk.get(*m).cloned().unwrap_or(Value::Null)))
        .collect();
    let text = Value::Object(canonical).to_string();
    b64url(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref())
}

/// The public JWK members (`kty` and the key members, no `alg`, `use` or `kid`) of an EC
/// public point (uncompressed, `04 || x || y`) on the curve `crv`.
pub(crate) fn ec_members(crv: &str, point: &[u8]) -> Map<String, Value> {
    let n = point.len().saturating_sub(1) / 2;
    let (x, y) = point.get(1..).unwrap_or_default().split_at(n);
    object(json!({"kty": "EC", "crv": crv, "x": b64url(x), "y": b64url(y)}))
}

/// The public JWK members of an Ed25519 public key.
pub(crate) fn okp_members(public: &[u8]) -> Map<String, Value> {
    object(json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(public)}))
}

/// The public JWK members of an RSA public key.
pub(crate) fn rsa_members(key: &aws_lc_rs::rsa::PublicKey) -> Map<String, Value> {
    object(json!({
        "kty": "RSA",
        "n": b64url(key.modulus().big_endian_without_leading_zero()),
        "e": b64url(key.exponent().big_endian_without_leading_zero()),
    }))
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The label and DER of the first PEM block whose label ends in `PRIVATE KEY`
/// (`PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`).
fn private_pem_block(text: &str) -> Option<(&str, Vec<u8>)> {
    let mut lines = text.lines().map(str::trim);
    loop {
        let line = lines.next()?;
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        if !label.ends_with("PRIVATE KEY") {
            continue;
        }
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        for l in lines.by_ref() {
            if l == end {
                let der = STANDARD.decode(body.as_bytes()).ok()?;
                return Some((label, der));
            }
            if l.contains(':') {
                // Encrypted PEM headers (`Proc-Type:`): no key to read.
                return None;
            }
            body.push_str(l);
        }
        return None;
    }
}

/// The public JWK members of a PEM private key for `alg` (PKCS#8; PKCS#1 for RSA, SEC1
/// for EC), as `keygen` computes them; `None` when the key cannot be read that way.
pub(crate) fn public_members_from_pem(alg: Algorithm, text: &str) -> Option<Map<String, Value>> {
    use aws_lc_rs::signature::KeyPair;
    let (label, der) = private_pem_block(text)?;
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => {
            let (curve, crv) = if alg == Algorithm::ES256 {
                (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256")
            } else {
                (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384")
            };
            let pair = if label == "EC PRIVATE KEY" {
                EcdsaKeyPair::from_private_key_der(curve, &der).ok()?
            } else {
                EcdsaKeyPair::from_pkcs8(curve, &der).ok()?
            };
            Some(ec_members(crv, pair.public_key().as_ref()))
        }
        Algorithm::EdDSA => {
            let pair = Ed25519KeyPair::from_pkcs8(&der).ok()?;
            Some(okp_members(pair.public_key().as_ref()))
        }
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => None,
        _ => {
            let pair = if label == "RSA PRIVATE KEY" {
                aws_lc_rs::rsa::KeyPair::from_der(&der).ok()?
            } else {
                aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).ok()?
            };
            Some(rsa_members(pair.public_key()))
        }
    }
}

/// The default algorithm of a JWK's type and curve.
fn default_alg(jwk: &Map<String, Value>) -> Result<Algorithm, String> {
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or("");
    let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or("");
    Ok(match (kty, crv) {
        ("oct", _) => Algorithm::HS256,
        ("RSA", _) => Algorithm::RS256,
        ("EC", "P-256") => Algorithm::ES256,
        ("EC", "P-384") => Algorithm::ES384,
        ("OKP", "Ed25519") => Algorithm::EdDSA,
        ("EC", c) | ("OKP", c) => return Err(format!("curve `{c}` is not supported")),
        (k, _) => {
            return Err(format!(
                "key type `{k}` is not supported (oct, RSA, EC, OKP)"
            ));
        }
    })
}

/// A signer from a private JWK, or from a JWK set holding exactly one private key (or the
/// one whose `kid` is `kid`). Returns the signer and the key's `kid`.
pub(crate) fn signer_from_jwk(
    text: &str,
    alg: Option<Algorithm>,
    kid: Option<&str>,
) -> Result<(Signer, Option<String>), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let candidates: Vec<&Map<String, Value>> = match &value {
        Value::Object(o) if o.contains_key("keys") => o["keys"]
            .as_array()
            .ok_or("`keys` is not an array")?
            .iter()
            .filter_map(Value::as_object)
            .filter(|k| k.contains_key("d") || k.get("kty").and_then(Value::as_str) == Some("oct"))
            .filter(|k| kid.is_none_or(|want| k.get("kid").and_then(Value::as_str) == Some(want)))
            .collect(),
        Value::Object(o) => vec![o],
        _ => return Err("not a JWK or a JWK set".into()),
    };
    let jwk = match candidates.as_slice() {
        [one] => *one,
        [] => {
            return Err(match kid {
                Some(k) => format!("no private key with kid `{k}`"),
                None => "no private key (a JWK with `d`, or an `oct` key)".into(),
            });
        }
        _ => return Err("several private keys; choose one with --kid".into()),
    };
    let jwk_alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(s)) => Some(
            s.parse::<Algorithm>()
                .map_err(|_| format!("`alg` `{s}` is not supported"))?,
        ),
        Some(_) => return Err("`alg` is not a string".into()),
    };
    let alg = match (alg, jwk_alg) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!("--alg {a} differs from the key's `alg` {b}"));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => default_alg(jwk)?,
    };
    let field = |name: &str| -> Result<Vec<u8>, String> {
        let text = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("member `{name}` is missing"))?;
        unb64url(name, text)
    };
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or("");
    let signer = match kty {
        "oct" => Signer::hmac(alg, field("k")?).map_err(|e| e.message().to_owned())?,
        "EC" => {
            let curve = match alg {
                Algorithm::ES256 => &ECDSA_P256_SHA256_FIXED_SIGNING,
                Algorithm::ES384 => &ECDSA_P384_SHA384_FIXED_SIGNING,
                other => return Err(format!("an EC key cannot sign {other}")),
            };
            let mut point = vec![4u8];
            point.extend(field("x")?);
            point.extend(field("y")?);
            let pair = EcdsaKeyPair::from_private_key_and_public_key(curve, &field("d")?, &point)
                .map_err(|e| format!("the EC key is not valid: {e}"))?;
            let der = pair.to_pkcs8v1().map_err(|_| "cannot encode the EC key")?;
            Signer::from_pem(alg, pem("PRIVATE KEY", der.as_ref()))
                .map_err(|e| e.message().to_owned())?
        }
        "OKP" => {
            let pair = Ed25519KeyPair::from_seed_and_public_key(&field("d")?, &field("x")?)
                .map_err(|e| format!("the Ed25519 key is not valid: {e}"))?;
            let der = pair
                .to_pkcs8v1()
                .map_err(|_| "cannot encode the Ed25519 key")?;
            Signer::from_pem(alg, pem("PRIVATE KEY", der.as_ref()))
                .map_err(|e| e.message().to_owned())?
        }
        "RSA" => {
            use aws_lc_rs::rsa::{KeyPair, KeyPairComponents, PublicKeyComponents};
            let components = KeyPairComponents {
                public_key: PublicKeyComponents {
                    n: field("n")?,
                    e: field("e")?,
                },
                d: field("d")?,
                p: field("p")?,
                q: field("q")?,
                dP: field("dp")?,
                dQ: field("dq")?,
                qInv: field("qi")?,
            };
            let pair = KeyPair::from_components(&components)
                .map_err(|e| format!("the RSA key is not valid: {e}"))?;
            let der = pair.as_der().map_err(|_| "cannot encode the RSA key")?;
            Signer::from_pem(alg, pem("PRIVATE KEY", der.as_ref()))
                .map_err(|e| e.message().to_owned())?
        }
        other => return Err(format!("key type `{other}` is not supported")),
    };
    let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
    let signer = match &kid {
        Some(k) => signer.kid(k),
        None => signer,
    };
    Ok((signer, kid))
}

/// A public JWK with `use`, `alg` and `kid` filled in.
pub(crate) fn public_jwk(mut members: Map<String, Value>, alg: Algorithm, kid: &str) -> Value {
    members.insert("use".into(), json!("sig"));
    members.insert("alg".into(), json!(alg.as_str()));
    members.insert("kid".into(), json!(kid));
    Value::Object(members)
}
