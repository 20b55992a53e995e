//! `portcullis revoke`: a token, a `jti` or a subject's tokens revoked on every replica,
//! through the Redis the services share (`PORTCULLIS_REDIS_URL`); and the request shape
//! `POST /admin/revoke` on `serve` accepts.

use portcullis::revoke::{RedisOptions, RedisRevocations, Revocation};
use serde::Deserialize;

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

/// How long a `jti` or subject revocation holds when nothing says.
pub(crate) const DEFAULT_LASTS: u64 = 7 * 86_400;
/// The longest a revocation may be asked to hold: 10 years.
pub(crate) const MAX_LASTS: u64 = 10 * 365 * 86_400;

/// One revocation as asked for, by the command line or by `POST /admin/revoke`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ask {
    /// Revoke by `jti`.
    pub(crate) jti: Option<String>,
    /// Revoke by subject.
    pub(crate) sub: Option<String>,
    /// Revoke this token.
    pub(crate) token: Option<String>,
    /// The issuer of a `jti` or subject.
    pub(crate) iss: Option<String>,
    /// Seconds the revocation holds from now.
    pub(crate) seconds: Option<u64>,
}

/// What an [`Ask`] revokes, in words, and the revocation.
pub(crate) struct Planned {
    pub(crate) revocation: Revocation,
    pub(crate) what: String,
    pub(crate) until: u64,
}

/// The one configured issuer, when `PORTCULLIS_ISSUER` names exactly one.
pub(crate) fn single_issuer(value: Option<String>) -> Option<String> {
    let value = value?;
    let mut it = value.split(',').map(str::trim).filter(|s| !s.is_empty());
    let first = it.next()?;
    it.next().is_none().then(|| first.to_owned())
}

impl Ask {
    /// The revocation, or a message naming the field to fix (`field` turns a field name
    /// into the caller's word for it: a flag or a JSON member).
    pub(crate) fn plan(
        self,
        default_issuer: Option<String>,
        field: impl Fn(&str) -> &'static str,
    ) -> Result<Planned, String> {
        let now = now();
        let count = [&self.jti, &self.sub, &self.token]
            .iter()
            .filter(|v| v.is_some())
            .count();
        if let Some(secs) = self.seconds
            && !(1..=MAX_LASTS).contains(&secs)
        {
            return Err(format!(
                "{} must be from 1 second to 10 years ({MAX_LASTS} seconds)",
                field("seconds")
            ));
        }
        if count != 1 {
            return Err(format!(
                "give exactly one of {}, {} and {}",
                field("jti"),
                field("sub"),
                field("token")
            ));
        }
        if let Some(token) = self.token {
            if self.iss.is_some() {
                return Err(format!(
                    "{} is read from the token itself; leave {} out",
                    field("iss"),
                    field("iss")
                ));
            }
            let revocation = match self.seconds {
                Some(s) => Revocation::token_until(&token, now.saturating_add(s)),
                None => Revocation::token(&token),
            }
            .map_err(|e| {
                let e = e.to_string();
                if e.contains("no `exp`") {
                    format!(
                        "{}: the token has no `exp`; give {} for how long to refuse it",
                        field("token"),
                        field("seconds")
                    )
                } else {
                    format!("{}: {e}", field("token"))
                }
            })?;
            let until = revocation.expires_at();
            return Ok(Planned {
                revocation,
                what: "the token".to_owned(),
                until,
            });
        }
        let issuer = self.iss.or(default_issuer).ok_or_else(|| {
            format!(
                "{} is missing: name the tokens' `iss` ('' for tokens without one), or set PORTCULLIS_ISSUER to the one issuer",
                field("iss")
            )
        })?;
        let until = now.saturating_add(self.seconds.unwrap_or(DEFAULT_LASTS));
        let shown = if issuer.is_empty() {
            "tokens without `iss`".to_owned()
        } else {
            format!("issuer `{issuer}`")
        };
        if let Some(jti) = self.jti {
            if jti.is_empty() {
                return Err(format!("{} is empty", field("jti")));
            }
            let what = format!("jti `{jti}` of {shown}");
            return Ok(Planned {
                revocation: Revocation::jti(issuer, jti, until),
                what,
                until,
            });
        }
        let sub = self.sub.unwrap_or_default();
        if sub.is_empty() {
            return Err(format!("{} is empty", field("sub")));
        }
        // Every token issued up to now, this second included.
        let what = format!("every token of subject `{sub}` from {shown} issued up to now");
        Ok(Planned {
            revocation: Revocation::subject(issuer, sub, now + 1, until),
            what,
            until,
        })
    }
}

fn flag(name: &str) -> &'static str {
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
    let ask = Ask {
        jti: args.jti,
        sub: args.subject,
        // The library reads a pasted token (scheme word, whitespace) as the endpoint does.
        token,
        iss: args.issuer,
        seconds,
    };
    let planned = ask
        .plan(single_issuer(std::env::var("PORTCULLIS_ISSUER").ok()), flag)
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
    rt.block_on(async {
        let store = RedisRevocations::connect(&options)
            .await
            .map_err(|e| Fail {
                message: e.to_string(),
                code: EXIT_KEYS,
            })?;
        store.revoke(planned.revocation).await.map_err(|e| Fail {
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
        planned.what,
        utc(planned.until as i64),
        relative(planned.until as i64, now() as i64)
    )))
}
