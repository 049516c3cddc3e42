//! What the client can fail with, and how a refused call reads on the terminal.

use super::client;

/// A CLI failure: printed on stderr, exit code 1 (2 for usage errors, from clap).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Reading input or certificates.
    #[error("{0}")]
    Input(String),
    /// Connecting.
    #[error(transparent)]
    Connect(#[from] client::ClientError),
    /// The gateway refused the call.
    #[error("{}", describe_status(.0))]
    Status(#[from] tonic::Status),
    /// The audit log did not verify.
    #[error("audit log verification failed: {0}")]
    Verify(#[from] crate::log::verify::VerifyError),
    /// An offline operation on a data directory failed.
    #[error("{0}")]
    Store(String),
    /// A signature or a report did not verify.
    #[error("verification failed: {0}")]
    Invalid(String),
    /// The gateway answered that it does not serve.
    #[error("the gateway does not serve: {0}")]
    Unhealthy(String),
}

/// A refused call as the user reads it: code, message and each field violation.
pub fn describe_status(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    match status.get_details_bad_request() {
        Some(bad) if !bad.field_violations.is_empty() => {
            let mut out = format!("{:?}:", status.code());
            for v in bad.field_violations {
                out.push_str(&format!("\n  {}: {}", v.field, v.description));
            }
            out
        }
        _ => format!("{:?}: {}", status.code(), status.message()),
    }
}
