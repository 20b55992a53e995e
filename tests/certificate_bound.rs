//! Certificate-bound tokens (RFC 8705): a token whose `cnf` names `x5t#S256` passes only
//! with the client certificate of that thumbprint. Certificates are made at test time
//! (rcgen); TLS is terminated by the test server itself (tokio-rustls), which puts the
//! peer certificate into the request extensions as the guide shows, and a real reqwest
//! client presents its certificate. The trusted-header path (RFC 9440 `Client-Cert`,
//! nginx's escaped PEM) is checked over plain HTTP, and an untrusted header is ignored.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use portcullis::sender::{CertificateBinding, CertificateHeader, ClientCertificate};
use portcullis::{Algorithm, AuthLayer, Authenticator, Policy, Principal, Signer};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use serde_json::json;
use tokio::net::TcpListener;
use tower::Service;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

struct Pki {
    ca: rcgen::Certificate,
    server: (rcgen::Certificate, KeyPair),
    alice: (rcgen::Certificate, KeyPair),
    mallory: (rcgen::Certificate, KeyPair),
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let leaf = |names: Vec<String>, purpose: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![purpose];
        (params.signed_by(&key, &ca, &ca_key).unwrap(), key)
    };
    Pki {
        server: leaf(
            vec!["localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        alice: leaf(vec!["alice".into()], ExtendedKeyUsagePurpose::ClientAuth),
        mallory: leaf(vec!["mallory".into()], ExtendedKeyUsagePurpose::ClientAuth),
        ca,
    }
}

fn x5t(cert: &rcgen::Certificate) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        cert.der(),
    ))
}

fn bound_token(thumbprint: &str) -> String {
    Signer::hmac(Algorithm::HS256, SECRET)
        .unwrap()
        .sign(&json!({"sub": "alice", "exp": 4_000_000_000u64, "cnf": {"x5t#S256": thumbprint}}))
        .unwrap()
}

fn app(binding: CertificateBinding) -> Router {
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .certificate_binding(binding)
        .build()
        .unwrap();
    let policy = Policy::builder()
        .allow("GET", "/me", ["*"])
        .build()
        .unwrap();
    Router::new()
        .route(
            "/me",
            get(|p: Principal| async move { p.subject().unwrap_or_default().to_owned() }),
        )
        .layer(AuthLayer::new(auth, policy))
}

/// A TLS server (client certificates asked for, not required) that puts the peer's
/// certificate into each request's extensions, as docs/sender-constrained.md shows.
async fn tls_server(pki: &Pki, app: Router) -> u16 {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(pki.server.1.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server.0.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let cert = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|c| ClientCertificate::from_der(c.to_vec()));
                let svc =
                    tower::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                        if let Some(cert) = &cert {
                            req.extensions_mut().insert(cert.clone());
                        }
                        app.clone().call(req)
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    port
}

fn client(pki: &Pki, identity: Option<&(rcgen::Certificate, KeyPair)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca.pem().as_bytes()).unwrap()]);
    if let Some((cert, key)) = identity {
        let pem = format!("{}{}", cert.pem(), key.serialize_pem());
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    header: Option<(&str, String)>,
) -> (u16, String) {
    let mut req = client.get(url).bearer_auth(token);
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.text().await.unwrap();
    (status, if status == 200 { body } else { challenge })
}

#[tokio::test]
async fn the_tls_connection_s_certificate_binds_the_token() {
    let pki = pki();
    let port = tls_server(&pki, app(CertificateBinding::new())).await;
    let url = format!("https://localhost:{port}/me");
    let token = bound_token(&x5t(&pki.alice.0));
    let refused = (
        401,
        r#"Bearer realm="api", error="invalid_token""#.to_owned(),
    );
    assert_eq!(
        fetch(&client(&pki, Some(&pki.alice)), &url, &token, None).await,
        (200, "alice".into())
    );
    assert_eq!(
        fetch(&client(&pki, Some(&pki.mallory)), &url, &token, None).await,
        refused
    );
    assert_eq!(
        fetch(&client(&pki, None), &url, &token, None).await,
        refused
    );
    // Without a binding configured, a certificate-bound token never passes as a bearer
    // token, even with its certificate.
    let port = tls_server(&pki, app_without_binding()).await;
    let url = format!("https://localhost:{port}/me");
    assert_eq!(
        fetch(&client(&pki, Some(&pki.alice)), &url, &token, None).await,
        refused
    );
}

fn app_without_binding() -> Router {
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .build()
        .unwrap();
    let policy = Policy::builder()
        .allow("GET", "/me", ["*"])
        .build()
        .unwrap();
    Router::new()
        .route("/me", get(|| async { "alice" }))
        .layer(AuthLayer::new(auth, policy))
}

async fn http_server(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://127.0.0.1:{port}/me")
}

#[tokio::test]
async fn a_trusted_proxy_header_carries_the_certificate() {
    let pki = pki();
    let token = bound_token(&x5t(&pki.alice.0));
    let plain = reqwest::Client::new();
    let client_cert = |c: &rcgen::Certificate| format!(":{}:", STANDARD.encode(c.der()));
    let escaped = |c: &rcgen::Certificate| {
        percent_encoding::utf8_percent_encode(&c.pem(), percent_encoding::NON_ALPHANUMERIC)
            .to_string()
    };
    let rfc9440 = http_server(app(
        CertificateBinding::new().trusted_header("client-cert", CertificateHeader::ClientCert)
    ))
    .await;
    let nginx = http_server(app(CertificateBinding::new()
        .trusted_header("x-ssl-client-cert", CertificateHeader::EscapedPem)))
    .await;
    let untrusted = http_server(app(CertificateBinding::new())).await;
    // (server, the header the proxy sets, status): Alice's certificate passes, Mallory's
    // and none do not, and a header nobody said to trust is not read.
    let cases = [
        (
            &rfc9440,
            Some(("client-cert", client_cert(&pki.alice.0))),
            200,
        ),
        (
            &rfc9440,
            Some(("client-cert", client_cert(&pki.mallory.0))),
            401,
        ),
        (&rfc9440, None, 401),
        (
            &nginx,
            Some(("x-ssl-client-cert", escaped(&pki.alice.0))),
            200,
        ),
        (
            &nginx,
            Some(("x-ssl-client-cert", escaped(&pki.mallory.0))),
            401,
        ),
        (
            &untrusted,
            Some(("client-cert", client_cert(&pki.alice.0))),
            401,
        ),
    ];
    for (i, (server, header, want)) in cases.into_iter().enumerate() {
        let (status, who) = fetch(&plain, server, &token, header).await;
        assert_eq!(status, want, "case {i}");
        if want == 200 {
            assert_eq!(who, "alice", "case {i}");
        }
    }
}
