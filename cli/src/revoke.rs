//! `portcullis revoke`: a token, a `jti` or a subject's tokens revoked on every replica,
//! through the Redis the services share (`PORTCULLIS_REDIS_URL`), checked by the library's
//! [`RevocationRequest`] as `POST /admin/revoke` checks its body.

use portcullis::revoke::{RedisOptions, RedisRevocations, RevocationRequest};

use crate::time::{now, parse_duration, relative, utc};
use crate::{EXIT_KEYS, Fail, Report, token_arg};

const AFTER: &str = "\
Exactly one of --jti, --subject and --token. The revocation is written to the Redis that the
services read (PORTCULLIS_REDIS_URL, with PORTCULLIS_REDIS_KEY_PREFIX and the other
PORTCULLIS_REDIS_* variables, exactly as the services read them); every replica refuses the
token within about a second, with 401 invalid_token \"Token revoked\".

--jti and --subject need the tokens' issuer (`iss`): --issuer, or PORTCULLIS_ISSUER when it
names one issuer; --issuer '' for tokens without `iss`. A revocation lasts until --for from
now (default 7d): give at least the longest lifetime of the tokens it names, since a token
still valid after that is accepted again. --token reads the token's own `exp` (the token is
not verified; only the SHA-256 of its signing input is stored, so the high-S twin of an
ES256 signature is revoked too).

Exit codes: 0 revoked; 2 a usage or configuration error; 3 Redis did not answer or did not
take the change (nothing was revoked).

Examples:
  PORTCULLIS_REDIS_URL=redis://127.0.0.1:6379 portcullis revoke --token \"$TOKEN\"
  portcullis revoke --redis-url rediss://redis.internal:6380 --issuer https://id.example --jti 4f1c
  portcullis revoke --issuer https://id.example --subject ada --for 30d";

/// Arguments of `revoke`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["jti", "subject", "token"])))]
pub(crate) struct Args {
    /// Revoke the token with this `jti` (with its issuer)
    #[arg(long, value_name = "JTI", allow_hyphen_values = true)]
    jti: Option<String>,
    /// Revoke every token of this subject (`sub`) issued up to now (with its issuer)
    #[arg(long, value_name = "SUB", allow_hyphen_values = true)]
    subject: Option<String>,
    /// Revoke this exact token until its `exp`, or `-` to read it from stdin
    #[arg(long, value_name = "TOKEN", allow_hyphen_values = true)]
    token: Option<String>,
    /// The tokens' `iss` ('' for tokens without one) [env: PORTCULLIS_ISSUER, when it
    /// names one issuer]
    #[arg(long, value_name = "ISS", allow_hyphen_values = true)]
    issuer: Option<String>,
    /// With --jti or --subject: how long the revocation holds, from now (90m, 24h, 7d);
    /// with --token: for a token without `exp`
    #[arg(long = "for", value_name = "DURATION")]
    lasts: Option<String>,
    /// Redis URL (redis://, rediss://) [env: PORTCULLIS_REDIS_URL]
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
}

/// The one configured issuer, when `PORTCULLIS_ISSUER` names exactly one.
pub(crate) fn single_issuer(value: Option<String>) -> Option<String> {
    let value = value?;
    let mut it = value.split(',').map(str::trim).filter(|s| !s.is_empty());
    let first = it.next()?;
    it.next().is_none().then(|| first.to_owned())
}

fn flag(name: &'static str) -> &'static str {
    match name {
        "jti" => "--jti",
        "sub" => "--subject",
        "token" => "--token",
        "iss" => "--issuer",
        _ => "--for",
    }
}

pub(crate) fn run(args: Args) -> Result<Report, Fail> {
    let seconds = args
        .lasts
        .as_deref()
        .map(|t| parse_duration(t).map_err(|e| Fail::usage(format!("--for: {e}"))))
        .transpose()?;
    let token = args.token.as_deref().map(token_arg).transpose()?;
    let mut ask = RevocationRequest::default();
    ask.jti = args.jti;
    ask.sub = args.subject;
    // The library reads a pasted token (scheme word, whitespace) as the endpoint does.
    ask.token = token;
    ask.iss = args.issuer;
    ask.expires_in = seconds;
    let default_issuer = single_issuer(std::env::var("PORTCULLIS_ISSUER").ok());
    let planned = ask
        .plan(default_issuer.as_deref(), flag)
        .map_err(Fail::usage)?;
    let url = args.redis_url;
    let options = RedisOptions::from_lookup(|name| {
        if name == "PORTCULLIS_REDIS_URL" && url.is_some() {
            return url.clone();
        }
        std::env::var(name).ok()
    })
    .map_err(|e| {
        if e.setting() == "PORTCULLIS_REDIS_URL" && url.is_some() {
            Fail::usage(format!("--redis-url: {}", e.message()))
        } else {
            Fail::usage(e.to_string())
        }
    })?
    .ok_or_else(|| {
        Fail::usage("no Redis to write to: set PORTCULLIS_REDIS_URL or pass --redis-url")
    })?;
    let rt = crate::verify::runtime()?;
    let (what, until) = (planned.what().to_owned(), planned.until());
    rt.block_on(async {
        let store = RedisRevocations::connect(&options)
            .await
            .map_err(|e| Fail {
                message: e.to_string(),
                code: EXIT_KEYS,
            })?;
        store
            .revoke(planned.into_revocation())
            .await
            .map_err(|e| Fail {
                // This process ends now: a change "pending until Redis is back" would be lost.
                message: format!(
                    "nothing was revoked: Redis at `{}` did not take the change ({e})",
                    options.url_redacted()
                ),
                code: EXIT_KEYS,
            })
    })?;
    Ok(Report::ok(format!(
        "revoked: {} until {} ({})\n",
        what,
        utc(until as i64),
        relative(until as i64, now() as i64)
    )))
}
