//! The `funnel run` child of an attempt: its command line (the contract between the scheduler and `funnel
//! run`'s flags), and whether a run left behind by a killed scheduler still goes.

use std::path::Path;
use std::process::Command;

use crate::config::Config;

/// The `funnel run` command line of an attempt: `program` (the `funnel` binary) over the config's inputs,
/// the resolved snapshot tag and `now_s`.
pub fn run_command(program: &Path, cfg: &Config, snapshot: Option<&str>, now_s: i64) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg("run").arg("--data").args(&cfg.data);
    cmd.arg("--funnels").arg(&cfg.funnels);
    cmd.arg("--facts").arg(&cfg.facts);
    cmd.arg("--now").arg(now_s.to_string());
    cmd.arg("--quiet");
    if let Some(t) = cfg.threads {
        cmd.arg("--threads").arg(t.to_string());
    }
    if let Some(s) = snapshot {
        cmd.arg("--snapshot").arg(s);
    }
    if let Some(s) = &cfg.schema {
        cmd.arg("--schema").arg(s);
    }
    if let Some(b) = cfg.memory_budget {
        // The shuffle's budget (tables not keyed by actor): half of what the run is killed at, so it
        // spills to disk well before.
        cmd.arg("--memory-budget").arg((b / 2).max(1).to_string());
    }
    if let Some(d) = &cfg.spill_dir {
        cmd.arg("--spill-dir").arg(d);
    }
    if let Some(d) = &cfg.cache {
        cmd.arg("--cache").arg(d);
    }
    cmd
}

/// Whether `pid` is a `funnel run` on the store `facts_url` (`/proc/PID/cmdline`; elsewhere: never).
pub(crate) fn orphan_run_alive(pid: u32, facts_url: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.get(1) == Some(&b"run".as_slice())
        && args
            .windows(2)
            .any(|w| w[0] == b"--facts" && w[1] == facts_url.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_run_gets_half_the_memory_budget_to_shuffle_in_and_the_spill_dir() {
        let cfg = Config::parse(
            "facts = 'sqlite:f.db'\nfunnels = 'f.toml'\ndata = ['d']\nmemory_budget = '8GiB'\nspill_dir = '/scratch'",
            Path::new("/etc/funnel/schedule.toml"),
        )
        .unwrap();
        let cmd = run_command(Path::new("/usr/bin/funnel"), &cfg, Some("nightly"), 7);
        assert_eq!(cmd.get_program(), "/usr/bin/funnel");
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let after = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        assert_eq!(args[0], "run");
        assert_eq!(after("--memory-budget"), Some((4u64 << 30).to_string()));
        assert_eq!(after("--spill-dir"), Some("/scratch".to_string()));
        assert_eq!(after("--snapshot"), Some("nightly".to_string()));
        assert_eq!(after("--now"), Some("7".to_string()));
    }

    #[test]
    fn the_child_run_gets_the_cache_off_by_default_on_or_in_the_given_dir() {
        let args = |extra: &str| -> Vec<String> {
            let text = format!("facts = 'sqlite:f.db'\nfunnels = 'f.toml'\ndata = ['d']\n{extra}");
            let cfg = Config::parse(&text, Path::new("/etc/funnel/schedule.toml")).unwrap();
            run_command(Path::new("funnel"), &cfg, None, 7)
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let cache = |a: &[String]| {
            a.iter()
                .position(|x| x == "--cache")
                .map(|i| a[i + 1].clone())
        };
        let default = crate::config::default_cache_dir().map(|d| d.display().to_string());
        assert_eq!(cache(&args("")), None);
        assert_eq!(cache(&args("cache = true")), default);
        assert_eq!(cache(&args("cache = false")), None);
        assert_eq!(
            cache(&args("cache = 'extracts'")),
            Some("/etc/funnel/extracts".into())
        );
    }
}
