//! Where things are: the workspace root, the binaries under test (`BASTION_BIN`, or the
//! newest build in the target directory) and the external tools the tests run.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::INSTALL_HINT;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate lives inside the workspace")
        .to_path_buf()
}

/// The `bastion` binary under test: `BASTION_BIN` if set, else the newest of
/// `target/{debug,release}/bastion` (under `CARGO_TARGET_DIR` when that is set).
pub fn bastion_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| find_binary("bastion", "BASTION_BIN"))
        .clone()
}

/// A workspace binary: the path in `env_var` if set, else the newest of
/// `target/{debug,release}/name` (under `CARGO_TARGET_DIR` when that is set).
pub fn find_binary(name: &str, env_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        let mut path = PathBuf::from(path);
        // cargo runs tests in the crate directory; a relative path is meant from the
        // workspace root (where `cargo test` is usually typed).
        if path.is_relative() && !path.is_file() {
            path = workspace_root().join(path);
        }
        assert!(
            path.is_file(),
            "{env_var}={} does not exist: run `cargo build -p {name}`",
            path.display()
        );
        return path;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_relative() {
                workspace_root().join(t)
            } else {
                t
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"));
    let newest = ["debug", "release"]
        .iter()
        .map(|profile| target.join(profile).join(name))
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).ok()?.modified().ok()?;
            Some((modified, p))
        })
        .max();
    match newest {
        Some((_, path)) => path,
        None => panic!(
            "no {name} binary in {}/{{debug,release}}: run `cargo build -p {name}` \
             (or set {env_var})",
            target.display()
        ),
    }
}

/// Full path of an external tool, or a panic that says how to install it.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{name}` is not installed or not on PATH: {INSTALL_HINT}");
}

/// Checks the OpenSSH client tools every test uses.
pub fn require_ssh_tools() {
    for tool in ["ssh", "ssh-keygen"] {
        require_tool(tool);
    }
}

/// Panics unless this process runs as root (mount namespaces, bind mounts, chroot, port 53);
/// `why` says what needs it.
pub fn require_root(why: &str) {
    let out = crate::process::run_command(
        std::process::Command::new("id").arg("-u"),
        "id -u",
        std::time::Duration::from_secs(10),
    );
    assert_eq!(
        out.stdout.trim(),
        "0",
        "{why} need root; run them through scripts/test.sh as root"
    );
}
