//! Finding the project file for a directory with nothing but `stat` calls.

use std::path::{Path, PathBuf};

/// The file name that marks a project (SPEC §1).
pub const PROJECT_FILE: &str = "authsome.toml";

/// The nearest `authsome.toml` at or above `dir` (one `stat` per level), if any.
/// Only regular files (or symlinks to them) count, so a directory of that name is ignored.
pub fn project_file(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().map(|d| d.join(PROJECT_FILE)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_wins() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let inner = root.join("a/b/c");
        std::fs::create_dir_all(&inner).unwrap();
        assert_eq!(project_file(&inner), None);
        std::fs::write(root.join("a").join(PROJECT_FILE), "").unwrap();
        assert_eq!(project_file(&inner), Some(root.join("a").join(PROJECT_FILE)));
        std::fs::write(root.join("a/b").join(PROJECT_FILE), "").unwrap();
        assert_eq!(project_file(&inner), Some(root.join("a/b").join(PROJECT_FILE)));
        std::fs::create_dir(inner.join(PROJECT_FILE)).unwrap();
        assert_eq!(project_file(&inner), Some(root.join("a/b").join(PROJECT_FILE)));
    }
}
