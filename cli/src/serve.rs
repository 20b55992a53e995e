//! `portcullis serve`: the forward-auth decision service (nginx, Caddy, Traefik, Envoy's
//! HTTP and gRPC ext_authz), with health, readiness and Prometheus metrics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::{any, get};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use portcullis::AuthLayer;
use portcullis::forward::ForwardAuth;
use portcullis::resource_metadata::ResourceMetadata;
use portcullis::revoke::AdminApi;

use crate::admin::Store;
use crate::config::{KeyFlags, Overrides, PolicyFlag};
use crate::forward::{Proxy, identity_header};
use crate::{Fail, Report};

const AFTER: &str = "\
Endpoints:
  /auth     (any method) the decision. The original method and URI come from
            X-Original-Method and X-Original-URI with --proxy nginx (set them in the nginx
            config), from X-Forwarded-Method and X-Forwarded-Uri with --proxy caddy or
            traefik; the other pair is ignored, since a client may send it. The token
            comes from the sources PORTCULLIS_TOKEN_SOURCES names (default Authorization;
            also cookie:NAME, header:NAME), read from the headers the proxy passes on.
            Answers exactly as the library's layer: 200 with X-Auth-Subject, X-Auth-Roles
            and the --identity-header claims; 401 with WWW-Authenticate; 403; 503 while no
            keys were ever loaded. With --proxy nginx a 400 is answered as 401 (its
            WWW-Authenticate says error=\"invalid_request\"), because nginx's auth_request
            turns any status but 2xx, 401 and 403 into a 500; a 503 therefore reaches
            nginx clients as 500. A proxy that leaves out the method or URI header gets a
            500 and a warning in the log: its configuration is wrong. Not served with
            --proxy envoy.
  /ext-authz/...  (any method, --proxy envoy) Envoy's http_service: every request under
            --envoy-path-prefix (default /ext-authz) is a decision on the path after it,
            with its own method and headers; checked before any other route. 200 with the
            identity headers that have a value and X-Envoy-Auth-Headers-To-Remove naming
            the others and the client's '_' spellings of them; refusals as /auth.
  gRPC on --grpc-listen: envoy.service.auth.v3.Authorization/Check, the same decision
            from CheckRequest.attributes.request.http (method, path, headers or
            header_map): OK with ok_response headers to set and headers_to_remove, or
            denied_response with the status, WWW-Authenticate and body of the refusal; a
            request that describes nothing is denied (500). grpc.health.v1.Health on the
            same port: NOT_SERVING until ready.
  /.well-known/oauth-protected-resource[/PATH]  (GET, with --resource-metadata) the RFC
            9728 protected-resource metadata; every challenge then carries
            resource_metadata=\"<its URL>\".
  /healthz  200 while the process runs.
  /readyz   503 until the keys of every remote key set have loaded once (and, with
            PORTCULLIS_REDIS_URL, the revocation list has synced once), then 200.
  /metrics  Prometheus text format.
  /admin/revoke  (POST, only with --admin-revoke) revokes tokens on every replica, for
            callers holding --admin-role (default admin; held directly, no inheritance)
            in a token the configured keys verify, with the policy's required claims; a
            body of Content-Type application/json (else 415) with one of
            {\"token\": T} (until its exp), {\"jti\": J, \"iss\": I} or {\"sub\": S, \"iss\": I}
            (every token of S issued up to now), and optionally \"expires_in\" (seconds the
            revocation holds; default 7 days; `iss` defaults to PORTCULLIS_ISSUER when it
            names one issuer). 200 {\"revoked\", \"until\"}; 202 with \"pending\" while Redis
            is away (it holds here and is written when Redis is back); 400 for a bad body;
            401 and 403 as /auth answers them. With PORTCULLIS_REDIS_URL the list is the
            one every replica and `portcullis revoke` share; without it, this process's
            own.
  /v1/users/{userId}/resources/{resourceUri}/permissions/{permission}  (GET, with
            --records) the Authress check API, as the Authress SDKs call it
            (authorize_user): 200 allowed, 404 not allowed, 403 the caller may not check
            this user, 401 as /auth. Each parameter percent-decoded once (the SDKs encode
            the resource URI whole: %2F for /).
  /v1/users/{userId}/resources/{resourceUri}/permissions  (GET, with --records) the
            user's permissions on the resource, as Authress lists them:
            {\"userId\", \"permissions\": [{\"action\", \"allow\": true, \"grant\": false,
            \"delegate\": false}]}; 404 when there are none. The caller authenticates with
            its own token (the configured keys; PORTCULLIS_AUTHRESS_ACCOUNT accepts the
            account's service-client tokens) and may always check itself; checking another
            user needs --authress-check-role (default authress-check) in its token's roles
            or given to it by the access records.
  /auth/verify-token, /auth/users/me/permissions  (GET) Kamiwaza-compatible read-outs
            for the caller of a token the configured keys verify: the user, and its
            effective rights, roles and groups from the access records
            (--kamiwaza-records, else --records). The token comes from the access_token
            cookie or the Authorization header; from ?token= (as the kamiwaza client's
            read_own_permissions sends it) only with --kamiwaza-query-token, since tokens
            in URLs end up in logs, history and Referer headers. 401, 400, 403 and 503 as
            /auth answers them.

The proxy must strip X-Auth-Subject, X-Auth-Roles and every --identity-header from client
requests; the README's nginx, Caddy and Traefik configurations do (Envoy removes or
overwrites them as the answer says).

The policy: --policy FILE (PORTCULLIS_POLICY_FILE) with your rules, or --fedn-policy
(PORTCULLIS_FEDN_POLICY=true) for FEDn's built-in REST and gRPC role map; one of them is
required, and serve says at start which one it applies. --shadow-policy FILE
(PORTCULLIS_SHADOW_POLICY_FILE) adds a dry run: decided beside it, counted in
portcullis_shadow_decisions_total{result=\"would_allow\"|\"would_deny\"}, never enforced.

Configuration: every FEDN_* and PORTCULLIS_* variable the library reads (keys, issuer,
audience, role claim, leeway, public prefixes, URL prefix, required claim, policy file),
plus the variables named below; flags override them. Opaque tokens are introspected (RFC
7662) with --introspection-url or --introspection-issuer, --introspection-client-id and
--introspection-client-secret-file: an active answer is cached (60 s at most by default),
an endpoint that cannot answer gives 503. On SIGTERM or Ctrl-C it stops
accepting connections and lets decisions in flight finish (at most --shutdown-grace).

Examples:
  FEDN_JWT_SECRET_KEY=... portcullis serve --listen 127.0.0.1:9090 --proxy nginx --policy policy.toml
  portcullis serve --listen 127.0.0.1:9090 --proxy caddy --jwks-url https://id.example/jwks.json \\
      --audience api --identity-header tenant=X-Auth-Tenant
  portcullis serve --listen 0.0.0.0:9090 --grpc-listen 0.0.0.0:9191 --proxy envoy --policy policy.toml";

/// Arguments of `serve`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER)]
pub(crate) struct Args {
    /// Address to listen on, like 127.0.0.1:9090 (port 0 picks a free port; the log says
    /// which)
    #[arg(long, value_name = "ADDR", env = "PORTCULLIS_LISTEN")]
    listen: SocketAddr,
    /// The proxy in front: nginx (auth_request), caddy (forward_auth), traefik
    /// (forwardAuth) or envoy (ext_authz http_service; its gRPC service is --grpc-listen)
    #[arg(long, value_enum, env = "PORTCULLIS_PROXY")]
    proxy: Proxy,
    /// Access-record file (TOML or JSON): an allowed request must also pass
    /// authorize_user(caller, path, method), HEAD checking GET; the Authress check API
    /// answers from it. Reloaded when its content changes (looked at every second; an
    /// invalid version is logged and the current records stay)
    #[arg(long, value_name = "FILE", env = "PORTCULLIS_RECORDS_FILE")]
    records: Option<PathBuf>,
    /// A claim to pass upstream in a header on success, CLAIM=HEADER (repeatable, or
    /// comma-separated in the variable)
    #[arg(
        long = "identity-header",
        value_name = "CLAIM=HEADER",
        env = "PORTCULLIS_IDENTITY_HEADERS",
        value_delimiter = ','
    )]
    identity_headers: Vec<String>,
    /// Longest wait for decisions in flight after SIGTERM or Ctrl-C, in seconds
    #[arg(
        long,
        value_name = "SECONDS",
        env = "PORTCULLIS_SHUTDOWN_GRACE_SECONDS",
        default_value_t = 30
    )]
    shutdown_grace: u64,
    /// Log level: error, warn, info, debug or trace (logs go to stderr)
    #[arg(
        long,
        value_name = "LEVEL",
        env = "PORTCULLIS_LOG",
        default_value = "info"
    )]
    log: String,
    /// Serve POST /admin/revoke (off by default): revocations from callers holding
    /// --admin-role
    #[arg(long, env = "PORTCULLIS_ADMIN_REVOKE")]
    admin_revoke: bool,
    /// The role a caller's token must hold to use POST /admin/revoke (held directly: the
    /// policy's role inheritance does not apply)
    #[arg(
        long,
        value_name = "ROLE",
        env = "PORTCULLIS_ADMIN_ROLE",
        default_value = "admin"
    )]
    admin_role: String,
    #[command(flatten)]
    authress: crate::authress::AuthressFlags,
    #[command(flatten)]
    policy: PolicyFlag,
    /// A second policy file decided beside the enforced one on every request and
    /// recorded (the portcullis_shadow_decisions_total counter, a DEBUG log line naming
    /// the rule), never enforced: a dry run of new rules
    #[arg(long, value_name = "FILE", env = "PORTCULLIS_SHADOW_POLICY_FILE")]
    shadow_policy: Option<PathBuf>,
    /// Apply FEDn's built-in REST and gRPC role map (client, combiner, admin routes) instead
    /// of a policy file
    #[arg(long, env = "PORTCULLIS_FEDN_POLICY", conflicts_with = "policy")]
    fedn_policy: bool,
    #[command(flatten)]
    keys: KeyFlags,
    #[command(flatten)]
    kamiwaza: crate::kamiwaza::Flags,
    /// Also answer Envoy's ext_authz over gRPC (envoy.service.auth.v3.Authorization/Check)
    /// on this address, with gRPC health (grpc.health.v1) on the same port; any --proxy
    #[arg(long, value_name = "ADDR", env = "PORTCULLIS_GRPC_LISTEN")]
    grpc_listen: Option<SocketAddr>,
    /// With --proxy envoy: the path_prefix of Envoy's http_service. Every request under it
    /// is a decision on the path that follows (/ext-authz/api/items decides /api/items)
    #[arg(
        long,
        value_name = "PATH",
        env = "PORTCULLIS_ENVOY_PATH_PREFIX",
        default_value = "/ext-authz"
    )]
    envoy_path_prefix: String,
    #[command(flatten)]
    resource: ResourceFlags,
    #[command(flatten)]
    sender: Box<crate::sender::SenderFlags>,
    #[command(flatten)]
    introspection: Box<IntrospectionFlags>,
}

/// RFC 7662 introspection of opaque tokens, and RFC 9068 `at+jwt` typing.
#[derive(clap::Args, Debug)]
struct IntrospectionFlags {
    /// Introspection endpoint for opaque tokens (RFC 7662; https, http only for loopback)
    /// [env: PORTCULLIS_INTROSPECTION_URL]
    #[arg(long, value_name = "URL", help_heading = "Introspection")]
    introspection_url: Option<String>,
    /// Instead of --introspection-url: the issuer whose metadata names the endpoint
    /// [env: PORTCULLIS_INTROSPECTION_ISSUER]
    #[arg(long, value_name = "URL", help_heading = "Introspection")]
    introspection_issuer: Option<String>,
    /// This service's client id at the endpoint [env: PORTCULLIS_INTROSPECTION_CLIENT_ID]
    #[arg(long, value_name = "ID", help_heading = "Introspection")]
    introspection_client_id: Option<String>,
    /// File holding the client secret (a trailing newline is dropped)
    /// [env: PORTCULLIS_INTROSPECTION_CLIENT_SECRET holds the secret itself]
    #[arg(long, value_name = "FILE", help_heading = "Introspection")]
    introspection_client_secret_file: Option<PathBuf>,
    /// client_secret_basic or client_secret_post [env: PORTCULLIS_INTROSPECTION_AUTH;
    /// default client_secret_basic]
    #[arg(long, value_name = "METHOD", help_heading = "Introspection")]
    introspection_auth: Option<String>,
    /// Issuers (comma-separated) whose JWTs are introspected instead of verified with
    /// keys [env: PORTCULLIS_INTROSPECTION_JWT_ISSUERS]
    #[arg(long, value_name = "ISS", help_heading = "Introspection")]
    introspection_jwt_issuers: Option<String>,
    /// Issuers (comma-separated) whose tokens must carry typ at+jwt (RFC 9068), so their
    /// ID tokens are refused [env: PORTCULLIS_AT_JWT_ISSUERS]
    #[arg(long, value_name = "ISS", help_heading = "Introspection")]
    at_jwt_issuers: Option<String>,
}

impl IntrospectionFlags {
    /// Sets the variables the flags stand for.
    fn apply(&self, o: &mut Overrides) -> Result<(), Fail> {
        if let Some(path) = &self.introspection_client_secret_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Fail::usage(format!(
                    "--introspection-client-secret-file: cannot read `{}`: {e}",
                    path.display()
                ))
            })?;
            let secret = text.trim_end_matches(['\n', '\r']).to_owned();
            o.set(
                "PORTCULLIS_INTROSPECTION_CLIENT_SECRET",
                "--introspection-client-secret-file",
                secret,
            );
        }
        let pairs = [
            (
                "PORTCULLIS_INTROSPECTION_URL",
                "--introspection-url",
                &self.introspection_url,
            ),
            (
                "PORTCULLIS_INTROSPECTION_ISSUER",
                "--introspection-issuer",
                &self.introspection_issuer,
            ),
            (
                "PORTCULLIS_INTROSPECTION_CLIENT_ID",
                "--introspection-client-id",
                &self.introspection_client_id,
            ),
            (
                "PORTCULLIS_INTROSPECTION_AUTH",
                "--introspection-auth",
                &self.introspection_auth,
            ),
            (
                "PORTCULLIS_INTROSPECTION_JWT_ISSUERS",
                "--introspection-jwt-issuers",
                &self.introspection_jwt_issuers,
            ),
            (
                "PORTCULLIS_AT_JWT_ISSUERS",
                "--at-jwt-issuers",
                &self.at_jwt_issuers,
            ),
        ];
        o.set_given(pairs.map(|(var, flag, value)| (var, flag, value.clone())));
        Ok(())
    }
}

/// RFC 9728 protected-resource metadata.
#[derive(clap::Args, Debug)]
struct ResourceFlags {
    /// Serve RFC 9728 protected-resource metadata at /.well-known/oauth-protected-resource
    /// (and its form suffixed with the resource's path), and name it in every challenge
    /// (resource_metadata="URL")
    #[arg(long, env = "PORTCULLIS_RESOURCE_METADATA")]
    resource_metadata: bool,
    /// The resource identifier (an https URL; http only for loopback hosts); default: the
    /// one configured audience
    #[arg(
        long,
        value_name = "URL",
        env = "PORTCULLIS_RESOURCE",
        requires = "resource_metadata"
    )]
    resource: Option<String>,
    /// A scope to list in scopes_supported (repeatable, or comma-separated in the variable)
    #[arg(
        long = "resource-scope",
        value_name = "SCOPE",
        env = "PORTCULLIS_RESOURCE_SCOPES",
        value_delimiter = ',',
        requires = "resource_metadata"
    )]
    scopes: Vec<String>,
    /// A page for developers (resource_documentation)
    #[arg(
        long,
        value_name = "URL",
        env = "PORTCULLIS_RESOURCE_DOCUMENTATION",
        requires = "resource_metadata"
    )]
    resource_documentation: Option<String>,
    /// The authorization servers' issuer URLs (repeatable, or comma-separated); default:
    /// every configured issuer (PORTCULLIS_ISSUER, PORTCULLIS_OIDC_ISSUER, issuer key sets)
    #[arg(
        long = "authorization-server",
        value_name = "URL",
        env = "PORTCULLIS_AUTHORIZATION_SERVERS",
        value_delimiter = ',',
        requires = "resource_metadata"
    )]
    authorization_servers: Vec<String>,
}

impl ResourceFlags {
    /// The metadata, when asked for; build errors name the flag.
    fn metadata(&self, layer: &AuthLayer) -> Result<Option<ResourceMetadata>, Fail> {
        if !self.resource_metadata {
            return Ok(None);
        }
        let mut b = ResourceMetadata::builder(layer.authenticator());
        if let Some(r) = self.resource.as_deref().filter(|r| !r.trim().is_empty()) {
            b = b.resource(r.trim());
        }
        let scopes: Vec<&str> = self
            .scopes
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if !scopes.is_empty() {
            b = b.scopes_supported(scopes);
        }
        let servers: Vec<&str> = self
            .authorization_servers
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if !servers.is_empty() {
            b = b.authorization_servers(servers);
        }
        if let Some(d) = self.resource_documentation.as_deref() {
            b = b.resource_documentation(d.trim());
        }
        b.build().map(Some).map_err(|e| {
            let flag = match e.setting() {
                "resource" => "--resource (PORTCULLIS_RESOURCE)",
                "authorization_servers" => {
                    "--authorization-server (PORTCULLIS_AUTHORIZATION_SERVERS)"
                }
                "scopes_supported" => "--resource-scope (PORTCULLIS_RESOURCE_SCOPES)",
                "resource_documentation" => {
                    "--resource-documentation (PORTCULLIS_RESOURCE_DOCUMENTATION)"
                }
                _ => "--resource-metadata",
            };
            Fail::usage(format!("{flag}: {}", e.message()))
        })
    }
}

/// What the handlers share.
struct App {
    forward: ForwardAuth,
    ready: AtomicBool,
    metrics: PrometheusHandle,
    proxy: Proxy,
    store: Store,
    /// `--proxy envoy`: the path prefix whose requests are decisions.
    envoy_prefix: Option<String>,
}

/// Counts one answer by proxy label (`nginx`, `caddy`, `traefik`, `envoy` for the HTTP
/// service, `envoy-grpc` for `Check`) and HTTP status; static keys, no allocation.
pub(crate) fn count_answer(proxy: &'static str, status: StatusCode) {
    let status = match status.as_u16() {
        200 => "200",
        401 => "401",
        403 => "403",
        400 => "400",
        503 => "503",
        _ => "500",
    };
    metrics::counter!("portcullis_forward_auth_responses_total", "proxy" => proxy, "status" => status)
        .increment(1);
}

async fn auth(State(app): State<Arc<App>>, headers: HeaderMap) -> Response<Body> {
    let res = app.forward.decide(&headers).await;
    count_answer(app.proxy.label(), res.status());
    res.map(Body::new)
}

/// `--proxy envoy`: a request under the prefix is Envoy's `http_service` asking; its own
/// method, path and headers are the original request's. Checked before any route, so no
/// endpoint of `serve` answers for a path under the prefix.
async fn envoy_http(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response<Body> {
    let Some(prefix) = app.envoy_prefix.as_deref() else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    let under = path
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if !under {
        return next.run(req).await;
    }
    let target = req.uri().path_and_query().map_or("", |p| p.as_str());
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes()));
    let res = app
        .forward
        .decide_request(req.method().as_str(), target, headers)
        .await;
    count_answer(app.proxy.label(), res.status());
    res.map(Body::new)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<Arc<App>>) -> Response<Body> {
    let ready = app.ready.load(Ordering::Acquire);
    let mut res = Response::new(Body::from(if ready {
        "ready\n"
    } else {
        "keys not loaded\n"
    }));
    if !ready {
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    res
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response<Body> {
    portcullis::metrics::update_key_set_ages();
    let mut res = Response::new(Body::from(app.metrics.render()));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

fn init_logs(level: &str) -> Result<(), Fail> {
    let level: tracing::Level = level.trim().parse().map_err(|_| {
        Fail::usage(format!(
            "--log (PORTCULLIS_LOG) `{level}`: use error, warn, info, debug or trace"
        ))
    })?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false)
        .init();
    Ok(())
}

/// Waits for SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

pub(crate) fn run(args: Args) -> Result<Report, Fail> {
    init_logs(&args.log)?;
    // The runtime first: a Redis revocation list starts its sync task as it is built.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail::usage(format!("cannot start the async runtime: {e}")))?;
    let _in_runtime = rt.enter();
    let mut overrides = Overrides::new(&args.keys, &args.policy)?;
    args.introspection.apply(&mut overrides)?;
    if let Some(path) = &args.shadow_policy {
        overrides.set(
            "PORTCULLIS_SHADOW_POLICY_FILE",
            "--shadow-policy",
            path.display().to_string(),
        );
    }
    args.sender.apply(&mut overrides);
    let applied = applied_policy(
        overrides
            .get("PORTCULLIS_POLICY_FILE")
            .filter(|p| !p.trim().is_empty()),
        args.fedn_policy,
    )?;
    let config = overrides.env_config()?;
    if args.admin_role.trim().is_empty() {
        return Err(Fail::usage(
            "--admin-role (PORTCULLIS_ADMIN_ROLE) is empty; name the role that may revoke tokens",
        ));
    }
    let (config, store) = Store::for_config(config).map_err(|e| overrides.explain(&e))?;
    let default_issuer = crate::revoke::single_issuer(overrides.get("PORTCULLIS_ISSUER"));
    let mut layer = config.build_layer().map_err(|e| overrides.explain(&e))?;
    let metadata = args.resource.metadata(&layer)?;
    if let Some(m) = &metadata {
        layer = layer.resource_metadata(m);
        tracing::info!(
            url = m.url(),
            resource = m.resource(),
            "serving RFC 9728 protected-resource metadata"
        );
    }
    tracing::info!(policy = %applied, "applying policy");
    if let Some(path) = &args.shadow_policy {
        tracing::info!(shadow = %path.display(), "recording the shadow policy's decisions, never enforcing them");
    }
    // Reloaded on change; the watch runs as long as `_watch` lives.
    let (records, _watch) =
        crate::check::watched_records(args.records.as_ref(), layer.authenticator())?.unzip();
    let mut forward = ForwardAuth::new(layer.clone(), args.proxy.kind());
    for text in args
        .identity_headers
        .iter()
        .filter(|s| !s.trim().is_empty())
    {
        let usage = |e: String| {
            Fail::usage(format!(
                "--identity-header (PORTCULLIS_IDENTITY_HEADERS) {e}"
            ))
        };
        let (claim, header) = identity_header(text).map_err(usage)?;
        forward = forward
            .identity_header(claim, header)
            .map_err(|e| usage(format!("`{text}`: {}", e.message())))?;
    }
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| Fail::usage(format!("cannot install the metrics recorder: {e}")))?;
    portcullis::metrics::register();
    metrics::describe_counter!(
        "portcullis_forward_auth_responses_total",
        metrics::Unit::Count,
        "Answers of the forward-auth endpoint, by proxy and HTTP status."
    );
    let authenticator = layer.authenticator().clone();
    let kamiwaza = crate::kamiwaza::routes(&args.kamiwaza, layer.clone(), records.clone())?;
    let authress = records
        .clone()
        .map(|r| crate::authress::routes(layer.clone(), r, &args.authress))
        .transpose()?;
    if let Some(records) = records {
        forward = forward.records(records);
    }
    // Envoy's gRPC `Check` gives the original request field by field: the same decision,
    // as Envoy, without a path prefix.
    let grpc = args.grpc_listen.map(|addr| {
        (
            addr,
            crate::envoy::AuthorizationServer::new(
                forward
                    .clone()
                    .with_proxy(portcullis::forward::ProxyKind::Envoy),
                count_answer,
            ),
        )
    });
    let envoy_prefix = if args.proxy == Proxy::Envoy {
        let prefix = args.envoy_path_prefix.trim();
        forward = forward.path_prefix(prefix).map_err(|e| {
            Fail::usage(format!(
                "--envoy-path-prefix (PORTCULLIS_ENVOY_PATH_PREFIX): {}",
                e.message()
            ))
        })?;
        Some(prefix.to_owned())
    } else {
        None
    };
    let mut admin =
        AdminApi::new(layer, store.admin_store(), args.admin_role.trim()).map_err(|e| {
            Fail::usage(format!(
                "--admin-role (PORTCULLIS_ADMIN_ROLE): {}",
                e.message()
            ))
        })?;
    if let Some(issuer) = default_issuer {
        admin = admin.default_issuer(issuer);
    }
    let app = Arc::new(App {
        forward,
        ready: AtomicBool::new(false),
        metrics,
        proxy: args.proxy,
        store,
        envoy_prefix,
    });
    let grace = Duration::from_secs(args.shutdown_grace);
    let serve_admin = args.admin_revoke;
    if serve_admin {
        tracing::info!(role = %args.admin_role.trim(), "POST /admin/revoke is on");
    }
    let listen = args.listen;
    let proxy = args.proxy;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Fail::usage(format!("--listen (PORTCULLIS_LISTEN) {listen}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| Fail::usage(format!("--listen {listen}: {e}")))?;
        // gRPC health on the ext_authz port: NOT_SERVING until ready, like /readyz.
        let (health, health_service) = tonic_health::server::health_reporter();
        let grpc = match grpc {
            Some((addr, service)) => {
                let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    Fail::usage(format!("--grpc-listen (PORTCULLIS_GRPC_LISTEN) {addr}: {e}"))
                })?;
                for name in ["", crate::envoy::SERVICE_NAME] {
                    health
                        .set_service_status(name, tonic_health::ServingStatus::NotServing)
                        .await;
                }
                Some((l, service))
            }
            None => None,
        };
        // Readiness: every remote key set loaded once (at once without remote sets).
        {
            let app = app.clone();
            let health = health.clone();
            tokio::spawn(async move {
                let mut delay = Duration::from_millis(250);
                let mut warned = false;
                loop {
                    match authenticator.load_keys().await {
                        Ok(()) => {
                            app.store.first_sync().await;
                            app.ready.store(true, Ordering::Release);
                            for name in ["", crate::envoy::SERVICE_NAME] {
                                health
                                    .set_service_status(name, tonic_health::ServingStatus::Serving)
                                    .await;
                            }
                            tracing::info!("keys loaded: ready");
                            break;
                        }
                        Err(e) => {
                            if !warned {
                                tracing::warn!(error = %e, "keys not loaded yet: /readyz answers 503");
                                warned = true;
                            }
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            });
        }
        {
            let handle = app.metrics.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    handle.run_upkeep();
                }
            });
        }
        let mut router = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text));
        if proxy != Proxy::Envoy {
            router = router.route("/auth", any(auth));
        }
        let mut router = router
            .with_state(app.clone())
            .merge(kamiwaza)
            .merge(authress.unwrap_or_default());
        if serve_admin {
            router = router.merge(admin.into_router());
        }
        if let Some(m) = metadata {
            router = router.merge(m.into_router());
        }
        // Envoy's http_service: every request under the prefix is a decision, whatever
        // route it would otherwise reach.
        let router = router.layer(axum::middleware::from_fn_with_state(app, envoy_http));
        tracing::info!("listening on {local} (proxy {})", proxy.label());
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: decisions in flight finish");
            let _ = stop_tx.send(true);
        });
        if let Some((l, service)) = grpc {
            let addr = l
                .local_addr()
                .map_err(|e| Fail::usage(format!("--grpc-listen: {e}")))?;
            let mut stop = stop_rx.clone();
            tracing::info!("ext_authz gRPC (envoy.service.auth.v3.Authorization/Check, grpc.health.v1) on {addr}");
            tokio::spawn(async move {
                let served = tonic::transport::Server::builder()
                    .add_service(health_service)
                    .add_service(service)
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(l),
                        async move {
                            let _ = stop.wait_for(|s| *s).await;
                        },
                    )
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "ext_authz gRPC server stopped");
                }
            });
        }
        let mut stopped = stop_rx.clone();
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        });
        tokio::select! {
            r = server => r.map_err(|e| Fail::usage(format!("server error: {e}")))?,
            () = async move {
                let _ = stopped.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!("shutdown grace of {}s over; closing", grace.as_secs()),
        }
        tracing::info!("stopped");
        Ok::<(), Fail>(())
    })?;
    Ok(Report::ok(String::new()))
}

/// Which policy `serve` applies, in words for its start-up log: a policy file, or FEDn's
/// built-in role map only when asked for; neither is an error naming both ways.
fn applied_policy(file: Option<String>, fedn: bool) -> Result<String, Fail> {
    match (file, fedn) {
        (Some(_), true) => Err(Fail::usage(
            "--fedn-policy (PORTCULLIS_FEDN_POLICY) and a policy file (--policy, PORTCULLIS_POLICY_FILE) are both set; choose one",
        )),
        (Some(path), false) => Ok(format!("the policy file {path}")),
        (None, true) => Ok("FEDn's built-in REST and gRPC role map (--fedn-policy)".to_owned()),
        (None, false) => Err(Fail::usage(
            "no policy: pass --policy FILE (PORTCULLIS_POLICY_FILE) with your rules, or --fedn-policy (PORTCULLIS_FEDN_POLICY=true) for FEDn's built-in role map",
        )),
    }
}
