//! The dashboard's two static files, built into the binary: one stylesheet
//! and one small script (no build step). Each is served at a path that
//! carries a hash of its content (`/ui/assets/app-<hash>.css`), so it can be
//! cached for a year: a new binary with a changed file links a new path.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

/// One file: its served name and content type.
struct Asset {
    name: String,
    content_type: &'static str,
    body: &'static str,
}

fn assets() -> &'static [Asset; 2] {
    static ASSETS: OnceLock<[Asset; 2]> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let named = |stem: &str, ext: &str, body: &'static str, content_type| {
            let hash = crate::identity::hex(&Sha256::digest(body.as_bytes()));
            Asset {
                name: format!("{stem}-{}.{ext}", &hash[..12]),
                content_type,
                body,
            }
        };
        [
            named("app", "css", CSS, "text/css; charset=utf-8"),
            named("app", "js", JS, "text/javascript; charset=utf-8"),
        ]
    })
}

/// The stylesheet's URL.
pub fn css_url() -> String {
    format!("/ui/assets/{}", assets()[0].name)
}

/// The script's URL.
pub fn js_url() -> String {
    format!("/ui/assets/{}", assets()[1].name)
}

/// `GET /ui/assets/{name}`.
pub async fn serve(Path(name): Path<String>) -> Response {
    match assets().iter().find(|a| a.name == name) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            asset.body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-store")],
            "no such asset: reload the page (the daemon was upgraded)\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_contents_hash() {
        assert!(css_url().starts_with("/ui/assets/app-") && css_url().ends_with(".css"));
        assert!(js_url().ends_with(".js"));
        assert_ne!(css_url(), js_url());
        assert_eq!(css_url(), css_url());
    }
}
