//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>):
//! `v1,` and the base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`,
//! keyed with the bytes after `whsec_` (base64-decoded).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `webhook-signature` header for one attempt.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

#[cfg(test)]
mod tests {
    use super::signature;
    use crate::config::notify::webhook_key;

    #[test]
    fn the_specifications_example_signs_as_published() {
        // From the Standard Webhooks specification and its reference libraries.
        let key = webhook_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("key");
        assert_eq!(
            signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn every_part_is_signed() {
        let key = webhook_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("key");
        let base = signature(&key, "msg_1", 1, b"{}");
        assert_ne!(base, signature(&key, "msg_2", 1, b"{}"));
        assert_ne!(base, signature(&key, "msg_1", 2, b"{}"));
        assert_ne!(base, signature(&key, "msg_1", 1, b"{ }"));
        assert_ne!(
            base,
            signature(b"another key of some length..", "msg_1", 1, b"{}")
        );
    }
}
