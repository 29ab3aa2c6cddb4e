//! Connection settings shared by every subcommand that talks to Qdrant.

use std::time::Duration;

use camino::Utf8PathBuf;
use clap::Args;

use crate::qdrant::{Client, ServerUrl, Timeouts, redact};

/// Where Qdrant is. The API key comes only from `QDRANT_API_KEY`, never from a flag, so it
/// never shows in `ps`, shell history or `--help`.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Qdrant's full URL (http or https); overrides --host and --port.
    #[arg(
        long,
        env = "QDRANT_URL",
        hide_env_values = true,
        value_name = "URL",
        value_hint = clap::ValueHint::Url,
        help_heading = "Connection"
    )]
    pub url: Option<String>,

    /// Qdrant host name.
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

/// A JSON call that gets no answer within this is a server that hangs: every call Qdrant
/// answers at once except the ones with their own timeout (snapshots, uploads, recovery).
pub const DEFAULT_REQUEST_TIMEOUT: u64 = 30;

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
    pub host: String,
    pub port: u16,
}

/// The environment variable that holds the API key.
pub const API_KEY_ENV: &str = "QDRANT_API_KEY";

impl ConnectionArgs {
    /// The endpoint to talk to, or a sentence saying what is wrong with the URL.
    pub fn endpoint(&self) -> Result<Endpoint, String> {
        match &self.url {
            Some(url) if !url.trim().is_empty() => parse_url(url.trim()),
            _ => Ok(Endpoint {
                url: ServerUrl::new(&format!("http://{}:{}", self.host, self.port)),
                host: self.host.clone(),
                port: self.port,
            }),
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

/// Splits `http(s)://host[:port][/]` into its parts. Errors name the URL redacted.
pub(crate) fn parse_url(raw: &str) -> Result<Endpoint, String> {
    let url = redact(raw);
    let (scheme, rest) = raw.split_once("://").ok_or_else(|| {
        format!("`{url}` has no scheme: write http://HOST:PORT or https://HOST:PORT")
    })?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        other => {
            return Err(format!(
                "`{url}` uses `{other}`; aimem speaks http and https"
            ));
        }
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains(['?', '#']) {
        return Err(format!(
            "`{url}` has a query; give only the scheme, host and port (the API key goes in QDRANT_API_KEY)"
        ));
    }
    if authority.contains('/') {
        return Err(format!(
            "`{url}` has a path; give only the scheme, host and port"
        ));
    }
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port))
            if !host.ends_with(']') || authority.starts_with('[') && !port.contains(']') =>
        {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("`{url}` has an invalid port `{port}`"))?;
            (host, port)
        }
        _ => (authority, default_port),
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    Ok(Endpoint {
        url: ServerUrl::new(raw),
        host: host.to_string(),
        port,
    })
}

/// Seconds from an environment-backed option, as a Duration.
pub fn seconds(value: u64) -> Duration {
    Duration::from_secs(value.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

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
                .contains("no scheme")
        );
        assert!(parse_url("ftp://x").unwrap_err().contains("ftp"));
        assert!(
            parse_url("http://x:port")
                .unwrap_err()
                .contains("invalid port")
        );
        assert!(
            parse_url("http://x:1/collections")
                .unwrap_err()
                .contains("path")
        );
    }

    #[test]
    fn errors_about_a_url_never_show_its_secrets() {
        for bad in [
            "http://u:s3cret@x:port",
            "ftp://u:s3cret@x",
            "u:s3cret@x:1",
            "http://u:s3cret@x:1/path",
            "http://x:1?api-key=s3cret",
            "http://x?api-key=s3cret",
            "http://x:1/#s3cret",
        ] {
            let message = parse_url(bad).unwrap_err();
            assert!(!message.contains("s3cret"), "{message}");
        }
        let e = parse_url("http://u:s3cret@x:1").unwrap();
        assert_eq!(e.url.to_string(), "http://***@x:1");
        assert!(!format!("{e:?}").contains("s3cret"));
    }
}
