//! The container registry behind moto's ECR (`tests/peers/ecr_registry.py`): Debian's
//! `docker-registry` answering for the registry host name moto's ECR hands out, with the login
//! moto issues, TLS with a test certificate, and the `/etc/hosts` that points the name at
//! loopback (for a private mount namespace: [`EcrRegistry::command`]).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::sidecar::{ready_line, venv_bin, Moto};
use crate::{poll_until, require_tool, workspace_root, ChildGuard, Input};

/// How long the registry gets to listen after its setup line.
const REGISTRY_START: Duration = Duration::from_secs(30);

pub struct EcrRegistry {
    /// The registry's host name, as ECR's GetAuthorizationToken names it.
    pub host: String,
    /// Its self-signed certificate (for `SSL_CERT_FILE`: the only root the push trusts).
    pub cert: PathBuf,
    hosts: PathBuf,
    storage: PathBuf,
    _proc: ChildGuard,
}

impl EcrRegistry {
    /// Sets up and starts the registry for `region`'s ECR in `dir`; panics (naming what is
    /// missing) unless it listens on 127.0.0.1:443 within `REGISTRY_START`.
    pub fn start(moto: &Moto, region: &str, dir: &Path) -> EcrRegistry {
        require_tool("docker-registry");
        require_tool("openssl");
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg(workspace_root().join("tests/peers/ecr_registry.py"))
            .arg(&moto.endpoint)
            .arg(region)
            .arg(dir)
            .env("AWS_ACCESS_KEY_ID", "AKIAREGISTRYTEST0000")
            .env("AWS_SECRET_ACCESS_KEY", "registry-test-dummy")
            .env_remove("AWS_PROFILE");
        let mut proc = ChildGuard::spawn(&mut cmd, "ecr_registry.py", Input::Null);
        let ready = ready_line(&mut proc, "ecr_registry.py");
        let field = |k: &str| ready[k].as_str().unwrap_or_default().to_string();
        let listening = poll_until(REGISTRY_START, Duration::from_millis(100), || {
            TcpStream::connect(("127.0.0.1", 443)).ok()
        });
        assert!(
            listening.is_some(),
            "docker-registry did not listen on 127.0.0.1:443 within {REGISTRY_START:?} \
             (exit: {:?}); stderr:\n{}",
            proc.try_status(),
            proc.stderr().text()
        );
        EcrRegistry {
            host: field("host"),
            cert: field("cert").into(),
            hosts: field("hosts").into(),
            storage: field("storage").into(),
            _proc: proc,
        }
    }

    /// `program args...` in a private mount namespace whose `/etc/hosts` names this registry
    /// (the rest of the machine keeps its own).
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "-m",
            "--",
            "sh",
            "-c",
            "mount --bind \"$0\" /etc/hosts && exec \"$@\"",
        ])
        .arg(&self.hosts)
        .arg(program);
        cmd
    }

    /// Whether `repository:tag` was pushed here (the registry's own storage layout).
    pub fn has_tag(&self, repository: &str, tag: &str) -> bool {
        self.storage
            .join("docker/registry/v2/repositories")
            .join(repository)
            .join("_manifests/tags")
            .join(tag)
            .join("current/link")
            .is_file()
    }
}
