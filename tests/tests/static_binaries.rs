//! The release binaries are fully static and need nothing from the filesystem: each is copied
//! alone into an empty directory, which becomes a read-only root (a private mount namespace
//! plus `chroot`), and run there as a non-root user (65532, as in the images). Nothing else is
//! in the root: no `/dev` (built with `--cfg getrandom_backend="linux_getrandom"`, the
//! binaries call the `getrandom` system call and never read `/dev/urandom`), no `/lib`, and no
//! `/etc` beyond the CA bundle the sidecar's image ships: loopback IP literals need no name
//! lookup.
//!
//! Needs root (mount namespace, chroot), as `scripts/test.sh` runs it.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::sidecar::{sidecar_bin, Moto, Task};
use e2e::{
    attempt, bastion_bin, expect_moves_bytes, require_loopback_only_netns, run_command, TestDir,
    TestServer,
};

fn require_root() {
    e2e::require_root("the static-binary tests (mount namespace and chroot)");
}

/// An empty root holding only `binary` (as `/name`).
fn empty_root(dir: &Path, binary: &Path, name: &str) -> PathBuf {
    let root = dir.join(format!("root-{name}"));
    fs::create_dir_all(&root).expect("creating the root");
    fs::copy(binary, root.join(name)).expect("copying the binary");
    fs::set_permissions(root.join(name), fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod");
    root
}

/// `unshare --mount` + make the root read-only + chroot as 65532.
/// The program inside is the shell's "$@".
fn jail(root: &Path) -> Vec<OsString> {
    let script = "set -e; r=$1; shift; \
        mount --bind \"$r\" \"$r\"; mount -o remount,bind,ro \"$r\"; \
        exec chroot --userspec=65532:65532 \"$r\" \"$@\"";
    vec![
        "unshare".into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "--".into(),
        "sh".into(),
        "-c".into(),
        script.into(),
        "jail".into(),
        root.as_os_str().to_owned(),
    ]
}

fn jailed(root: &Path, args: &[&str]) -> Command {
    let parts = jail(root);
    let mut cmd = Command::new(&parts[0]);
    cmd.args(&parts[1..]).args(args);
    cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    cmd
}

#[test]
fn both_binaries_print_help_alone_in_an_empty_read_only_root_as_non_root() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    for (bin, name, needle) in [
        (bastion_bin(), "bastion", "Forward-only SSH jumpbox"),
        (
            sidecar_bin(),
            "dns-sidecar",
            "Publish this ECS task's public IP",
        ),
    ] {
        let root = empty_root(dir.path(), &bin, name);
        let out = run_command(
            &mut jailed(&root, &[&format!("/{name}"), "--help"]),
            name,
            Duration::from_secs(20),
        );
        out.expect_success(&format!("{name} --help in an empty root (is it static?)"));
        assert!(out.stdout.contains(needle), "{name}: {}", out.stdout);
        // Proof of the jail: the root is read-only and we are not root in it.
        let probe = run_command(
            &mut jailed(&root, &[&format!("/{name}"), "--version"]),
            name,
            Duration::from_secs(20),
        );
        probe.expect_success(&format!("{name} --version"));
        let entries = fs::read_dir(&root).expect("root").count();
        assert_eq!(entries, 1, "the root holds more than the binary");
    }
}

#[test]
fn the_static_bastion_serves_a_tunnel_from_an_empty_root() {
    require_root();
    require_loopback_only_netns();
    let dir = TestDir::new();
    let root = empty_root(dir.path(), &bastion_bin(), "bastion");
    let echo = TestServer::echo_v4();
    let bastion = dir
        .bastion()
        .permit_open(format!("127.0.0.1:{}", echo.port()))
        .name("jailed bastion")
        .wrapped_in(jail(&root), "/bastion")
        .start();
    let result = attempt(
        bastion.ssh(&dir.key.private),
        &format!("127.0.0.1:{}", echo.port()),
        "hello from the empty root",
    );
    expect_moves_bytes(&result, "tunnel through the jailed static bastion");
}

#[test]
fn the_static_sidecar_publishes_to_moto_from_an_empty_root() {
    require_root();
    require_loopback_only_netns();
    let moto = Moto::start();
    let zone = moto.create_zone("example.com.");
    let eni = moto.create_eni("172.31.42.189", Some("52.95.110.1"));
    let dir = tempfile::tempdir().expect("tempdir");
    let root = empty_root(dir.path(), &sidecar_bin(), "dns-sidecar");
    // What the image ships besides the binary: the CA bundle (its TLS uses the system roots).
    let certs = root.join("etc/ssl/certs");
    fs::create_dir_all(&certs).expect("certs dir");
    fs::copy(
        "/etc/ssl/certs/ca-certificates.crt",
        certs.join("ca-certificates.crt"),
    )
    .expect("copying the CA bundle (package ca-certificates)");
    fs::set_permissions(root.join("etc"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let task = Task::new(&moto, &zone, &eni, "taskstatic")
        .env("DNS_DELETE_ON_EXIT", "false")
        .env("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt");
    let parts = jail(&root);
    let cmd = task.command(&[]);
    let mut wrapped = Command::new(&parts[0]);
    wrapped
        .args(&parts[1..])
        .arg("/dns-sidecar")
        .env_clear()
        .envs(
            cmd.get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        );
    let out = run_command(&mut wrapped, "jailed dns-sidecar", Duration::from_secs(60));
    out.expect_success("the static sidecar in an empty root");
    let records = moto.records(&zone);
    assert!(
        records
            .iter()
            .any(|r| r["Name"] == "jumpbox.eu-west-1.example.com."
                && r["Values"][0] == "52.95.110.1"),
        "no record in moto: {records:?}"
    );
}
