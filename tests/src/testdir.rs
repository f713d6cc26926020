//! A per-test workspace: a temporary directory with a fresh client key authorized by default.

use std::path::{Path, PathBuf};

use crate::bastion::BastionBuilder;
use crate::keys::{generate_key, KeyPair};
use crate::locate::require_ssh_tools;

/// A temporary directory with a fresh client key authorized by default.
pub struct TestDir {
    dir: tempfile::TempDir,
    pub key: KeyPair,
}

impl TestDir {
    pub fn new() -> TestDir {
        require_ssh_tools();
        let dir = tempfile::Builder::new()
            .prefix("bastion-e2e-")
            .tempdir()
            .expect("creating a temporary directory");
        let key = generate_key(dir.path(), "id_ed25519");
        TestDir { dir, key }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A bastion builder authorizing this directory's client key.
    pub fn bastion(&self) -> BastionBuilder {
        BastionBuilder::new(&format!("{}\n", self.key.public_line))
    }

    /// A path string for a Unix socket in this directory.
    pub fn socket(&self, name: &str) -> String {
        self.join(name)
            .to_str()
            .expect("temporary paths are UTF-8")
            .to_string()
    }
}

impl Default for TestDir {
    fn default() -> Self {
        TestDir::new()
    }
}
