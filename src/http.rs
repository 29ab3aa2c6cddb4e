//! The one way aimem builds an HTTP agent (the Qdrant client's, the S3 client's, a metrics
//! push's).

use std::time::Duration;

use ureq::Agent;
use ureq::config::ConfigBuilder;
use ureq::typestate::AgentScope;

/// A blocking agent that trusts the system's certificates (and `SSL_CERT_FILE`, so private
/// CAs work as they do for curl), reads error answers instead of failing on their status
/// (their bodies carry the useful message), never follows a redirect (it would carry
/// credentials or a signature to another host), waits `connect` for a connection and
/// `request` for each answer, and, with `stall`, gives up on a body (sent or received) that
/// stops moving for that long.
pub fn agent(connect: Duration, request: Duration, stall: Option<Duration>) -> Agent {
    policy()
        .timeout_connect(Some(connect))
        .timeout_recv_response(Some(request))
        .timeout_per_read(stall)
        .timeout_per_write(stall)
        .build()
        .into()
}

/// [`agent`]'s policy, for one short exchange that gives up, connection and all, after
/// `total`.
pub fn agent_within(total: Duration) -> Agent {
    policy().timeout_global(Some(total)).build().into()
}

/// What every agent does: the certificates it trusts, error answers read, no redirect.
fn policy() -> ConfigBuilder<AgentScope> {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .tls_config(tls)
        .user_agent(concat!("aimem/", env!("CARGO_PKG_VERSION")))
}
