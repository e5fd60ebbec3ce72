//! The dashboard's sign-in sessions: an API token, checked by the same code
//! the API uses (`crate::api::auth`), is exchanged for a random session id
//! kept in memory (never the token: its [`Credential`], resolved again on
//! every request, so a revoked or expired token ends its sessions at once).
//! The id travels in an `HttpOnly; SameSite=Strict; Path=/ui` cookie
//! (`Secure` when the listener speaks TLS); each session has its own CSRF
//! token and ends at its expiry, at sign-out, or when the daemon restarts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header;

use crate::api::auth::Credential;
use crate::identity;

/// The session cookie's name.
pub const COOKIE: &str = "cutover_session";

/// How long a session lasts unless `[server] dashboard_session` says.
pub const DEFAULT_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// Most sessions kept at once; the oldest is dropped beyond it.
const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token it signed in with (what it is, not the token).
    pub credential: Credential,
    /// The token's name when it signed in (for the log).
    pub name: String,
    /// Its CSRF token: every form carries it, every POST must.
    pub csrf: String,
    /// When it ends.
    pub expires: Instant,
}

/// Every live session, by id.
#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// No sessions; each new one lasts `ttl`.
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            by_id: Mutex::new(HashMap::new()),
        }
    }

    /// How long a new session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for `credential`; returns its id.
    pub fn create(&self, credential: Credential, name: &str) -> Result<String, getrandom::Error> {
        let id = random_hex()?;
        let session = Session {
            credential,
            name: name.to_owned(),
            csrf: random_hex()?,
            expires: Instant::now() + self.ttl,
        };
        let mut map = self.map();
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), session);
        Ok(id)
    }

    /// The live session `id` names, if any.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.map();
        match map.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends session `id`.
    pub fn remove(&self, id: &str) {
        self.map().remove(id);
    }
}

/// 32 random bytes as hex.
pub fn random_hex() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)?;
    Ok(identity::hex(&raw))
}

/// The value of cookie `name` in `headers`, if sent.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value: `name=value` for `/ui`, HttpOnly, SameSite=Strict,
/// `Secure` over TLS, lasting `max_age` (zero: delete it).
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_it_expires_or_ends() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let id = sessions
            .create(Credential::Bootstrap, "admin")
            .expect("random");
        assert_eq!(id.len(), 64);
        let s = sessions.get(&id).expect("session");
        assert_eq!(s.name, "admin");
        assert_eq!(s.csrf.len(), 64);
        assert_ne!(s.csrf, id);
        assert!(sessions.get("nope").is_none());
        sessions.remove(&id);
        assert!(sessions.get(&id).is_none());

        let short = Sessions::new(Duration::ZERO);
        let id = short
            .create(Credential::Bootstrap, "admin")
            .expect("random");
        assert!(short.get(&id).is_none(), "an expired session is gone");
    }

    #[test]
    fn cookies_are_read_by_name_and_set_with_every_attribute() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; cutover_session=abc; b=2".parse().expect("header"),
        );
        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
        assert_eq!(
            set_cookie(COOKIE, "x", Duration::from_secs(5), true),
            "cutover_session=x; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=5; Secure"
        );
        assert!(!set_cookie(COOKIE, "x", Duration::ZERO, false).contains("Secure"));
    }
}
