//! The server's address, which may carry secrets (`user:password@`, an `?api-key=` query).
//!
//! [`ServerUrl`] keeps the address as given privately, for the HTTP layer alone; everything
//! else (its `Display` and `Debug`, every message, every printed command) gets the redacted
//! form from [`redact`], the one function that decides what of a URL may be shown.

use std::fmt;

/// What replaces a secret part of a URL.
const HIDDEN: &str = "***";

/// `url` with its credentials hidden: `user:password@` becomes `***@` (so the reader sees that
/// some were given) and a query or fragment becomes `?***` / `#***`. The scheme, host, port
/// and path are kept.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let mut shown = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        shown.push_str(scheme);
        shown.push_str("://");
    }
    match authority.rsplit_once('@') {
        Some((_, host)) => {
            shown.push_str(HIDDEN);
            shown.push('@');
            shown.push_str(host);
        }
        None => shown.push_str(authority),
    }
    match tail.find(['?', '#']) {
        Some(at) => {
            shown.push_str(&tail[..at]);
            shown.push_str(&tail[at..=at]);
            shown.push_str(HIDDEN);
        }
        None => shown.push_str(tail),
    }
    shown
}

/// A Qdrant server's base URL (scheme, host, port, no trailing slash). Shown redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl {
    raw: String,
    shown: String,
}

impl ServerUrl {
    pub fn new(url: &str) -> ServerUrl {
        let raw = url.trim_end_matches('/').to_string();
        ServerUrl {
            shown: redact(&raw),
            raw,
        }
    }

    /// The address as given: only for talking to the server.
    pub(super) fn raw(&self) -> &str {
        &self.raw
    }

    /// The redacted address, for people.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// `text` (say a foreign library's error message, which may quote the URL) with every
    /// secret part of this URL hidden.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in self.secrets() {
            text = text.replace(secret, HIDDEN);
        }
        text
    }

    /// The secret parts of the address as given: the user info and the query or fragment.
    pub(super) fn secrets(&self) -> Vec<&str> {
        let rest = self.raw.split_once("://").map_or(&*self.raw, |(_, r)| r);
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let mut secrets = Vec::new();
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            secrets.push(userinfo);
        }
        if let Some(at) = tail.find(['?', '#']) {
            secrets.push(&tail[at + 1..]);
        }
        // Replacing an empty string would put `***` between every character.
        secrets.retain(|s| !s.is_empty());
        secrets
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ServerUrl").field(&self.shown).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_hidden_and_the_address_kept() {
        assert_eq!(redact("http://admin:hunter2@q:6333"), "http://***@q:6333");
        assert_eq!(redact("http://q:6333"), "http://q:6333");
        assert_eq!(redact("https://q.example/x@y"), "https://q.example/x@y");
        assert_eq!(redact("http://a@b:c@q:1/p"), "http://***@q:1/p");
        assert_eq!(redact("http://q:1?api-key=s3cret"), "http://q:1?***");
        assert_eq!(redact("http://q:1/p#s3cret"), "http://q:1/p#***");
        assert_eq!(redact("admin:hunter2@q:1"), "***@q:1");
    }

    #[test]
    fn the_raw_address_is_never_formatted() {
        let url = ServerUrl::new("http://admin:hunter2@q:6333/");
        assert_eq!(url.raw(), "http://admin:hunter2@q:6333");
        assert_eq!(url.to_string(), "http://***@q:6333");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(
            url.scrub("bad uri http://admin:hunter2@q:6333/x"),
            "bad uri http://***@q:6333/x"
        );
        let plain = ServerUrl::new("http://q:6333");
        assert_eq!(plain.scrub("as it was"), "as it was");
    }
}
