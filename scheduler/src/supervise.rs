//! Running one recomputation as a child process, like a careful cron: its output is streamed (and its tail
//! kept for the error message), its anonymous resident memory is watched against the budget (file-backed
//! pages of mmapped SSTables are not counted: they are the page cache, not the run's memory), it is killed
//! (by its own pid, SIGKILL) past the timeout or the budget, and how it ended is reported.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Lines of the child's output kept for the report.
pub const TAIL_LINES: usize = 40;

/// The first wait between two looks at the child; it doubles up to [`POLL_MAX`].
const POLL_MIN: Duration = Duration::from_millis(1);
/// The longest wait between two looks at the child.
const POLL_MAX: Duration = Duration::from_millis(25);

/// Limits of one child.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub timeout: Option<Duration>,
    /// Bytes of anonymous resident memory (`RssAnon`, Linux).
    pub memory_budget: Option<u64>,
}

/// How the child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEnd {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it (not one we sent).
    Signaled(i32),
    /// We killed it: it ran past the timeout.
    TimedOut(Duration),
    /// We killed it: its anonymous resident memory passed the budget.
    OverBudget { rss_anon: u64, budget: u64 },
}

impl ChildEnd {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        *self == ChildEnd::Exited(0)
    }

    /// Whether it was killed (a signal, the timeout, the budget) rather than exiting.
    pub fn killed(&self) -> bool {
        !matches!(self, ChildEnd::Exited(_))
    }

    /// The failure kind a `funnel run` child reported by its exit code, when it exited with one of
    /// the documented codes (see [`Outcome::from_run_exit_code`]); `None` when killed or for other codes.
    pub fn run_outcome(&self) -> Option<crate::Outcome> {
        match self {
            ChildEnd::Exited(c) if *c != 0 => crate::Outcome::from_run_exit_code(*c),
            _ => None,
        }
    }

    /// For messages.
    pub fn describe(&self) -> String {
        match self {
            ChildEnd::Exited(c) => format!("exited with code {c}"),
            ChildEnd::Signaled(s) => format!("killed by signal {s}"),
            ChildEnd::TimedOut(d) => {
                format!(
                    "killed after the timeout ({})",
                    humantime::format_duration(*d)
                )
            }
            ChildEnd::OverBudget { rss_anon, budget } => format!(
                "killed: anonymous memory {} MiB passed the budget of {} MiB",
                rss_anon >> 20,
                budget >> 20
            ),
        }
    }
}

/// The report of one child.
#[derive(Debug, Clone)]
pub struct Supervised {
    pub pid: u32,
    pub end: ChildEnd,
    pub elapsed: Duration,
    /// Last lines of stdout and stderr, interleaved as they arrived.
    pub tail: Vec<String>,
    /// Highest `RssAnon` seen (bytes).
    pub peak_rss_anon: Option<u64>,
}

impl Supervised {
    /// The child's last `error:` line (how `funnel` reports failures), else its last line.
    pub fn error_line(&self) -> Option<String> {
        self.tail
            .iter()
            .rev()
            .find(|l| l.starts_with("error:"))
            .or_else(|| self.tail.last())
            .cloned()
    }
}

/// `RssAnon` of a process in bytes (Linux `/proc/PID/status`), `None` elsewhere or once it is gone.
pub fn rss_anon(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    let kb: u64 = line
        .trim_start_matches("RssAnon:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

type Tail = Arc<Mutex<VecDeque<String>>>;

/// Sees every line the child prints, as it arrives.
pub type Echo = Arc<dyn Fn(&str) + Send + Sync>;

fn pump<R: Read + Send + 'static>(from: R, tail: Tail, echo: Option<Echo>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if let Some(echo) = &echo {
                echo(&line);
            }
            if let Ok(mut t) = tail.lock() {
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        }
    })
}

/// Spawns `cmd` (stdout and stderr piped), calls `on_spawn(pid)`, and watches it until it ends. `echo`
/// sees every output line as it arrives.
pub fn supervise(
    mut cmd: Command,
    limits: Limits,
    echo: Option<Echo>,
    on_spawn: impl FnOnce(u32),
) -> std::io::Result<Supervised> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let tail: Tail = Arc::default();
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(pump(out, tail.clone(), echo.clone()));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(pump(err, tail.clone(), echo.clone()));
    }
    on_spawn(pid);
    let mut peak: Option<u64> = None;
    let mut killed_for: Option<ChildEnd> = None;
    let mut poll = POLL_MIN;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if killed_for.is_none() {
            if let Some(rss) = rss_anon(pid) {
                peak = Some(peak.map_or(rss, |p| p.max(rss)));
                if let Some(budget) = limits.memory_budget.filter(|b| rss > *b) {
                    killed_for = Some(ChildEnd::OverBudget {
                        rss_anon: rss,
                        budget,
                    });
                }
            }
            if let Some(t) = limits.timeout.filter(|t| started.elapsed() >= *t) {
                killed_for = Some(ChildEnd::TimedOut(t));
            }
            if killed_for.is_some() {
                // Our own child, by its pid (SIGKILL); the wait above reaps it.
                let _ = child.kill();
            }
        }
        // Short runs are watched closely (their memory and deadline are seen before they end), long
        // ones every 25 ms; no sleep goes past the deadline.
        let mut nap = poll;
        if let Some(t) = limits.timeout {
            nap = nap.min(t.saturating_sub(started.elapsed()));
        }
        std::thread::sleep(nap.max(Duration::from_micros(100)));
        poll = (poll * 2).min(POLL_MAX);
    };
    for p in pumps {
        let _ = p.join();
    }
    // A child that exited on its own between our last look and the kill keeps its own exit status: the
    // kill found a process that had already ended (its work, e.g. a publish, is complete).
    let end = match (killed_for, status.code()) {
        (_, Some(c)) => ChildEnd::Exited(c),
        (Some(k), None) => k,
        (None, None) => ChildEnd::Signaled(signal_of(&status)),
    };
    let _ = std::io::stderr().flush();
    let tail = tail
        .lock()
        .map(|t| t.iter().cloned().collect())
        .unwrap_or_default();
    Ok(Supervised {
        pid,
        end,
        elapsed: started.elapsed(),
        tail,
        peak_rss_anon: peak,
    })
}

#[cfg(unix)]
fn signal_of(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.signal().unwrap_or(-1)
}

#[cfg(not(unix))]
fn signal_of(_: &std::process::ExitStatus) -> i32 {
    -1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn exit_code_and_output_tail_are_reported() {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let s2 = seen.clone();
        let echo: Echo = Arc::new(move |l: &str| s2.lock().unwrap().push(l.to_string()));
        let mut pid_seen = 0;
        let r = supervise(
            sh("echo hello; echo 'error: no SSTables' >&2; exit 3"),
            Limits::default(),
            Some(echo),
            |pid| pid_seen = pid,
        )
        .unwrap();
        assert_eq!(r.end, ChildEnd::Exited(3));
        assert_eq!(r.pid, pid_seen);
        assert_eq!(r.error_line().as_deref(), Some("error: no SSTables"));
        assert_eq!(seen.lock().unwrap().len(), 2);
        assert!(!r.end.success() && !r.end.killed());
    }

    #[test]
    fn a_signal_is_reported_as_such() {
        let r = supervise(sh("kill -9 $$"), Limits::default(), None, |_| {}).unwrap();
        assert_eq!(r.end, ChildEnd::Signaled(9));
        assert!(r.end.killed());
    }

    #[test]
    fn the_timeout_kills_the_child() {
        let t0 = Instant::now();
        let r = supervise(
            sh("exec sleep 30"),
            Limits {
                timeout: Some(Duration::from_millis(200)),
                memory_budget: None,
            },
            None,
            |_| {},
        )
        .unwrap();
        assert!(matches!(r.end, ChildEnd::TimedOut(_)), "{:?}", r.end);
        assert!(t0.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_short_timeout_is_kept_even_when_the_child_would_end_soon_after() {
        // The child outlives its 8 ms timeout but ends after 20 ms, before the slowest poll (25 ms)
        // would look again: it must still be killed at the deadline.
        let r = supervise(
            sh("exec sleep 0.02"),
            Limits {
                timeout: Some(Duration::from_millis(8)),
                memory_budget: None,
            },
            None,
            |_| {},
        )
        .unwrap();
        assert_eq!(r.end, ChildEnd::TimedOut(Duration::from_millis(8)));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_memory_budget_kills_a_child_that_grows_past_it() {
        // A shell variable grown to ~64 MiB of heap; the budget is 16 MiB.
        let r = supervise(
            sh("x=a; i=0; while [ $i -lt 26 ]; do x=$x$x; i=$((i+1)); done; sleep 30"),
            Limits {
                timeout: Some(Duration::from_secs(60)),
                memory_budget: Some(16 << 20),
            },
            None,
            |_| {},
        )
        .unwrap();
        match r.end {
            ChildEnd::OverBudget { rss_anon, budget } => {
                assert!(rss_anon > budget && budget == 16 << 20)
            }
            other => panic!("{other:?}"),
        }
        assert!(r.peak_rss_anon.unwrap_or(0) > 16 << 20);
    }
}
