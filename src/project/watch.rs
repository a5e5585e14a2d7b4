//! Noticing edits to `authsome.toml` while `authsome up` runs: inotify (via
//! `notify`) on the project directory, so editors that save by renaming a
//! temp file over it are seen too; polling the file's metadata and content
//! when no watcher can be created (inotify unavailable or out of watches).
//! Bursts of events are debounced into one reload.

use notify::Watcher as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long events must pause before a reload.
pub const DEBOUNCE: Duration = Duration::from_millis(250);
/// Polling interval of the fallback.
pub const POLL: Duration = Duration::from_millis(500);

/// A stream of "the file may have changed" notifications.
pub struct FileWatch {
    rx: mpsc::Receiver<()>,
    _watcher: Option<notify::RecommendedWatcher>,
    /// Whether the polling fallback is in use (for messages).
    pub polling: bool,
}

impl FileWatch {
    /// Watch `file`; must be called inside a tokio runtime.
    pub fn new(file: &Path) -> FileWatch {
        match inotify(file) {
            Ok((rx, w)) => FileWatch { rx, _watcher: Some(w), polling: false },
            Err(_) => FileWatch::polling(file),
        }
    }

    /// Watch `file` by polling only.
    pub fn polling(file: &Path) -> FileWatch {
        let (tx, rx) = mpsc::channel(16);
        let file = file.to_path_buf();
        tokio::spawn(async move {
            let mut last = fingerprint(&file);
            loop {
                tokio::time::sleep(POLL).await;
                let now = fingerprint(&file);
                if now != last {
                    last = now;
                    if tx.send(()).await.is_err() {
                        return;
                    }
                }
            }
        });
        FileWatch { rx, _watcher: None, polling: true }
    }

    /// The next change, once events have paused for [`DEBOUNCE`].
    /// `None` when the watch has ended.
    pub async fn changed(&mut self) -> Option<()> {
        self.rx.recv().await?;
        loop {
            match tokio::time::timeout(DEBOUNCE, self.rx.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) | Err(_) => return Some(()),
            }
        }
    }
}

fn inotify(file: &Path) -> notify::Result<(mpsc::Receiver<()>, notify::RecommendedWatcher)> {
    let (tx, rx) = mpsc::channel(64);
    let name = file.file_name().map(|n| n.to_os_string());
    let dir: PathBuf = file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            let relevant = ev.paths.is_empty() || ev.paths.iter().any(|p| p.file_name().map(|n| n.to_os_string()) == name);
            if relevant && !matches!(ev.kind, notify::EventKind::Access(_)) {
                let _ = tx.try_send(());
            }
        }
    })?;
    w.watch(&dir, notify::RecursiveMode::NonRecursive)?;
    Ok((rx, w))
}

/// Modification time, size and a content hash: cheap enough to poll, and
/// catches same-size edits within one mtime tick.
fn fingerprint(file: &Path) -> Option<(std::time::SystemTime, u64, Vec<u8>)> {
    let meta = std::fs::metadata(file).ok()?;
    let data = std::fs::read(file).ok()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &data).as_ref().to_vec();
    Some((meta.modified().ok()?, meta.len(), digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sees_edit(mut w: FileWatch, file: &Path) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::write(file, "[providers.github]\n").unwrap();
        tokio::time::timeout(Duration::from_secs(20), w.changed()).await.expect("change noticed").expect("watch alive");
    }

    #[tokio::test]
    async fn inotify_sees_an_edit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("authsome.toml");
        std::fs::write(&file, "# empty\n").unwrap();
        let w = FileWatch::new(&file);
        sees_edit(w, &file).await;
    }

    #[tokio::test]
    async fn the_polling_fallback_sees_an_edit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("authsome.toml");
        std::fs::write(&file, "# empty\n").unwrap();
        let w = FileWatch::polling(&file);
        assert!(w.polling);
        sees_edit(w, &file).await;
    }

    #[tokio::test]
    async fn a_rename_over_the_file_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("authsome.toml");
        std::fs::write(&file, "# empty\n").unwrap();
        let mut w = FileWatch::new(&file);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let tmp = dir.path().join(".authsome.toml.swp");
        std::fs::write(&tmp, "[providers.openai]\n").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        tokio::time::timeout(Duration::from_secs(20), w.changed()).await.expect("change noticed").expect("watch alive");
    }
}
