//! `ipex report takedown-times` (the report from the gateway, its summary printed, its delays
//! drawn) and `ipex audit verify-report` (the offline check of [`crate::log::report`]).

use super::client::Clients;
use super::error::CliError;
use crate::log::note::NoteVerifier;
use crate::pb;
use std::fmt::Write as _;
use std::path::Path;

/// A time flag: RFC 3339, or a date (midnight UTC).
pub fn parse_time(flag: &str, text: &str) -> Result<prost_types::Timestamp, CliError> {
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    full.parse().map_err(|_| {
        CliError::Input(format!(
            "{flag}: {text:?} is not an RFC 3339 time (2026-11-18T08:40:00Z) or a date (2026-11-18)"
        ))
    })
}

/// The figures of a report as printed: where it went, and its summaries.
fn summary(report: &pb::TakedownTimesReport, out: &Path) -> serde_json::Value {
    let summaries: Vec<serde_json::Value> = report
        .summaries
        .iter()
        .map(|s| crate::pb::json::to_json_value("ipex.v1.TakedownSummary", s))
        .collect();
    serde_json::json!({
        "out": out.display().to_string(),
        "entries": report.entries.len(),
        "truncated": report.truncated,
        "next_after_seq": (report.truncated).then_some(report.next_after_seq),
        "as_of": report.as_of.map(|t| t.to_string()),
        "tree_size": report.tree_size,
        "summaries": summaries,
    })
}

/// Asks the gateway for a takedown-times report, writes it to `out` (and its SVG), and
/// returns its summary.
pub async fn takedown_times(
    clients: &mut Clients,
    request: pb::GetTakedownTimesRequest,
    out: &Path,
    svg: Option<&Path>,
) -> Result<serde_json::Value, CliError> {
    let report = clients
        .audit
        .get_takedown_times(request)
        .await?
        .into_inner();
    let json = crate::pb::json::to_json_value("ipex.v1.TakedownTimesReport", &report);
    let text = serde_json::to_string_pretty(&json).map_err(|e| CliError::Input(e.to_string()))?;
    write(out, &(text + "\n"))?;
    if let Some(svg) = svg {
        write(svg, &draw(&report))?;
    }
    Ok(summary(&report, out))
}

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text)
        .map_err(|e| CliError::Input(format!("cannot write {}: {e}", path.display())))
}

/// Checks the report in `file` offline against the verifier key `key` (the key, or a file
/// holding it).
pub fn verify_report(file: &Path, key: &Path) -> Result<serde_json::Value, CliError> {
    // `--key` shares its name (and so its type) with the global client key flag: a path, or
    // the key itself.
    let key_text = match std::fs::read_to_string(key) {
        Ok(text) => text.trim().to_string(),
        Err(_) => key.to_string_lossy().trim().to_string(),
    };
    let verifier = NoteVerifier::from_verifier_key(&key_text)
        .map_err(|e| CliError::Input(format!("--key: {e}")))?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", file.display())))?;
    let report: pb::TakedownTimesReport =
        crate::pb::json::from_json("ipex.v1.TakedownTimesReport", &text)
            .map_err(|e| CliError::Input(format!("{}: {e}", file.display())))?;
    let verified = crate::log::report::verify(&report, &verifier)
        .map_err(|e| CliError::Invalid(format!("{}: {e}", file.display())))?;
    Ok(serde_json::json!({
        "report": "valid",
        "caller": report.caller,
        "as_of": report.as_of.map(|t| t.to_string()),
        "tree_size": verified.tree_size,
        "entries": verified.entries,
        "leaves_proven": verified.leaves,
    }))
}

/// The delays of a report as an SVG: one empirical distribution function per platform (the
/// share of its answered notices answered within x hours), open notices counted in the legend.
pub fn draw(report: &pb::TakedownTimesReport) -> String {
    const W: f64 = 720.0;
    const H: f64 = 420.0;
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 200.0;
    const TOP: f64 = 40.0;
    const BOTTOM: f64 = 56.0;
    const COLOURS: [&str; 8] = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    ];
    let mut platforms: std::collections::BTreeMap<&str, (Vec<f64>, usize)> = Default::default();
    for e in &report.entries {
        let (delays, open) = platforms.entry(e.platform.as_str()).or_default();
        if e.answered_at.is_some() {
            delays.push(e.delay_seconds / 3600.0);
        } else {
            *open += 1;
        }
    }
    let longest = platforms
        .values()
        .flat_map(|(d, _)| d.iter().copied())
        .fold(0.0f64, f64::max);
    let x_max = nice_ceiling(longest.max(1.0 / 60.0));
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |hours: f64| LEFT + pw * (hours / x_max).min(1.0);
    let y = |share: f64| TOP + ph * (1.0 - share);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="15">Time to first outcome, as of {}</text>"#,
        report.as_of.map(|t| t.to_string()).unwrap_or_default()
    );
    // Axes, grid and ticks.
    for i in 0..=4 {
        let share = f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}%</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y(share) + 4.0,
            (share * 100.0) as u32,
            y = y(share),
        );
        let hours = x_max * share;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 18.0,
            hours_label(hours),
            x = x(hours),
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">hours from acceptance to the platform's first outcome</text>"#,
        LEFT + pw / 2.0,
        H - 14.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">share of answered notices</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    // One step function per platform.
    for (i, (platform, (delays, open))) in platforms.iter_mut().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        delays.sort_by(f64::total_cmp);
        let n = delays.len();
        if n > 0 {
            let mut path = format!("M{:.1},{:.1}", x(0.0), y(0.0));
            for (k, d) in delays.iter().enumerate() {
                let _ = write!(path, " H{:.1} V{:.1}", x(*d), y((k + 1) as f64 / n as f64));
            }
            let _ = write!(path, " H{:.1}", x(x_max));
            let _ = writeln!(
                s,
                r#"<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>"#
            );
        }
        let ly = TOP + 16.0 + 20.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{}" width="14" height="4" fill="{colour}"/><text x="{}" y="{}">{} ({n} answered, {open} open)</text>"#,
            W - RIGHT + 16.0,
            ly - 4.0,
            W - RIGHT + 36.0,
            ly + 1.0,
            xml_escape(platform)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// 1, 2 or 5 times a power of ten, at least `x`.
fn nice_ceiling(x: f64) -> f64 {
    let power = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|v| *v >= x)
        .unwrap_or(10.0 * power)
}

fn hours_label(hours: f64) -> String {
    if hours == 0.0 {
        "0".into()
    } else if hours < 1.0 {
        format!("{:.0} min", hours * 60.0)
    } else {
        format!("{hours:.0} h")
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_scales() {
        assert_eq!(
            parse_time("--from", "2026-11-18").unwrap().seconds,
            1_794_960_000
        );
        assert!(parse_time("--from", "18/11/2026").is_err());
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(0.07), 0.1);
        assert_eq!(nice_ceiling(20.0), 20.0);
    }
}
