//! `portcullis verify`: a token checked with the configured keys, as a server would.

use std::time::Duration;

use portcullis::{AuthError, AuthErrorKind, Authenticator, Principal};
use serde_json::Value;

use crate::config::{KeyFlags, Overrides, PolicyFlag};
use crate::time::{now, relative, utc};
use crate::{EXIT_KEYS, EXIT_NO, Fail, Report, token_arg};

const AFTER: &str = "\
Keys, issuers, audiences and the role claim come from the environment (FEDN_JWT_SECRET_KEY,
FEDN_JWT_ALGORITHM, PORTCULLIS_PUBLIC_KEY_FILE, PORTCULLIS_JWK_SET_FILE, PORTCULLIS_JWKS_URL,
PORTCULLIS_OIDC_ISSUER, PORTCULLIS_ISSUER, PORTCULLIS_AUDIENCE, PORTCULLIS_ROLE_CLAIM,
PORTCULLIS_LEEWAY_SECONDS, ...), exactly as `portcullis serve` reads them; the flags override
them. Remote key sets are fetched once (within --timeout).

Exit codes: 0 the token is valid; 1 it is refused (the reason and the answer a server gives:
status, WWW-Authenticate, body, gRPC status); 2 a usage or configuration error; 3 no keys
could be loaded (a server answers 503).

Examples:
  FEDN_JWT_SECRET_KEY=... portcullis verify \"$TOKEN\"
  portcullis verify --jwks-url https://id.example/jwks.json --audience api -  < token.txt";

/// Arguments of `verify`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER)]
pub(crate) struct Args {
    /// The token, or `-` to read it from stdin (a leading `Bearer ` is dropped)
    token: String,
    #[command(flatten)]
    keys: KeyFlags,
    /// Longest wait for remote keys, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    timeout: u64,
}

/// The answer a server gives for `err`, in words.
pub(crate) fn answer(auth: &Authenticator, err: &AuthError) -> String {
    let status = err.status();
    let mut out = format!(
        "a server answers: {} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    if let Some(c) = auth.challenge(err) {
        out.push_str(&format!("  WWW-Authenticate: {c}\n"));
    }
    out.push_str(&format!("  body: {}\n", err.body()));
    let code = err.grpc_code();
    let name = match err.kind() {
        AuthErrorKind::Forbidden => "PERMISSION_DENIED",
        AuthErrorKind::KeysUnavailable => "UNAVAILABLE",
        AuthErrorKind::Misuse => "INTERNAL",
        _ => "UNAUTHENTICATED",
    };
    out.push_str(&format!(
        "  gRPC: {name} ({}) \"{}\"\n",
        code as i32,
        err.message()
    ));
    out
}

/// What a verified principal holds, in lines.
pub(crate) fn describe(p: &Principal) -> String {
    let list = |it: portcullis::Strs<'_>| {
        let v: Vec<String> = it
            .map(|s| crate::inspect::safe_json(&Value::String(s.into())))
            .collect();
        if v.is_empty() {
            "(none)".to_owned()
        } else {
            v.join(", ")
        }
    };
    let mut out = String::new();
    let subject = p
        .subject()
        .map(|s| crate::inspect::safe_json(&Value::String(s.into())))
        .unwrap_or_else(|| "(no sub)".into());
    out.push_str(&format!("  subject: {subject}\n"));
    out.push_str(&format!("  roles: {}\n", list(p.roles())));
    out.push_str(&format!("  groups: {}\n", list(p.groups())));
    for name in ["iss", "aud"] {
        if let Some(v) = p.claims().get(name) {
            out.push_str(&format!(
                "  {name}: {}\n",
                crate::inspect::safe_json(v).replace('\n', " ")
            ));
        }
    }
    if let Some(exp) = p.claims().get("exp").and_then(Value::as_i64) {
        let now = now() as i64;
        out.push_str(&format!(
            "  expires: {} ({})\n",
            utc(exp),
            relative(exp, now)
        ));
    }
    out
}

/// A current-thread runtime for one command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Fail> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail::usage(format!("cannot start the async runtime: {e}")))
}

/// Drops a leading `<scheme> ` pasted from a header.
pub(crate) fn bare(token: &str) -> &str {
    match token.split_once(' ') {
        Some((scheme, rest)) if !scheme.contains('.') => rest.trim(),
        _ => token,
    }
}

pub(crate) fn run(args: Args) -> Result<Report, Fail> {
    let token = token_arg(&args.token)?;
    let token = bare(&token);
    let overrides = Overrides::new(&args.keys, &PolicyFlag::default())?;
    let config = overrides.env_config()?;
    if !config.has_keys() {
        return Err(Fail::usage(
            "no key configured: set FEDN_JWT_SECRET_KEY, PORTCULLIS_PUBLIC_KEY_FILE, PORTCULLIS_JWK_SET_FILE, PORTCULLIS_JWKS_URL or PORTCULLIS_OIDC_ISSUER, or pass --secret-file, --public-key-file, --jwk-set-file, --jwks-url or --oidc-issuer",
        ));
    }
    let (auth, _) = config.build().map_err(|e| overrides.explain(&e))?;
    let rt = runtime()?;
    let result = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(args.timeout), auth.verify_async(token)).await
    });
    let result = result.unwrap_or_else(|_| Err(AuthError::keys_unavailable()));
    Ok(match result {
        Ok(p) => Report::ok(format!("valid\n{}", describe(&p))),
        Err(e) => Report {
            stdout: format!("refused: {e}\n{}", answer(&auth, &e)),
            code: if e.kind() == AuthErrorKind::KeysUnavailable {
                EXIT_KEYS
            } else {
                EXIT_NO
            },
        },
    })
}
