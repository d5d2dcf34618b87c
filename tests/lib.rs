//! Helpers shared by the end-to-end tests: where the workspace, the built `funnel` binary and the
//! shared real SSTables are.

use std::path::PathBuf;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the workspace")
        .to_path_buf()
}

/// `../shared/sstables`, read in place (never copied into the project).
pub fn shared_sstables() -> PathBuf {
    workspace_root().join("../shared/sstables")
}

/// The `funnel` binary built by `cargo test --workspace` (the `cli` package has integration tests, so
/// cargo builds its binary next to the test executables' `deps/` directory before any test runs).
pub fn funnel_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("funnel{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds the binary)",
        bin.display()
    );
    bin
}

/// The tools directory that `.ci/run` fills (`.tools/`: the Python venv, the tansu broker).
pub fn tools_dir() -> PathBuf {
    workspace_root().join(".tools")
}
