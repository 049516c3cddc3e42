//! Reloading a running gateway: on SIGHUP, and when one of the files it reads changes. What a
//! reload does is the gateway's ([`Reloadable`]); this module only decides when.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Something that can re-read its files and put them in force.
pub trait Reloadable: Send + Sync {
    /// Re-reads and puts in force; on an error nothing changes and the error says why.
    fn reload(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
    /// Every file a reload reads, for change detection.
    fn watched_files(&self) -> Vec<PathBuf>;
}

/// Reloads `target` on SIGHUP and, every `period_ms` (0: never), when one of its files
/// changed. A refused reload is logged and leaves the configuration in force.
pub async fn watch(target: Arc<dyn Reloadable>, period_ms: u64) {
    let reload = |why: &str| match target.reload() {
        Ok(()) => tracing::info!(trigger = why, "configuration reloaded"),
        Err(error) => tracing::error!(
            trigger = why,
            %error,
            "reload refused; the configuration in force stays"
        ),
    };
    let period = period_ms;
    let mut ticker = tokio::time::interval(Duration::from_millis(period.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seen = files_state(&target.watched_files());
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let signalled = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let signalled = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = signalled => reload("SIGHUP"),
            _ = ticker.tick(), if period > 0 => {
                let now = files_state(&target.watched_files());
                if now != seen {
                    seen = now;
                    reload("file changed");
                }
            }
        }
    }
}

/// Modification time and length of each file, to notice changes.
fn files_state(files: &[PathBuf]) -> Vec<Option<(std::time::SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}
