//! CSRF protection of the dashboard's forms: every form carries the
//! session's token in a hidden `_csrf` field and every POST is refused (403)
//! unless it carries the same value, compared in constant time. The sign-in
//! form, before any session, uses a double-submit token instead: a random
//! value in a short-lived `cutover_login` cookie (HttpOnly, SameSite=Strict)
//! and the same in the form. (SameSite=Strict cookies already keep other
//! sites' forms from riding a session; the token is the second lock.)

use subtle::ConstantTimeEq;

/// The hidden field's name.
pub const FIELD: &str = "_csrf";

/// The sign-in form's cookie.
pub const LOGIN_COOKIE: &str = "cutover_login";

/// Why a POST was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    /// The form had no token.
    #[error("the form has no CSRF token: reload the page and submit it again")]
    Missing,
    /// The form's token is not the session's.
    #[error(
        "the form's CSRF token does not match this session: reload the page and submit it again"
    )]
    Mismatch,
}

/// `Ok` when `presented` is `expected`.
pub fn check(expected: &str, presented: Option<&str>) -> Result<(), CsrfError> {
    let presented = presented
        .filter(|p| !p.is_empty())
        .ok_or(CsrfError::Missing)?;
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
        return Err(CsrfError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_passes() {
        assert_eq!(check("abc", Some("abc")), Ok(()));
        assert_eq!(check("abc", None), Err(CsrfError::Missing));
        assert_eq!(check("abc", Some("")), Err(CsrfError::Missing));
        assert_eq!(check("abc", Some("abd")), Err(CsrfError::Mismatch));
        assert_eq!(check("abc", Some("abcd")), Err(CsrfError::Mismatch));
        assert_eq!(check("", Some("x")), Err(CsrfError::Mismatch));
    }
}
