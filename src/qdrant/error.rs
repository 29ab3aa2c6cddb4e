//! What can go wrong talking to Qdrant, with the server's own words kept.

use std::time::Duration;

use miette::Diagnostic;
use thiserror::Error;

/// A failed exchange with the Qdrant REST API.
///
/// The API key is never part of any variant: nothing here can leak it.
#[derive(Debug, Error, Diagnostic)]
pub enum QdrantError {
    #[error("cannot reach Qdrant at {url}: {detail}")]
    #[diagnostic(
        code(aimem::qdrant::unreachable),
        help(
            "Is Qdrant running? For AI Memory start it with `cd ~/.ai-memory/docker && docker compose up -d`. \
             Point aimem at another server with --url, QDRANT_URL, or QDRANT_HOST and QDRANT_PORT."
        )
    )]
    Unreachable { url: String, detail: String },

    #[error("cannot make a trusted https connection to {url}: {detail}")]
    #[diagnostic(
        code(aimem::qdrant::tls),
        help(
            "aimem trusts the system's certificate store. For a private CA, add it there \
             (update-ca-certificates) or point SSL_CERT_FILE at a PEM bundle that holds it; check that \
             the host name in the URL matches the certificate."
        )
    )]
    Tls { url: String, detail: String },

    #[error("Qdrant at {url} rejected the API key: {message}")]
    #[diagnostic(
        code(aimem::qdrant::unauthorized),
        help(
            "{}",
            if *.key_set {
                "QDRANT_API_KEY is set but Qdrant does not accept it. The right key is the QDRANT_API_KEY line \
                 of your install's docker/.env (for AI Memory: ~/.ai-memory/docker/.env)."
            } else {
                "Qdrant needs an API key and QDRANT_API_KEY is not set. Export it from the QDRANT_API_KEY line \
                 of your install's docker/.env (for AI Memory: ~/.ai-memory/docker/.env)."
            }
        )
    )]
    Unauthorized {
        url: String,
        message: String,
        key_set: bool,
    },

    #[error("Qdrant refused {method} {path}: {message}")]
    #[diagnostic(
        code(aimem::qdrant::forbidden),
        help(
            "This key may only read. Backups and restores need a key with manage access: use the main \
             QDRANT_API_KEY from your install's docker/.env, not the read-only key."
        )
    )]
    Forbidden {
        method: String,
        path: String,
        message: String,
    },

    #[error("Qdrant answered {status} to {method} {path}: {message}")]
    #[diagnostic(code(aimem::qdrant::api))]
    Api {
        method: String,
        path: String,
        status: u16,
        message: String,
    },

    #[error("{what} timed out after {}s", .after.as_secs())]
    #[diagnostic(code(aimem::qdrant::timeout), help("{hint}"))]
    Timeout {
        what: String,
        after: Duration,
        hint: String,
    },

    #[error("{what} failed: {detail}")]
    #[diagnostic(code(aimem::qdrant::transport))]
    Transport { what: String, detail: String },

    #[error("Qdrant sent a response aimem does not understand for {path}: {detail}")]
    #[diagnostic(
        code(aimem::qdrant::invalid_response),
        help("Is the URL a Qdrant server? aimem is tested against Qdrant 1.18.")
    )]
    InvalidResponse { path: String, detail: String },

    /// An answer longer than aimem reads (a page of points with big payloads, or not Qdrant).
    #[error("Qdrant's answer to {path} is longer than {limit_mib} MiB, the most aimem reads")]
    #[diagnostic(
        code(aimem::qdrant::answer_too_long),
        help(
            "Is the URL a Qdrant server? A page of points this long has points of very big payloads."
        )
    )]
    AnswerTooLong { path: String, limit_mib: u64 },

    #[error("writing the download to disk failed: {0}")]
    #[diagnostic(code(aimem::io::write))]
    LocalWrite(#[source] std::io::Error),

    #[error("cannot read {path}: {source}")]
    #[diagnostic(code(aimem::io::read))]
    LocalRead {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("stopped by a signal")]
    #[diagnostic(code(aimem::interrupted))]
    Interrupted,
}

impl QdrantError {
    /// The HTTP status of an API error, if the server answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            QdrantError::Api { status, .. } => Some(*status),
            QdrantError::Unauthorized { .. } => Some(401),
            QdrantError::Forbidden { .. } => Some(403),
            _ => None,
        }
    }

    /// True when the server said the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The server did not answer at all: nothing listens at its address (a refused
    /// connection, an unknown host) or it let the wait run out.
    pub fn is_no_answer(&self) -> bool {
        matches!(
            self,
            QdrantError::Unreachable { .. } | QdrantError::Timeout { .. }
        )
    }

    /// Could not connect, or the key was refused: the server as a whole is out of reach.
    pub fn is_connection_problem(&self) -> bool {
        matches!(
            self,
            QdrantError::Unreachable { .. }
                | QdrantError::Tls { .. }
                | QdrantError::Unauthorized { .. }
                | QdrantError::Forbidden { .. }
        )
    }
}
