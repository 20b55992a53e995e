//! `portcullis inspect`: a token's header and claims, unverified.
//!
//! Nothing the token names is followed: no `jku`, `x5u` or `jwk` is fetched or used, and
//! nothing in it is run. Strings are printed as JSON, with control, bidirectional and other
//! invisible characters escaped, so a token cannot write to the terminal.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use crate::time::{now, relative, utc};
use crate::{EXIT_NO, Fail, Report, token_arg};

const AFTER: &str = "\
Prints the header and the claims as JSON, marked UNVERIFIED: the signature is not checked,
so nothing shown can be trusted (use `portcullis verify` for that). `exp`, `nbf`, `iat` and
`auth_time` are shown in UTC and relative to now. A `cnf` claim (a token bound to a DPoP
key or a client certificate, RFC 9449 / RFC 8705) is shown as its binding. The type line
says whether the token is an RFC 9068 access token (`typ` at+jwt, which `--at-jwt-issuers`
of serve requires) or another JWT (an ID token, say); a token that is not a JWT is reported
as opaque: only its authorization server's introspection endpoint (RFC 7662; serve
--introspection-url) can say what it holds. Header parameters that point at keys (`jku`,
`x5u`, `jwk`, `x5c`) are reported and never followed. Exit 0 when the token decodes, 1
when it is not a compact JWS/JWT (opaque tokens included), 2 on a usage error.

Examples:
  portcullis inspect eyJhbGciOi...
  echo \"$TOKEN\" | portcullis inspect -";

/// Arguments of `inspect`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER)]
pub(crate) struct Args {
    /// The token, or `-` to read it from stdin
    token: String,
    /// Print one JSON object (header, claims, times) instead of text
    #[arg(long)]
    json: bool,
}

/// base64url that also takes padding: inspecting is lenient, verifying is not.
fn lenient() -> GeneralPurpose {
    GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

/// Characters a terminal may act on or that hide text: C0 and C1 controls, DEL,
/// bidirectional controls, zero-width characters, line and paragraph separators.
fn dangerous(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// JSON text with every dangerous character in strings written as `\uXXXX`.
pub(crate) fn safe_json(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        // serde_json already escapes C0 controls; newlines here are its own layout.
        if c != '\n' && dangerous(c) {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A segment decoded to a JSON object.
fn object(what: &str, segment: &str) -> Result<Map<String, Value>, String> {
    let bytes = lenient()
        .decode(segment)
        .map_err(|_| format!("the {what} is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(format!("the {what} is JSON but not an object")),
        Err(_) => Err(format!("the {what} is not JSON")),
    }
}

/// What the header says the token is: `at+jwt` (an RFC 9068 access token: `typ` names
/// `application/at+jwt`, case-insensitively, the prefix optional) or `jwt`.
fn kind(header: &Map<String, Value>) -> &'static str {
    let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
    let typ = match typ.get(..12) {
        Some(p) if p.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    if typ.eq_ignore_ascii_case("at+jwt") {
        "at+jwt"
    } else {
        "jwt"
    }
}

/// Whether a string that is not a JWS could be an opaque bearer token: token68 characters.
fn opaque(token: &str) -> bool {
    !token.is_empty()
        && token
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// One line per time claim: UTC and relative.
fn times(claims: &Map<String, Value>, now: i64) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for name in ["exp", "nbf", "iat", "auth_time"] {
        let Some(v) = claims.get(name) else { continue };
        let text = match v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.abs() < 1e15).map(|f| f as i64))
        {
            Some(t) => {
                let rel = relative(t, now);
                let words = match name {
                    "exp" if t < now => format!("expired {rel}"),
                    "exp" => format!("expires {rel}"),
                    "nbf" if t > now => format!("not valid before {rel}"),
                    "nbf" => format!("valid since {rel}"),
                    "iat" => format!("issued {rel}"),
                    _ => format!("authenticated {rel}"),
                };
                format!("{}  ({words})", utc(t))
            }
            None => "not a NumericDate (a verifier refuses this token)".to_owned(),
        };
        out.push((name.to_owned(), Value::String(text)));
    }
    out
}

/// Remarks on the header: parameters that point at keys, and what a verifier refuses.
fn notes(header: &Map<String, Value>, claims: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for p in ["jku", "x5u", "jwk", "x5c"] {
        if header.contains_key(p) {
            out.push(format!(
                "header `{p}` points at a key; it was not followed (verifiers never do)"
            ));
        }
    }
    match header.get("alg").and_then(Value::as_str) {
        None => out.push("no `alg` (a verifier refuses this token)".into()),
        Some(a) if a.parse::<portcullis::Algorithm>().is_err() => out.push(format!(
            "`alg` {} is not one portcullis verifies",
            safe_json(&Value::String(a.into()))
        )),
        Some(_) => {}
    }
    for p in ["crit", "b64", "enc", "zip"] {
        if header.contains_key(p) {
            out.push(format!("header `{p}` is present (verifiers refuse it)"));
        }
    }
    if !claims.contains_key("exp") {
        out.push("no `exp` (verifiers refuse it by default)".into());
    }
    out
}

/// The token's sender binding (`cnf`, RFC 7800): one line per confirmation method.
fn binding(claims: &Map<String, Value>) -> Vec<String> {
    let Some(cnf) = claims.get("cnf") else {
        return Vec::new();
    };
    let Some(cnf) = cnf.as_object() else {
        return vec!["`cnf` is not an object (verifiers refuse this token)".into()];
    };
    let text = |v: &Value| safe_json(v);
    let mut out = Vec::new();
    for (name, v) in cnf {
        out.push(match name.as_str() {
            "jkt" => format!(
                "DPoP-bound (RFC 9449): cnf.jkt {}; requests need `Authorization: DPoP` and a proof signed by that key",
                text(v)
            ),
            "x5t#S256" => format!(
                "certificate-bound (RFC 8705): cnf.x5t#S256 {}; requests need the client certificate of that SHA-256 thumbprint",
                text(v)
            ),
            other => format!(
                "bound by cnf.{} (a method portcullis does not check: refused)",
                text(&Value::String(other.into()))
            ),
        });
    }
    if out.is_empty() {
        out.push("`cnf` names no method (refused as a bearer token)".into());
    }
    out
}

pub(crate) fn run(args: Args) -> Result<Report, Fail> {
    let token = token_arg(&args.token)?;
    let token = token
        .strip_prefix("Bearer ")
        .or_else(|| token.strip_prefix("bearer "))
        .or_else(|| token.strip_prefix("DPoP "))
        .unwrap_or(&token)
        .trim();
    let parts: Vec<&str> = token.split('.').collect();
    let decoded = match parts.as_slice() {
        [h, p, _] => object("header", h).and_then(|h| Ok((h, object("payload", p)?))),
        [_, _, _, _, _] => {
            Err("five segments: an encrypted token (JWE), which portcullis refuses".into())
        }
        _ => Err(format!("{} segments; a JWS/JWT has three", parts.len())),
    };
    let (header, claims) = match decoded {
        Ok(v) => v,
        Err(why) => {
            let mut stdout = format!("not a token: {why}\n");
            if parts.len() != 3 && parts.len() != 5 && opaque(token) {
                stdout.push_str(
                    "type: opaque (not a JWT): only the issuer's introspection endpoint (RFC 7662) can say whether it is active and what it holds\n",
                );
            }
            return Ok(Report {
                stdout,
                code: EXIT_NO,
            });
        }
    };
    let kind = kind(&header);
    let kind_text = match kind {
        "at+jwt" => "JWT access token (typ at+jwt, RFC 9068)",
        _ => "JWT, not typed as an access token (no typ at+jwt; an ID token, say)",
    };
    let now = now() as i64;
    let times = times(&claims, now);
    let notes = notes(&header, &claims);
    let binding = binding(&claims);
    let stdout = if args.json {
        let v = serde_json::json!({
            "verified": false,
            "type": kind,
            "header": header,
            "claims": claims,
            "times": Map::from_iter(times),
            "binding": binding,
            "notes": notes,
        });
        format!("{}\n", safe_json(&v))
    } else {
        let mut out = String::from(
            "UNVERIFIED: the signature was not checked; nothing below can be trusted\n",
        );
        out.push_str(&format!("type: {kind_text}\n"));
        out.push_str(&format!("header:\n{}\n", safe_json(&Value::Object(header))));
        out.push_str(&format!("claims:\n{}\n", safe_json(&Value::Object(claims))));
        if !times.is_empty() {
            out.push_str("times (UTC):\n");
            for (name, text) in &times {
                out.push_str(&format!("  {name:<9} {}\n", text.as_str().unwrap_or("")));
            }
        }
        for b in &binding {
            out.push_str(&format!("binding: {b}\n"));
        }
        for n in &notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out
    };
    Ok(Report::ok(stdout))
}
