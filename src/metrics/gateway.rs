//! Pushing a run's metrics to a Prometheus Pushgateway.
//!
//! One short attempt, never retried: a gateway that is down, slow or refusing costs the run a
//! few seconds at most and a warning, never its outcome. The push is a `POST` (the gateway
//! replaces only the metrics of the same names in the group) to the group
//! `job="aimem", operation=<op>, root=<root>`, so a failed run, which pushes no time of last
//! success, leaves the one a successful run pushed, and no operation or root erases
//! another's series.

use std::time::Duration;

use super::exposition::{self, Sample};

/// The whole push, connection included, gives up after this long.
const PUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// A Pushgateway, as PUSHGATEWAY_URL or `--pushgateway` names it.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Its URL without user info, query or fragment, no trailing `/`.
    base: String,
    /// `Basic ...` when the URL carried a user (and password).
    authorization: Option<String>,
}

impl Gateway {
    /// Reads `text`: a URL (`http://host:9091`, `https://user:pass@host/prefix`) or, as AI
    /// Memory writes PUSHGATEWAY_URL, a bare `host:port` (taken as `http://`).
    pub fn parse(text: &str) -> Result<Gateway, String> {
        let text = text.trim();
        let with_scheme = match text.contains("://") {
            true => text.to_string(),
            false => format!("http://{text}"),
        };
        // The text is never shown back: it may hold a password, whole or in pieces.
        let mut url = url::Url::parse(&with_scheme)
            .map_err(|e| format!("the Pushgateway URL is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err("the Pushgateway URL is not an http:// or https:// URL of a host".into());
        }
        if url.query().is_some() || url.fragment().is_some() || url.path().contains('@') {
            return Err("a Pushgateway URL takes no query, fragment or `@` after its host".into());
        }
        let authorization = match url.username() {
            "" => None,
            user => {
                let user = percent_decoded(user);
                let password = percent_decoded(url.password().unwrap_or_default());
                crate::secrets::add_secret(&password);
                Some(format!(
                    "Basic {}",
                    base64(format!("{user}:{password}").as_bytes(), STANDARD)
                ))
            }
        };
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let base = url.as_str().trim_end_matches('/').to_string();
        Ok(Gateway {
            base,
            authorization,
        })
    }

    /// The gateway as messages show it: no credentials.
    pub fn shown(&self) -> &str {
        &self.base
    }

    /// The group's URL: `/metrics/job/aimem/operation/<op>/root@base64/<root>` (base64url,
    /// since a root holds `/`; `=` alone stands for an empty one, as the gateway wants).
    fn group_url(&self, operation: &str, root: &str) -> String {
        let root = match root.is_empty() {
            true => "=".to_string(),
            false => base64(root.as_bytes(), URL_SAFE),
        };
        format!(
            "{}/metrics/job/aimem/operation/{operation}/root@base64/{root}",
            self.base
        )
    }

    /// Pushes `samples` (without the group's labels) into the group of `operation` and
    /// `root`; why not, when it did not work.
    pub fn push(
        &self,
        operation: &str,
        root: &str,
        samples: &[Sample],
        help: exposition::Help,
    ) -> Result<(), String> {
        let body = exposition::render(samples, help);
        let agent = crate::http::agent_within(PUSH_TIMEOUT);
        let mut request = agent
            .post(&self.group_url(operation, root))
            .header("content-type", "text/plain; version=0.0.4; charset=utf-8");
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        let response = request
            .send(body.as_bytes())
            .map_err(|e| crate::secrets::hide_secrets(&e.to_string()))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        // The gateway says why in its body (an inconsistent metric, a bad group): a line of it.
        let mut why = String::new();
        if let Ok(text) = response
            .into_body()
            .with_config()
            .limit(4096)
            .read_to_string()
        {
            let line: String = text
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
            why = line.escape_debug().to_string();
        }
        Err(match why.is_empty() {
            true => format!("it answered HTTP {status}"),
            false => format!("it answered HTTP {status}: {why}"),
        })
    }
}

/// `%xx` sequences decoded (a URL's user info is percent-encoded); invalid ones kept as is.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `bytes` in base64 with `alphabet`, padded with `=`.
fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (index, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if index <= chunk.len() {
                out.push(alphabet[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes(), STANDARD), encoded);
        }
        assert_eq!(base64(&[0xfb, 0xff], URL_SAFE), "-_8=");
        assert_eq!(base64(&[0xfb, 0xff], STANDARD), "+/8=");
    }

    #[test]
    fn a_bare_host_and_port_is_http_and_credentials_go_to_a_header() {
        let gateway = Gateway::parse("localhost:29091").unwrap();
        assert_eq!(gateway.shown(), "http://localhost:29091");
        assert!(gateway.authorization.is_none());
        assert_eq!(
            gateway.group_url("backup", "/b"),
            "http://localhost:29091/metrics/job/aimem/operation/backup/root@base64/L2I="
        );
        assert_eq!(
            gateway.group_url("prune", ""),
            "http://localhost:29091/metrics/job/aimem/operation/prune/root@base64/="
        );

        let gateway = Gateway::parse("https://ops:p%40ss-word@gw.example/push/").unwrap();
        assert_eq!(gateway.shown(), "https://gw.example/push");
        assert_eq!(
            gateway.authorization.as_deref(),
            Some(format!("Basic {}", base64(b"ops:p@ss-word", STANDARD)).as_str())
        );
    }

    #[test]
    fn what_is_not_a_gateway_url_is_refused_without_its_password() {
        for bad in [
            "ftp://host:21",
            "http://",
            "http://h/?x=1",
            "http://h/#f",
            ":::",
        ] {
            assert!(Gateway::parse(bad).is_err(), "{bad}");
        }
        for bad in [
            "ftp://user:sup3rs3cret@host",
            "http://user:sup3rs3cret@gw:99999",
            "user:sup3rs3cret@gw:99999",
            "http://user:sup3rs3cret@gw:99999/a@b",
            "http://user:pa/sup3rs3cret@gw",
            "user:pa/sup3rs3cret@gw:9091",
            "user:sup3rs3cret@gw/x://y",
            "http:/user:sup3rs3cret@gw",
        ] {
            let refused = Gateway::parse(bad).unwrap_err();
            assert!(!refused.contains("sup3rs3cret"), "{refused}");
        }
    }
}
