//! The configuration flags `verify`, `check` and `serve` share: each overrides one
//! environment variable of the library's `EnvConfig`, so the command line and the
//! environment describe one model.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;
use portcullis::{ConfigError, EnvConfig};

use crate::Fail;

/// Key and claim settings; each flag overrides the variable it names.
#[derive(Args, Debug, Default, Clone)]
pub(crate) struct KeyFlags {
    /// File holding the HMAC secret (a trailing newline is dropped); overrides
    /// FEDN_JWT_SECRET_KEY, which holds the secret itself
    #[arg(long, value_name = "FILE", help_heading = "Keys and claims")]
    pub(crate) secret_file: Option<PathBuf>,
    /// Algorithm of the secret or PEM key: HS256, HS384, HS512, RS*, PS*, ES256, ES384,
    /// EdDSA [env: FEDN_JWT_ALGORITHM; default HS256]
    #[arg(long, value_name = "ALG", help_heading = "Keys and claims")]
    pub(crate) alg: Option<String>,
    /// PEM public key file, for --alg [env: PORTCULLIS_PUBLIC_KEY_FILE]
    #[arg(long, value_name = "FILE", help_heading = "Keys and claims")]
    pub(crate) public_key_file: Option<PathBuf>,
    /// Static JWK set file [env: PORTCULLIS_JWK_SET_FILE]
    #[arg(long, value_name = "FILE", help_heading = "Keys and claims")]
    pub(crate) jwk_set_file: Option<PathBuf>,
    /// Remote JWK set URL (https; http only for loopback) [env: PORTCULLIS_JWKS_URL]
    #[arg(long, value_name = "URL", help_heading = "Keys and claims")]
    pub(crate) jwks_url: Option<String>,
    /// OIDC issuers, comma-separated: keys from each one's discovery document
    /// [env: PORTCULLIS_OIDC_ISSUER]
    #[arg(long, value_name = "URLS", help_heading = "Keys and claims")]
    pub(crate) oidc_issuer: Option<String>,
    /// Authress account id: accept its service clients' tokens (issuers
    /// https://<account>.api.authress.io/v1/clients/*, keys from each client's key set)
    /// [env: PORTCULLIS_AUTHRESS_ACCOUNT]
    #[arg(long, value_name = "ID", help_heading = "Keys and claims")]
    pub(crate) authress_account: Option<String>,
    /// The Authress account's custom domain, when its service clients' tokens name it
    /// [env: PORTCULLIS_AUTHRESS_DOMAIN]
    #[arg(long, value_name = "DOMAIN", help_heading = "Keys and claims")]
    pub(crate) authress_domain: Option<String>,
    /// Required `iss`, comma-separated for several [env: PORTCULLIS_ISSUER]
    #[arg(long, value_name = "ISS", help_heading = "Keys and claims")]
    pub(crate) issuer: Option<String>,
    /// Required `aud`, comma-separated for several; without it a token that carries
    /// `aud` is refused [env: PORTCULLIS_AUDIENCE]
    #[arg(long, value_name = "AUD", help_heading = "Keys and claims")]
    pub(crate) audience: Option<String>,
    /// Claim path of the roles (`role`, `scope`, `realm_access.roles`)
    /// [env: PORTCULLIS_ROLE_CLAIM; default role]
    #[arg(long, value_name = "PATH", help_heading = "Keys and claims")]
    pub(crate) role_claim: Option<String>,
    /// Accepted authorization scheme [env: FEDN_AUTH_SCHEME; default Bearer]
    #[arg(long, value_name = "NAME", help_heading = "Keys and claims")]
    pub(crate) scheme: Option<String>,
}

/// The policy file flag.
#[derive(Args, Debug, Default, Clone)]
pub(crate) struct PolicyFlag {
    /// TOML policy file; without it (and without PORTCULLIS_POLICY_FILE) the built-in
    /// FEDn REST and gRPC policy applies [env: PORTCULLIS_POLICY_FILE]
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
}

/// The variables set by flags, and which flag set each.
pub(crate) struct Overrides {
    values: HashMap<&'static str, String>,
    flags: HashMap<&'static str, &'static str>,
}

impl Overrides {
    pub(crate) fn new(keys: &KeyFlags, policy: &PolicyFlag) -> Result<Self, Fail> {
        let mut o = Self {
            values: HashMap::new(),
            flags: HashMap::new(),
        };
        if let Some(path) = &keys.secret_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Fail::usage(format!(
                    "--secret-file: cannot read `{}`: {e}",
                    path.display()
                ))
            })?;
            let secret = text.strip_suffix('\n').unwrap_or(&text);
            let secret = secret.strip_suffix('\r').unwrap_or(secret);
            o.set("FEDN_JWT_SECRET_KEY", "--secret-file", secret.to_owned());
        }
        let path = |p: &PathBuf| p.display().to_string();
        let pairs: [(&'static str, &'static str, Option<String>); 12] = [
            ("FEDN_JWT_ALGORITHM", "--alg", keys.alg.clone()),
            (
                "PORTCULLIS_PUBLIC_KEY_FILE",
                "--public-key-file",
                keys.public_key_file.as_ref().map(path),
            ),
            (
                "PORTCULLIS_JWK_SET_FILE",
                "--jwk-set-file",
                keys.jwk_set_file.as_ref().map(path),
            ),
            ("PORTCULLIS_JWKS_URL", "--jwks-url", keys.jwks_url.clone()),
            (
                "PORTCULLIS_OIDC_ISSUER",
                "--oidc-issuer",
                keys.oidc_issuer.clone(),
            ),
            (
                "PORTCULLIS_AUTHRESS_ACCOUNT",
                "--authress-account",
                keys.authress_account.clone(),
            ),
            (
                "PORTCULLIS_AUTHRESS_DOMAIN",
                "--authress-domain",
                keys.authress_domain.clone(),
            ),
            ("PORTCULLIS_ISSUER", "--issuer", keys.issuer.clone()),
            ("PORTCULLIS_AUDIENCE", "--audience", keys.audience.clone()),
            (
                "PORTCULLIS_ROLE_CLAIM",
                "--role-claim",
                keys.role_claim.clone(),
            ),
            ("FEDN_AUTH_SCHEME", "--scheme", keys.scheme.clone()),
            (
                "PORTCULLIS_POLICY_FILE",
                "--policy",
                policy.policy.as_ref().map(path),
            ),
        ];
        o.set_given(pairs);
        Ok(o)
    }

    /// Sets `var` from `flag` (a flag of one command).
    pub(crate) fn set(&mut self, var: &'static str, flag: &'static str, value: String) {
        self.values.insert(var, value);
        self.flags.insert(var, flag);
    }

    /// [`set`](Self::set) for each (variable, flag, value) whose flag was given.
    pub(crate) fn set_given(
        &mut self,
        pairs: impl IntoIterator<Item = (&'static str, &'static str, Option<String>)>,
    ) {
        for (var, flag, value) in pairs {
            if let Some(v) = value {
                self.set(var, flag, v);
            }
        }
    }

    /// A variable's value: the flag's, else the environment's.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        match self.values.get(name) {
            Some(v) => Some(v.clone()),
            None => std::env::var(name).ok(),
        }
    }

    /// The configuration error as the user should read it: a setting that came from a
    /// flag names the flag.
    pub(crate) fn explain(&self, e: &ConfigError) -> Fail {
        let setting = e.setting();
        let named = self
            .flags
            .iter()
            .find(|(var, _)| setting == **var || setting.starts_with(&format!("{var} ")));
        match named {
            Some((var, flag)) => Fail::usage(format!("{flag} ({var}): {}", e.message())),
            None => Fail::usage(e.to_string()),
        }
    }

    /// The environment configuration with the flags applied.
    pub(crate) fn env_config(&self) -> Result<EnvConfig, Fail> {
        EnvConfig::from_lookup(|name| self.get(name)).map_err(|e| self.explain(&e))
    }

    /// The same with every key source hidden and a placeholder secret in their place:
    /// for decisions from `--roles`, which need the policy and no key.
    pub(crate) fn policy_only_config(&self) -> Result<EnvConfig, Fail> {
        const KEYS: [&str; 10] = [
            "FEDN_JWT_SECRET_KEY",
            "PORTCULLIS_AUTHRESS_ACCOUNT",
            "PORTCULLIS_AUTHRESS_DOMAIN",
            "FEDN_JWT_ALGORITHM",
            "PORTCULLIS_PUBLIC_KEY_FILE",
            "PORTCULLIS_JWK_SET_FILE",
            "PORTCULLIS_JWKS_URL",
            "PORTCULLIS_OIDC_ISSUER",
            "PORTCULLIS_JWKS_TTL_SECONDS",
            "PORTCULLIS_JWKS_COOLDOWN_SECONDS",
        ];
        EnvConfig::from_lookup(|name| {
            if name == "FEDN_JWT_SECRET_KEY" {
                // Never verifies anything: decisions from roles read no token.
                return Some("portcullis-check-placeholder-secret-0000".to_owned());
            }
            if KEYS.contains(&name) {
                return None;
            }
            self.get(name)
        })
        .map_err(|e| self.explain(&e))
    }
}
