//! SECURITY.md K8: the Project Wycheproof JSON Web Signature and JSON Web Key vectors
//! (C2SP/wycheproof `testvectors_v1/`, Apache-2.0), read in place from
//! `../shared/testdata/wycheproof/` beside the repository.
//!
//! Every vector must agree with its label (`valid` accepted, `invalid` rejected,
//! `acceptable` either way) unless it is listed in [`DEVIATIONS`] with a reason; a listed
//! vector that agrees again fails the test too, so the list stays honest.
//!
//! The payloads are not JWT claim sets, so the vectors run at the signature level
//! (`Authenticator::verify_signature`). To cover the whole layer, the groups' private keys
//! also re-sign a real claim set that must pass `Authenticator::verify` and the tower layer.
//!
//! Where the folder is absent (a fresh clone without `shared/`), the tests say they skipped
//! and pass; with `PORTCULLIS_STRICT_TESTS=1` a skip is a failure.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Principal, Signer};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt, service_fn};

const JWS_FILE: &str = "json_web_signature_test.json";
const JWK_FILE: &str = "json_web_key_test.json";

/// Vectors where we knowingly disagree with the label: (file, tcId, reason). The label
/// says which way we deviate: a `valid` one here is rejected, an `invalid` one accepted.
const DEVIATIONS: &[(&str, u64, &str)] = &[
    // Labelled valid, we reject.
    (JWS_FILE, 259, EMPTY_PAYLOAD),
    (JWS_FILE, 264, EMPTY_PAYLOAD),
    (JWS_FILE, 268, EMPTY_PAYLOAD),
    (JWS_FILE, 272, EMPTY_PAYLOAD),
    (JWS_FILE, 320, EMPTY_PAYLOAD),
    (JWS_FILE, 325, EMPTY_PAYLOAD),
    (JWS_FILE, 346, ALG_FROM_KEY),
    (JWS_FILE, 350, ALG_FROM_KEY),
    (JWS_FILE, 347, ES512_UNSUPPORTED),
    (JWS_FILE, 351, ES512_UNSUPPORTED),
    (JWS_FILE, 372, STRICT_BASE64URL),
    (JWS_FILE, 373, STRICT_BASE64URL),
    // Labelled invalid, we accept.
    (JWS_FILE, 367, SAME_AS_VALID_357),
    (JWS_FILE, 370, SAME_AS_VALID_357),
    (
        JWK_FILE,
        7,
        "ROCA-vulnerable RSA modulus detection (CVE-2017-15361) is not implemented; the key is 2048 bits with e = 65537, so our K6 loading rules accept it and the signature verifies",
    ),
];

const EMPTY_PAYLOAD: &str = "SECURITY.md F1: a token is exactly three non-empty segments, so a JWS with an empty payload is refused (`malformed token: empty segment`) although RFC 7515 allows it";
const ALG_FROM_KEY: &str = "SPEC 2 / K1: the algorithm comes from the key; RFC 7520 figure 20 is a PS384 signature checked with a JWK whose `alg` is PS256, so we refuse the token's `alg`";
const ES512_UNSUPPORTED: &str = "ES512 / P-521 is unsupported (jsonwebtoken 11.1 lacks it), so the JWK with alg ES521 and crv P-521 is refused when building and the vector rejected";
const STRICT_BASE64URL: &str = "SECURITY.md F2: strict base64url; a segment holding `?` is refused before decoding, where lenient decoders skip the character and the label calls it valid";
const SAME_AS_VALID_357: &str = "the `jws` is byte-for-byte the `valid` vector 357 (no padding was actually added), so accepting it is correct; F2 padding is refused, see the check in k8_wycheproof_padding_is_refused";

/// "Now" for the injected clock of the whole-layer checks.
const NOW: u64 = 1_700_000_000;

/// The corpus folder, or `None` (after saying so) when it is absent and skipping is allowed.
fn corpus_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/wycheproof");
    if dir.join(JWS_FILE).is_file() && dir.join(JWK_FILE).is_file() {
        return Some(dir);
    }
    if std::env::var("PORTCULLIS_STRICT_TESTS").as_deref() == Ok("1") {
        panic!(
            "wycheproof: test vectors not found at {} ({JWS_FILE}, {JWK_FILE}); PORTCULLIS_STRICT_TESTS=1 makes this a failure",
            dir.display()
        );
    }
    eprintln!(
        "wycheproof: SKIPPED, test vectors not found at {} (set PORTCULLIS_STRICT_TESTS=1 to fail instead)",
        dir.display()
    );
    None
}

fn load(dir: &Path, file: &str) -> Value {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn groups(doc: &Value) -> &[Value] {
    doc["testGroups"]
        .as_array()
        .expect("testGroups is an array")
}

/// The verification key material of a group: `public`, else `private` (the `oct` groups),
/// as a JWK set. The JWK-file groups already hold a `{"keys": [...]}` set.
fn key_set_json(group: &Value) -> String {
    let key = group
        .get("public")
        .or_else(|| group.get("private"))
        .expect("group has a key");
    if key.get("keys").is_some() {
        key.to_string()
    } else {
        json!({ "keys": [key] }).to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Rejected(String),
}

/// Builds the authenticator for a group (a build error rejects every vector of the group)
/// and checks each vector at the signature level.
fn run_group(group: &Value) -> Vec<(u64, &str, &str, Outcome)> {
    let auth = Authenticator::builder()
        .jwk_set_json(key_set_json(group))
        .build();
    let tests = group["tests"].as_array().expect("tests is an array");
    tests
        .iter()
        .map(|t| {
            let id = t["tcId"].as_u64().expect("tcId");
            let label = t["result"].as_str().expect("result");
            let comment = t["comment"].as_str().unwrap_or("");
            let jws = t["jws"].as_str().expect("jws is a compact string");
            let outcome = match &auth {
                Err(e) => Outcome::Rejected(format!("build: {e}")),
                Ok(auth) => match auth.verify_signature(jws) {
                    Ok(_) => Outcome::Accepted,
                    Err(e) => Outcome::Rejected(format!("verify: {e}")),
                },
            };
            (id, label, comment, outcome)
        })
        .collect()
}

#[test]
fn k8_wycheproof_vectors_agree_with_labels() {
    let Some(dir) = corpus_dir() else { return };
    let mut listed: HashMap<(&str, u64), &str> = HashMap::new();
    for &(file, id, reason) in DEVIATIONS {
        assert!(
            !reason.is_empty(),
            "deviation ({file}, {id}) needs a reason"
        );
        assert!(
            listed.insert((file, id), reason).is_none(),
            "deviation ({file}, {id}) listed twice"
        );
    }
    let (mut total, mut agree, mut deviating_listed) = (0, 0, 0);
    let mut seen = BTreeSet::new();
    let mut failures = Vec::new();
    for file in [JWS_FILE, JWK_FILE] {
        let doc = load(&dir, file);
        let mut count = 0;
        for group in groups(&doc) {
            let comment = group["comment"].as_str().unwrap_or("");
            for (id, label, tc_comment, outcome) in run_group(group) {
                count += 1;
                assert!(
                    seen.insert((file, id)),
                    "({file}, {id}) appears twice in the corpus"
                );
                let accepted = outcome == Outcome::Accepted;
                let agrees = match label {
                    "valid" => accepted,
                    "invalid" => !accepted,
                    "acceptable" => true,
                    other => panic!("({file}, {id}): unknown result label `{other}`"),
                };
                match (agrees, listed.get(&(file, id))) {
                    (true, None) => agree += 1,
                    (false, Some(_)) => deviating_listed += 1,
                    (false, None) => failures.push(format!(
                        "({file}, {id}) [{comment}/{tc_comment}] labelled {label} but {outcome:?}: not in DEVIATIONS"
                    )),
                    (true, Some(reason)) => failures.push(format!(
                        "({file}, {id}) [{comment}/{tc_comment}] is listed as a deviation ({reason}) but now agrees with its label `{label}`: remove it from DEVIATIONS"
                    )),
                }
            }
        }
        let declared = doc["numberOfTests"].as_u64().expect("numberOfTests");
        assert_eq!(
            count, declared,
            "{file}: numberOfTests says {declared}, found {count}"
        );
        total += count;
    }
    for &(file, id, _) in DEVIATIONS {
        if !seen.contains(&(file, id)) {
            failures.push(format!(
                "({file}, {id}) is listed in DEVIATIONS but is not in the corpus"
            ));
        }
    }
    println!("wycheproof: {total} vectors, {agree} agree, {deviating_listed} listed deviations");
    assert!(
        failures.is_empty(),
        "{} disagreement(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(agree + deviating_listed, total);
}

/// The vectors 367 and 370 ("invalidBase64Padding...") carry no padding at all: they repeat
/// the valid vector 357. Check that, and that the padding they meant to test is refused.
#[test]
fn k8_wycheproof_padding_is_refused() {
    let Some(dir) = corpus_dir() else { return };
    let doc = load(&dir, JWS_FILE);
    let group = groups(&doc)
        .iter()
        .find(|g| {
            g["tests"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["tcId"] == 357))
        })
        .expect("group of vector 357");
    let jws = |id: u64| {
        group["tests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tcId"] == id)
            .unwrap()["jws"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let valid = jws(357);
    assert_eq!(
        jws(367),
        valid,
        "vector 367 changed: review its DEVIATIONS entry"
    );
    assert_eq!(
        jws(370),
        valid,
        "vector 370 changed: review its DEVIATIONS entry"
    );
    let auth = Authenticator::builder()
        .jwk_set_json(key_set_json(group))
        .build()
        .unwrap();
    assert!(auth.verify_signature(&valid).is_ok());
    let parts: Vec<&str> = valid.split('.').collect();
    for padded in [
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}==.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
    ] {
        let err = auth.verify_signature(&padded).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED, "{padded}: {err}");
        assert_eq!(
            err.body(),
            r#"{"error":"invalid_token","message":"Invalid token"}"#
        );
    }
}

// ---- The whole layer: re-sign a real claim set with each group's private key. ----

fn b64url(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(s)
        .unwrap_or_else(|e| panic!("JWK member is not base64url: {e}"))
}

fn member(jwk: &Value, name: &str) -> Vec<u8> {
    b64url(
        jwk[name]
            .as_str()
            .unwrap_or_else(|| panic!("JWK has no `{name}`")),
    )
}

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// A DER INTEGER holding the unsigned big-endian `bytes`.
fn der_uint(bytes: &[u8], out: &mut Vec<u8>) {
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let mut value = bytes[skip..].to_vec();
    if value.first().is_none_or(|&b| b & 0x80 != 0) {
        value.insert(0, 0);
    }
    out.push(0x02);
    der_len(value.len(), out);
    out.extend_from_slice(&value);
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// An RSA private JWK as PKCS#1 `RSAPrivateKey` PEM (RFC 8017 appendix A.1.2).
fn rsa_private_pem(jwk: &Value) -> String {
    let mut body = Vec::new();
    der_uint(&[0], &mut body);
    for name in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
        der_uint(&member(jwk, name), &mut body);
    }
    let mut der = vec![0x30];
    der_len(body.len(), &mut der);
    der.extend_from_slice(&body);
    pem("RSA PRIVATE KEY", &der)
}

/// An EC private JWK as PKCS#8 PEM, through aws-lc-rs (which checks d against x, y).
fn ec_private_pem(jwk: &Value, alg: Algorithm) -> String {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    };
    let signing = match alg {
        Algorithm::ES256 => &ECDSA_P256_SHA256_FIXED_SIGNING,
        Algorithm::ES384 => &ECDSA_P384_SHA384_FIXED_SIGNING,
        other => panic!("{other} is not an ECDSA algorithm"),
    };
    let mut point = vec![0x04];
    point.extend(member(jwk, "x"));
    point.extend(member(jwk, "y"));
    let pair = EcdsaKeyPair::from_private_key_and_public_key(signing, &member(jwk, "d"), &point)
        .expect("EC private JWK is consistent");
    pem("PRIVATE KEY", pair.to_pkcs8v1().expect("PKCS#8").as_ref())
}

/// A signer for a private JWK, with its `kid`.
fn signer(jwk: &Value, alg: Algorithm) -> Signer {
    let signer = match jwk["kty"].as_str() {
        Some("oct") => Signer::hmac(alg, member(jwk, "k")),
        Some("RSA") => Signer::from_pem(alg, rsa_private_pem(jwk)),
        Some("EC") => Signer::from_pem(alg, ec_private_pem(jwk, alg)),
        other => panic!("no signer for kty {other:?}"),
    }
    .expect("signer from the private JWK");
    match jwk["kid"].as_str() {
        Some(kid) => signer.kid(kid),
        None => signer,
    }
}

const ROLE: &str = "operator";

type Answer = (StatusCode, Option<String>, Value);

/// Sends `GET /wycheproof` with the token through the layer; only `ROLE` may pass. The
/// inner service echoes the principal the layer put in the request extensions.
async fn through_layer(auth: &Authenticator, token: &str) -> Answer {
    let policy = Policy::builder()
        .allow("GET", "/wycheproof", [ROLE])
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(AuthLayer::new(auth.clone(), policy))
        .service(service_fn(|req: Request<Full<Bytes>>| async move {
            let body = match req.extensions().get::<Principal>() {
                Some(p) => json!({"sub": p.subject(), "roles": p.roles()}),
                None => json!("no principal"),
            };
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body.to_string()))))
        }));
    let req = Request::get("/wycheproof")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("body is not JSON: {bytes:?}"));
    (status, challenge, body)
}

/// Replaces the payload of `token` and keeps its signature.
fn swap_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    )
}

#[tokio::test]
async fn k8_wycheproof_keys_sign_real_claims_through_the_layer() {
    let Some(dir) = corpus_dir() else { return };
    let doc = load(&dir, JWS_FILE);
    let mut covered = BTreeSet::new();
    let mut skipped = Vec::new();
    for (index, group) in groups(&doc).iter().enumerate() {
        let name = format!(
            "group {index} ({})",
            group["comment"].as_str().unwrap_or("")
        );
        let private = &group["private"];
        let Some(alg) = private["alg"].as_str() else {
            skipped.push(format!("{name}: the JWK names no alg"));
            continue;
        };
        let Ok(alg) = alg.parse::<Algorithm>() else {
            skipped.push(format!("{name}: {alg} unsupported"));
            continue;
        };
        let auth = match Authenticator::builder()
            .jwk_set_json(key_set_json(group))
            .clock(|| NOW)
            .build()
        {
            Ok(auth) => auth,
            Err(e) => {
                skipped.push(format!("{name}: key refused ({e})"));
                continue;
            }
        };
        let signer = signer(private, alg);
        let sub = format!("wycheproof-{index}");
        let claims =
            |role: &str| json!({"sub": sub, "role": role, "exp": 4_000_000_000u64, "iat": NOW});
        let token = signer.sign(&claims(ROLE)).unwrap();

        let principal = auth
            .verify(&token)
            .unwrap_or_else(|e| panic!("{name}: {alg} token refused: {e}"));
        assert_eq!(principal.roles(), [ROLE], "{name}");
        assert_eq!(principal.subject(), Some(sub.as_str()), "{name}");

        let ok = through_layer(&auth, &token).await;
        assert_eq!(
            ok,
            (StatusCode::OK, None, json!({"sub": sub, "roles": [ROLE]})),
            "{name}"
        );

        let guest = signer.sign(&claims("guest")).unwrap();
        let denied = through_layer(&auth, &guest).await;
        let forbidden = (
            StatusCode::FORBIDDEN,
            Some(r#"Bearer realm="api", error="insufficient_scope""#.to_owned()),
            json!({"error": "insufficient_scope", "message": "Insufficient permissions"}),
        );
        assert_eq!(denied, forbidden, "{name}");

        // The guest's signature under a payload that claims the allowed role.
        let forged = swap_payload(&guest, &claims(ROLE));
        let invalid = (
            StatusCode::UNAUTHORIZED,
            Some(r#"Bearer realm="api", error="invalid_token""#.to_owned()),
            json!({"error": "invalid_token", "message": "Invalid token"}),
        );
        assert_eq!(through_layer(&auth, &forged).await, invalid, "{name}");
        covered.insert(alg.as_str());
    }
    eprintln!("wycheproof: re-signed claims with {covered:?}; skipped: {skipped:?}");
    for alg in ["HS256", "RS256", "PS256", "ES256"] {
        assert!(
            covered.contains(alg),
            "no {alg} group was re-signed; skipped: {skipped:?}"
        );
    }
}
