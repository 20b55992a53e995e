//! Helpers of the revocation tests: the high-S twin of an ES256 token and a padding-bit
//! variant of any token.
#![allow(dead_code, unreachable_pub)]

pub mod server;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The order n of P-256, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `n - s` for a 32-byte big-endian `s` below `n`.
fn n_minus(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(P256_N[i]) - i16::from(s[i]) - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        out[i] = d as u8;
    }
    assert_eq!(borrow, 0, "s is not below n");
    out
}

/// The same ES256 token with its signature's `s` replaced by `n - s`: the other valid
/// signature of the same signing input (ECDSA malleability).
pub fn high_s_twin(token: &str) -> String {
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    assert_eq!(raw.len(), 64, "an ES256 signature is r || s, 64 bytes");
    let twin = n_minus(&raw[32..]);
    raw[32..].copy_from_slice(&twin);
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&raw))
}

/// The same token with non-zero padding bits in the last character of its signature:
/// the same bytes to a lax base64 decoder, refused by a strict one.
pub fn padding_variant(token: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (signed, sig) = token.rsplit_once('.').unwrap();
    // Unused low bits in the last character: 2 for 1 leftover byte... counted from length.
    let unused = match sig.len() % 4 {
        2 => 4,
        3 => 2,
        _ => panic!("the signature has no padding bits"),
    };
    let last = *sig.as_bytes().last().unwrap();
    let v = ALPHABET.iter().position(|&c| c == last).unwrap();
    let flipped = v ^ 1;
    assert!(unused > 0 && flipped >> unused == v >> unused);
    let mut out = format!("{signed}.{}", &sig[..sig.len() - 1]);
    out.push(ALPHABET[flipped] as char);
    assert_eq!(
        base64::engine::GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(true)
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
        )
        .decode(out.rsplit_once('.').unwrap().1)
        .unwrap(),
        URL_SAFE_NO_PAD.decode(sig).unwrap(),
        "a lax decoder reads the same signature"
    );
    out
}
