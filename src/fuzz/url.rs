//! Properties for the server address parsers (issue 17 finding 8): `--url`/QDRANT_URL/`--peer`
//! ([`ServerUrl::parse`]) and `--host`/QDRANT_HOST ([`parse_host`]). Whatever the input,
//! nothing typed before the user info's `@` is ever shown, in an error or in the parsed
//! address; what is accepted goes to the host and port it names, and its credentials reach
//! the server decoded and nowhere else.

use proptest::prelude::*;

use super::config;
use crate::qdrant::{ServerUrl, mask, parse_host};

/// Marks the secret in generated inputs. Its `_` and `!` are not scheme characters, so it is
/// never a well-formed scheme (the one part of a bad URL an error may name).
const SENTINEL: &str = "S3cr_t!";

/// Text around the secret: anything, or the pieces that steer the parser.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9:/?#@%\\[\\]. ]{0,12}",
        prop::sample::select(vec![
            "",
            "http://",
            "https://",
            "HTTP://u:",
            "ftp://",
            "http://u:p@",
            "/",
            "?",
            "#",
            "%",
            "%2F",
            "%zz",
            ":",
            "@",
            "127.0.0.1:1",
            "[::1]:6333",
            "h:port",
            "h/x",
            "h?k=v",
            "h#f",
            "[::1",
            "é",
            "\u{1b}",
            " ",
        ])
        .prop_map(str::to_string),
    ]
}

/// A host [`parse_host`] accepts, in every form.
fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_-]{1,10}(\\.[a-zA-Z0-9_-]{1,10}){0,3}",
        any::<[u8; 4]>().prop_map(|b| format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
    ]
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

proptest! {
    #![proptest_config(config(256))]

    /// A secret typed anywhere before an `@` is never shown: not in an error, not in the
    /// parsed address's shown form, host or request URL.
    #[test]
    fn nothing_before_the_user_info_at_sign_is_ever_shown(
        prefix in piece(),
        left in piece(),
        right in piece(),
        suffix in piece(),
    ) {
        let input = format!("{prefix}{left}{SENTINEL}{right}@{suffix}");
        match ServerUrl::parse(&input) {
            Err(e) => prop_assert!(!e.to_string().contains(SENTINEL), "{input:?}: {e}"),
            Ok(url) => {
                for shown in [url.shown().to_string(), format!("{url:?}"), url.to_string(),
                              url.host().to_string(), url.base().to_string()] {
                    prop_assert!(!shown.contains(SENTINEL), "{input:?}: {shown}");
                }
                prop_assert!(url.shown().contains("://***@"), "{input:?}: {}", url.shown());
            }
        }
        // Typed into QDRANT_HOST, it is refused, and the refusal quotes nothing.
        let e = parse_host(&input).unwrap_err();
        prop_assert!(!e.to_string().contains(SENTINEL));
    }

    /// Whatever the input, parsing answers, and an accepted address is one the HTTP library
    /// reads the same way: the same host and port, and no user info in the request URL.
    #[test]
    fn what_is_accepted_names_one_host_and_port(input in prop_oneof![
        any::<String>(),
        (piece(), piece(), piece()).prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        (piece(), host(), piece()).prop_map(|(a, b, c)| format!("http://{a}@{b}{c}")),
    ]) {
        let Ok(url) = ServerUrl::parse(&input) else {
            return Ok(());
        };
        let uri: ureq::http::Uri = url.base().parse().map_err(|e| {
            TestCaseError::fail(format!("{input:?}: {} does not parse: {e}", url.base()))
        })?;
        let authority = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
        prop_assert!(!authority.contains('@'), "{input:?}: {authority}");
        prop_assert_eq!(uri.host(), Some(url.host()));
        prop_assert_eq!(uri.port_u16().unwrap_or(url.port()), url.port());
        prop_assert!(matches!(uri.path(), "" | "/"));
        prop_assert!(url.shown().ends_with(url.base().split_once("://").map_or("", |(_, a)| a)));
    }

    /// An address built from its parts, with the user name and password percent-encoded,
    /// comes back as those parts; the credentials reach the server decoded.
    #[test]
    fn addresses_round_trip_through_their_parts(
        https in any::<bool>(),
        user in any::<String>(),
        password in proptest::option::of(any::<String>()),
        host in host(),
        port in proptest::option::of(any::<u16>()),
    ) {
        let scheme = if https { "HTTPS" } else { "http" };
        let userinfo = match &password {
            Some(password) => format!("{}:{}@", encode(&user), encode(password)),
            None if user.is_empty() => String::new(),
            None => format!("{}@", encode(&user)),
        };
        let port_part = port.map(|p| format!(":{p}")).unwrap_or_default();
        let input = format!("{scheme}://{userinfo}{host}{port_part}/");
        let url = ServerUrl::parse(&input).map_err(|e| TestCaseError::fail(format!("{input:?}: {e}")))?;
        prop_assert_eq!(url.host(), host.as_str());
        prop_assert_eq!(url.port(), port.unwrap_or(if https { 443 } else { 80 }));
        let scheme = scheme.to_ascii_lowercase();
        prop_assert_eq!(url.base(), format!("{scheme}://{host}{port_part}"));
        match userinfo.is_empty() {
            true => {
                prop_assert_eq!(url.authorization(), None);
                prop_assert_eq!(url.shown(), url.base());
            }
            false => {
                let pair = format!("{user}:{}", password.as_deref().unwrap_or_default());
                prop_assert_eq!(
                    url.authorization(),
                    Some(format!("Basic {}", crate::qdrant::url_base64(pair.as_bytes())))
                );
                prop_assert_eq!(url.shown(), format!("{scheme}://***@{host}{port_part}"));
            }
        }
    }

    /// A host is accepted only alone: nothing that could be user info, a scheme, a path, a
    /// port or a second word, and it makes a request URL with that very host.
    #[test]
    fn a_host_is_accepted_alone_or_not_at_all(input in prop_oneof![any::<String>(), piece(), host()]) {
        match parse_host(&input) {
            Ok(host) => {
                prop_assert!(!host.contains(['@', '/', '?', '#', '\\', '%']));
                prop_assert!(!host.chars().any(|c| c.is_whitespace() || c.is_control()));
                prop_assert!(host.starts_with('[') || !host.contains(':'));
                let url = ServerUrl::http(&host, 6333);
                let uri: ureq::http::Uri = url.base().parse().map_err(|e| {
                    TestCaseError::fail(format!("{input:?}: {e}"))
                })?;
                prop_assert_eq!(uri.host(), Some(host.as_str()));
                prop_assert_eq!(uri.port_u16(), Some(6333));
            }
            Err(e) => prop_assert!(input.len() < 4 || !e.to_string().contains(&input)),
        }
    }

    /// After masking, no secret (without `*`, four characters or more) is left in the text.
    #[test]
    fn masking_leaves_no_secret(
        text in any::<String>(),
        secrets in prop::collection::vec("[^*]{0,8}", 0..4),
        repeat in 0usize..3,
    ) {
        let mut text = text;
        for secret in &secrets {
            text.push_str(&secret.repeat(repeat));
        }
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let masked = mask(&text, &refs);
        for secret in secrets.iter().filter(|s| s.len() >= crate::qdrant::MIN_SECRET_LEN) {
            prop_assert!(!masked.contains(secret.as_str()), "{secret:?} in {masked:?}");
        }
    }
}
