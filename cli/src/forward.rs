//! `serve`'s forward auth: the `--proxy` and `--identity-header` flags, turned into the
//! library's [`ForwardAuth`](portcullis::forward::ForwardAuth), which decides.

use http::HeaderName;
use portcullis::forward::ProxyKind;

/// Which proxy asks, which decides the headers read and the answers given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Proxy {
    /// nginx `auth_request`: `X-Original-Method` and `X-Original-URI`; a 400 is answered
    /// as 401 (nginx turns any status but 2xx, 401 and 403 into a 500).
    Nginx,
    /// Caddy `forward_auth`: `X-Forwarded-Method` and `X-Forwarded-Uri`.
    Caddy,
    /// Traefik `forwardAuth`: `X-Forwarded-Method` and `X-Forwarded-Uri`.
    Traefik,
    /// Envoy's ext_authz HTTP service (`http_service`): the original method and path as
    /// the request's own, under --envoy-path-prefix; only 200 allows.
    Envoy,
}

impl Proxy {
    /// The library's name for it.
    pub(crate) fn kind(self) -> ProxyKind {
        match self {
            Self::Nginx => ProxyKind::Nginx,
            Self::Caddy => ProxyKind::Caddy,
            Self::Traefik => ProxyKind::Traefik,
            Self::Envoy => ProxyKind::Envoy,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        self.kind().label()
    }
}

/// Splits `CLAIM=HEADER` (the library checks what the header may carry).
pub(crate) fn identity_header(text: &str) -> Result<(String, HeaderName), String> {
    let (claim, header) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: write CLAIM=HEADER, like tenant=X-Auth-Tenant"))?;
    if claim.trim().is_empty() {
        return Err(format!("`{text}`: the claim is empty"));
    }
    let name = HeaderName::try_from(header.trim())
        .map_err(|_| format!("`{text}`: `{header}` is not a header name"))?;
    Ok((claim.trim().to_owned(), name))
}
