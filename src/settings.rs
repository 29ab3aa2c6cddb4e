//! Connection settings shared by every subcommand that talks to Qdrant.

use std::time::Duration;

use camino::Utf8PathBuf;
use clap::Args;

use crate::exit::Exit;
use crate::failure::Failure;
use crate::qdrant::{Client, DEFAULT_REQUEST_TIMEOUT, ServerUrl, Timeouts, UrlError, parse_host};

/// Where Qdrant is. The API key comes only from `QDRANT_API_KEY`, never from a flag, so it
/// never shows in `ps`, shell history or `--help`.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Qdrant's full URL (http or https, optionally with USER:PASSWORD@, a `/`, `?`, `#` or `%`
    /// in them percent-encoded); overrides --host and --port.
    #[arg(
        long,
        env = "QDRANT_URL",
        hide_env_values = true,
        value_name = "URL",
        value_hint = clap::ValueHint::Url,
        help_heading = "Connection"
    )]
    pub url: Option<String>,

    /// Qdrant host name or IP address (no user info, scheme, path or port).
    #[arg(
        long,
        env = "QDRANT_HOST",
        hide_env_values = true,
        default_value = "localhost",
        value_name = "HOST",
        value_hint = clap::ValueHint::Hostname,
        help_heading = "Connection"
    )]
    pub host: String,

    /// Qdrant REST port.
    #[arg(
        long,
        env = "QDRANT_PORT",
        hide_env_values = true,
        default_value_t = 26350,
        value_name = "PORT",
        value_hint = clap::ValueHint::Other,
        help_heading = "Connection"
    )]
    pub port: u16,

    /// Seconds to wait for Qdrant's answer to an ordinary API call (snapshot creation,
    /// transfers and recovery have their own, longer timeouts).
    #[arg(
        long,
        env = "QDRANT_REQUEST_TIMEOUT",
        hide_env_values = true,
        default_value_t = DEFAULT_REQUEST_TIMEOUT,
        value_name = "SECONDS",
        value_hint = clap::ValueHint::Other,
        help_heading = "Connection"
    )]
    pub request_timeout: u64,
}

/// Where AI Memory is installed: its config files, logs and `version.txt`.
#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// AI Memory's install folder (config files, logs, version.txt) [default: ~/.ai-memory].
    #[arg(
        long,
        env = "AI_MEMORY_INSTALL_DIR",
        hide_env_values = true,
        value_name = "DIR",
        value_hint = clap::ValueHint::DirPath
    )]
    pub install_dir: Option<Utf8PathBuf>,
}

impl InstallArgs {
    /// `--install-dir`/AI_MEMORY_INSTALL_DIR, else `~/.ai-memory`.
    pub fn resolve(&self) -> Utf8PathBuf {
        match &self.install_dir {
            Some(dir) => dir.clone(),
            None => std::env::var("HOME")
                .map(|home| Utf8PathBuf::from(home).join(".ai-memory"))
                .unwrap_or_else(|_| ".ai-memory".into()),
        }
    }
}

/// A resolved server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Scheme, host and port, no trailing slash; shown with its credentials hidden.
    pub url: ServerUrl,
    /// The host alone, never credentials: what the manifest, journals and locks record.
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    fn of(url: ServerUrl) -> Endpoint {
        Endpoint {
            host: url.host().to_string(),
            port: url.port(),
            url,
        }
    }
}

/// Why the connection settings name no usable server. The message never quotes the value:
/// it may hold credentials (a password in the URL, or typed into QDRANT_HOST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEndpoint {
    pub message: String,
    pub help: &'static str,
}

impl BadEndpoint {
    /// The failure a subcommand stops with: invalid arguments.
    pub fn failure(self) -> Failure {
        Failure::msg(Exit::InvalidArguments, self.message, self.help)
    }
}

/// The environment variable that holds the API key.
pub const API_KEY_ENV: &str = "QDRANT_API_KEY";

impl ConnectionArgs {
    /// The endpoint to talk to: `--url`/QDRANT_URL if set, else `--host`/QDRANT_HOST and
    /// `--port`/QDRANT_PORT. Nothing of either is shown before it is parsed.
    pub fn endpoint(&self) -> Result<Endpoint, BadEndpoint> {
        match &self.url {
            Some(url) if !url.trim().is_empty() => parse_url(url).map_err(|e| BadEndpoint {
                message: format!("the Qdrant URL (--url or QDRANT_URL) {e}"),
                help: "Set --url or QDRANT_URL to http://HOST:PORT or https://HOST:PORT; a user \
                       name and password go before the host (http://USER:PASS@HOST:PORT), \
                       percent-encoded.",
            }),
            _ => {
                let host = parse_host(&self.host).map_err(|e| BadEndpoint {
                    message: format!("QDRANT_HOST (or --host) {e}"),
                    help: "Set QDRANT_HOST (or --host) to a host name or IP address alone (say \
                           localhost or 127.0.0.1) and QDRANT_PORT (or --port) to its port, or \
                           the whole address in QDRANT_URL (or --url).",
                })?;
                Ok(Endpoint::of(ServerUrl::http(&host, self.port)))
            }
        }
    }

    /// `QDRANT_API_KEY`, if set and not empty.
    /// Surrounding whitespace is dropped: a key copied from a CRLF `.env` file ends in `\r`,
    /// and no Qdrant key contains whitespace.
    pub fn api_key() -> Option<String> {
        std::env::var(API_KEY_ENV)
            .ok()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
    }

    /// `--request-timeout` / QDRANT_REQUEST_TIMEOUT.
    pub fn request_timeout(&self) -> Duration {
        seconds(self.request_timeout)
    }

    /// A client for this endpoint.
    pub fn client(endpoint: &Endpoint, timeouts: Timeouts) -> Client {
        Client::for_url(&endpoint.url, Self::api_key(), timeouts)
    }
}

/// Parses `http(s)://[user:password@]host[:port][/]` (see [`ServerUrl::parse`]). The error
/// quotes nothing of `raw`.
pub(crate) fn parse_url(raw: &str) -> Result<Endpoint, UrlError> {
    ServerUrl::parse(raw).map(Endpoint::of)
}

/// Seconds from an environment-backed option, as a Duration.
pub fn seconds(value: u64) -> Duration {
    Duration::from_secs(value.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(url: Option<&str>, host: &str) -> ConnectionArgs {
        ConnectionArgs {
            url: url.map(str::to_string),
            host: host.to_string(),
            port: 6333,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    #[test]
    fn urls_are_split_into_host_and_port() {
        let e = parse_url("http://localhost:26350/").unwrap();
        assert_eq!(
            (e.url.to_string().as_str(), e.host.as_str(), e.port),
            ("http://localhost:26350", "localhost", 26350)
        );
        let e = parse_url("https://qdrant.example.com").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("qdrant.example.com", 443));
        let e = parse_url("http://[::1]:6333").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("[::1]", 6333));
        assert!(
            parse_url("localhost:6333")
                .unwrap_err()
                .to_string()
                .contains("no scheme")
        );
        assert!(
            parse_url("ftp://x")
                .unwrap_err()
                .to_string()
                .contains("ftp")
        );
        assert!(
            parse_url("http://x:port")
                .unwrap_err()
                .to_string()
                .contains("port")
        );
        assert!(
            parse_url("http://x:1/collections")
                .unwrap_err()
                .to_string()
                .contains("path")
        );
    }

    #[test]
    fn errors_about_a_url_or_host_never_show_its_secrets() {
        for bad in [
            "http://u:s3cret@x:port",
            "ftp://u:s3cret@x",
            "u:s3cret@x:1",
            "http://u:s3cret@x:1/path",
            "http://x:1?api-key=s3cret",
            "http://x?api-key=s3cret",
            "http://x:1/#s3cret",
            "http://u:s3/cret@x:1",
            "http://u:s3#cret@x:1",
            "http://u:s3?cret@x:1",
            "http://u:s3%cret@x:1",
        ] {
            let bad = connection(Some(bad), "localhost").endpoint().unwrap_err();
            assert!(!bad.message.contains("cret"), "{bad:?}");
            assert!(bad.message.contains("QDRANT_URL"), "{bad:?}");
        }
        let e = parse_url("http://u:s3cret@x:1").unwrap();
        assert_eq!(e.url.to_string(), "http://***@x:1");
        assert_eq!(e.host, "x");
        assert!(!format!("{e:?}").contains("s3cret"));
        for bad in [
            "u:s3cret@x",
            "http://u:s3cret@x",
            "x/s3cret",
            "s3cret:1",
            "x s3cret",
        ] {
            let bad = connection(None, bad).endpoint().unwrap_err();
            assert!(!bad.message.contains("s3cret"), "{bad:?}");
            assert!(bad.message.contains("QDRANT_HOST"), "{bad:?}");
        }
    }

    #[test]
    fn the_host_and_port_make_a_plain_http_url() {
        let e = connection(None, "Qdrant.local").endpoint().unwrap();
        assert_eq!(e.url.to_string(), "http://Qdrant.local:6333");
        assert_eq!((e.host.as_str(), e.port), ("Qdrant.local", 6333));
        let e = connection(None, "::1").endpoint().unwrap();
        assert_eq!(e.url.to_string(), "http://[::1]:6333");
        // The URL wins; the host is then not looked at.
        let e = connection(Some(" http://q:1 "), "u:p@bad")
            .endpoint()
            .unwrap();
        assert_eq!(e.url.to_string(), "http://q:1");
    }
}
