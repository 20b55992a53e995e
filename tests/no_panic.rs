//! No input makes the layer panic or answer 5xx. Arbitrary
//! `Authorization` values (raw bytes and structured near-tokens) and arbitrary paths go
//! through the layer; every answer is either the inner service (only on public paths) or
//! a 400/401/403 with the JSON body of the answer table.

mod common;

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use http::{HeaderValue, Method, Request};
use portcullis::{AuthError, AuthLayer, Policy};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

use common::{NOW, b64, craft, hs_builder, hs256};

const CASES: u32 = 2000;

const CODES: [&str; 4] = [
    "missing_token",
    "invalid_request",
    "invalid_token",
    "insufficient_scope",
];
const MESSAGES: [&str; 7] = [
    "Missing token",
    "Invalid token scheme, expected Bearer",
    "Invalid request",
    "Invalid request path",
    "Invalid token",
    "Token expired",
    "Insufficient permissions",
];

fn policy() -> Policy {
    Policy::fedn_rest()
        .allow("GET", "/me", ["*"])
        .build()
        .unwrap()
}

/// FEDn's REST policy over a service that answers "ok" on every path and method.
fn app() -> &'static Router {
    static APP: OnceLock<Router> = OnceLock::new();
    APP.get_or_init(|| {
        Router::new()
            .fallback(|| async { "ok" })
            .layer(AuthLayer::new(hs_builder().build().unwrap(), policy()).attach_errors())
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

/// Sends one request and checks the answer against the table; `allow_ok` says whether a
/// 200 from the inner service is acceptable (public path, or a really signed token).
fn check(
    method: &Method,
    path: &str,
    authz: &[HeaderValue],
    allow_ok: bool,
) -> Result<(), TestCaseError> {
    let mut req = Request::builder().method(method.clone()).uri(path);
    for value in authz {
        req = req.header("authorization", value.clone());
    }
    let req = req.body(Body::empty()).unwrap();
    let res = runtime().block_on(app().clone().oneshot(req)).unwrap();
    let status = res.status().as_u16();
    let error = res.extensions().get::<AuthError>().cloned();
    let challenge = res.headers().get("www-authenticate").cloned();
    let content_type = res.headers().get("content-type").cloned();
    let bytes = runtime()
        .block_on(axum::body::to_bytes(res.into_body(), 1 << 16))
        .unwrap();

    prop_assert!(status < 500, "{status} for {method} {path} {authz:?}");
    if status == 200 {
        prop_assert!(allow_ok, "200 for {method} {path} {authz:?}");
        prop_assert!(error.is_none());
        let want: &[u8] = if method == Method::HEAD { b"" } else { b"ok" };
        prop_assert_eq!(&bytes[..], want);
        return Ok(());
    }
    prop_assert!(
        matches!(status, 400 | 401 | 403),
        "{status} for {method} {path} {authz:?}"
    );
    prop_assert_eq!(
        content_type,
        Some(HeaderValue::from_static("application/json"))
    );
    prop_assert!(challenge.is_some(), "4xx without WWW-Authenticate");
    let error = error.ok_or_else(|| TestCaseError::fail("no AuthError in the extensions"))?;
    prop_assert_eq!(error.status().as_u16(), status);
    if method == Method::HEAD {
        // axum drops the body of HEAD answers; the body that would have gone is the error's.
        prop_assert!(bytes.is_empty());
        let bytes = error.body();
        return check_body(bytes.as_bytes());
    }
    check_body(&bytes)
}

/// The JSON body of a rejection: exactly `error` and `message`, both from the table.
fn check_body(bytes: &[u8]) -> Result<(), TestCaseError> {
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|e| TestCaseError::fail(format!("body not JSON: {e}: {bytes:?}")))?;
    let obj = body
        .as_object()
        .ok_or_else(|| TestCaseError::fail(format!("body not an object: {body}")))?;
    prop_assert_eq!(obj.len(), 2, "{}", body);
    let code = obj.get("error").and_then(Value::as_str).unwrap_or_default();
    let message = obj
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    prop_assert!(CODES.contains(&code), "error {:?}", code);
    // Fixed texts only: nothing from the request is echoed.
    prop_assert!(MESSAGES.contains(&message), "message {:?}", message);
    Ok(())
}

fn is_public(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    policy()
        .target(&Method::GET, path)
        .is_ok_and(|t| t.is_public())
}

/// Any bytes that make a valid header value.
fn raw_header() -> impl Strategy<Value = HeaderValue> {
    // Mostly bytes a header value may hold (visible ASCII, obs-text, tab), some of any kind.
    let byte =
        prop_oneof![8 => 0x20u8..=0x7e, 2 => 0x80u8..=0xff, 1 => Just(b'\t'), 1 => any::<u8>()];
    prop::collection::vec(byte, 0..300)
        .prop_filter_map("not a header value", |b| HeaderValue::from_bytes(&b).ok())
}

fn scheme() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => prop::sample::select(vec!["Bearer", "bearer", "BEARER", "bEaReR"]).prop_map(str::to_owned),
        2 => prop::sample::select(vec!["Token", "Basic", "Bearer,", "Bear", "Bearerx", ""]).prop_map(str::to_owned),
        1 => "[A-Za-z!#$%&'*+.^_`|~-]{0,10}",
    ]
}

fn separator() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => Just(" ".to_owned()),
        2 => prop::sample::select(vec!["  ", "   ", ""]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["\t", " \t", "\t ", ",", ", "]).prop_map(str::to_owned),
    ]
}

/// Arbitrary JSON, biased toward names and values JOSE cares about.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter_map("not finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        (NOW - 200..NOW + 200).prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "HS256",
            "none",
            "None",
            "RS256",
            "JWT",
            "admin",
            "client",
            "",
            "../../etc/passwd",
            "\u{0}"
        ])
        .prop_map(|s| json!(s)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "alg", "typ", "kid", "crit", "cty", "b64", "jku", "jwk", "x5u", "x5c", "enc", "zip",
            "exp", "nbf", "iat", "iss", "aud", "sub", "role", "jti",
        ]).prop_map(str::to_owned),
        1 => "[a-z_]{0,6}",
    ]
}

/// One JWT-ish segment: base64url of JSON (an object, usually), of random bytes, or junk.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => json_object().prop_map(|v| b64(v.to_string().as_bytes())),
        1 => json_value().prop_map(|v| b64(v.to_string().as_bytes())),
        2 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| b64(&b)),
        1 => "[A-Za-z0-9_=+/-]{0,40}",
        1 => Just(String::new()),
    ]
}

fn json_object() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            "HS256", "HS512", "none", "NONE", "RS256", "ES256", "EdDSA",
        ]),
        prop::collection::vec((json_key(), json_value()), 0..6),
    )
        .prop_map(|(alg, kv)| {
            let mut m: serde_json::Map<String, Value> = kv.into_iter().collect();
            m.entry("alg").or_insert(json!(alg));
            Value::Object(m)
        })
}

/// A credential: token68-ish text, runs of dots, or 1-6 segments joined by dots.
fn credential() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[A-Za-z0-9._~+/=-]{0,200}",
        1 => "[.]{0,64}",
        1 => "([A-Za-z0-9_-]{0,6}[.]{1,3}){0,8}",
        6 => (json_object(), json_object(), prop::collection::vec(any::<u8>(), 0..80))
            .prop_map(|(h, p, sig)| format!("{}.{}.{}", b64(h.to_string().as_bytes()), b64(p.to_string().as_bytes()), b64(&sig))),
        3 => prop::collection::vec(segment(), 1..7).prop_map(|s| s.join(".")),
        1 => ".{0,40}",
    ]
}

fn structured_header() -> impl Strategy<Value = Option<HeaderValue>> {
    (
        scheme(),
        separator(),
        credential(),
        prop_oneof![6 => Just(""), 1 => prop::sample::select(vec![" ", "=", ",x", " x", "\t"])],
    )
        .prop_map(|(s, sep, c, tail)| HeaderValue::from_str(&format!("{s}{sep}{c}{tail}")).ok())
}

fn segment_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "api", "v1", "clients", "add", "health", "internal", "me", "", ".", "..", "...", "%2e", "%2E%2e",
            ".%2E", "%2e.", "%2F", "a%2Fb", "%252e%252e", "%00", "%", "%zz", "..;", ";", "~", "*", "{id}",
        ]).prop_map(str::to_owned),
        2 => "[A-Za-z0-9._~!$&'()*+,;=:@%-]{0,12}",
    ]
}

/// Paths of 0-7 segments, sometimes with a query that names other paths.
fn path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(segment_text(), 0..8),
        prop::option::of("[A-Za-z0-9/._%=&-]{0,20}"),
    )
        .prop_map(|(segs, q)| {
            let mut p = format!("/{}", segs.join("/"));
            if let Some(q) = q {
                p.push('?');
                p.push_str(&q);
            }
            p
        })
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![
        Method::GET,
        Method::POST,
        Method::HEAD,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    /// Raw header bytes, alone or after a known scheme, on a path that needs a token.
    #[test]
    fn np_raw_authorization_values(
        prefix in prop::sample::select(vec!["", "Bearer ", "bearer ", "Bearer  ", "Bearer", "Token "]),
        value in raw_header(),
        m in method(),
    ) {
        let mut bytes = prefix.as_bytes().to_vec();
        bytes.extend_from_slice(value.as_bytes());
        let value = HeaderValue::from_bytes(&bytes).unwrap();
        check(&m, "/api/v1/clients/add", &[value], false)?;
    }

    /// Scheme variants, separators and JWT-looking credentials.
    #[test]
    fn np_structured_authorization_values(value in structured_header(), twice in prop::bool::weighted(0.1)) {
        let values: Vec<HeaderValue> = match value {
            Some(v) if twice => vec![v.clone(), v],
            Some(v) => vec![v],
            None => Vec::new(),
        };
        check(&Method::POST, "/api/v1/clients/add", &values, false)?;
        check(&Method::GET, "/me", &values, false)?;
    }

    /// Arbitrary paths with and without arbitrary credentials; 200 only on public paths.
    #[test]
    fn np_arbitrary_paths(p in path(), m in method(), value in prop::option::of(structured_header())) {
        let Ok(uri) = p.parse::<http::Uri>() else { return Ok(()) };
        let path = uri.path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_default();
        let values: Vec<HeaderValue> = value.flatten().into_iter().collect();
        check(&m, &path, &values, is_public(&path))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES / 2, failure_persistence: None, ..ProptestConfig::default() })]

    /// Really signed tokens with arbitrary header members and claims: may pass (200) only
    /// when signed, never 5xx, never a panic; the role claim of any type is handled.
    #[test]
    fn np_signed_tokens_with_arbitrary_claims(
        header in prop::collection::vec((json_key(), json_value()), 0..3),
        claims in prop::collection::vec((json_key(), json_value()), 0..8),
        exp in prop::option::weighted(0.9, prop_oneof![NOW - 400..NOW + 400, Just(NOW + 3600)]),
        role in prop::option::of(prop_oneof![
            2 => prop::sample::select(vec!["client", "admin", "combiner", "admin client", ""]).prop_map(|r| json!(r)),
            1 => Just(json!(["client", 1, null])),
            2 => json_value(),
        ]),
        p in prop::sample::select(vec!["/me", "/api/v1/clients/add", "/api/v1/clients/", "/x"]),
    ) {
        let mut h: serde_json::Map<String, Value> = header.into_iter().filter(|(k, _)| k != "alg").collect();
        h.insert("alg".into(), json!("HS256"));
        let mut c: serde_json::Map<String, Value> = claims.into_iter().filter(|(k, _)| !matches!(k.as_str(), "exp" | "role")).collect();
        if let Some(exp) = exp {
            c.insert("exp".into(), json!(exp));
        }
        if let Some(role) = role {
            c.insert("role".into(), role);
        }
        let token = craft(&hs256(), &Value::Object(h).to_string(), &Value::Object(c).to_string());
        let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        check(&Method::POST, p, &[value], true)?;
    }
}
