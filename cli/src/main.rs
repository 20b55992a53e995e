//! `portcullis`: mint, inspect, verify and explain tokens and policies, lint policy and
//! access-record files, revoke tokens through Redis, and serve forward-auth decisions to
//! nginx, Caddy, Traefik and Envoy.
//!
//! Exit codes, for every command: 0 success (valid, allowed, no lint errors, revoked), 1 a
//! negative answer (token refused, request denied, lint errors), 2 a usage or
//! configuration error (bad flag, file or environment value), 3 unavailable (a remote key
//! set could not be loaded, or Redis did not answer).

mod admin;
mod authress;
mod check;
mod config;
mod envoy;
mod forward;
mod inspect;
mod jwk;
mod kamiwaza;
mod keygen;
mod lint;
mod mint;
mod revoke;
mod sender;
mod serve;
mod time;
mod verify;

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const ABOUT: &str =
    "JWT authentication and role-based authorization: tokens, policies and forward-auth";

const LONG_ABOUT: &str = "\
JWT authentication and role-based authorization: mint, inspect and verify tokens, explain
and lint policies, and serve forward-auth decisions to nginx, Caddy, Traefik and Envoy.

Keys, issuers, audiences and the policy come from the same environment variables as the
library's EnvConfig (FEDN_JWT_SECRET_KEY, FEDN_JWT_ALGORITHM, FEDN_AUTH_SCHEME,
FEDN_AUTH_WHITELIST_URL_PREFIX, FEDN_AUTH_WHITELIST_URL, FEDN_CUSTOM_URL_PREFIX,
FEDN_JWT_CUSTOM_CLAIM_KEY/_VALUE and every PORTCULLIS_* name); flags override them.

Exit codes: 0 success (valid, allowed, no lint errors); 1 a negative answer (token
refused, request denied, lint errors); 2 a usage or configuration error (bad flag, file or
environment value); 3 unavailable (no remote key set could be loaded, or Redis did not
answer).";

#[derive(Parser)]
#[command(name = "portcullis", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mint a token for development and tests (HMAC secret, PEM or JWK private key)
    Mint(mint::Args),
    /// Write a new key pair (or HMAC secret) and its JWK set
    Keygen(keygen::Args),
    /// Show a token's header and claims, UNVERIFIED, with times in UTC
    Inspect(inspect::Args),
    /// Verify a token with the configured keys, as a server would
    Verify(verify::Args),
    /// Decide a request (route or gRPC method) or an authorize_user question, and say why
    Check(check::Args),
    /// Find mistakes in a policy file, an access-record file, or both
    Lint(lint::Args),
    /// Revoke a token, a `jti` or a subject's tokens on every replica, through Redis
    Revoke(revoke::Args),
    /// Serve forward-auth decisions for nginx, Caddy, Traefik or Envoy (HTTP and gRPC ext_authz)
    Serve(serve::Args),
}

/// What a command printed and how it ends.
pub(crate) struct Report {
    pub(crate) stdout: String,
    pub(crate) code: u8,
}

impl Report {
    pub(crate) fn ok(stdout: String) -> Self {
        Self { stdout, code: 0 }
    }
}

/// A command that could not run: the message names the flag, file or variable.
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) message: String,
    pub(crate) code: u8,
}

impl Fail {
    /// A usage or configuration error (exit 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: EXIT_USAGE,
        }
    }
}

/// Exit code of a usage or configuration error.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code of a negative answer.
pub(crate) const EXIT_NO: u8 = 1;
/// Exit code when keys could not be loaded.
pub(crate) const EXIT_KEYS: u8 = 3;

/// Reads a token argument: the token itself, or `-` for the first line of stdin.
pub(crate) fn token_arg(arg: &str) -> Result<String, Fail> {
    let text = if arg == "-" {
        let mut buf = String::new();
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut buf)
            .map_err(|e| Fail::usage(format!("cannot read the token from stdin: {e}")))?;
        buf
    } else {
        arg.to_owned()
    };
    let token = text.trim();
    if token.is_empty() {
        return Err(Fail::usage(
            "the token is empty; pass it as an argument or `-` to read stdin",
        ));
    }
    Ok(token.to_owned())
}

fn main() -> ExitCode {
    // A bug must never print a backtrace or a token: one line, exit 101.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("portcullis: internal error{at}; please report it");
    }));
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mint(args) => mint::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Check(args) => check::run(args),
        Command::Lint(args) => lint::run(args),
        Command::Revoke(args) => revoke::run(args),
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(report) => {
            // A closed pipe (`| head`) is not an error worth a message.
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(report.stdout.as_bytes());
            let _ = out.flush();
            ExitCode::from(report.code)
        }
        Err(fail) => {
            let _ = writeln!(std::io::stderr(), "portcullis: error: {}", fail.message);
            ExitCode::from(fail.code)
        }
    }
}
