//! The run lock: an exclusive, non-blocking `flock` on a file next to the store, held for a whole attempt
//! (fingerprint, child run, state update). The kernel drops it when the holder exits, however it exits, so
//! a crashed scheduler never leaves a stale lock. The holder writes its pid and start time into the file
//! for `funnel status` and for the "busy" message.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

use crate::error::Error;

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock, or `Ok(None)` when another process holds it.
    pub fn try_acquire(path: &Path) -> Result<Option<RunLock>, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let got = FileExt::try_lock_exclusive(&file).map_err(|e| Error::io(path, e))?;
        if !got {
            return Ok(None);
        }
        let holder = format!(
            "pid {} since {}\n",
            std::process::id(),
            chrono::Utc::now().to_rfc3339()
        );
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(holder.as_bytes()))
            .map_err(|e| Error::io(path, e))?;
        Ok(Some(RunLock {
            file,
            path: path.to_path_buf(),
        }))
    }

    /// Who holds the lock at `path` (the holder's note), when it is held by someone.
    pub fn holder(path: &Path) -> Option<String> {
        let file = File::open(path).ok()?;
        match FileExt::try_lock_shared(&file) {
            Ok(true) => None,
            _ => Some(
                std::fs::read_to_string(path)
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default(),
            ),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes it explicit.
        let _ = FileExt::unlock(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/facts.db.schedule.lock");
        let first = RunLock::try_acquire(&path).unwrap().expect("free");
        // flock locks belong to the open file description: a second open in this process conflicts
        // exactly as another process would.
        assert!(RunLock::try_acquire(&path).unwrap().is_none());
        let holder = RunLock::holder(&path).expect("held");
        assert!(
            holder.contains(&format!("pid {}", std::process::id())),
            "{holder}"
        );
        drop(first);
        assert!(RunLock::holder(&path).is_none());
        assert!(RunLock::try_acquire(&path).unwrap().is_some());
    }

    #[test]
    fn a_lock_held_by_another_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        std::fs::write(&path, "").unwrap();
        // The shell takes the lock on fd 9 with flock(1) and then becomes `sleep`, which keeps fd 9 (and
        // so the lock) until we kill it by its pid.
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("exec 9>\"$1\" && flock -x 9 && exec sleep 5")
            .arg("sh")
            .arg(&path)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let mut refused = false;
        while std::time::Instant::now() < deadline {
            if RunLock::try_acquire(&path).unwrap().is_none() {
                refused = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(refused, "the lock held by the other process was never seen");
        assert!(RunLock::try_acquire(&path).unwrap().is_some());
    }
}
