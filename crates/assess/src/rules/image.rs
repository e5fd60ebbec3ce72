//! Container image references (`registry/name:tag@sha256:…`) and how firmly
//! they are pinned, shared by the `dockerfile`, `compose` and `kubernetes`
//! passes so the three judge a tag the same way.
//!
//! A reference is pinned by **digest** when it carries `@sha256:…`; by an
//! **exact** tag when the tag names a full `x.y.z` version
//! (`node:18.19.1-alpine3.19`, `golang:1.22.5-bookworm`); **floating** when
//! the tag names only a major or minor version or a distribution
//! (`node:18-alpine`, `python:3.12-slim`, `debian:bookworm`), which moves
//! with every patch release; and **unpinned** when it has no tag or `latest`.

/// How firmly an image reference is pinned, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pin {
    /// `@sha256:…`: the same bytes on every pull.
    Digest,
    /// A tag with a full `x.y.z` version.
    Exact,
    /// A tag that moves: `18-alpine`, `3.12-slim`, `bookworm`, `stable`.
    Floating,
    /// No tag, or `latest`.
    Unpinned,
}

/// An image reference split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// Everything before the tag and digest, registry included
    /// (`gcr.io/distroless/static-debian12`).
    pub name: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    /// Splits `reference`; `None` when it is empty or still holds an
    /// unresolved variable (`${BASE}`), which cannot be judged.
    pub fn parse(reference: &'a str) -> Option<ImageRef<'a>> {
        let reference = reference.trim();
        if reference.is_empty()
            || reference.contains('$')
            || reference.contains(char::is_whitespace)
        {
            return None;
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (reference, None),
        };
        // A tag follows the last ':' after the last '/' (a ':' before it is a registry port).
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(&rest[last_slash + i + 1..]).filter(|t| !t.is_empty()),
            ),
            None => (rest, None),
        };
        if name.is_empty() {
            return None;
        }
        Some(ImageRef { name, tag, digest })
    }

    /// How firmly this reference is pinned.
    pub fn pin(&self) -> Pin {
        if self.digest.is_some_and(|d| d.starts_with("sha256:")) {
            return Pin::Digest;
        }
        match self.tag {
            None => Pin::Unpinned,
            Some(t) if t.eq_ignore_ascii_case("latest") => Pin::Unpinned,
            Some(t) if is_exact_version(t) => Pin::Exact,
            // PostgreSQL numbers its releases `major.minor` since version 10.
            Some(t) if self.base_name() == "postgres" && is_two_part_version(t) => Pin::Exact,
            Some(_) => Pin::Floating,
        }
    }

    /// The last path component of the name, lowercased: `postgres` for
    /// `docker.io/library/postgres`, `static-debian12` for distroless.
    pub fn base_name(&self) -> String {
        self.name
            .rsplit('/')
            .next()
            .unwrap_or(self.name)
            .to_ascii_lowercase()
    }
}

/// Whether a tag names a full version: three dot-separated numbers somewhere
/// in it (`v1.4.2`, `18.19.1-alpine3.19`, `3.12.4-slim-bookworm`).
fn is_exact_version(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()) {
            let mut parts = 0;
            let mut j = i;
            loop {
                let start = j;
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                if j == start {
                    break;
                }
                parts += 1;
                if parts >= 3 {
                    return true;
                }
                if j < bytes.len() && bytes[j] == b'.' {
                    j += 1;
                } else {
                    break;
                }
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    false
}

/// Whether a tag starts with `major.minor` (`16.3`, `16.3-alpine3.20`).
fn is_two_part_version(tag: &str) -> bool {
    let mut parts = tag.splitn(3, ['.', '-']);
    let major = parts.next().unwrap_or_default();
    let minor = parts.next().unwrap_or_default();
    tag.as_bytes().get(major.len()) == Some(&b'.')
        && !major.is_empty()
        && major.bytes().all(|b| b.is_ascii_digit())
        && !minor.is_empty()
        && minor.bytes().all(|b| b.is_ascii_digit())
}

/// The fix wording for a reference pinned `pin`.
pub fn pin_words(pin: Pin) -> &'static str {
    match pin {
        Pin::Digest => "pinned by digest",
        Pin::Exact => "pinned to an exact version tag",
        Pin::Floating => "on a tag that moves with new releases",
        Pin::Unpinned => "unpinned (no tag or `latest`)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(r: &str) -> Option<Pin> {
        ImageRef::parse(r).map(|i| i.pin())
    }

    #[test]
    fn tags_digests_and_registry_ports() {
        let r = ImageRef::parse("registry.local:5000/team/app:1.2.3@sha256:abc").expect("ref");
        assert_eq!(r.name, "registry.local:5000/team/app");
        assert_eq!(r.tag, Some("1.2.3"));
        assert_eq!(r.digest, Some("sha256:abc"));
        assert_eq!(r.base_name(), "app");
        let r = ImageRef::parse("registry.local:5000/app").expect("ref");
        assert_eq!((r.name, r.tag), ("registry.local:5000/app", None));
        assert_eq!(ImageRef::parse("${BASE}:1"), None);
        assert_eq!(ImageRef::parse(""), None);
        assert_eq!(ImageRef::parse(":1.2.3"), None);
    }

    #[test]
    fn how_firmly_a_reference_is_pinned() {
        assert_eq!(pin("node"), Some(Pin::Unpinned));
        assert_eq!(pin("node:latest"), Some(Pin::Unpinned));
        assert_eq!(pin("node:18"), Some(Pin::Floating));
        assert_eq!(pin("node:18-alpine"), Some(Pin::Floating));
        assert_eq!(pin("python:3.12-slim"), Some(Pin::Floating));
        assert_eq!(pin("alpine:3.19"), Some(Pin::Floating));
        assert_eq!(pin("debian:bookworm"), Some(Pin::Floating));
        assert_eq!(pin("node:18.19.1-alpine3.19"), Some(Pin::Exact));
        assert_eq!(pin("ghcr.io/acme/api:v1.4.2"), Some(Pin::Exact));
        assert_eq!(pin("postgres:16.3"), Some(Pin::Exact));
        assert_eq!(pin("postgres:16.3-alpine3.20"), Some(Pin::Exact));
        assert_eq!(pin("postgres:16-alpine"), Some(Pin::Floating));
        assert_eq!(pin("redis:7.2.5-alpine"), Some(Pin::Exact));
        assert_eq!(
            pin(
                "gcr.io/distroless/static-debian12:nonroot@sha256:8dd8d3ca2cf283383304fd45a5c9c74d5f2cd9da8d3b077d720e264880077c65"
            ),
            Some(Pin::Digest)
        );
        assert_eq!(pin("node@sha256:0123"), Some(Pin::Digest));
    }
}
