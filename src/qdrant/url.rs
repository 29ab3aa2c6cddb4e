//! The server's address, which may carry credentials (`user:password@`).
//!
//! [`ServerUrl::parse`] is the one parser of `--url`, `QDRANT_URL` and `--peer`, and
//! [`parse_host`] the one check of `--host`/`QDRANT_HOST`. Nothing of an address is shown
//! before it went through them: their errors say what is wrong without quoting the value
//! (only a scheme, which is never a secret, may be named).
//!
//! The URL is read as RFC 3986 says: the authority ends at the first `/`, `?` or `#`, and the
//! user info at the last `@` inside it (so a raw `@` in a password works, as in browsers and
//! curl). A `/`, `?` or `#` in a user name or password must be percent-encoded: such a URL is
//! refused with a hint, never guessed at, since a misread authority would send the
//! credentials to another host. Percent-encoded user info is decoded.
//!
//! [`ServerUrl`] keeps the credentials privately. Requests go to [`ServerUrl::base`]
//! (scheme, host and port, no credentials, so the HTTP library never sees them) with the
//! credentials in an `Authorization: Basic` header ([`ServerUrl::authorization`]);
//! everything else (its `Display` and `Debug`, every message, every printed command) gets
//! [`ServerUrl::shown`], with `***@` in their place.

use std::fmt;
use std::net::Ipv6Addr;

pub use crate::secrets::{HIDDEN, MIN_SECRET_LEN};

/// How an HTTP Basic `Authorization` value starts (RFC 7617).
const BASIC: &str = "Basic ";

/// The schemes aimem speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Why a URL cannot be used. Shown as the end of a sentence about the URL ("the Qdrant URL
/// (--url or QDRANT_URL) has no scheme: …"); no variant holds any part of the URL but a
/// syntactically valid scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    NoScheme,
    /// Another scheme; named when it is a well-formed one.
    Scheme(Option<String>),
    Control,
    /// A `/`, `?` or `#` before the last `@`: a password holding one, not percent-encoded.
    ReservedInUserInfo,
    Query,
    Path,
    Percent,
    NotUtf8,
    NoHost,
    Host(HostError),
    Port,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::NoScheme => {
                f.write_str("has no scheme: write http://HOST:PORT or https://HOST:PORT")
            }
            UrlError::Scheme(Some(scheme)) => {
                write!(f, "uses `{scheme}`; aimem speaks http and https")
            }
            UrlError::Scheme(None) => {
                f.write_str("has a scheme other than http and https; aimem speaks only these")
            }
            UrlError::Control => f.write_str("holds control characters"),
            UrlError::ReservedInUserInfo => f.write_str(
                "has a `/`, `?` or `#` before its last `@`: in a user name or password these \
                 characters must be percent-encoded (`/` as %2F, `?` as %3F, `#` as %23)",
            ),
            UrlError::Query => f.write_str(
                "has a query or fragment (`?`, `#`); give only the scheme, host and port (the \
                 API key goes in QDRANT_API_KEY)",
            ),
            UrlError::Path => f.write_str("has a path; give only the scheme, host and port"),
            UrlError::Percent => f.write_str(
                "has a `%` in its user info that is not followed by two hex digits: a `%` in a \
                 user name or password must be percent-encoded as %25",
            ),
            UrlError::NotUtf8 => f.write_str("has user info that is not UTF-8 once decoded"),
            UrlError::NoHost => f.write_str("has no host"),
            UrlError::Host(e) => write!(f, "has a host that {e}"),
            UrlError::Port => f.write_str("has a port that is not a number from 0 to 65535"),
        }
    }
}

impl std::error::Error for UrlError {}

/// Why a host (`--host`, QDRANT_HOST, a URL's host) is not a host name or IP address. Shown
/// as the end of a sentence about it; no variant holds any part of the value, which may be
/// a credential typed in the wrong place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    Empty,
    Space,
    UserInfo,
    Scheme,
    Path,
    Port,
    NotAscii,
    TooLong,
    Invalid,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostError::Empty => "is empty",
            HostError::Space => "holds whitespace or control characters",
            HostError::UserInfo => {
                "holds user info (`@`): give the host name or IP address alone; credentials go \
                 in the URL (--url or QDRANT_URL, http://USER:PASS@HOST:PORT)"
            }
            HostError::Scheme => {
                "holds a scheme (`://`): give the host name or IP address alone, or the whole \
                 address with --url or QDRANT_URL"
            }
            HostError::Path => {
                "holds a path, query or fragment (`/`, `?`, `#`): give the host name or IP \
                 address alone"
            }
            HostError::Port => "holds a port (`:`): give the port with --port or QDRANT_PORT",
            HostError::NotAscii => {
                "is not ASCII: write an internationalised domain name in its xn-- form"
            }
            HostError::TooLong => "is longer than 253 characters",
            HostError::Invalid => {
                "is not a host name or IP address (letters, digits, `-`, `.` and `_`, or an IPv6 \
                 address in brackets)"
            }
        })
    }
}

impl std::error::Error for HostError {}

/// `value` as a host for a URL if it is a host name or IP address and nothing else: no user
/// info, scheme, path, port, whitespace or control characters. A bare IPv6 address comes
/// back in brackets.
pub fn parse_host(value: &str) -> Result<String, HostError> {
    if value.is_empty() {
        return Err(HostError::Empty);
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(HostError::Space);
    }
    if value.contains('@') {
        return Err(HostError::UserInfo);
    }
    if value.contains("://") {
        return Err(HostError::Scheme);
    }
    if value.contains(['/', '?', '#', '\\']) {
        return Err(HostError::Path);
    }
    if let Some(inside) = value.strip_prefix('[') {
        return match inside.strip_suffix(']') {
            Some(address) if address.parse::<Ipv6Addr>().is_ok() => Ok(value.to_string()),
            _ if inside.contains("]:") => Err(HostError::Port),
            _ => Err(HostError::Invalid),
        };
    }
    if value.parse::<Ipv6Addr>().is_ok() {
        return Ok(format!("[{value}]"));
    }
    if value.contains(':') {
        return Err(HostError::Port);
    }
    if !value.is_ascii() {
        return Err(HostError::NotAscii);
    }
    if value.len() > 253 {
        return Err(HostError::TooLong);
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return Err(HostError::Invalid);
    }
    Ok(value.to_string())
}

/// The credentials of a URL.
#[derive(Clone, PartialEq, Eq)]
struct Credentials {
    /// The user info as typed (percent-encoded), for hiding it in texts that quote it.
    typed: String,
    /// Decoded.
    user: String,
    /// Decoded; none without a `:` in the user info.
    password: Option<String>,
    /// The `Authorization` header's value: `Basic ` and the base64 of `user:password`.
    header: String,
}

impl Credentials {
    fn parse(typed: &str) -> Result<Credentials, UrlError> {
        // RFC 3986 §3.2.1 and RFC 7617: the user name ends at the first `:`.
        let (user, password) = match typed.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (typed, None),
        };
        let user = percent_decode(user)?;
        let password = password.map(percent_decode).transpose()?;
        // RFC 7617: without a password, the pair is `user:`.
        let pair = format!("{user}:{}", password.as_deref().unwrap_or_default());
        Ok(Credentials {
            typed: typed.to_string(),
            user,
            password,
            header: format!("{BASIC}{}", base64(pair.as_bytes())),
        })
    }

    /// The base64 of `user:password`, as the header carries it.
    fn encoded(&self) -> &str {
        &self.header[BASIC.len()..]
    }

    /// The parts a text may quote: as typed, each decoded half, and the `Authorization`
    /// header's value (whole, and its base64 alone: a server or proxy may echo the header).
    fn secrets(&self) -> Vec<&str> {
        let mut secrets = vec![
            self.header.as_str(),
            self.encoded(),
            self.typed.as_str(),
            self.user.as_str(),
        ];
        if let Some((_, typed_password)) = self.typed.split_once(':') {
            secrets.push(typed_password);
        }
        if let Some(password) = &self.password {
            secrets.push(password);
        }
        secrets.retain(|s| !s.is_empty());
        secrets.dedup();
        secrets
    }
}

/// `%XX` sequences decoded; a `%` without two hex digits after it is an error.
fn percent_decode(text: &str) -> Result<String, UrlError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(UrlError::Percent)?;
            let digit = |b: u8| (b as char).to_digit(16).ok_or(UrlError::Percent);
            out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::NotUtf8)
}

/// RFC 4648 base64 (with padding), for the `Authorization: Basic` header.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A well-formed scheme (RFC 3986 §3.1), which can be named in an error: it holds no `:` or
/// `@`, so it is no user info.
fn nameable_scheme(scheme: &str) -> Option<String> {
    let mut bytes = scheme.bytes();
    let well_formed = scheme.len() <= 32
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    well_formed.then(|| scheme.to_ascii_lowercase())
}

/// A Qdrant server's base URL (scheme, host, port, no path). Shown redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl {
    scheme: Scheme,
    host: String,
    /// As given; none for the scheme's default.
    port: Option<u16>,
    credentials: Option<Credentials>,
    /// `scheme://host[:port]`: where requests go.
    base: String,
    /// `scheme://[***@]host[:port]`: what people see.
    shown: String,
}

impl ServerUrl {
    /// Parses `http(s)://[user[:password]@]host[:port][/]`; see the module's documentation.
    pub fn parse(input: &str) -> Result<ServerUrl, UrlError> {
        let input = input.trim();
        if input.chars().any(char::is_control) {
            return Err(UrlError::Control);
        }
        let (scheme, rest) = input.split_once("://").ok_or(UrlError::NoScheme)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(UrlError::Scheme(nameable_scheme(scheme))),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if tail.contains('@') {
            return Err(UrlError::ReservedInUserInfo);
        }
        if tail.contains(['?', '#']) {
            return Err(UrlError::Query);
        }
        if !tail.bytes().all(|b| b == b'/') {
            return Err(UrlError::Path);
        }
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (&authority[..at], &authority[at + 1..]),
            None => ("", authority),
        };
        let credentials = match userinfo {
            "" => None,
            typed => Some(Credentials::parse(typed)?),
        };
        let (host, port) = match hostport.strip_prefix('[') {
            Some(_) => match hostport.find(']') {
                Some(close) => {
                    let (host, after) = hostport.split_at(close + 1);
                    match after {
                        "" => (host, None),
                        _ => (host, Some(after.strip_prefix(':').ok_or(UrlError::Port)?)),
                    }
                }
                None => return Err(UrlError::Host(HostError::Invalid)),
            },
            None => match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            },
        };
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        let host = parse_host(host).map_err(UrlError::Host)?;
        let port = match port {
            // RFC 3986 §3.2.3: an empty port is the scheme's default.
            None | Some("") => None,
            Some(digits) if digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Some(digits.parse::<u16>().map_err(|_| UrlError::Port)?)
            }
            Some(_) => return Err(UrlError::Port),
        };
        Ok(ServerUrl::build(scheme, host, port, credentials))
    }

    /// `http://host:port` for a host already checked by [`parse_host`].
    pub fn http(host: &str, port: u16) -> ServerUrl {
        ServerUrl::build(Scheme::Http, host.to_string(), Some(port), None)
    }

    fn build(
        scheme: Scheme,
        host: String,
        port: Option<u16>,
        credentials: Option<Credentials>,
    ) -> ServerUrl {
        let port_part = port.map(|p| format!(":{p}")).unwrap_or_default();
        let base = format!("{}://{host}{port_part}", scheme.as_str());
        let shown = match credentials {
            Some(_) => format!("{}://{HIDDEN}@{host}{port_part}", scheme.as_str()),
            None => base.clone(),
        };
        ServerUrl {
            scheme,
            host,
            port,
            credentials,
            base,
            shown,
        }
    }

    /// This address with its host replaced by `host`: same scheme, credentials and port.
    pub fn with_host(&self, host: &str) -> ServerUrl {
        ServerUrl::build(
            self.scheme,
            host.to_string(),
            self.port,
            self.credentials.clone(),
        )
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host: a name, an IPv4 address, or an IPv6 address in brackets. Never credentials.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, the scheme's default when none was given.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    /// Where requests go: scheme, host and port, without credentials.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The `Authorization` header the credentials make (HTTP Basic, RFC 7617), if any.
    pub(crate) fn authorization(&self) -> Option<String> {
        Some(self.credentials.as_ref()?.header.clone())
    }

    /// The redacted address, for people.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The secret parts of the address: the user info, the user name and the password, as
    /// typed and decoded, and the `Authorization` header's value (`Basic` and the base64 of
    /// `user:password`, whole and the base64 alone).
    pub(crate) fn secrets(&self) -> Vec<&str> {
        self.credentials
            .as_ref()
            .map(Credentials::secrets)
            .unwrap_or_default()
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

/// `text` with every one of `secrets` replaced by `***`, the longest first (so a user info
/// is hidden whole before its parts are looked for). Secrets shorter than
/// [`MIN_SECRET_LEN`] are skipped.
pub fn mask(text: &str, secrets: &[&str]) -> String {
    let mut secrets: Vec<&str> = secrets
        .iter()
        .copied()
        .filter(|s| s.len() >= MIN_SECRET_LEN)
        .collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut text = text.to_string();
    for secret in secrets {
        if text.contains(secret) {
            text = text.replace(secret, HIDDEN);
        }
    }
    text
}

/// A server address read back from a file aimem wrote (a journal's `server`), for showing.
/// aimem writes only the scheme, host and port there, but an older version may have written a
/// URL with credentials, and the file may have been edited since: the text is parsed as
/// `--url` is and shown redacted ([`ServerUrl::shown`]). None when it is no such URL, so the
/// raw text is never shown.
pub fn shown_stored(text: &str) -> Option<String> {
    ServerUrl::parse(text)
        .ok()
        .map(|url| url.shown().to_string())
}

/// What a message says in place of a stored server address [`shown_stored`] cannot read.
pub const UNREADABLE_SERVER: &str = "a server whose recorded address cannot be read";

/// [`shown_stored`], or [`UNREADABLE_SERVER`]: for sentences.
pub fn describe_stored(text: &str) -> String {
    shown_stored(text).unwrap_or_else(|| UNREADABLE_SERVER.to_string())
}

/// A URL aimem did not parse (one a server sent: a redirect's `Location`, a peer's P2P
/// address), for showing: everything up to the last `@` (user info, even one holding `/`,
/// `?` or `#`) becomes `***@`, and a query or fragment after the host becomes `?***` /
/// `#***`. The scheme, host, port and path are kept.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let mut shown = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        shown.push_str(scheme);
        shown.push_str("://");
    }
    let rest = match rest.rfind('@') {
        Some(at) => {
            shown.push_str(HIDDEN);
            shown.push('@');
            &rest[at + 1..]
        }
        None => rest,
    };
    match rest.find(['?', '#']) {
        Some(at) => {
            shown.push_str(&rest[..=at]);
            shown.push_str(HIDDEN);
        }
        None => shown.push_str(rest),
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> ServerUrl {
        ServerUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn urls_are_split_into_scheme_host_port_and_credentials() {
        let url = parsed("HTTP://Admin:hunter2@Q.example:6333/");
        assert_eq!(url.scheme(), Scheme::Http);
        assert_eq!((url.host(), url.port()), ("Q.example", 6333));
        assert_eq!(url.base(), "http://Q.example:6333");
        assert_eq!(url.shown(), "http://***@Q.example:6333");
        assert_eq!(url.to_string(), url.shown());
        assert!(!format!("{url:?}").contains("hunter2"));
        let url = parsed("https://q.example");
        assert_eq!((url.port(), url.base()), (443, "https://q.example"));
        assert_eq!(url.authorization(), None);
        assert_eq!(parsed("http://q").port(), 80);
        assert_eq!(parsed("http://q:").port(), 80);
        let url = parsed("http://[::1]:6333//");
        assert_eq!((url.host(), url.port()), ("[::1]", 6333));
        assert_eq!(parsed("http://@q:1").shown(), "http://q:1");
    }

    #[test]
    fn user_info_ends_at_the_last_at_sign_and_is_decoded() {
        let url = parsed("http://a@b:c:d@q:1");
        assert_eq!(url.host(), "q");
        assert_eq!(url.shown(), "http://***@q:1");
        // RFC 7617: user `a@b`, password `c:d`.
        assert_eq!(
            url.authorization().unwrap(),
            format!("Basic {}", base64(b"a@b:c:d"))
        );
        let url = parsed("http://admin:se%2Fc%3Fr%23e%25t%40@q:1");
        assert_eq!(
            url.authorization().unwrap(),
            format!("Basic {}", base64(b"admin:se/c?r#e%t@"))
        );
        assert!(url.secrets().contains(&"se/c?r#e%t@"));
        assert!(url.secrets().contains(&"se%2Fc%3Fr%23e%25t%40"));
        assert_eq!(
            parsed("http://user@q").authorization().unwrap(),
            format!("Basic {}", base64(b"user:"))
        );
    }

    #[test]
    fn reserved_characters_in_a_password_are_refused_without_quoting_it() {
        for bad in [
            "http://admin:se/cret@q:1",
            "http://admin:se#cret@q:1",
            "http://admin:se?cret@q:1",
            "http://admin:s/e?c#ret@q:1",
        ] {
            let e = ServerUrl::parse(bad).unwrap_err();
            assert_eq!(e, UrlError::ReservedInUserInfo, "{bad}");
            assert!(!e.to_string().contains("cret"), "{e}");
        }
        assert_eq!(
            ServerUrl::parse("http://a:50%off@q").unwrap_err(),
            UrlError::Percent
        );
        assert_eq!(
            ServerUrl::parse("http://a:%ff@q").unwrap_err(),
            UrlError::NotUtf8
        );
    }

    #[test]
    fn what_is_not_scheme_host_and_port_is_refused() {
        use UrlError::*;
        for (bad, error) in [
            ("localhost:6333", NoScheme),
            ("u:s3cret@x:1", NoScheme),
            ("ftp://x", Scheme(Some("ftp".into()))),
            ("u:s3cret://x", Scheme(None)),
            ("http://x:port", Port),
            ("http://x:1:2", Port),
            ("http://x:99999", Port),
            ("http://x:+1", Port),
            ("http://x:1/collections", Path),
            ("http://x:1?api-key=s3cret", Query),
            ("http://x/#s3cret", Query),
            ("http://u:p@", NoHost),
            ("http://:1", NoHost),
            ("http://a b:1", Host(HostError::Space)),
            ("http://h\u{1b}:1", Control),
            ("http://é.example", Host(HostError::NotAscii)),
            ("http://[::1", Host(HostError::Invalid)),
            ("http://[::1]x", Port),
            ("http://[x]:1", Host(HostError::Invalid)),
            ("http://a%41:1", Host(HostError::Invalid)),
        ] {
            assert_eq!(ServerUrl::parse(bad).unwrap_err(), error, "{bad}");
        }
    }

    #[test]
    fn hosts_are_names_or_addresses_only() {
        assert_eq!(parse_host("localhost").unwrap(), "localhost");
        assert_eq!(parse_host("qdrant_1.svc-x").unwrap(), "qdrant_1.svc-x");
        assert_eq!(parse_host("10.0.0.1").unwrap(), "10.0.0.1");
        assert_eq!(parse_host("::1").unwrap(), "[::1]");
        assert_eq!(parse_host("[fd00::2]").unwrap(), "[fd00::2]");
        use HostError::*;
        for (bad, error) in [
            ("", Empty),
            (" ", Space),
            ("a b", Space),
            ("h\u{7}", Space),
            ("admin:HOSTPW9@127.0.0.1", UserInfo),
            ("http://h", Scheme),
            ("h/x", Path),
            ("h?api-key=x", Path),
            ("h#x", Path),
            ("h:6333", Port),
            ("[::1]:6333", Port),
            ("[h]", Invalid),
            ("bücher.example", NotAscii),
            ("h%41", Invalid),
            ("h*", Invalid),
        ] {
            assert_eq!(parse_host(bad), Err(error), "{bad:?}");
        }
        assert_eq!(parse_host(&"a".repeat(254)), Err(TooLong));
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn foreign_urls_are_shown_without_their_credentials() {
        assert_eq!(redact("http://admin:hunter2@q:6333"), "http://***@q:6333");
        assert_eq!(redact("http://q:6333"), "http://q:6333");
        assert_eq!(redact("http://a@b:c@q:1/p"), "http://***@q:1/p");
        assert_eq!(redact("http://admin:se/cret@q:1"), "http://***@q:1");
        assert_eq!(redact("http://admin:se#cret@q:1"), "http://***@q:1");
        assert_eq!(redact("http://q:1?api-key=s3cret"), "http://q:1?***");
        assert_eq!(redact("http://q:1/p#s3cret"), "http://q:1/p#***");
        assert_eq!(redact("admin:hunter2@q:1"), "***@q:1");
    }

    #[test]
    fn the_basic_header_value_is_a_secret_whole_and_as_base64() {
        let url = parsed("http://admin:hunter2@q:1");
        let header = url.authorization().unwrap();
        let encoded = base64(b"admin:hunter2");
        assert_eq!(header, format!("Basic {encoded}"));
        let secrets = url.secrets();
        assert!(secrets.contains(&header.as_str()), "{secrets:?}");
        assert!(secrets.contains(&encoded.as_str()), "{secrets:?}");
        assert_eq!(
            mask(&format!("got `{header}`, then {encoded}"), &secrets),
            "got `***`, then ***"
        );
        // Without a password the pair is `user:`.
        let url = parsed("http://admin@q:1");
        assert!(url.secrets().contains(&base64(b"admin:").as_str()));
        assert!(parsed("http://q:1").secrets().is_empty());
    }

    #[test]
    fn stored_servers_are_shown_redacted_or_not_at_all() {
        assert_eq!(
            shown_stored("http://user:pass@127.0.0.1:6333").as_deref(),
            Some("http://***@127.0.0.1:6333")
        );
        assert_eq!(
            shown_stored("http://127.0.0.1:6333").as_deref(),
            Some("http://127.0.0.1:6333")
        );
        for unreadable in [
            "user:pass@127.0.0.1:6333",
            "http://user:pa/ss@q:1",
            "http://q:1/?key=pass",
            "http://q\u{1b}[2J:1",
            "",
        ] {
            assert_eq!(shown_stored(unreadable), None, "{unreadable:?}");
        }
    }

    #[test]
    fn masking_hides_the_longest_secret_first() {
        assert_eq!(
            mask(
                "bad uri http://admin:hunter2@q/x",
                &["admin", "admin:hunter2", ""]
            ),
            "bad uri http://***@q/x"
        );
        assert_eq!(mask("a b: abc", &["a", "b", "abc"]), "a b: abc");
        assert_eq!(mask("as it was", &[]), "as it was");
    }
}
