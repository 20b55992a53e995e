//! Builder and layer behaviour found in review: configuration errors that name the
//! setting and have a kind (and, from files, a location), the segment cap, handler-returned errors, and `crit` parameters a caller
//! declared.

mod common;

use axum::Router;
use axum::routing::get;
use common::*;
use portcullis::{
    Algorithm, AuthError, AuthLayer, Authenticator, ConfigErrorKind, EnvConfig, Policy, Principal,
    RecordSet,
};
use serde_json::json;

#[test]
fn two_keys_without_kid_for_one_alg_are_a_config_error() {
    let (_, public) = keypair(Algorithm::ES256);
    let err = Authenticator::builder()
        .public_key_pem(Algorithm::ES256, &public)
        .public_key_pem(Algorithm::ES256, &public)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "keys");
    assert!(err.to_string().contains("kid"), "{err}");
    // With kids they are fine.
    Authenticator::builder()
        .public_key_pem_with_kid(Algorithm::ES256, &public, "a")
        .public_key_pem_with_kid(Algorithm::ES256, &public, "b")
        .build()
        .unwrap();
    let err = Authenticator::builder()
        .hmac_secret(SECRET)
        .hmac_secret(SECRET)
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "keys");
}

#[test]
fn realm_and_size_cap_are_checked() {
    for realm in ["", "a\r\nb", "tab\there", "quote\"", "é"] {
        let err = hs_builder().realm(realm).build().unwrap_err();
        assert_eq!(err.setting(), "realm", "{realm:?}");
    }
    hs_builder().realm("my api").build().unwrap();
    for cap in [0, usize::MAX, portcullis::MAX_TOKEN_BYTES_CAP + 1] {
        let err = hs_builder().max_token_bytes(cap).build().unwrap_err();
        assert_eq!(err.setting(), "max_token_bytes");
    }
    let lookup = |name: &str| match name {
        "FEDN_JWT_SECRET_KEY" => Some(SECRET.to_owned()),
        "PORTCULLIS_MAX_TOKEN_BYTES" => Some("18446744073709551615".to_owned()),
        _ => None,
    };
    let err = EnvConfig::from_lookup(lookup).unwrap().build().unwrap_err();
    assert_eq!(err.setting(), "PORTCULLIS_MAX_TOKEN_BYTES");
}

#[test]
fn env_errors_name_the_variable_that_was_set() {
    let run = |vars: &[(&str, &str)]| {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EnvConfig::from_lookup(move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .and_then(|c| c.build())
        .unwrap_err()
    };
    let err = run(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_AUTH_WHITELIST_URL", "/"),
    ]);
    assert_eq!(err.setting(), "FEDN_AUTH_WHITELIST_URL");
    assert!(err.to_string().contains("every route"), "{err}");
    let err = run(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_AUTH_WHITELIST_URL_PREFIX", "internal"),
    ]);
    assert_eq!(err.setting(), "FEDN_AUTH_WHITELIST_URL_PREFIX");
    let err = run(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("FEDN_CUSTOM_URL_PREFIX", "/a/../b"),
    ]);
    assert_eq!(err.setting(), "FEDN_CUSTOM_URL_PREFIX");
    let dir = std::env::temp_dir().join(format!("portcullis-builder-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("p256.pub.pem");
    std::fs::write(&pem, keypair(Algorithm::ES256).1).unwrap();
    // A PEM key with the default HS256 names the file variable and the algorithm variable.
    let err = run(&[("PORTCULLIS_PUBLIC_KEY_FILE", pem.to_str().unwrap())]);
    assert_eq!(err.setting(), "PORTCULLIS_PUBLIC_KEY_FILE");
    assert!(err.to_string().contains("FEDN_JWT_ALGORITHM"), "{err}");
    let jwks = dir.join("set.json");
    std::fs::write(
        &jwks,
        r#"{"keys":[{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}"#,
    )
    .unwrap();
    let err = run(&[("PORTCULLIS_JWK_SET_FILE", jwks.to_str().unwrap())]);
    assert_eq!(err.setting(), "PORTCULLIS_JWK_SET_FILE");
    let err = run(&[("PORTCULLIS_JWK_SET_FILE", "/nonexistent/set.json")]);
    assert_eq!(err.setting(), "PORTCULLIS_JWK_SET_FILE");
}

#[tokio::test]
async fn too_many_segments_are_400() {
    let app = fedn_app();
    let admin = format!("Bearer {}", hs256().sign(&claims("admin")).unwrap());
    let long = "/x".repeat(257);
    let got = send(&app, "GET", &long, Some(&admin)).await;
    assert_rejected(
        &got,
        400,
        Some(r#"Bearer realm="api", error="invalid_request""#),
        "invalid_request",
        "Invalid request path",
    );
    let ok = "/x".repeat(256);
    assert_eq!(send(&app, "GET", &ok, Some(&admin)).await.0, 200);
}

#[tokio::test]
async fn an_auth_error_from_a_handler_gets_the_layers_challenge() {
    let auth = hs_builder().schemes(["Token"]).realm("fl").build().unwrap();
    let policy = Policy::builder()
        .allow("GET", "/doc", ["*"])
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/doc",
            get(|_p: Principal| async { Err::<(), _>(AuthError::forbidden()) }),
        )
        .layer(AuthLayer::new(auth, policy));
    let token = format!("Token {}", hs256().sign(&claims("client")).unwrap());
    let got = send(&app, "GET", "/doc", Some(&token)).await;
    assert_rejected(
        &got,
        403,
        Some(r#"Token realm="fl", error="insufficient_scope""#),
        "insufficient_scope",
        "Insufficient permissions",
    );
}

#[test]
fn understood_crit_parameters_reach_the_principal() {
    let auth = hs_builder().understand_crit("tenant").build().unwrap();
    let payload = claims("client").to_string();
    let token = craft(
        &hs256(),
        r#"{"alg":"HS256","crit":["tenant"],"tenant":"acme"}"#,
        &payload,
    );
    let principal = auth.verify(&token).unwrap();
    assert_eq!(principal.header().get("tenant"), Some(&json!("acme")));
    // Not declared: refused.
    let strict = hs_builder().build().unwrap();
    assert_eq!(
        strict.verify(&token).unwrap_err().kind(),
        portcullis::AuthErrorKind::InvalidToken
    );
}

// ---- ConfigError kinds and locations ----

/// The error of an environment, through `EnvConfig::from_lookup` and `build`.
fn env_error(vars: &[(&str, &str)]) -> portcullis::ConfigError {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let shown = vars.clone();
    EnvConfig::from_lookup(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        .and_then(|c| c.build())
        .err()
        .unwrap_or_else(|| panic!("configured without error: {shown:?}"))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("portcullis-builder-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn builder_errors_have_the_kind_of_their_setting() {
    let (_, public) = keypair(Algorithm::ES256);
    let cases: Vec<(portcullis::ConfigError, ConfigErrorKind, &str)> = vec![
        (
            Authenticator::builder()
                .hmac_secret("short")
                .build()
                .unwrap_err(),
            ConfigErrorKind::HmacSecret,
            "hmac_secret",
        ),
        (
            Authenticator::builder().build().unwrap_err(),
            ConfigErrorKind::Keys,
            "keys",
        ),
        (
            Authenticator::builder()
                .hmac_secret(SECRET)
                .public_key_pem(Algorithm::ES256, &public)
                .build()
                .unwrap_err(),
            ConfigErrorKind::Keys,
            "keys",
        ),
        (
            hs_builder()
                .hmac_algorithm(Algorithm::RS256)
                .build()
                .unwrap_err(),
            ConfigErrorKind::Algorithm,
            "hmac_algorithm",
        ),
        (
            Authenticator::builder()
                .public_key_pem(Algorithm::ES256, "not a key")
                .build()
                .unwrap_err(),
            ConfigErrorKind::PublicKey,
            "public_key_pem",
        ),
        (
            Authenticator::builder()
                .jwk_set_json("{}")
                .build()
                .unwrap_err(),
            ConfigErrorKind::JwkSet,
            "jwk_set",
        ),
        (
            hs_builder().leeway(10_000).build().unwrap_err(),
            ConfigErrorKind::Claims,
            "leeway",
        ),
        (
            hs_builder().realm("").build().unwrap_err(),
            ConfigErrorKind::Extraction,
            "realm",
        ),
        (
            hs_builder().schemes([""]).build().unwrap_err(),
            ConfigErrorKind::Extraction,
            "scheme",
        ),
        (
            Policy::builder()
                .allow("GET", "/a/x*", ["client"])
                .build()
                .unwrap_err(),
            ConfigErrorKind::Policy,
            "rule 0 (GET /a/x*)",
        ),
        (
            Policy::builder().public_prefix("/").build().unwrap_err(),
            ConfigErrorKind::Policy,
            "public prefix",
        ),
        (
            portcullis::Signer::hmac(Algorithm::ES256, SECRET).unwrap_err(),
            ConfigErrorKind::Algorithm,
            "signer algorithm",
        ),
        (
            portcullis::Signer::from_pem(Algorithm::ES256, "not a key").unwrap_err(),
            ConfigErrorKind::SigningKey,
            "signer key",
        ),
        (
            hs_builder()
                .role_claim("realm_access..roles")
                .build()
                .unwrap_err(),
            ConfigErrorKind::Claims,
            "role_claim",
        ),
        (
            Authenticator::builder()
                .jwks_url("ftp://id.example/jwks.json")
                .build()
                .unwrap_err(),
            ConfigErrorKind::RemoteKeys,
            "jwks_url",
        ),
        (
            Authenticator::builder()
                .issuer_pattern("https://id.example/realms/a")
                .build()
                .unwrap_err(),
            ConfigErrorKind::RemoteKeys,
            "issuer_pattern",
        ),
        (
            portcullis::RecordSet::builder()
                .role("", ["documents:read"])
                .build()
                .unwrap_err(),
            ConfigErrorKind::Records,
            "roles",
        ),
        (
            portcullis::RecordSet::builder()
                .group("staff", [""])
                .build()
                .unwrap_err(),
            ConfigErrorKind::Records,
            "groups.staff[0]",
        ),
        (
            portcullis::RecordSet::builder()
                .record(
                    portcullis::Record::new("r").statement(
                        portcullis::Statement::new()
                            .resources(["/a"])
                            .users(["ada"]),
                    ),
                )
                .build()
                .unwrap_err(),
            ConfigErrorKind::Records,
            "records[0].statements[0].roles",
        ),
        (
            portcullis::Authorizer::new(
                portcullis::RecordSet::builder()
                    .role("reader", ["documents:read"])
                    .record(
                        portcullis::Record::new("r").statement(
                            portcullis::Statement::new()
                                .roles(["reader"])
                                .resources(["/a"])
                                .users(["ada"]),
                        ),
                    )
                    .build()
                    .unwrap(),
            )
            .issuers_of(
                &hs_builder()
                    .issuer("https://a.example")
                    .issuer("https://b.example")
                    .build()
                    .unwrap(),
            )
            .unwrap_err(),
            ConfigErrorKind::Records,
            "records[0].statements[0].users[0]",
        ),
    ];
    for (err, kind, setting) in cases {
        assert_eq!(err.kind(), kind, "{err}");
        assert_eq!(err.setting(), setting, "{err}");
        assert_eq!(err.location(), None, "{err}");
        // The parts make up the display.
        assert_eq!(err.to_string(), format!("{setting}: {}", err.message()));
        assert!(!err.message().is_empty());
    }
}

#[test]
fn env_errors_have_the_kind_of_what_the_variable_configures() {
    type Vars = &'static [(&'static str, &'static str)];
    let cases: &[(Vars, ConfigErrorKind, &str)] = &[
        (
            &[("FEDN_JWT_SECRET_KEY", "short")],
            ConfigErrorKind::HmacSecret,
            "FEDN_JWT_SECRET_KEY",
        ),
        (&[], ConfigErrorKind::Keys, "FEDN_JWT_SECRET_KEY (or "),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("FEDN_JWT_ALGORITHM", "XS1"),
            ],
            ConfigErrorKind::Algorithm,
            "FEDN_JWT_ALGORITHM",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("FEDN_JWT_ALGORITHM", "RS256"),
            ],
            ConfigErrorKind::Algorithm,
            "FEDN_JWT_ALGORITHM",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_LEEWAY_SECONDS", "soon"),
            ],
            ConfigErrorKind::Claims,
            "PORTCULLIS_LEEWAY_SECONDS",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_LEEWAY_SECONDS", "100000"),
            ],
            ConfigErrorKind::Claims,
            "PORTCULLIS_LEEWAY_SECONDS",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_MAX_TOKEN_BYTES", "0"),
            ],
            ConfigErrorKind::Extraction,
            "PORTCULLIS_MAX_TOKEN_BYTES",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_INSECURE_ALLOW_SHORT_SECRET", "maybe"),
            ],
            ConfigErrorKind::HmacSecret,
            "PORTCULLIS_INSECURE_ALLOW_SHORT_SECRET",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("FEDN_AUTH_WHITELIST_URL", "/"),
            ],
            ConfigErrorKind::Policy,
            "FEDN_AUTH_WHITELIST_URL",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("FEDN_JWT_CUSTOM_CLAIM_KEY", "tenant"),
            ],
            ConfigErrorKind::Policy,
            "FEDN_JWT_CUSTOM_CLAIM_VALUE",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_POLICY_FILE", "/nonexistent/policy.toml"),
            ],
            ConfigErrorKind::Policy,
            "PORTCULLIS_POLICY_FILE",
        ),
        (
            &[("PORTCULLIS_JWK_SET_FILE", "/nonexistent/set.json")],
            ConfigErrorKind::JwkSet,
            "PORTCULLIS_JWK_SET_FILE",
        ),
        (
            &[("PORTCULLIS_PUBLIC_KEY_FILE", "/nonexistent/key.pem")],
            ConfigErrorKind::PublicKey,
            "PORTCULLIS_PUBLIC_KEY_FILE",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_JWKS_TTL_SECONDS", "hourly"),
            ],
            ConfigErrorKind::RemoteKeys,
            "PORTCULLIS_JWKS_TTL_SECONDS",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_JWKS_URL", "not a url"),
            ],
            ConfigErrorKind::RemoteKeys,
            "PORTCULLIS_JWKS_URL",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_JWKS_COOLDOWN_SECONDS", "soon"),
            ],
            ConfigErrorKind::RemoteKeys,
            "PORTCULLIS_JWKS_COOLDOWN_SECONDS",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_OIDC_ISSUER", "not a url"),
            ],
            ConfigErrorKind::RemoteKeys,
            "PORTCULLIS_OIDC_ISSUER",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_ISSUER_PATTERN", "https://id.example/realms/a"),
            ],
            ConfigErrorKind::RemoteKeys,
            "PORTCULLIS_ISSUER_PATTERN",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_TOKEN_SOURCES", "carrier-pigeon"),
            ],
            ConfigErrorKind::Extraction,
            "PORTCULLIS_TOKEN_SOURCES",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("FEDN_AUTH_SCHEME", "Bad Scheme"),
            ],
            ConfigErrorKind::Extraction,
            "FEDN_AUTH_SCHEME",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_ROLE_CLAIM", "a..b"),
            ],
            ConfigErrorKind::Claims,
            "PORTCULLIS_ROLE_CLAIM",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_TOKEN_CACHE_ENTRIES", "lots"),
            ],
            ConfigErrorKind::Environment,
            "PORTCULLIS_TOKEN_CACHE_ENTRIES",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_PUBLIC_AUTH", "maybe"),
            ],
            ConfigErrorKind::Environment,
            "PORTCULLIS_PUBLIC_AUTH",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_CORS_PREFLIGHT", "maybe"),
            ],
            ConfigErrorKind::Environment,
            "PORTCULLIS_CORS_PREFLIGHT",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_UNKNOWN_TARGETS", "maybe"),
            ],
            ConfigErrorKind::Environment,
            "PORTCULLIS_UNKNOWN_TARGETS",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("FEDN_CUSTOM_URL_PREFIX", "internal"),
            ],
            ConfigErrorKind::Policy,
            "FEDN_CUSTOM_URL_PREFIX",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("FEDN_AUTH_WHITELIST_URL_PREFIX", "internal"),
            ],
            ConfigErrorKind::Policy,
            "FEDN_AUTH_WHITELIST_URL_PREFIX",
        ),
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("FEDN_JWT_CUSTOM_CLAIM_VALUE", "acme"),
            ],
            ConfigErrorKind::Policy,
            "FEDN_JWT_CUSTOM_CLAIM_KEY",
        ),
        // Without the `redis` feature only PORTCULLIS_REDIS_URL is read (and refused).
        #[cfg(feature = "redis")]
        (
            &[
                ("FEDN_JWT_SECRET_KEY", SECRET),
                ("PORTCULLIS_REDIS_RESYNC_SECONDS", "0.5"),
            ],
            ConfigErrorKind::Redis,
            "PORTCULLIS_REDIS_RESYNC_SECONDS",
        ),
    ];
    for (vars, kind, setting) in cases {
        let err = env_error(vars);
        assert_eq!(err.kind(), *kind, "{vars:?}: {err}");
        assert!(err.setting().starts_with(setting), "{vars:?}: {err}");
        assert_eq!(err.location(), None, "{err}");
    }
}

#[test]
fn policy_file_errors_name_their_line() {
    // Line 5 holds the misspelt key.
    let dir = temp_dir("policy");
    let path = dir.join("policy.toml");
    std::fs::write(
        &path,
        "unmatched = \"deny\"\n\n[[rule]]\nroles = [\"client\"]\npaht = \"/a\"\n",
    )
    .unwrap();
    let origin = path.display().to_string();
    let check = |err: portcullis::ConfigError| {
        assert_eq!(err.kind(), ConfigErrorKind::Policy, "{err}");
        let at = err.location().expect("a location");
        assert_eq!(at, format!("{origin}:5:1"), "{err}");
        assert_eq!(err.to_string(), format!("{at}: {}", err.message()));
        assert!(err.message().contains("paht"), "{err}");
    };
    check(Policy::from_toml_file(&path).unwrap_err());
    check(env_error(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("PORTCULLIS_POLICY_FILE", path.to_str().unwrap()),
    ]));
    // A bad value of a known key: the file and the key.
    let err = Policy::from_toml_str("unmatched = \"allow\"").unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Policy);
    assert_eq!(err.location(), Some("policy: unmatched"));
    assert_eq!(
        err.to_string(),
        "policy: unmatched: `allow` is not `deny` or `authenticated`"
    );
}

#[test]
fn record_file_errors_are_records_with_a_location() {
    let dir = temp_dir("records");
    let path = dir.join("access.toml");
    std::fs::write(
        &path,
        "[roles]\nreader = [\"documents:read\"]\n\n[[records]]\nid = \"r\"\n[[records.statements]]\nroles = [\"reader\"]\nresources = [\"/a//b\"]\nusers = [\"ada\"]\n",
    )
    .unwrap();
    let err = RecordSet::from_file(&path).unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Records, "{err}");
    let origin = path.display().to_string();
    // Line 8 holds the bad resource.
    let at = err.location().expect("a location");
    assert!(at.starts_with(&format!("{origin}:8:")), "{err}");
    assert!(
        at.ends_with(": records[0].statements[0].resources[0]"),
        "{err}"
    );
    assert!(err.message().contains("//"), "{err}");
    assert_eq!(
        err.to_string(),
        format!("{}: {}", err.location().unwrap(), err.message())
    );
    // A file that cannot be read: the file alone.
    let missing = dir.join("missing.json");
    let err = RecordSet::from_file(&missing).unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Records);
    assert_eq!(err.location(), Some(missing.display().to_string().as_str()));
    assert!(err.message().starts_with("cannot read it"), "{err}");
    // Built in code: records, without a location.
    let err = RecordSet::builder()
        .role("reader", ["documents::read"])
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Records);
    assert_eq!(err.setting(), "roles.reader[0]");
    assert_eq!(err.location(), None);
}

/// A configuration error keeps the error underneath it (`Error::source`): the I/O error
/// of an unreadable file, the TOML error of a record file.
#[test]
fn config_errors_keep_their_source() {
    use std::error::Error as _;
    let err = env_error(&[
        ("FEDN_JWT_SECRET_KEY", SECRET),
        ("PORTCULLIS_POLICY_FILE", "/nonexistent/policy.toml"),
    ]);
    let io = err
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>());
    assert_eq!(
        io.map(std::io::Error::kind),
        Some(std::io::ErrorKind::NotFound),
        "{err}"
    );
    let err = env_error(&[("PORTCULLIS_JWK_SET_FILE", "/nonexistent/set.json")]);
    assert!(
        err.source().is_some_and(|s| s.is::<std::io::Error>()),
        "{err}"
    );
    let err = portcullis::RecordSet::from_toml_str("[roles\n").unwrap_err();
    assert!(err.source().is_some(), "{err}");
    // Errors of a setting's value have none.
    let err = env_error(&[("FEDN_JWT_SECRET_KEY", "short")]);
    assert!(err.source().is_none(), "{err}");
}

/// A required type for an issuer the configuration never accepts, or for an issuer whose
/// JWTs are introspected (the answer does not show `typ`), would never be checked: both
/// fail at build, naming the setting.
#[test]
fn a_required_type_that_could_never_be_checked_is_a_config_error() {
    let secret = "0123456789abcdef0123456789abcdef";
    let err = Authenticator::builder()
        .hmac_secret(secret)
        .issuer("https://id.example.com")
        .require_typ_for_issuer("https://id.example.com/", "at+jwt")
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "require_typ_for_issuer");
    assert!(
        err.to_string().contains("not one of the accepted issuers"),
        "{err}"
    );
    assert!(
        Authenticator::builder()
            .hmac_secret(secret)
            .issuer("https://id.example.com")
            .require_typ_for_issuer("https://id.example.com", "at+jwt")
            .build()
            .is_ok()
    );
    // An issuer accepted through its own key set counts, listed or not with `issuer`.
    assert!(
        Authenticator::builder()
            .issuer("https://id.example.com")
            .issuer_jwks_url(
                "https://other.example.com",
                "https://other.example.com/jwks"
            )
            .require_typ_for_issuer("https://other.example.com", "at+jwt")
            .build()
            .is_ok()
    );
    #[cfg(feature = "introspection")]
    {
        use portcullis::introspection::Introspection;
        let introspected = || {
            Introspection::new("https://as.example.com/introspect", "rs", "secret")
                .issuer("https://as.example.com")
        };
        let err = Authenticator::builder()
            .introspection(introspected())
            .require_typ_for_issuer("https://as.example.com", "at+jwt")
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "require_typ_for_issuer");
        let err = Authenticator::builder()
            .introspection(introspected())
            .require_typ("at+jwt")
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "require_typ");
    }
}
