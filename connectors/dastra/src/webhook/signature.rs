//! `Dastra-Signature`: Base64 of HMAC-SHA256 over the exact body, keyed with the UTF-8 bytes of the
//! webhook's validation key (API notes §5.2).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The signature Dastra would send for `body` with `key`.
pub fn sign(key: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac =
        HmacSha256::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` (the header value) is valid for `body` under `key`; constant-time compare.
pub fn verify(key: &str, body: &[u8], signature: &str) -> bool {
    let Ok(given) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(key.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_known_hmac_sha256_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let expected = STANDARD.encode(hex_literal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
        assert_eq!(sign("Jefe", b"what do ya want for nothing?"), expected);
        assert!(verify("Jefe", b"what do ya want for nothing?", &expected));
        assert!(!verify("Jefe", b"what do ya want for nothing!", &expected));
        assert!(!verify("jefe", b"what do ya want for nothing?", &expected));
        assert!(!verify("Jefe", b"x", "not base64 !!"));
    }

    fn hex_literal(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
}
