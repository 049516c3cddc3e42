//! `ipex token issue`: a development officer token for the `--as` participant, signed with
//! its development token key and bound to its development certificate.

use super::args::IdentityArgs;
use super::error::CliError;

/// Parses a lifetime: `900`, `900s`, `15m`, `1h`.
pub fn parse_ttl(text: &str) -> Result<std::time::Duration, CliError> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| CliError::Input(format!("--ttl {text:?}: expected e.g. 900s, 15m or 1h")))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => {
            return Err(CliError::Input(format!(
                "--ttl {text:?}: the unit is s, m or h"
            )))
        }
    };
    Ok(std::time::Duration::from_secs(seconds))
}

/// Mints a development token for the `--as` participant, bound to its certificate.
pub fn issue_dev_token(
    identity: &IdentityArgs,
    sub: &str,
    scopes: &[String],
    ttl: &str,
    audience: &str,
) -> Result<String, CliError> {
    let id = identity.as_participant.as_deref().ok_or_else(|| {
        CliError::Input("token issue needs --as <participant> (development keys)".into())
    })?;
    crate::dev::token::issue(
        &identity.certs_dir,
        id,
        sub,
        audience,
        scopes,
        parse_ttl(ttl)?,
    )
    .map_err(CliError::Input)
}
