//! What `-v` shows of each HTTP exchange: one `info` line when it ends (method, path, status,
//! bytes each way, duration) and, at `debug` (`-vv`), the headers each way.
//!
//! Only the path is shown, never the base URL (which may carry credentials), and the
//! `api-key` header (and any other credential header) is always shown as `<redacted>`.

use std::time::Instant;

use ureq::http::{HeaderMap, Method};

use crate::units::{human_duration, human_size};

/// Headers whose values are credentials.
const SECRET_HEADERS: [&str; 5] = [
    "api-key",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// One exchange, from the moment its request is sent.
pub(crate) struct Exchange {
    method: Method,
    path: String,
    started: Instant,
    sent: u64,
}

impl Exchange {
    /// Starts the clock; at `-vv` logs the request's headers.
    pub(crate) fn start(method: &Method, path: &str, headers: &HeaderMap, sent: u64) -> Exchange {
        if log::log_enabled!(log::Level::Debug) {
            log::debug!("> {method} {path}");
            log_headers(">", headers);
        }
        Exchange {
            method: method.clone(),
            path: path.to_string(),
            started: Instant::now(),
            sent,
        }
    }

    /// At `-vv`, the response's status and headers (as soon as they arrive).
    pub(crate) fn answered(&self, status: u16, headers: &HeaderMap) {
        if log::log_enabled!(log::Level::Debug) {
            log::debug!("< {status} ({} {})", self.method, self.path);
            log_headers("<", headers);
        }
    }

    /// The closing line, once the body has been read.
    pub(crate) fn done(&self, status: u16, received: u64) {
        log::info!(
            "{} {} -> {status}, sent {}, received {}, {}",
            self.method,
            self.path,
            human_size(self.sent),
            human_size(received),
            human_duration(self.started.elapsed()),
        );
    }

    /// The closing line of an exchange that got no (complete) answer.
    pub(crate) fn failed(&self, error: &dyn std::fmt::Display) {
        log::info!(
            "{} {} -> failed after {}: {error}",
            self.method,
            self.path,
            human_duration(self.started.elapsed()),
        );
    }
}

fn log_headers(direction: &str, headers: &HeaderMap) {
    for (name, value) in headers {
        let shown = if SECRET_HEADERS.contains(&name.as_str()) {
            "<redacted>"
        } else {
            value.to_str().unwrap_or("<not text>")
        };
        log::debug!("{direction} {name}: {shown}");
    }
}
