//! The scheduler's own record, a small JSON file next to the store: the last attempts (including skipped,
//! crashed and killed ones, which the fact store never hears of when the run died before `begin_run`) and
//! the fingerprint of the last published run. Only the lock holder writes it, always whole (temp file +
//! rename), so readers (`funnel status`) see the old or the new file, never half of one.

use std::io::ErrorKind;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::fingerprint::Fingerprint;
use crate::outcome::Outcome;

/// Attempts kept in the file.
pub const KEEP_ATTEMPTS: usize = 50;

/// One scheduled attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub outcome: Outcome,
    /// `outcome.exit_code()`.
    pub exit_code: u8,
    /// Pid of the `funnel run` child, while and after it ran.
    pub child_pid: Option<u32>,
    /// The fact-store run it published, when it did.
    pub run_id: Option<i64>,
    /// SSTables and bytes fingerprinted for it.
    pub sstables: usize,
    pub bytes: u64,
    /// `Fingerprint::key`.
    pub fingerprint: Option<String>,
    /// Why it ran (what changed) or why it was skipped.
    pub reason: Option<String>,
    /// The error, for failures.
    pub error: Option<String>,
    /// How often the child was rerun because its inputs changed under it.
    pub retries: u32,
    /// Peak anonymous resident memory of the child (bytes), when measured.
    pub peak_rss_anon: Option<u64>,
}

impl Attempt {
    /// A new attempt, in progress.
    pub fn start(now_ms: i64) -> Attempt {
        Attempt {
            started_at_ms: now_ms,
            finished_at_ms: None,
            outcome: Outcome::Running,
            exit_code: Outcome::Running.exit_code(),
            child_pid: None,
            run_id: None,
            sstables: 0,
            bytes: 0,
            fingerprint: None,
            reason: None,
            error: None,
            retries: 0,
            peak_rss_anon: None,
        }
    }

    /// Ends it with an outcome.
    pub fn finish(&mut self, now_ms: i64, outcome: Outcome, error: Option<String>) {
        self.finished_at_ms = Some(now_ms);
        self.outcome = outcome;
        self.exit_code = outcome.exit_code();
        self.error = error;
    }
}

/// What the last published run covered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastSuccess {
    pub run_id: Option<i64>,
    pub finished_at_ms: i64,
    pub fingerprint: Fingerprint,
}

/// The whole state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Newest first.
    pub attempts: Vec<Attempt>,
    pub last_success: Option<LastSuccess>,
}

impl ScheduleState {
    /// Reads the state; a missing file is the empty state.
    pub fn load(path: &Path) -> Result<ScheduleState, Error> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::io(path, std::io::Error::new(ErrorKind::InvalidData, e))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(ScheduleState::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Writes the whole state atomically (temp file in the same directory, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        use std::io::Write;
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp_name);
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(path, e)
        })
    }

    /// Puts `attempt` first, replacing an in-progress attempt with the same start, keeping the newest
    /// [`KEEP_ATTEMPTS`].
    pub fn record(&mut self, attempt: &Attempt) {
        self.attempts.retain(|a| {
            !(a.started_at_ms == attempt.started_at_ms && a.outcome == Outcome::Running)
        });
        self.attempts.insert(0, attempt.clone());
        self.attempts.truncate(KEEP_ATTEMPTS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_empty_and_saves_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        assert_eq!(
            ScheduleState::load(&path).unwrap(),
            ScheduleState::default()
        );
        let mut s = ScheduleState::default();
        let mut a = Attempt::start(1000);
        s.record(&a);
        a.finish(2000, Outcome::Crashed, Some("killed by signal 9".into()));
        s.record(&a);
        assert_eq!(s.attempts.len(), 1, "the running entry is replaced");
        s.save(&path).unwrap();
        let back = ScheduleState::load(&path).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.attempts[0].exit_code, 8);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn keeps_only_the_newest_attempts() {
        let mut s = ScheduleState::default();
        for i in 0..(KEEP_ATTEMPTS as i64 + 7) {
            let mut a = Attempt::start(i);
            a.finish(i, Outcome::Skipped, None);
            s.record(&a);
        }
        assert_eq!(s.attempts.len(), KEEP_ATTEMPTS);
        assert_eq!(s.attempts[0].started_at_ms, KEEP_ATTEMPTS as i64 + 6);
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(&path, "{not json").unwrap();
        assert!(ScheduleState::load(&path).is_err());
    }
}
