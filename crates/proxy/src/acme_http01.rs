//! Answers to ACME HTTP-01 challenges (RFC 8555 §8.3).
//!
//! The ACME client (outside this crate) puts a token and its key
//! authorization here while a challenge is pending and removes it when the
//! challenge is done. Every listener of the proxy answers
//! `GET /.well-known/acme-challenge/<token>` for a known token with `200
//! text/plain` and the key authorization, for any Host, before routing; an
//! unknown token falls through to the normal routes (so an app that answers
//! its own challenges keeps working).

use std::collections::HashMap;
use std::sync::RwLock;

/// Path prefix of HTTP-01 challenge requests.
pub const HTTP01_PATH_PREFIX: &str = "/.well-known/acme-challenge/";

/// Pending HTTP-01 challenges: token → key authorization. Thread-safe; shared
/// by every listener of one [`crate::Proxy`] (see [`crate::Proxy::http01`]).
#[derive(Debug, Default)]
pub struct Http01Challenges {
    pending: RwLock<HashMap<String, String>>,
}

impl Http01Challenges {
    /// Answers `token` with `key_authorization` until [`Self::remove`].
    /// Replaces an earlier answer for the same token.
    pub fn insert(&self, token: impl Into<String>, key_authorization: impl Into<String>) {
        let mut pending = self
            .pending
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.insert(token.into(), key_authorization.into());
    }

    /// Stops answering `token`; returns its key authorization if it was known.
    pub fn remove(&self, token: &str) -> Option<String> {
        let mut pending = self
            .pending
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.remove(token)
    }

    /// The key authorization to answer a request for `req_path` with: `Some`
    /// when the path is exactly `/.well-known/acme-challenge/<token>` (no
    /// query) and the token is pending.
    pub fn answer(&self, req_path: &str) -> Option<String> {
        let token = req_path.strip_prefix(HTTP01_PATH_PREFIX)?;
        if token.is_empty() || token.contains('/') {
            return None;
        }
        let pending = self
            .pending
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.get(token).cloned()
    }

    /// True when no challenge is pending (the common case: one cheap check).
    pub fn is_empty(&self) -> bool {
        self.pending
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_tokens_are_answered_until_removed() {
        let c = Http01Challenges::default();
        assert!(c.is_empty());
        c.insert("tok-1", "tok-1.thumb");
        assert_eq!(
            c.answer("/.well-known/acme-challenge/tok-1").as_deref(),
            Some("tok-1.thumb")
        );
        assert_eq!(c.answer("/.well-known/acme-challenge/tok-2"), None);
        assert_eq!(c.answer("/.well-known/acme-challenge/"), None);
        assert_eq!(c.answer("/.well-known/acme-challenge/tok-1/x"), None);
        assert_eq!(c.answer("/tok-1"), None);
        assert_eq!(c.remove("tok-1").as_deref(), Some("tok-1.thumb"));
        assert_eq!(c.answer("/.well-known/acme-challenge/tok-1"), None);
        assert!(c.is_empty());
    }
}
