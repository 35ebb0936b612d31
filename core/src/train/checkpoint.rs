//! Atomic checkpoints of a training run.
//!
//! A checkpoint is a directory of several files (weights, EMA weights, optimizer state, the
//! loop's own state): they must change together or not at all. Each checkpoint is written in
//! full to `checkpoint.new/`, then swapped in by two renames (`checkpoint` to `checkpoint.old`,
//! `checkpoint.new` to `checkpoint`) and the old one removed. A crash at any point leaves a
//! complete checkpoint: `checkpoint`, or `checkpoint.old` if it struck between the renames
//! ([`latest`] finds it).

use std::path::{Path, PathBuf};

/// Name of the current checkpoint directory inside a run directory.
pub const CURRENT: &str = "checkpoint";
const NEW: &str = "checkpoint.new";
const OLD: &str = "checkpoint.old";

/// The complete checkpoint of `run_dir`, if there is one.
pub fn latest(run_dir: &Path) -> Option<PathBuf> {
    [CURRENT, OLD].iter().map(|name| run_dir.join(name)).find(|dir| dir.is_dir())
}

/// Writes a checkpoint with `write` (which fills the directory it is given), then swaps it in.
/// If `write` fails, the previous checkpoint is left untouched.
pub fn write_atomically<E: From<std::io::Error>>(run_dir: &Path, write: impl FnOnce(&Path) -> Result<(), E>) -> Result<PathBuf, E> {
    let (new, old, current) = (run_dir.join(NEW), run_dir.join(OLD), run_dir.join(CURRENT));
    if new.exists() {
        std::fs::remove_dir_all(&new)?;
    }
    std::fs::create_dir_all(&new)?;
    write(&new)?;
    for entry in std::fs::read_dir(&new)? {
        std::fs::File::open(entry?.path())?.sync_all()?;
    }
    if current.is_dir() {
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(&current, &old)?;
    }
    std::fs::rename(&new, &current)?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::temp_dir as temp;

    #[test]
    fn a_failed_write_keeps_the_previous_checkpoint() {
        let run = temp("fail");
        write_atomically::<std::io::Error>(&run, |d| std::fs::write(d.join("a"), "1")).unwrap();
        let r = write_atomically::<std::io::Error>(&run, |d| {
            std::fs::write(d.join("a"), "2")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(r.is_err());
        let dir = latest(&run).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        write_atomically::<std::io::Error>(&run, |d| std::fs::write(d.join("a"), "3")).unwrap();
        assert_eq!(std::fs::read_to_string(latest(&run).unwrap().join("a")).unwrap(), "3");
        assert!(!run.join(OLD).exists() && !run.join(NEW).exists());
        std::fs::remove_dir_all(&run).unwrap();
    }

    #[test]
    fn a_crash_between_the_renames_leaves_the_old_checkpoint_found() {
        let run = temp("crash");
        std::fs::create_dir_all(run.join(OLD)).unwrap();
        std::fs::write(run.join(OLD).join("a"), "old").unwrap();
        assert_eq!(latest(&run).unwrap(), run.join(OLD));
        std::fs::remove_dir_all(&run).unwrap();
    }
}
