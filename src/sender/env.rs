//! The `PORTCULLIS_DPOP_*` and `PORTCULLIS_CLIENT_CERT_*` variables, for
//! [`EnvConfig`](crate::EnvConfig).

use std::time::Duration;

use super::{CertificateBinding, CertificateHeader, DpopMode, DpopOptions};
use crate::error::{ConfigError, ConfigErrorKind};
use crate::jose::Algorithm;

fn env(var: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(ConfigErrorKind::SenderConstraints, var, message)
}

fn flag(get: &impl Fn(&str) -> Option<String>, var: &str) -> Result<bool, ConfigError> {
    match get(var).as_deref().map(str::trim) {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(env(var, "use `true` or `false`")),
    }
}

fn number(get: &impl Fn(&str) -> Option<String>, var: &str) -> Result<Option<u64>, ConfigError> {
    get(var)
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| env(var, "use a whole number"))
        })
        .transpose()
}

fn mode(var: &str, v: &str) -> Result<DpopMode, ConfigError> {
    DpopMode::parse(v).ok_or_else(|| env(var, "use `required`, `allowed` or `off`"))
}

/// Reads the DPoP options (`None` unless `PORTCULLIS_DPOP` is `allowed` or `required`)
/// and the certificate binding (`None` unless asked for). `get` treats empty values as
/// unset.
pub(crate) fn from_lookup(
    get: impl Fn(&str) -> Option<String>,
) -> Result<(Option<DpopOptions>, Option<CertificateBinding>), ConfigError> {
    let dpop = match get("PORTCULLIS_DPOP") {
        None => None,
        Some(v) => match mode("PORTCULLIS_DPOP", &v)? {
            DpopMode::Off => None,
            m => Some(DpopOptions::new().mode(m)),
        },
    };
    let dpop_vars = [
        "PORTCULLIS_DPOP_ISSUERS",
        "PORTCULLIS_DPOP_PUBLIC_URL",
        "PORTCULLIS_DPOP_TRUST_FORWARDED",
        "PORTCULLIS_DPOP_ALGORITHMS",
        "PORTCULLIS_DPOP_PROOF_WINDOW_SECONDS",
        "PORTCULLIS_DPOP_NONCE",
        "PORTCULLIS_DPOP_NONCE_SECRET",
        "PORTCULLIS_DPOP_REPLAY_CAPACITY",
    ];
    let dpop = match dpop {
        None => {
            if let Some(var) = dpop_vars.iter().find(|v| get(v).is_some()) {
                return Err(env(
                    var,
                    "is set while DPoP is off; set PORTCULLIS_DPOP=allowed or required, or unset it",
                ));
            }
            None
        }
        Some(mut o) => {
            if let Some(v) = get("PORTCULLIS_DPOP_ISSUERS") {
                for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let (iss, m) = item.rsplit_once('=').ok_or_else(|| {
                        env(
                            "PORTCULLIS_DPOP_ISSUERS",
                            format!("`{item}`: write issuer=mode, such as https://id.example.com=required"),
                        )
                    })?;
                    o = o.issuer(iss.trim(), mode("PORTCULLIS_DPOP_ISSUERS", m)?);
                }
            }
            if let Some(url) = get("PORTCULLIS_DPOP_PUBLIC_URL") {
                o = o.public_url(url.trim());
            }
            if flag(&get, "PORTCULLIS_DPOP_TRUST_FORWARDED")? {
                o = o.trust_forwarded_headers();
            }
            if let Some(v) = get("PORTCULLIS_DPOP_ALGORITHMS") {
                let algs = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|a| {
                        a.parse::<Algorithm>()
                            .map_err(|e| env("PORTCULLIS_DPOP_ALGORITHMS", e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                o = o.algorithms(algs);
            }
            if let Some(s) = number(&get, "PORTCULLIS_DPOP_PROOF_WINDOW_SECONDS")? {
                o = o.proof_window(Duration::from_secs(s));
            }
            if flag(&get, "PORTCULLIS_DPOP_NONCE")? {
                o = o.require_nonce();
            }
            if let Some(secret) = get("PORTCULLIS_DPOP_NONCE_SECRET") {
                o = o.nonce_secret(secret.trim());
            }
            if let Some(n) = number(&get, "PORTCULLIS_DPOP_REPLAY_CAPACITY")? {
                o = o.replay_capacity(usize::try_from(n).unwrap_or(usize::MAX));
            }
            Some(o)
        }
    };
    let header = get("PORTCULLIS_CLIENT_CERT_HEADER");
    let format = match get("PORTCULLIS_CLIENT_CERT_FORMAT")
        .as_deref()
        .map(str::trim)
    {
        None | Some("rfc9440") => CertificateHeader::ClientCert,
        Some("escaped-pem") => CertificateHeader::EscapedPem,
        Some(_) => {
            return Err(env(
                "PORTCULLIS_CLIENT_CERT_FORMAT",
                "use `rfc9440` (Client-Cert, the default) or `escaped-pem` (nginx's $ssl_client_escaped_cert)",
            ));
        }
    };
    let cert = match (flag(&get, "PORTCULLIS_CERTIFICATE_BOUND")?, header) {
        (_, Some(name)) => Some(CertificateBinding::new().trusted_header(name.trim(), format)),
        (true, None) => Some(CertificateBinding::new()),
        (false, None) => None,
    };
    Ok((dpop, cert))
}

/// The variable behind a setting of the sender options, for errors from `build()`.
pub(crate) fn variable(setting: &str) -> Option<&'static str> {
    Some(match setting {
        "dpop.public_url" => "PORTCULLIS_DPOP_PUBLIC_URL",
        "dpop.algorithms" => "PORTCULLIS_DPOP_ALGORITHMS",
        "dpop.proof_window" => "PORTCULLIS_DPOP_PROOF_WINDOW_SECONDS",
        "dpop.replay_capacity" => "PORTCULLIS_DPOP_REPLAY_CAPACITY",
        "dpop.nonce_secret" => "PORTCULLIS_DPOP_NONCE_SECRET",
        "certificate_binding" => "PORTCULLIS_CLIENT_CERT_HEADER",
        _ => return None,
    })
}
