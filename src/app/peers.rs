//! What the gateway knows of its peer gateways: the participants each publishes (kept on disk,
//! so that messages for a peer that is down at start are still accepted into its outbox), and
//! how many messages wait in the outbox to each. [`super::forward`] does the work with them.

use crate::domain::participant::{qualify, Participant, Role};
use crate::pb;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A participant of a peer as kept on disk.
#[derive(serde::Serialize, serde::Deserialize)]
struct Published {
    id: String,
    role: Role,
    country: String,
    display_name: String,
}

/// One peer gateway.
pub struct PeerState {
    /// Its participants, by address `<id>@<gateway>`.
    directory: ArcSwap<HashMap<String, Arc<Participant>>>,
    /// Messages stored for it and not yet answered by it.
    pub waiting: AtomicU64,
    /// Wakes its forwarder when a message for it is stored.
    pub wake: tokio::sync::Notify,
    /// Whether its directory was ever fetched (now or by an earlier run).
    known: std::sync::atomic::AtomicBool,
}

/// The peer gateways of the configuration.
pub struct Peers {
    by_id: HashMap<String, PeerState>,
    /// Where the directories are kept: `<data_dir>/peers/<gateway>.json`.
    dir: PathBuf,
}

impl Peers {
    /// The peers `ids`, with the directories kept in `data_dir` by an earlier run.
    pub fn open(data_dir: &Path, ids: impl IntoIterator<Item = String>) -> Peers {
        let dir = data_dir.join("peers");
        let by_id = ids
            .into_iter()
            .map(|id| {
                let directory = load(&dir, &id);
                let known = dir.join(format!("{id}.json")).exists();
                (
                    id,
                    PeerState {
                        known: std::sync::atomic::AtomicBool::new(known),
                        directory: ArcSwap::from_pointee(directory),
                        waiting: AtomicU64::new(0),
                        wake: tokio::sync::Notify::new(),
                    },
                )
            })
            .collect();
        Peers { by_id, dir }
    }

    /// Peer `id`, if configured.
    pub fn get(&self, id: &str) -> Option<&PeerState> {
        self.by_id.get(id)
    }

    /// The participant of a peer at `address` (`<id>@<gateway>`), if that peer publishes it.
    pub fn participant(&self, gateway: &str, address: &str) -> Option<Arc<Participant>> {
        self.by_id
            .get(gateway)
            .and_then(|peer| peer.directory.load().get(address).cloned())
    }

    /// Whether the directory of `gateway` was ever fetched.
    pub fn knows(&self, gateway: &str) -> bool {
        self.by_id
            .get(gateway)
            .is_some_and(|p| p.known.load(Ordering::Relaxed))
    }

    /// Every participant of every peer, as `<id>@<gateway>`, ordered.
    pub fn all(&self) -> Vec<Arc<Participant>> {
        let mut all: Vec<Arc<Participant>> = self
            .by_id
            .values()
            .flat_map(|peer| peer.directory.load().values().cloned().collect::<Vec<_>>())
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Participant `p` of peer `gateway`, as that gateway describes it, addressed
    /// `<id>@<gateway>`; `None` for an id or role that is not one.
    pub fn participant_of(&self, gateway: &str, p: &pb::Participant) -> Option<Arc<Participant>> {
        crate::domain::vocab::participant_id(&p.id).ok()?;
        Some(Arc::new(Participant {
            id: qualify(&p.id, gateway),
            role: role_of(p.role)?,
            country: p.country.clone(),
            display_name: p.display_name.clone(),
            ..Participant::default()
        }))
    }

    /// Replaces what peer `gateway` publishes, and keeps it on disk; returns whether it
    /// changed. Entries that are not participants of a known role are left out.
    pub fn set_directory(&self, gateway: &str, published: &[pb::Participant]) -> bool {
        let Some(peer) = self.by_id.get(gateway) else {
            return false;
        };
        let first = !peer.known.swap(true, Ordering::Relaxed);
        let mut directory = HashMap::new();
        for p in published {
            if let Some(participant) = self.participant_of(gateway, p) {
                directory.insert(participant.id.clone(), participant);
            }
        }
        if **peer.directory.load() == directory && !first {
            return false;
        }
        if let Err(error) = save(&self.dir, gateway, &directory) {
            tracing::warn!(peer = gateway, %error, "cannot keep the peer's directory on disk");
        }
        peer.directory.store(Arc::new(directory));
        true
    }

    /// Counts `n` more messages waiting for `gateway` (before they are stored, so that the
    /// forwarder never counts one down before it is counted up).
    pub fn reserve(&self, gateway: &str, n: u64) {
        if let Some(peer) = self.by_id.get(gateway) {
            peer.waiting.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts `n` fewer messages waiting for `gateway`: answered, or never stored.
    pub fn release(&self, gateway: &str, n: u64) {
        if let Some(peer) = self.by_id.get(gateway) {
            let _ = peer
                .waiting
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                    Some(w.saturating_sub(n))
                });
        }
    }

    /// Wakes the forwarder of `gateway`: a message for it was stored.
    pub fn wake(&self, gateway: &str) {
        if let Some(peer) = self.by_id.get(gateway) {
            peer.wake.notify_one();
        }
    }
}

fn role_of(role: i32) -> Option<Role> {
    Some(match pb::Role::try_from(role).ok()? {
        pb::Role::Customs => Role::Customs,
        pb::Role::Platform => Role::Platform,
        pb::Role::Carrier => Role::Carrier,
        pb::Role::RightHolder => Role::RightHolder,
        pb::Role::Partner => Role::Partner,
        pb::Role::Unspecified => return None,
    })
}

fn load(dir: &Path, gateway: &str) -> HashMap<String, Arc<Participant>> {
    let path = dir.join(format!("{gateway}.json"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return HashMap::new();
    };
    match serde_json::from_str::<Vec<Published>>(&text) {
        Ok(list) => list
            .into_iter()
            .map(|p| {
                (
                    p.id.clone(),
                    Arc::new(Participant {
                        id: p.id,
                        role: p.role,
                        country: p.country,
                        display_name: p.display_name,
                        ..Participant::default()
                    }),
                )
            })
            .collect(),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "ignoring an unreadable peer directory");
            HashMap::new()
        }
    }
}

fn save(
    dir: &Path,
    gateway: &str,
    directory: &HashMap<String, Arc<Participant>>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut list: Vec<Published> = directory
        .values()
        .map(|p| Published {
            id: p.id.clone(),
            role: p.role,
            country: p.country.clone(),
            display_name: p.display_name.clone(),
        })
        .collect();
    list.sort_by(|a, b| a.id.cmp(&b.id));
    let text = serde_json::to_string_pretty(&list).map_err(std::io::Error::other)?;
    let path = dir.join(format!("{gateway}.json"));
    let temporary = dir.join(format!("{gateway}.json.new"));
    std::fs::write(&temporary, text)?;
    std::fs::rename(temporary, path)
}
