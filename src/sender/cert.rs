//! Certificate-bound tokens (RFC 8705 section 3): a token whose `cnf` names `x5t#S256`
//! passes only with the client certificate of that SHA-256 thumbprint, taken from the TLS
//! connection (the [`ClientCertificate`] request extension) or, when the operator trusts
//! it, from a header the TLS-terminating proxy sets.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName};

use crate::jose::{sha256, strict_b64};

/// The DER bytes of the client certificate of a request's TLS connection. A server that
/// terminates TLS itself puts it into the request extensions (the
/// [sender-constrained guide](crate::guides::sender_constrained) shows it with rustls);
/// the layer then checks certificate-bound tokens against it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate(bytes::Bytes);

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint())
            .finish()
    }
}

impl ClientCertificate {
    /// A certificate from its DER encoding (the first certificate of the peer's chain).
    pub fn from_der(der: impl Into<bytes::Bytes>) -> Self {
        Self(der.into())
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.0
    }

    /// The RFC 8705 `x5t#S256` of the certificate: base64url of the SHA-256 of its DER.
    pub fn thumbprint(&self) -> String {
        strict_b64().encode(sha256(&self.0))
    }
}

/// How a trusted proxy passes the client certificate in a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateHeader {
    /// RFC 9440 `Client-Cert`: the DER as a structured-field byte sequence,
    /// `:<base64>:`.
    ClientCert,
    /// nginx's `$ssl_client_escaped_cert`: the PEM, percent-encoded.
    EscapedPem,
}

/// Where certificate-bound tokens find the client certificate: the TLS connection's
/// [`ClientCertificate`] extension always, and a header only when the operator names it
/// trusted (the proxy in front must set it and drop any value a client sent).
///
/// ```
/// use portcullis::sender::{CertificateBinding, CertificateHeader};
/// use portcullis::Authenticator;
///
/// let auth = Authenticator::builder()
///     .hmac_secret("0123456789abcdef0123456789abcdef")
///     .certificate_binding(
///         CertificateBinding::new().trusted_header("client-cert", CertificateHeader::ClientCert),
///     )
///     .build()?;
/// # Ok::<(), portcullis::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct CertificateBinding {
    pub(super) header: Option<(String, CertificateHeader)>,
}

impl CertificateBinding {
    /// Certificates from the TLS connection only (the request extension).
    pub fn new() -> Self {
        Self::default()
    }

    /// Risk: anyone who can reach the service without passing the proxy can send this
    /// header with any certificate; name it only when the proxy sets it on every request
    /// and the service is not reachable around it. Reads the client certificate from the
    /// header `name` in `format` when the connection has none.
    pub fn trusted_header(mut self, name: impl Into<String>, format: CertificateHeader) -> Self {
        self.header = Some((name.into(), format));
        self
    }
}

/// The checked form of [`CertificateBinding`].
#[derive(Debug)]
pub(super) struct CertCheck {
    pub(super) header: Option<(HeaderName, CertificateHeader)>,
}

impl CertCheck {
    pub(super) fn new(binding: CertificateBinding) -> Result<Self, String> {
        let header = match binding.header {
            None => None,
            Some((name, format)) => Some((
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("`{name}` is not a header name"))?,
                format,
            )),
        };
        Ok(Self { header })
    }

    /// The thumbprint of the request's client certificate: the connection's, else the
    /// trusted header's. `None` when there is none (or the header cannot be read).
    pub(super) fn thumbprint(
        &self,
        extensions: Option<&http::Extensions>,
        headers: &HeaderMap,
    ) -> Option<String> {
        if let Some(cert) = extensions.and_then(|e| e.get::<ClientCertificate>()) {
            return Some(cert.thumbprint());
        }
        let (name, format) = self.header.as_ref()?;
        let mut values = headers.get_all(name).iter();
        let value = values.next()?.to_str().ok()?;
        if values.next().is_some() {
            return None;
        }
        let der = match format {
            CertificateHeader::ClientCert => {
                let inner = value.trim().strip_prefix(':')?.strip_suffix(':')?;
                STANDARD.decode(inner).ok()?
            }
            CertificateHeader::EscapedPem => {
                let pem = percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .ok()?;
                pem_der(&pem)?
            }
        };
        (!der.is_empty()).then(|| strict_b64().encode(sha256(&der)))
    }
}

/// The DER of the one `CERTIFICATE` block of a PEM text.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + 27;
    let end = start + pem[start..].find("-----END CERTIFICATE-----")?;
    let body: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_both_formats_give_the_same_thumbprint() {
        let der = b"not really DER, but bytes".to_vec();
        let want = ClientCertificate::from_der(der.clone()).thumbprint();
        let b64 = STANDARD.encode(&der);
        let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
        let escaped =
            percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        for (format, value) in [
            (CertificateHeader::ClientCert, format!(":{b64}:")),
            (CertificateHeader::EscapedPem, escaped),
        ] {
            let check =
                CertCheck::new(CertificateBinding::new().trusted_header("x-cert", format)).unwrap();
            let mut headers = HeaderMap::new();
            headers.insert("x-cert", value.parse().unwrap());
            assert_eq!(check.thumbprint(None, &headers).as_deref(), Some(&*want));
            let untrusted = CertCheck::new(CertificateBinding::new()).unwrap();
            assert_eq!(untrusted.thumbprint(None, &headers), None);
        }
    }
}
