//! `portcullis keygen`: a new key pair (or HMAC secret) and its JWK set.

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair,
};
use portcullis::Algorithm;
use serde_json::{Map, Value, json};

use crate::jwk::{b64url, ec_members, okp_members, pem, public_jwk, rsa_members, thumbprint};
use crate::{Fail, Report};

const AFTER: &str = "\
Writes, for an asymmetric algorithm, PREFIX.key.pem (the PKCS#8 private key, mode 0600),
PREFIX.pub.pem (the public key) and PREFIX.jwks.json (the public JWK set, `use` sig, with
`alg` and `kid`); for HS256/384/512, PREFIX.secret (random hex, mode 0600) and
PREFIX.jwks.json holding it as an `oct` key (a secret: keep it private). Existing files are
never overwritten unless --force is given. The directory of PREFIX is created when missing
(mode 0700 on Unix). The kid defaults to the key's RFC 7638 thumbprint, which is also the
kid `mint --key PREFIX.key.pem` puts in the header; with --kid here, give mint the same
--kid.

Examples:
  portcullis keygen --alg ES256 --out keys/issuer
  PORTCULLIS_JWK_SET_FILE=keys/issuer.jwks.json portcullis verify \"$TOKEN\"
  portcullis mint --key keys/issuer.key.pem --alg ES256 --sub ada --role client";

/// Arguments of `keygen`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER)]
pub(crate) struct Args {
    /// Algorithm: ES256, ES384, EdDSA, RS256..PS512 (RSA 2048 bits), HS256, HS384, HS512
    #[arg(long, value_name = "ALG", default_value = "ES256")]
    alg: String,
    /// Path prefix of the files written (its directory is created when missing)
    #[arg(long, value_name = "PREFIX", default_value = "portcullis")]
    out: PathBuf,
    /// The key id (default: the RFC 7638 thumbprint)
    #[arg(long)]
    kid: Option<String>,
    /// Overwrite existing files
    #[arg(long)]
    force: bool,
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn write(path: &Path, text: &str, private: bool, force: bool) -> Result<(), Fail> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
            "; choose another --out or pass --force"
        } else {
            ""
        };
        Fail::usage(format!("cannot write `{}`: {e}{hint}", path.display()))
    })?;
    file.write_all(text.as_bytes())
        .map_err(|e| Fail::usage(format!("cannot write `{}`: {e}", path.display())))
}

/// Creates the directory the files go to (the parent of `--out`) when it is missing.
fn create_parent(prefix: &Path) -> Result<(), Fail> {
    let Some(dir) = prefix.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| {
        Fail::usage(format!(
            "--out `{}`: cannot create the directory `{}`: {e}",
            prefix.display(),
            dir.display()
        ))
    })
}

/// A new key: private PKCS#8 DER, public SPKI DER, public JWK members.
type NewKey = (Vec<u8>, Vec<u8>, Map<String, Value>);

/// The private PKCS#8 DER, public SPKI DER and public JWK members of a new key.
fn generate(alg: Algorithm) -> Result<NewKey, Fail> {
    let failed = |_| Fail::usage(format!("cannot generate a {alg} key"));
    Ok(match alg {
        Algorithm::ES256 | Algorithm::ES384 => {
            let (curve, crv) = if alg == Algorithm::ES256 {
                (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256")
            } else {
                (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384")
            };
            let pair = EcdsaKeyPair::generate(curve).map_err(failed)?;
            let private = pair.to_pkcs8v1().map_err(failed)?.as_ref().to_vec();
            let public = pair
                .public_key()
                .as_der()
                .map_err(failed)?
                .as_ref()
                .to_vec();
            (private, public, ec_members(crv, pair.public_key().as_ref()))
        }
        Algorithm::EdDSA => {
            let pair = Ed25519KeyPair::generate().map_err(failed)?;
            let private = pair.to_pkcs8v1().map_err(failed)?.as_ref().to_vec();
            let public = pair
                .public_key()
                .as_der()
                .map_err(failed)?
                .as_ref()
                .to_vec();
            (private, public, okp_members(pair.public_key().as_ref()))
        }
        _ => {
            use aws_lc_rs::rsa::{KeyPair as RsaPair, KeySize};
            let pair = RsaPair::generate(KeySize::Rsa2048).map_err(failed)?;
            let private = pair.as_der().map_err(failed)?.as_ref().to_vec();
            let key = pair.public_key();
            let public = key.as_der().map_err(failed)?.as_ref().to_vec();
            (private, public, rsa_members(key))
        }
    })
}

pub(crate) fn run(args: Args) -> Result<Report, Fail> {
    let alg: Algorithm = args
        .alg
        .parse()
        .map_err(|e| Fail::usage(format!("--alg: {e}")))?;
    create_parent(&args.out)?;
    let jwks_path = with_suffix(&args.out, ".jwks.json");
    let mut written = Vec::new();
    if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        let len = match alg {
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => 32,
        };
        let mut bytes = vec![0u8; len];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| Fail::usage("cannot draw random bytes"))?;
        // The secret is the text: what FEDN_JWT_SECRET_KEY and --secret-file read.
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let members = match json!({"kty": "oct", "k": b64url(secret.as_bytes())}) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let kid = args.kid.unwrap_or_else(|| thumbprint(&members));
        let set = json!({"keys": [public_jwk(members, alg, &kid)]});
        let secret_path = with_suffix(&args.out, ".secret");
        write(&secret_path, &format!("{secret}\n"), true, args.force)?;
        write(&jwks_path, &pretty(&set), true, args.force)?;
        written.push(format!(
            "{}  (HMAC secret, keep private)",
            secret_path.display()
        ));
        written.push(format!(
            "{}  (the secret as an oct JWK, keep private)",
            jwks_path.display()
        ));
        return Ok(Report::ok(summary(alg, &kid, &written)));
    }
    let (private, public, members) = generate(alg)?;
    let kid = args.kid.unwrap_or_else(|| thumbprint(&members));
    let set = json!({"keys": [public_jwk(members, alg, &kid)]});
    let key_path = with_suffix(&args.out, ".key.pem");
    let pub_path = with_suffix(&args.out, ".pub.pem");
    write(&key_path, &pem("PRIVATE KEY", &private), true, args.force)?;
    write(&pub_path, &pem("PUBLIC KEY", &public), false, args.force)?;
    write(&jwks_path, &pretty(&set), false, args.force)?;
    written.push(format!(
        "{}  (private key, keep private)",
        key_path.display()
    ));
    written.push(format!("{}  (public key)", pub_path.display()));
    written.push(format!("{}  (public JWK set)", jwks_path.display()));
    Ok(Report::ok(summary(alg, &kid, &written)))
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn summary(alg: Algorithm, kid: &str, written: &[String]) -> String {
    let mut out = format!("{alg} key, kid {kid}\n");
    for w in written {
        out.push_str(&format!("wrote {w}\n"));
    }
    out
}
