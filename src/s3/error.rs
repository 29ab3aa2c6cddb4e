//! What can go wrong talking to object storage, each case with what to do about it.

use std::time::Duration;

/// A failed call to the storage service. Messages name the bucket and key, never a key's
/// secret, a signature or a signed URL.
#[derive(Debug, Clone, thiserror::Error)]
pub enum S3Error {
    #[error(
        "the storage service refused the credentials ({code}) for {what}: check \
         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the AWS_PROFILE in use) and, for \
         temporary credentials, that AWS_SESSION_TOKEN has not expired"
    )]
    Credentials { what: String, code: String },
    #[error(
        "access denied to {what}: the credentials are valid but may not do this; grant them \
         s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket (and \
         s3:AbortMultipartUpload)"
    )]
    Denied { what: String },
    #[error(
        "the bucket `{bucket}` does not exist at {endpoint}: create it, or check the URL and AWS_ENDPOINT_URL"
    )]
    NoBucket { bucket: String, endpoint: String },
    #[error(
        "the storage service says this machine's clock is off by more than it allows \
         (RequestTimeTooSkewed) for {what}: set the clock right (enable NTP) and run again"
    )]
    ClockSkew { what: String },
    #[error("{what} does not exist")]
    NotFound { what: String },
    #[error("{what} already exists")]
    Exists { what: String },
    #[error(
        "{what}: the object changed after it was listed and checked (its version is no longer \
         the one read so far); nothing more is read of it"
    )]
    Changed { what: String },
    #[error(
        "the storage service kept answering `{code}` (HTTP {status}) to {what} after {attempts} attempts: it is overloaded or failing; try again later"
    )]
    Unavailable {
        what: String,
        status: u16,
        code: String,
        attempts: u32,
    },
    #[error(
        "the storage service at {endpoint} cannot be reached ({why}): check AWS_ENDPOINT_URL and the network"
    )]
    Unreachable { endpoint: String, why: String },
    #[error("the storage service did not answer {what} within {}s, twice: it may be down or overloaded", .after.as_secs())]
    Timeout { what: String, after: Duration },
    #[error("the storage service failed {what}: HTTP {status} {code}{}", message_suffix(.message))]
    Server {
        what: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("the storage service's answer to {what} is not understood: {why}")]
    Invalid { what: String, why: String },
    #[error("the transfer of {what} failed: {why}")]
    Transfer { what: String, why: String },
    #[error("stopped")]
    Interrupted,
}

fn message_suffix(message: &str) -> String {
    match message.is_empty() {
        true => String::new(),
        false => format!(": {message}"),
    }
}

impl S3Error {
    /// Worth another try after a pause: throttling, a server error, a dropped connection.
    pub fn is_transient(&self) -> bool {
        match self {
            S3Error::Server { status, .. } => matches!(status, 500 | 502 | 503 | 504),
            S3Error::Transfer { .. } | S3Error::Timeout { .. } => true,
            _ => false,
        }
    }

    /// The credentials or the endpoint are wrong: nothing will work until the user fixes it.
    pub fn is_access_problem(&self) -> bool {
        matches!(
            self,
            S3Error::Credentials { .. }
                | S3Error::Denied { .. }
                | S3Error::NoBucket { .. }
                | S3Error::ClockSkew { .. }
                | S3Error::Unreachable { .. }
        )
    }
}
