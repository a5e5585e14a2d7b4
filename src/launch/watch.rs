//! The one watcher behind every reload (`up` and the daemon): notices changes
//! to a set of files (the project file, the trust store, provider overrides,
//! the vault, project-local provider files) and reports them debounced.
//!
//! inotify (via `notify`) watches the directories holding them, so editors
//! that save by renaming a temp file over a file are seen too; a `stat` poll
//! of their identities runs beside it, so a change is noticed even where
//! inotify is unavailable, out of watches, or the directory appeared later.

use crate::fsutil::FileId;
use notify::Watcher as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long events must pause before a reload (editors write in several steps).
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// Interval of the `stat` poll.
pub const POLL: Duration = Duration::from_millis(250);

/// A debounced stream of "something watched may have changed".
pub struct Watch {
    paths: Vec<PathBuf>,
    ids: Vec<Option<FileId>>,
    tx: mpsc::UnboundedSender<()>,
    rx: mpsc::UnboundedReceiver<()>,
    watcher: Option<notify::RecommendedWatcher>,
    poll: tokio::time::Interval,
    due: Option<Instant>,
}

impl Watch {
    /// Watch `paths` with inotify and the poll; must be called inside a tokio runtime.
    pub fn new(paths: Vec<PathBuf>) -> Watch {
        let mut w = Watch::polling(Vec::new());
        w.set_paths(paths);
        w
    }

    /// Watch `paths` with the `stat` poll alone (what happens without inotify).
    pub fn polling(paths: Vec<PathBuf>) -> Watch {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ids = identities(&paths);
        Watch { paths, ids, tx, rx, watcher: None, poll, due: None }
    }

    /// The files watched now.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Watch `paths` from now on (a reload may add or drop project-local files).
    pub fn set_paths(&mut self, paths: Vec<PathBuf>) {
        self.watcher = inotify(&paths, self.tx.clone());
        self.ids = identities(&paths);
        self.paths = paths;
    }

    /// Resolves once a change has been seen and events have paused for
    /// [`DEBOUNCE`]. Cancel-safe: callers `select!` it against their own
    /// events (a child exiting, signals) and call it again without losing one.
    pub async fn changed(&mut self) {
        loop {
            let due = self.due;
            tokio::select! {
                Some(()) = self.rx.recv() => self.due = Some(Instant::now() + DEBOUNCE),
                _ = self.poll.tick() => {
                    if self.due.is_none() && identities(&self.paths) != self.ids {
                        self.due = Some(Instant::now() + DEBOUNCE);
                    }
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    self.due = None;
                    self.ids = identities(&self.paths);
                    return;
                }
            }
        }
    }
}

fn identities(paths: &[PathBuf]) -> Vec<Option<FileId>> {
    paths.iter().map(|p| FileId::of(p)).collect()
}

/// inotify on the directories holding `paths` (a watched directory itself is
/// watched); `None` when it cannot be set up, which leaves the poll.
fn inotify(paths: &[PathBuf], tx: mpsc::UnboundedSender<()>) -> Option<notify::RecommendedWatcher> {
    let wanted = paths.to_vec();
    // Only events about a watched file (or inside a watched directory) count:
    // saving some other file of the project directory must not reload.
    let relevant = move |p: &Path| wanted.iter().any(|w| p == w || p.parent() == Some(w.as_path()));
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !matches!(ev.kind, notify::EventKind::Access(_)) && ev.paths.iter().any(|p| relevant(p)) {
                let _ = tx.send(());
            }
        }
    })
    .ok()?;
    let mut dirs: Vec<&Path> = paths.iter().filter_map(|p| if p.is_dir() { Some(p.as_path()) } else { p.parent() }).collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        let _ = w.watch(d, notify::RecursiveMode::NonRecursive);
    }
    Some(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sees(mut w: Watch, edit: impl FnOnce()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        edit();
        tokio::time::timeout(Duration::from_secs(20), w.changed()).await.expect("change noticed");
    }

    fn project() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("authsome.toml");
        std::fs::write(&file, "# empty\n").unwrap();
        (dir, file)
    }

    #[tokio::test]
    async fn inotify_sees_an_edit() {
        let (_dir, file) = project();
        let w = Watch::new(vec![file.clone()]);
        assert!(w.watcher.is_some());
        sees(w, || std::fs::write(&file, "[providers.github]\n").unwrap()).await;
    }

    #[tokio::test]
    async fn the_poll_alone_sees_an_edit() {
        let (_dir, file) = project();
        let w = Watch::polling(vec![file.clone()]);
        assert!(w.watcher.is_none());
        sees(w, || std::fs::write(&file, "[providers.github]\n").unwrap()).await;
    }

    #[tokio::test]
    async fn a_rename_over_the_file_is_seen() {
        let (dir, file) = project();
        let tmp = dir.path().join(".authsome.toml.swp");
        sees(Watch::new(vec![file.clone()]), || {
            std::fs::write(&tmp, "[providers.openai]\n").unwrap();
            std::fs::rename(&tmp, &file).unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn a_file_appearing_in_a_watched_directory_is_seen() {
        let (dir, _file) = project();
        let trust = dir.path().join("trust");
        std::fs::create_dir(&trust).unwrap();
        sees(Watch::new(vec![trust.clone()]), || std::fs::write(trust.join("record.json"), "{}").unwrap()).await;
    }

    #[tokio::test]
    async fn unrelated_files_beside_a_watched_one_are_ignored() {
        let (dir, file) = project();
        let mut w = Watch::new(vec![file]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        assert!(tokio::time::timeout(Duration::from_secs(1), w.changed()).await.is_err(), "an unrelated file caused a reload");
    }
}
