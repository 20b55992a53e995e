//! `portcullis check`: decide one request, or one `authorize_user` question, and say why.

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderMap, Method};
use portcullis::{
    AuthError, AuthErrorKind, Authenticator, Authorizer, FileWatch, MemoryStore, Principal,
    RecordSet, Subject,
};

use crate::config::{KeyFlags, Overrides, PolicyFlag};
use crate::verify::{answer, bare, describe, runtime};
use crate::{EXIT_KEYS, EXIT_NO, Fail, Report};

const AFTER: &str = "\
A route: --method and --path (matching ignores the query; AIStore rules read its provider=
and namespace=, as the layer does), or a gRPC method with
--grpc /pkg.Service/Method; the caller: --token (verified with the configured keys, as
`verify` does) or --roles (no token; required claims are then not checked). With --records,
an allowed HTTP request must also pass authorize_user(caller, path, method) (HEAD checks
GET), as `portcullis serve --records` does.

authorize_user alone: --resource and --permission with --records, and the caller as
--token, or --subject (with --group and --token-role as needed).

Exit codes: 0 allowed, 1 denied (or the token refused), 2 usage or configuration error,
3 no keys could be loaded.

Examples:
  portcullis check --policy policy.toml --method POST --path /api/v1/clients/add --roles client
  portcullis check --grpc /fedn.Combiner/TaskStream --token \"$TOKEN\"
  portcullis check --policy policy.toml --path /tenants/acme/reports --token \"$TOKEN\" --header x-org:o1
  portcullis check --records access.toml --subject ada --resource /documents/A --permission documents:read";

/// Arguments of `check`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER)]
pub(crate) struct Args {
    /// HTTP method of the request
    #[arg(long, default_value = "GET", help_heading = "Request")]
    method: String,
    /// Request path (and query), as sent: `/api/v1/clients/add`
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "grpc",
        help_heading = "Request"
    )]
    path: Option<String>,
    /// gRPC full method name: `/pkg.Service/Method`
    #[arg(long, value_name = "METHOD", help_heading = "Request")]
    grpc: Option<String>,
    /// gRPC user agent (for user-agent allow-lists)
    #[arg(
        long,
        value_name = "AGENT",
        requires = "grpc",
        help_heading = "Request"
    )]
    user_agent: Option<String>,
    /// The caller's token, or `-` for stdin
    #[arg(
        long,
        value_name = "TOKEN",
        conflicts_with = "roles",
        help_heading = "Caller"
    )]
    token: Option<String>,
    /// The caller's roles, comma-separated (no token: required claims are not checked)
    #[arg(
        long,
        value_name = "ROLES",
        value_delimiter = ',',
        help_heading = "Caller"
    )]
    roles: Option<Vec<String>>,
    /// The caller's user id, for authorize_user
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "token",
        help_heading = "Caller"
    )]
    subject: Option<String>,
    /// A group of the caller, for authorize_user (repeatable)
    #[arg(
        long = "group",
        value_name = "GROUP",
        conflicts_with = "token",
        help_heading = "Caller"
    )]
    groups: Vec<String>,
    /// A token role of the caller, for authorize_user (repeatable)
    #[arg(
        long = "token-role",
        value_name = "ROLE",
        conflicts_with = "token",
        help_heading = "Caller"
    )]
    token_roles: Vec<String>,
    /// A request header, NAME:VALUE (repeatable; gRPC: a metadata entry), for rules whose
    /// conditions compare a claim with a header
    #[arg(long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// Resource URI, for authorize_user
    #[arg(long, value_name = "URI", requires_all = ["permission", "records"], conflicts_with_all = ["path", "grpc"], help_heading = "authorize_user")]
    resource: Option<String>,
    /// Permission, for authorize_user
    #[arg(
        long,
        value_name = "PERMISSION",
        requires = "resource",
        help_heading = "authorize_user"
    )]
    permission: Option<String>,
    /// Access-record file (TOML or JSON) [env: PORTCULLIS_RECORDS_FILE]
    #[arg(long, value_name = "FILE", help_heading = "authorize_user")]
    records: Option<PathBuf>,
    #[command(flatten)]
    policy: PolicyFlag,
    #[command(flatten)]
    keys: KeyFlags,
}

/// The record file from the flag or `PORTCULLIS_RECORDS_FILE`, and which named it.
fn records_path(flag: Option<&PathBuf>) -> Option<(PathBuf, &'static str)> {
    match flag {
        Some(p) => Some((p.clone(), "--records")),
        None => match std::env::var("PORTCULLIS_RECORDS_FILE") {
            Ok(p) if !p.trim().is_empty() => {
                Some((PathBuf::from(p.trim()), "PORTCULLIS_RECORDS_FILE"))
            }
            _ => None,
        },
    }
}

/// The record file from the flag or `PORTCULLIS_RECORDS_FILE`, loaded and bound to the
/// issuers `auth` accepts (with several, users must name theirs).
pub(crate) fn records(
    flag: Option<&PathBuf>,
    auth: &Authenticator,
) -> Result<Option<Authorizer>, Fail> {
    let Some((path, name)) = records_path(flag) else {
        return Ok(None);
    };
    Authorizer::from_file(&path)
        .and_then(|a| a.issuers_of(auth))
        .map(Some)
        .map_err(|e| Fail::usage(format!("{name}: {e}")))
}

/// How often `serve` looks at its record file.
const RECORDS_POLL: Duration = Duration::from_secs(1);

/// The record file loaded, and watched: every second its content is read on tokio's
/// blocking pool (never on a runtime worker) and each valid new version swapped in; an
/// invalid one is logged and the current records stay. Must run inside the runtime; the
/// watch lasts as long as the returned handle.
pub(crate) fn watched_records(
    flag: Option<&PathBuf>,
    auth: &Authenticator,
) -> Result<Option<(Authorizer, FileWatch)>, Fail> {
    let Some((path, name)) = records_path(flag) else {
        return Ok(None);
    };
    let records = RecordSet::from_file(&path).map_err(|e| Fail::usage(format!("{name}: {e}")))?;
    let store = MemoryStore::new(records);
    let authz = Authorizer::from_store(store.clone())
        .issuers_of(auth)
        .map_err(|e| Fail::usage(format!("{name}: {e}")))?;
    let watch = store.watch_file(path, RECORDS_POLL);
    Ok(Some((authz, watch)))
}

fn verify(auth: &Authenticator, token: &str) -> Result<Principal, AuthError> {
    let rt = runtime().map_err(|_| AuthError::keys_unavailable())?;
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), auth.verify_async(token)).await
    })
    .unwrap_or_else(|_| Err(AuthError::keys_unavailable()))
}

fn refused(auth: &Authenticator, head: &str, e: &AuthError) -> Report {
    Report {
        stdout: format!("{head}: {e}\n{}", answer(auth, e)),
        code: if e.kind() == AuthErrorKind::KeysUnavailable {
            EXIT_KEYS
        } else {
            EXIT_NO
        },
    }
}

pub(crate) fn run(args: Args) -> Result<Report, Fail> {
    let overrides = Overrides::new(&args.keys, &args.policy)?;
    let token = args
        .token
        .as_deref()
        .map(crate::token_arg)
        .transpose()?
        .map(|t| bare(&t).to_owned());
    let config = if token.is_some() {
        let c = overrides.env_config()?;
        if !c.has_keys() {
            return Err(Fail::usage(
                "--token needs a key: set FEDN_JWT_SECRET_KEY or another key source, or pass --secret-file, --public-key-file, --jwk-set-file, --jwks-url or --oidc-issuer",
            ));
        }
        c
    } else {
        overrides.policy_only_config()?
    };
    let (auth, policy) = config.build().map_err(|e| overrides.explain(&e))?;
    let authz = records(args.records.as_ref(), &auth)?;

    let principal = match &token {
        Some(t) => match verify(&auth, t) {
            Ok(p) => Some(p),
            Err(e) => return Ok(refused(&auth, "token refused", &e)),
        },
        None => None,
    };
    let mut out = String::new();
    if let Some(p) = &principal {
        out.push_str(&format!("token valid\n{}", describe(p)));
    }

    // authorize_user alone.
    if let (Some(resource), Some(permission)) = (&args.resource, &args.permission) {
        let Some(authz) = &authz else {
            return Err(Fail::usage(
                "--resource needs --records (or PORTCULLIS_RECORDS_FILE)",
            ));
        };
        let subject = match &principal {
            Some(p) => Subject::principal(p),
            None => {
                let s = match &args.subject {
                    Some(id) => Subject::user(id),
                    None => Subject::default(),
                };
                let roles = args.roles.iter().flatten().chain(&args.token_roles);
                s.with_groups(args.groups.iter().map(String::as_str))
                    .with_roles(roles.map(String::as_str))
            }
        };
        let decision = authz.authorize_user(subject, resource, permission);
        out.push_str(&format!("{decision}\n"));
        let code = if decision.is_allowed() { 0 } else { EXIT_NO };
        return Ok(Report { stdout: out, code });
    }

    let method = Method::from_bytes(args.method.as_bytes())
        .map_err(|_| Fail::usage(format!("--method `{}` is not an HTTP method", args.method)))?;
    let (target, path) = match (&args.path, &args.grpc) {
        (Some(p), _) => {
            let p = p.split('#').next().unwrap_or("");
            let (path, query) = match p.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (p, None),
            };
            // The query reaches the rules that read it (AIStore's `provider=`), as the
            // layer passes it on; matching itself never reads it.
            (
                policy.target(&method, path).map(|t| t.with_query(query)),
                Some(path),
            )
        }
        (None, Some(m)) => (policy.grpc_target(m, args.user_agent.as_deref()), None),
        (None, None) => {
            return Err(Fail::usage(
                "name the request: --path (with --method), --grpc, or --resource with --permission",
            ));
        }
    };
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        let bad = || {
            Fail::usage(format!(
                "--header `{h}`: write NAME:VALUE, like x-tenant:acme"
            ))
        };
        let (name, value) = h.split_once(':').ok_or_else(bad)?;
        let name = http::HeaderName::try_from(name.trim()).map_err(|_| bad())?;
        let value = http::HeaderValue::try_from(value.trim()).map_err(|_| bad())?;
        headers.append(name, value);
    }
    let target = match target {
        Ok(t) => t.with_headers(&headers),
        Err(e) => {
            let mut r = refused(&auth, "denied", &e);
            r.stdout = out + &r.stdout;
            return Ok(r);
        }
    };
    let decision = match (&principal, &args.roles) {
        _ if target.is_public() => policy.decide_roles::<&str>(&[], &target),
        (Some(p), _) => policy.decide(p, &target),
        (None, Some(roles)) => {
            out.push_str("(roles given: required claims are not checked)\n");
            policy.decide_roles(roles, &target)
        }
        (None, None) => {
            let e = auth
                .authenticate(&HeaderMap::new())
                .err()
                .unwrap_or_else(AuthError::forbidden);
            let mut r = refused(&auth, "denied", &e);
            r.stdout = format!("{out}(no token and no --roles){}", "\n") + &r.stdout;
            return Ok(r);
        }
    };
    out.push_str(&format!("{decision}\n"));
    if !decision.is_allowed() {
        let e = decision
            .into_result()
            .err()
            .unwrap_or_else(AuthError::forbidden);
        out.push_str(&answer(&auth, &e));
        return Ok(Report {
            stdout: out,
            code: EXIT_NO,
        });
    }
    if let (Some(authz), Some(path), false) = (&authz, path, target.is_public()) {
        let subject = match &principal {
            Some(p) => Subject::principal(p),
            None => {
                let s = match &args.subject {
                    Some(id) => Subject::user(id),
                    None => Subject::default(),
                };
                s.with_groups(args.groups.iter().map(String::as_str))
                    .with_roles(args.roles.iter().flatten().map(String::as_str))
            }
        };
        let access = authz.authorize_user(
            subject,
            path,
            portcullis::forward::method_permission(&method),
        );
        out.push_str(&format!("records: {access}\n"));
        if !access.is_allowed() {
            let e = access
                .into_result()
                .err()
                .unwrap_or_else(AuthError::forbidden);
            out.push_str(&answer(&auth, &e));
            return Ok(Report {
                stdout: out,
                code: EXIT_NO,
            });
        }
    }
    out.push_str("a server answers: 200 (the request goes on)\n");
    Ok(Report::ok(out))
}
