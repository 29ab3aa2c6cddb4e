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
use crate::qdrant::{ServerUrl, url_base64 as base64};

/// The whole push, connection included, gives up after this long.
const PUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// A Pushgateway, as PUSHGATEWAY_URL or `--pushgateway` names it: read by aimem's one
/// parser of server addresses ([`ServerUrl`]), so its credentials go into a header, its
/// secrets are masked wherever text is shown, and it is never quoted in an error.
#[derive(Debug, Clone)]
pub struct Gateway(ServerUrl);

impl Gateway {
    /// Reads `text`: a URL (`http://host:9091`, `https://user:pass@host`, no path) or, as AI
    /// Memory writes PUSHGATEWAY_URL, a bare `host:port` (taken as `http://`).
    pub fn parse(text: &str) -> Result<Gateway, String> {
        let text = text.trim();
        let with_scheme = match text.contains("://") {
            true => text.to_string(),
            false => format!("http://{text}"),
        };
        let url = ServerUrl::parse(&with_scheme)
            .map_err(|e| format!("the Pushgateway URL (--pushgateway or PUSHGATEWAY_URL) {e}"))?;
        for secret in url.secrets() {
            crate::secrets::add_secret(secret);
        }
        Ok(Gateway(url))
    }

    /// The gateway as messages show it: its credentials masked.
    pub fn shown(&self) -> &str {
        self.0.shown()
    }

    /// The group's URL: `/metrics/job/aimem/operation/<op>/root@base64/<root>` (base64url,
    /// since a root holds `/`; `=` alone stands for an empty one, as the gateway wants).
    fn group_url(&self, operation: &str, root: &str) -> String {
        let root = match root.is_empty() {
            true => "=".to_string(),
            false => base64(root.as_bytes()).replace('+', "-").replace('/', "_"),
        };
        format!(
            "{}/metrics/job/aimem/operation/{operation}/root@base64/{root}",
            self.0.base().trim_end_matches('/')
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
        if let Some(authorization) = self.0.authorization() {
            request = request.header("authorization", &authorization);
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
            why = crate::secrets::hide_secrets(&line)
                .escape_debug()
                .to_string();
        }
        Err(match why.is_empty() {
            true => format!("it answered HTTP {status}"),
            false => format!("it answered HTTP {status}: {why}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_host_and_port_is_http_and_credentials_go_to_a_header() {
        let gateway = Gateway::parse("localhost:29091").unwrap();
        assert_eq!(gateway.shown(), "http://localhost:29091");
        assert!(gateway.0.authorization().is_none());
        assert_eq!(
            gateway.group_url("backup", "/b"),
            "http://localhost:29091/metrics/job/aimem/operation/backup/root@base64/L2I="
        );
        // base64url: `-` and `_` where base64 has `+` and `/` (`>>?` is `Pj4/`).
        assert!(
            gateway
                .group_url("backup", ">>?")
                .ends_with("/root@base64/Pj4_")
        );
        assert_eq!(
            gateway.group_url("prune", ""),
            "http://localhost:29091/metrics/job/aimem/operation/prune/root@base64/="
        );

        let gateway = Gateway::parse("https://ops:p%40ss-word@gw.example/").unwrap();
        assert!(
            !gateway.shown().contains("p%40ss-word"),
            "{}",
            gateway.shown()
        );
        assert_eq!(
            gateway.0.authorization().as_deref(),
            Some(format!("Basic {}", base64(b"ops:p@ss-word")).as_str())
        );
    }

    #[test]
    fn what_is_not_a_gateway_url_is_refused_without_its_password() {
        for bad in [
            "ftp://host:21",
            "http://",
            "http://h/?x=1",
            "http://h/#f",
            "http://h/push",
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
