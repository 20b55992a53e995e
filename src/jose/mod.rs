//! JOSE: algorithms, strict base64url, strict JSON, and the cryptography.
//!
//! The leaf of the crate: it imports no other module of it, and it is the only module
//! that names `jsonwebtoken` or `aws-lc-rs` (in `crypto`), so upgrading either is a change
//! here alone. Everything above it speaks [`Algorithm`] and the prepared keys of this
//! module.
//!
//! ```
//! use portcullis::Algorithm;
//!
//! assert_eq!("ES256".parse::<Algorithm>().unwrap(), Algorithm::ES256);
//! // JOSE names compare exactly, and `none` is never an algorithm.
//! assert!("es256".parse::<Algorithm>().is_err());
//! assert!("none".parse::<Algorithm>().is_err());
//! assert!(Algorithm::ALL.contains(&Algorithm::EdDSA));
//! ```

mod crypto;
pub(crate) mod json;

use std::fmt;
use std::str::FromStr;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

#[cfg(feature = "introspection")]
pub(crate) use crypto::fill_random;
#[cfg(feature = "test-util")]
pub(crate) use crypto::generate;
pub(crate) use crypto::{Key, SigningKey, hmac_sha256, random, sha256};

/// Strict base64url: no padding, no whitespace, canonical trailing bits.
pub(crate) fn strict_b64() -> &'static GeneralPurpose {
    static ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(false),
    );
    &ENGINE
}

/// A signature algorithm we verify. `none`, ES512 and the encryption algorithms are not
/// among them, on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA on Ed25519.
    EdDSA,
}

/// The family of an algorithm, which decides what key it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

impl Algorithm {
    /// Every algorithm, in a stable order. A slice, so that adding an algorithm (the enum is
    /// `#[non_exhaustive]`) changes no type.
    pub const ALL: &'static [Algorithm] = &[
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    /// The name used in the JOSE `alg` header parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    pub(crate) fn family(self) -> Family {
        match self {
            Self::HS256 | Self::HS384 | Self::HS512 => Family::Hmac,
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                Family::Rsa
            }
            Self::ES256 | Self::ES384 => Family::Ec,
            Self::EdDSA => Family::Ed,
        }
    }

    /// The shortest HMAC secret we accept without the `dangerous` opt-in: the hash size.
    pub(crate) fn min_hmac_len(self) -> usize {
        match self {
            Self::HS384 => 48,
            Self::HS512 => 64,
            _ => 32,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown or unsupported algorithm name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgorithm(String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unsupported algorithm `{}`; use one of HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA",
            self.0.chars().take(16).collect::<String>()
        )
    }
}

impl std::error::Error for UnknownAlgorithm {}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// Names compare exactly, as JOSE says: `hs256` is not `HS256`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

/// Every RSA algorithm: what an RSA JWK without `alg` verifies.
pub(crate) const RSA_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// The HMAC algorithms a secret of `len` bytes is long enough for (its hash size or
/// more): what an `oct` JWK without `alg` verifies.
pub(crate) fn hmac_algorithms_for(len: usize) -> impl Iterator<Item = Algorithm> {
    [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
        .into_iter()
        .filter(move |a| len >= a.min_hmac_len())
}

/// Whether a header's `typ` names the media type `want`: media types compare
/// case-insensitively (RFC 2045 section 5.1), and a `typ` without a `/` stands for
/// `application/` followed by it (RFC 7515 section 4.1.9), so `at+jwt`,
/// `application/at+jwt` and `Application/AT+JWT` are one type (RFC 9068 section 2.1).
pub(crate) fn typ_matches(typ: &str, want: &str) -> bool {
    strip_application(typ).eq_ignore_ascii_case(strip_application(want))
}

fn strip_application(typ: &str) -> &str {
    match typ.get(..12) {
        Some(p) if p.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    }
}

/// Lower-case hexadecimal of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
