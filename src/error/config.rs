//! [`ConfigError`]: bad configuration, found when building, naming the setting and the fix.

use std::fmt;
use std::sync::Arc;

/// Bad configuration, found when building. It names the setting and says how to fix it.
///
/// [`kind`](Self::kind) says which part of the configuration is wrong, for code that
/// reacts to it; [`setting`](Self::setting) names the builder method, environment variable
/// or file position; [`message`](Self::message) says what is wrong and how to fix it; and
/// for an error found in a file, [`location`](Self::location) is where. `Display` shows
/// `{setting}: {message}`.
///
/// ```
/// use portcullis::{Authenticator, ConfigErrorKind};
///
/// let err = Authenticator::builder().hmac_secret("short").build().unwrap_err();
/// assert_eq!(err.kind(), ConfigErrorKind::HmacSecret);
/// assert_eq!(err.setting(), "hmac_secret");
/// assert!(err.message().contains("32 bytes"));
/// assert_eq!(err.to_string(), format!("hmac_secret: {}", err.message()));
/// assert_eq!(err.location(), None);
///
/// let advice = match err.kind() {
///     ConfigErrorKind::HmacSecret => "generate a secret with `openssl rand -hex 32`",
///     ConfigErrorKind::Keys => "configure a key source",
///     _ => "fix the setting it names",
/// };
/// assert!(advice.starts_with("generate"));
/// ```
#[derive(Debug, Clone)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    setting: String,
    message: String,
    in_file: bool,
    /// What failed underneath (an I/O, TOML, Redis or HTTP-client error), for
    /// [`Error::source`](std::error::Error::source).
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// Two errors are equal when they say the same (kind, setting, message); the underlying
/// error is not compared.
impl PartialEq for ConfigError {
    fn eq(&self, other: &Self) -> bool {
        (self.kind, &self.setting, &self.message, self.in_file)
            == (other.kind, &other.setting, &other.message, other.in_file)
    }
}

impl Eq for ConfigError {}

/// Which part of the configuration a [`ConfigError`] is about.
///
/// The kind follows the setting, whether it was set in code, through an environment
/// variable or in a file: `hmac_secret` and `FEDN_JWT_SECRET_KEY` are both
/// [`HmacSecret`](Self::HmacSecret). New kinds may be added; match with a `_` arm.
///
/// ```
/// use portcullis::{ConfigErrorKind, EnvConfig};
///
/// let env = |name: &str| match name {
///     "FEDN_JWT_SECRET_KEY" => Some("0123456789abcdef0123456789abcdef".to_owned()),
///     "PORTCULLIS_LEEWAY_SECONDS" => Some("soon".to_owned()),
///     _ => None,
/// };
/// let err = EnvConfig::from_lookup(env).unwrap_err();
/// assert_eq!(err.kind(), ConfigErrorKind::Claims);
/// assert_eq!(err.setting(), "PORTCULLIS_LEEWAY_SECONDS");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The key sources taken together: none is configured, HMAC secrets are mixed with
    /// public keys, or several keys of one algorithm have no `kid` to tell them apart.
    Keys,
    /// The HMAC secret: shorter than its algorithm needs, or the short-secret opt-in
    /// (`PORTCULLIS_INSECURE_ALLOW_SHORT_SECRET`) is not `true` or `false`.
    HmacSecret,
    /// An algorithm: a name that is not one, or not an HMAC algorithm where an HMAC
    /// secret needs one (`hmac_algorithm`, `FEDN_JWT_ALGORITHM`, a `Signer`'s).
    Algorithm,
    /// A PEM public key (`public_key_pem`, `PORTCULLIS_PUBLIC_KEY_FILE`): unreadable, not
    /// PEM, or not a key for its algorithm.
    PublicKey,
    /// A static JWK set (`jwk_set_json`, `PORTCULLIS_JWK_SET_FILE`): unreadable, not a
    /// JWK set, or without a usable key.
    JwkSet,
    /// Remote key sets: a JWK set URL or OIDC issuer (not an absolute `https` URL, bound
    /// twice, several applying to every token), their options
    /// (`jwks_*`: TTL, cooldown, max-age bounds, timeouts, size caps), the HTTP client, or
    /// the `jwks` feature missing for them.
    RemoteKeys,
    /// The claim checks: issuer, audience, role and groups claims, `typ`, `crit`,
    /// leeway.
    Claims,
    /// How a token is taken from a request: the authorization schemes, the realm, the
    /// token size cap (`max_token_bytes`).
    Extraction,
    /// The route and gRPC policy: rules, their roles, methods and patterns, public
    /// prefixes, the URL prefix, required claims, public gRPC methods, gRPC user agents,
    /// the policy file.
    Policy,
    /// Access records for `authorize_user`: roles, groups, records, statements, their
    /// permissions and resources, and record files.
    Records,
    /// The forward-auth decision ([`forward::ForwardAuth`](crate::forward::ForwardAuth)):
    /// an identity header without a claim, or naming a header that cannot carry one.
    Forward,
    /// The protected-resource metadata
    /// ([`resource_metadata::ResourceMetadata`](crate::resource_metadata::ResourceMetadata)):
    /// no resource identifier, or a URL or scope that cannot be one.
    ResourceMetadata,
    /// The key of a `Signer`: a private key that does not parse, or a secret given
    /// where a private key is needed.
    SigningKey,
    /// The Redis settings of a shared revocation list or record set: the URL
    /// (`PORTCULLIS_REDIS_URL`) and the other `PORTCULLIS_REDIS_*` variables. A Redis that
    /// does not answer at start is not a configuration error but an
    /// [`UnavailableError`](crate::UnavailableError).
    Redis,
    /// Sender-constrained tokens ([`sender`](crate::sender)): the DPoP options (public
    /// URL, algorithms, proof window, replay cache) and the certificate binding.
    SenderConstraints,
    /// An environment variable of ours whose value is wrong and that no kind above
    /// covers.
    Environment,
    /// Anything else.
    Other,
}

impl ConfigError {
    /// An error of `kind` in `setting`: the kind is chosen where the error is made, never
    /// guessed from the setting's name.
    pub(crate) fn new(
        kind: ConfigErrorKind,
        setting: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            setting: setting.into(),
            message: message.into(),
            in_file: false,
            source: None,
        }
    }

    /// The same error, keeping `source` as the error underneath it.
    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// An error found in a file, at `location` (`file`, or `file:line:col`), in `field`
    /// (a path such as `records[0].id`, or empty). The setting shows both, as
    /// `file:line:col: field`.
    pub(crate) fn at(
        kind: ConfigErrorKind,
        location: impl Into<String>,
        field: &str,
        message: impl Into<String>,
    ) -> Self {
        let mut setting = location.into();
        if !field.is_empty() {
            setting = format!("{setting}: {field}");
        }
        Self {
            kind,
            setting,
            message: message.into(),
            in_file: true,
            source: None,
        }
    }

    /// The same error, attributed to another setting (an environment variable, say, that
    /// set the builder setting the error names); the kind stays.
    pub(crate) fn renamed(self, setting: impl Into<String>) -> Self {
        Self {
            kind: self.kind,
            setting: setting.into(),
            message: self.message,
            in_file: false,
            source: self.source,
        }
    }

    /// The same error with a hint appended.
    pub(crate) fn with_hint(mut self, hint: &str) -> Self {
        self.message = format!("{} ({hint})", self.message);
        self
    }

    /// Which part of the configuration is wrong.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// The setting (builder method, environment variable or file position) that is wrong.
    pub fn setting(&self) -> &str {
        &self.setting
    }

    /// What is wrong and how to fix it, without the setting.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For an error found in a file (a policy or access-record file, or text read with
    /// `from_toml_str` and the like, named `policy` or `records`): where it is, as the
    /// file, then `:line:col` when the parser knows the line, then the field path when
    /// it knows the field, as in `access.toml:12:14: records[0].statements[0].resources[1]`
    /// or `policy.toml:3:1`. For such errors this is also the [`setting`](Self::setting).
    /// `None` for builder settings and environment variables.
    ///
    /// ```
    /// use portcullis::{ConfigErrorKind, RecordSet};
    ///
    /// let err = RecordSet::from_toml_str("[roles]\nreader = [\"documents::read\"]\n").unwrap_err();
    /// assert_eq!(err.kind(), ConfigErrorKind::Records);
    /// assert_eq!(err.location(), Some("records:2:10: roles.reader[0]"));
    /// ```
    pub fn location(&self) -> Option<&str> {
        self.in_file.then_some(self.setting.as_str())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
