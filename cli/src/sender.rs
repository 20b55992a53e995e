//! `serve` flags for sender-constrained tokens (DPoP, certificate-bound tokens): each sets
//! its `PORTCULLIS_*` variable for the library's environment configuration.

use crate::config::Overrides;

/// DPoP (RFC 9449) and certificate-bound tokens (RFC 8705).
#[derive(clap::Args, Debug)]
pub(crate) struct SenderFlags {
    /// DPoP for every issuer: allowed (DPoP-bound tokens with proofs, others as bearer
    /// tokens), required, or off. DPoP-bound tokens are refused while off
    #[arg(long, value_name = "MODE", env = "PORTCULLIS_DPOP")]
    dpop: Option<String>,
    /// Per-issuer DPoP modes, ISSUER=MODE (repeatable, or comma-separated in the variable)
    #[arg(
        long = "dpop-issuer",
        value_name = "ISSUER=MODE",
        env = "PORTCULLIS_DPOP_ISSUERS",
        value_delimiter = ','
    )]
    dpop_issuers: Vec<String>,
    /// The URL clients address (https://api.example.com), compared with each proof's htu
    #[arg(long, value_name = "URL", env = "PORTCULLIS_DPOP_PUBLIC_URL")]
    dpop_public_url: Option<String>,
    /// Read the external scheme and host from the proxy's Forwarded / X-Forwarded-Proto /
    /// X-Forwarded-Host headers (only behind a proxy that always sets them)
    #[arg(long, env = "PORTCULLIS_DPOP_TRUST_FORWARDED")]
    dpop_trust_forwarded: bool,
    /// Require server nonces in proofs (use_dpop_nonce, DPoP-Nonce)
    #[arg(long, env = "PORTCULLIS_DPOP_NONCE")]
    dpop_nonce: bool,
    /// The header the TLS-terminating proxy sets with the client certificate, trusted for
    /// certificate-bound tokens (cnf x5t#S256)
    #[arg(long, value_name = "NAME", env = "PORTCULLIS_CLIENT_CERT_HEADER")]
    client_cert_header: Option<String>,
    /// That header's format: rfc9440 (Client-Cert: :base64:) or escaped-pem (nginx's
    /// $ssl_client_escaped_cert)
    #[arg(long, value_name = "FORMAT", env = "PORTCULLIS_CLIENT_CERT_FORMAT")]
    client_cert_format: Option<String>,
}

impl SenderFlags {
    /// Sets the variables of the flags given.
    pub(crate) fn apply(&self, o: &mut Overrides) {
        let pairs: [(&'static str, &'static str, Option<String>); 5] = [
            ("PORTCULLIS_DPOP", "--dpop", self.dpop.clone()),
            (
                "PORTCULLIS_DPOP_PUBLIC_URL",
                "--dpop-public-url",
                self.dpop_public_url.clone(),
            ),
            (
                "PORTCULLIS_CLIENT_CERT_HEADER",
                "--client-cert-header",
                self.client_cert_header.clone(),
            ),
            (
                "PORTCULLIS_CLIENT_CERT_FORMAT",
                "--client-cert-format",
                self.client_cert_format.clone(),
            ),
            (
                "PORTCULLIS_DPOP_ISSUERS",
                "--dpop-issuer",
                (!self.dpop_issuers.is_empty()).then(|| self.dpop_issuers.join(",")),
            ),
        ];
        o.set_given(pairs);
        if self.dpop_trust_forwarded {
            o.set(
                "PORTCULLIS_DPOP_TRUST_FORWARDED",
                "--dpop-trust-forwarded",
                "true".into(),
            );
        }
        if self.dpop_nonce {
            o.set("PORTCULLIS_DPOP_NONCE", "--dpop-nonce", "true".into());
        }
    }
}
