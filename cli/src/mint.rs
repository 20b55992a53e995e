//! `portcullis mint`: a signed token from flags, for development and tests.

use std::path::PathBuf;

use portcullis::{Algorithm, Signer};
use serde_json::{Map, Value, json};

use crate::jwk::{b64url, public_members_from_pem, signer_from_jwk, thumbprint};
use crate::time::{now, parse_duration};
use crate::{Fail, Report};

const AFTER: &str = "\
The key: --secret or --secret-file (HMAC), --key FILE (a PEM private key, PKCS#8 or PKCS#1,
or a private JWK or JWK set), else FEDN_JWT_SECRET_KEY under an HMAC FEDN_JWT_ALGORITHM.
The algorithm: --alg, else the JWK's `alg`, else the key's kind (HS256 for secrets, RS256
for RSA, ES256/ES384 by curve, EdDSA).

The `kid` header: --kid, else the JWK's `kid`, else for a PEM private key its RFC 7638
thumbprint, as keygen's (so a token from a keygen key verifies against keygen's JWK set; if
keygen was given --kid, give mint the same --kid). HMAC secrets get no kid unless --kid.

Roles go to the role claim (--role-claim, else PORTCULLIS_ROLE_CLAIM, else `role`): one
role as a string, several as an array, and for a claim named `scope` a space-separated
string. Dotted paths nest (`realm_access.roles`); `\\.` is a dot inside a name.
--claim KEY=VALUE reads VALUE as JSON when it is JSON (`n=5`, `ok=true`, `tags=[\"a\"]`,
`s=\"5\"`), else as a string.

For development and tests only: a token on a command line is visible to other users of
the machine.

Examples:
  portcullis mint --secret-file secret.txt --sub ada --role client --exp 15m
  portcullis mint --key issuer.key.pem --alg ES256 --sub svc --role admin --aud api --iss https://id.example
  portcullis mint --key issuer.jwks.json --sub ada --role-claim realm_access.roles --role reader --role editor";

/// Arguments of `mint`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER)]
pub(crate) struct Args {
    /// HMAC secret (visible to other users in the process list; prefer --secret-file)
    #[arg(long, value_name = "SECRET", conflicts_with_all = ["secret_file", "key"])]
    secret: Option<String>,
    /// File holding the HMAC secret (a trailing newline is dropped)
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    secret_file: Option<PathBuf>,
    /// Private key file: PEM (PKCS#8, or PKCS#1 for RSA), or a private JWK or JWK set
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Algorithm (HS256, HS384, HS512, RS*, PS*, ES256, ES384, EdDSA)
    #[arg(long, value_name = "ALG")]
    alg: Option<String>,
    /// `kid` header parameter (with a JWK set: which private key to use). For a PEM key it
    /// defaults to the key's RFC 7638 thumbprint, as keygen's. A kid may start with `-`
    /// (RFC 7638 thumbprints do).
    #[arg(long, allow_hyphen_values = true)]
    kid: Option<String>,
    /// `sub` claim
    #[arg(long, value_name = "SUBJECT")]
    sub: Option<String>,
    /// A role (repeat for several, or separate with commas)
    #[arg(long = "role", value_name = "ROLE", value_delimiter = ',')]
    roles: Vec<String>,
    /// Claim path of the roles [default: PORTCULLIS_ROLE_CLAIM, else role]
    #[arg(long, value_name = "PATH")]
    role_claim: Option<String>,
    /// `iss` claim
    #[arg(long, value_name = "ISSUER")]
    iss: Option<String>,
    /// `aud` claim (repeat for an array)
    #[arg(long, value_name = "AUDIENCE")]
    aud: Vec<String>,
    /// Lifetime: `exp` is now plus this (90s, 15m, 1h30m, 7d)
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    exp: String,
    /// Leave `exp` out (verifiers refuse such a token by default)
    #[arg(long, conflicts_with = "exp")]
    no_exp: bool,
    /// `nbf`: now plus this duration
    #[arg(long, value_name = "DURATION")]
    nbf: Option<String>,
    /// Leave `iat` out
    #[arg(long)]
    no_iat: bool,
    /// Any claim, KEY=VALUE (VALUE as JSON when it parses, else a string); repeatable
    #[arg(long = "claim", value_name = "KEY=VALUE")]
    claims: Vec<String>,
    /// Claims as one JSON object, merged before --claim
    #[arg(long = "claims", value_name = "JSON")]
    claims_json: Option<String>,
    /// A header parameter, KEY=VALUE like --claim (not `alg`); repeatable
    #[arg(long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
}

/// `KEY=VALUE` with VALUE read as JSON when it is JSON.
fn key_value(flag: &str, text: &str) -> Result<(String, Value), Fail> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| Fail::usage(format!("{flag} `{text}`: write KEY=VALUE")))?;
    if k.is_empty() {
        return Err(Fail::usage(format!("{flag} `{text}`: the key is empty")));
    }
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
    Ok((k.to_owned(), value))
}

/// Splits a claim path at dots, `\.` standing for a dot inside a name.
fn path_names(path: &str) -> Vec<String> {
    let mut names = vec![String::new()];
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                chars.next();
                if let Some(last) = names.last_mut() {
                    last.push('.');
                }
            }
            '.' => names.push(String::new()),
            c => {
                if let Some(last) = names.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    names
}

/// Puts `value` at the nested `path` of `claims`.
fn insert_at(claims: &mut Map<String, Value>, path: &str, value: Value) -> Result<(), Fail> {
    let names = path_names(path);
    if names.iter().any(String::is_empty) {
        return Err(Fail::usage(format!(
            "--role-claim `{path}` has an empty name"
        )));
    }
    let mut at = claims;
    for name in &names[..names.len() - 1] {
        let next = at
            .entry(name.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        at = next.as_object_mut().ok_or_else(|| {
            Fail::usage(format!(
                "--role-claim `{path}`: `{name}` is already a claim that is not an object"
            ))
        })?;
    }
    at.insert(names[names.len() - 1].clone(), value);
    Ok(())
}

fn read(flag: &str, path: &PathBuf) -> Result<String, Fail> {
    std::fs::read_to_string(path)
        .map_err(|e| Fail::usage(format!("{flag}: cannot read `{}`: {e}", path.display())))
}

fn strip_newline(s: &str) -> &str {
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.strip_suffix('\r').unwrap_or(s)
}

/// The signer the flags describe, and the `kid` its tokens name: --kid, else a JWK's
/// `kid`, else a PEM private key's RFC 7638 thumbprint; none for HMAC secrets.
fn signer(args: &Args) -> Result<(Signer, Option<String>), Fail> {
    let alg = match &args.alg {
        Some(a) => Some(
            a.parse::<Algorithm>()
                .map_err(|e| Fail::usage(format!("--alg: {e}")))?,
        ),
        None => None,
    };
    let hmac = |flag: &str, secret: &str, alg: Option<Algorithm>| {
        let alg = alg.unwrap_or(Algorithm::HS256);
        let min = match alg {
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => 32,
        };
        if secret.len() < min {
            return Err(Fail::usage(format!(
                "{flag}: the secret has {} bytes; {alg} needs at least {min} bytes (verifiers refuse shorter secrets)",
                secret.len()
            )));
        }
        Signer::hmac(alg, secret).map_err(|e| Fail::usage(format!("{flag}: {}", e.message())))
    };
    let mut key_kid = None;
    let signer = if let Some(secret) = &args.secret {
        hmac("--secret", secret, alg)?
    } else if let Some(path) = &args.secret_file {
        hmac(
            "--secret-file",
            strip_newline(&read("--secret-file", path)?),
            alg,
        )?
    } else if let Some(path) = &args.key {
        let text = read("--key", path)?;
        let name = path.display();
        if text.trim_start().starts_with('{') {
            let (signer, kid) = signer_from_jwk(&text, alg, args.kid.as_deref())
                .map_err(|e| Fail::usage(format!("--key `{name}`: {e}")))?;
            key_kid = kid;
            signer
        } else if text.contains("-----BEGIN") {
            if text.contains("PUBLIC KEY-----") && !text.contains("PRIVATE KEY-----") {
                return Err(Fail::usage(format!(
                    "--key `{name}` is a public key; minting needs the private key"
                )));
            }
            let signer = match alg {
                Some(alg) => Signer::from_pem(alg, &text)
                    .map_err(|e| Fail::usage(format!("--key `{name}`: {}", e.message())))?,
                None => {
                    let kinds = [
                        Algorithm::ES256,
                        Algorithm::ES384,
                        Algorithm::EdDSA,
                        Algorithm::RS256,
                    ];
                    let load = |a| Signer::from_pem(a, &text).ok();
                    // Loading does not check an EC key's curve (a P-384 key loads for
                    // ES256, then fails to sign): first the kinds the key itself fits.
                    kinds
                        .into_iter()
                        .filter(|a| public_members_from_pem(*a, &text).is_some())
                        .find_map(load)
                        .or_else(|| kinds.into_iter().find_map(load))
                        .ok_or_else(|| {
                        Fail::usage(format!(
                            "--key `{name}`: not a private key for ES256, ES384, EdDSA or RSA; name the algorithm with --alg"
                        ))
                    })?
                }
            };
            // The kid keygen wrote into the JWK set, unless --kid names another.
            if args.kid.is_none() {
                key_kid = public_members_from_pem(signer.algorithm(), &text)
                    .map(|members| thumbprint(&members));
            }
            signer
        } else {
            return Err(Fail::usage(format!(
                "--key `{name}`: neither PEM nor a JWK (JSON)"
            )));
        }
    } else if let Ok(secret) = std::env::var("FEDN_JWT_SECRET_KEY") {
        let env_alg = match std::env::var("FEDN_JWT_ALGORITHM") {
            Ok(a) if !a.trim().is_empty() => Some(
                a.trim()
                    .parse::<Algorithm>()
                    .map_err(|e| Fail::usage(format!("FEDN_JWT_ALGORITHM: {e}")))?,
            ),
            _ => None,
        };
        if env_alg.is_some_and(|a| !a.as_str().starts_with("HS")) {
            return Err(Fail::usage(
                "FEDN_JWT_SECRET_KEY holds a public key under FEDN_JWT_ALGORITHM; pass the private key with --key",
            ));
        }
        hmac("FEDN_JWT_SECRET_KEY", &secret, alg.or(env_alg))?
    } else {
        return Err(Fail::usage(
            "no key: pass --secret, --secret-file or --key (or set FEDN_JWT_SECRET_KEY)",
        ));
    };
    let kid = args.kid.clone().or(key_kid);
    let signer = match &kid {
        Some(k) => signer.kid(k),
        None => signer,
    };
    Ok((signer, kid))
}

pub(crate) fn run(args: Args) -> Result<Report, Fail> {
    let (signer, kid) = signer(&args)?;
    let mut claims = Map::new();
    if let Some(text) = &args.claims_json {
        match serde_json::from_str(text) {
            Ok(Value::Object(m)) => claims = m,
            _ => return Err(Fail::usage("--claims: not a JSON object")),
        }
    }
    let t = now();
    if !args.no_iat {
        claims.insert("iat".into(), json!(t));
    }
    if !args.no_exp {
        let life = parse_duration(&args.exp).map_err(|e| Fail::usage(format!("--exp: {e}")))?;
        claims.insert("exp".into(), json!(t.saturating_add(life)));
    }
    if let Some(nbf) = &args.nbf {
        let d = parse_duration(nbf).map_err(|e| Fail::usage(format!("--nbf: {e}")))?;
        claims.insert("nbf".into(), json!(t.saturating_add(d)));
    }
    if let Some(sub) = &args.sub {
        claims.insert("sub".into(), json!(sub));
    }
    if let Some(iss) = &args.iss {
        claims.insert("iss".into(), json!(iss));
    }
    match args.aud.as_slice() {
        [] => {}
        [one] => {
            claims.insert("aud".into(), json!(one));
        }
        many => {
            claims.insert("aud".into(), json!(many));
        }
    }
    let roles: Vec<&String> = args.roles.iter().filter(|r| !r.is_empty()).collect();
    if !roles.is_empty() {
        let path = args
            .role_claim
            .clone()
            .or_else(|| std::env::var("PORTCULLIS_ROLE_CLAIM").ok())
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| "role".to_owned());
        let last = path_names(&path).pop().unwrap_or_default();
        let value = match roles.as_slice() {
            _ if last == "scope" => json!(
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            [one] => json!(one),
            many => json!(many),
        };
        insert_at(&mut claims, path.trim(), value)?;
    }
    for c in &args.claims {
        let (k, v) = key_value("--claim", c)?;
        claims.insert(k, v);
    }
    let token = if args.headers.is_empty() {
        signer
            .sign(&Value::Object(claims))
            .map_err(|e| Fail::usage(e.to_string()))?
    } else {
        let mut header = Map::new();
        header.insert("alg".into(), json!(signer.algorithm().as_str()));
        header.insert("typ".into(), json!("JWT"));
        if let Some(kid) = &kid {
            header.insert("kid".into(), json!(kid));
        }
        for h in &args.headers {
            let (k, v) = key_value("--header", h)?;
            if k == "alg" {
                return Err(Fail::usage(
                    "--header alg: the algorithm comes from the key; use --alg",
                ));
            }
            header.insert(k, v);
        }
        let h = b64url(Value::Object(header).to_string().as_bytes());
        let p = b64url(Value::Object(claims).to_string().as_bytes());
        let s = signer
            .sign_segments(&h, &p)
            .map_err(|e| Fail::usage(e.to_string()))?;
        format!("{h}.{p}.{s}")
    };
    Ok(Report::ok(format!("{token}\n")))
}
