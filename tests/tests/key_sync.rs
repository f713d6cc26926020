//! Live keys end to end: the real dns-sidecar's key sync (through the real AWS SDK, against
//! moto's Secrets Manager and SSM) writes `authorized_keys` and `revoked_keys` into a shared
//! directory, and the real bastion, pointed at those files, is driven by the stock OpenSSH
//! client. With `KEYS_INTERVAL=2s` (or `KEY_SYNC_TEST_INTERVAL_SECS`) and the bastion's 2 s reload, every change must reach the
//! users within [`within`]: a key added to the secret logs in, a key removed from it, a deleted
//! SSM parameter and a new revocation each close that key's open tunnel, without a restart.
//! A source that fails keeps the last good keys (and the health line says so) until it
//! recovers; an empty secret locks everyone out. Each measured time (from the moment the
//! change was made in moto) is printed.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e::sidecar::{Eni, Moto, Sidecar, Task};
use e2e::*;

/// Key sync interval in these tests, in seconds: 2, or `KEY_SYNC_TEST_INTERVAL_SECS` (30, the
/// default of `KEYS_INTERVAL`, measures the times a deployment with defaults sees).
fn interval_secs() -> u64 {
    std::env::var("KEY_SYNC_TEST_INTERVAL_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// A change's bound: sync interval + bastion reload (2 s) + 8 s of slack for a loaded machine.
fn within() -> Duration {
    Duration::from_secs(interval_secs() + 10)
}
const READY: Duration = Duration::from_secs(30);
const SECRET: &str = "jumpbox/authorized-keys";
const REVOKED: &str = "jumpbox/revoked-keys";
const USERS: &str = "/jumpbox/users/";

/// moto, the sidecar syncing into a temporary directory, and the bastion reading from it.
struct Rig {
    moto: Moto,
    task: Task,
    sidecar: Sidecar,
    bastion: Bastion,
    echo: TestServer,
    dir: TestDir,
}

/// Lines of an authorized_keys (or revocation) text.
fn lines(keys: &[&KeyPair]) -> String {
    keys.iter()
        .map(|k| format!("{}\n", k.public_line))
        .collect()
}

impl Rig {
    /// Starts the sidecar with `env` (KEYS_* and, for DNS mode, the zone), waits for both
    /// files, then starts the bastion on them.
    fn start(moto: Moto, task: Task, dir: TestDir) -> Rig {
        let mut sidecar = task.start();
        let authorized = dir.join("authorized_keys");
        let revoked = dir.join("revoked_keys");
        let written = poll_until(READY, Duration::from_millis(50), || {
            (authorized.exists() && revoked.exists()).then_some(())
        });
        if written.is_none() {
            sidecar.expect_event("keys_written", Duration::ZERO);
        }
        let echo = TestServer::echo_v4();
        let bastion = BastionBuilder::bare()
            .env("BASTION_LISTEN", "127.0.0.1:0")
            .env("BASTION_AUTHORIZED_KEYS_FILE", path_str(&authorized))
            .env("BASTION_REVOKED_KEYS_FILE", path_str(&revoked))
            .permit_open(format!("127.0.0.1:{}", echo.port()))
            // The tests' refused logins all come from 127.0.0.1: no penalty for them.
            .env("BASTION_PER_SOURCE_PENALTIES", "no")
            .start();
        Rig {
            moto,
            task,
            sidecar,
            bastion,
            echo,
            dir,
        }
    }

    fn logs_in(&self, key: &KeyPair) -> bool {
        attempt(self.bastion.ssh(&key.private), &self.echo.spec(), "ping\n").echoed
    }

    /// Polls logins with `key` until one gives `want`; the time it took.
    fn login_becomes(&self, key: &KeyPair, want: bool, what: &str) -> Duration {
        let start = Instant::now();
        let seen = poll_until(within(), Duration::from_millis(100), || {
            (self.logs_in(key) == want).then_some(())
        });
        assert!(
            seen.is_some(),
            "{what}: logging in did not become {want} within {:?}; sidecar:\n{}\nbastion:\n{}",
            within(),
            self.sidecar.proc.stderr().text(),
            self.bastion.stderr_text()
        );
        start.elapsed()
    }

    /// An open `ssh -N -L` tunnel for `key`, proven by an echo through it.
    fn tunnel(&self, key: &KeyPair, name: &str) -> (SshProcess, UnixStream) {
        let sock = self.dir.socket(&format!("{name}.sock"));
        let mut ssh = self
            .bastion
            .ssh(&key.private)
            .arg("-N")
            .forward(&sock, &self.echo.spec())
            .spawn(&format!("ssh -N -L ({name})"), Input::Null);
        let mut stream = ssh.connect_unix(sock.as_ref(), READY);
        echo_round_trip(&mut stream, name.as_bytes(), &format!("{name}'s tunnel"));
        (ssh, stream)
    }

    fn health(&self) -> Finished {
        self.task.healthcheck()
    }
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("temporary paths are UTF-8").to_string()
}

/// Time from `since` until the tunnel's socket reports EOF or an error; panics after `within()`.
fn closed_after(stream: &mut UnixStream, since: Instant, what: &str) -> Duration {
    match wait_closed(stream, within()) {
        Some(at) => at.duration_since(since),
        None => panic!("{what}: the tunnel is still open after {:?}", within()),
    }
}

/// The task's environment for key sync into `dir`.
fn with_keys(task: Task, dir: &TestDir, parameters: bool, revoked: bool) -> Task {
    let mut task = task
        .env("KEYS_DIR", path_str(dir.path()))
        .env("KEYS_SECRET_ID", SECRET)
        .env("KEYS_INTERVAL", format!("{}s", interval_secs()));
    if parameters {
        task = task.env("KEYS_PARAMETER_PATH", USERS);
    }
    if revoked {
        task = task.env("KEYS_REVOKED_SECRET_ID", REVOKED);
    }
    task
}

/// DNS publication and key sync side by side: a key added to the secret logs in; a key removed
/// from it, a deleted SSM parameter and a new revocation each close that key's open tunnel.
#[test]
fn added_removed_and_revoked_keys_reach_the_bastion_without_a_restart() {
    require_loopback_only_netns();
    let dir = TestDir::new();
    let [alice, bob, carol, dave, erin] =
        ["alice", "bob", "carol", "dave", "erin"].map(|n| generate_key(dir.path(), n));
    let moto = Moto::start();
    let zone = moto.create_zone("example.com.");
    let eni = moto.create_eni("172.31.42.190", Some("52.95.110.2"));
    moto.put_secret(SECRET, &lines(&[&alice, &bob]));
    moto.put_secret(REVOKED, "# nobody revoked yet\n");
    // More parameters than one GetParametersByPath page (10) holds.
    for i in 0..10 {
        moto.put_parameter(&format!("{USERS}filler{i:02}"), "# no key\n", false);
    }
    moto.put_parameter(&format!("{USERS}carol"), &carol.public_line, true);
    moto.put_parameter(&format!("{USERS}dave"), &dave.public_line, false);
    let task = with_keys(Task::new(&moto, &zone, &eni, "task0101"), &dir, true, true);
    let mut rig = Rig::start(moto, task, dir);
    rig.sidecar.expect_event("published", READY);
    for (key, name) in [
        (&alice, "alice"),
        (&bob, "bob"),
        (&carol, "carol"),
        (&dave, "dave"),
    ] {
        assert!(rig.logs_in(key), "{name} cannot log in at start");
    }
    assert!(!rig.logs_in(&erin), "erin logs in before being added");
    let text = std::fs::read_to_string(rig.dir.join("authorized_keys")).expect("authorized_keys");
    assert!(
        text.contains("# ssm:/jumpbox/users/carol (version 1)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("# secretsmanager:{SECRET} (version ")),
        "{text}"
    );
    let health = rig.health();
    health.expect_success("healthcheck with both running");
    assert!(health.stdout.contains("ok published") && health.stdout.contains("keys current"));

    // (a) A key added to the secret logs in.
    rig.moto.put_secret(SECRET, &lines(&[&alice, &bob, &erin]));
    let added = rig.login_becomes(&erin, true, "erin added to the secret");
    eprintln!(
        "(a) key added to the secret -> first login: {} ms",
        added.as_millis()
    );

    // (b) A key removed from the secret: its open tunnel closes.
    let (_bob_ssh, mut bob_stream) = rig.tunnel(&bob, "bob");
    rig.moto.put_secret(SECRET, &lines(&[&alice, &erin]));
    let removed = Instant::now();
    let closed = closed_after(&mut bob_stream, removed, "bob removed from the secret");
    eprintln!(
        "(b) key removed from the secret -> tunnel closed: {} ms",
        closed.as_millis()
    );
    assert!(!rig.logs_in(&bob), "bob still logs in after his removal");

    // (c) A deleted SSM parameter: that person's tunnel closes.
    let (_carol_ssh, mut carol_stream) = rig.tunnel(&carol, "carol");
    rig.moto.delete_parameter(&format!("{USERS}carol"));
    let deleted = Instant::now();
    let closed = closed_after(&mut carol_stream, deleted, "carol's parameter deleted");
    eprintln!(
        "(c) SSM parameter deleted -> tunnel closed: {} ms",
        closed.as_millis()
    );

    // (d) A revocation added to the revocation secret: that key's tunnel closes.
    let (_dave_ssh, mut dave_stream) = rig.tunnel(&dave, "dave");
    rig.moto.put_secret(REVOKED, &lines(&[&dave]));
    let revoked = Instant::now();
    let closed = closed_after(&mut dave_stream, revoked, "dave revoked");
    eprintln!(
        "(d) revocation added -> tunnel closed: {} ms",
        closed.as_millis()
    );
    assert!(
        !rig.logs_in(&dave),
        "dave still logs in after his revocation"
    );
    assert!(rig.logs_in(&alice), "alice lost access along the way");
    let revocations = rig.bastion.events_named("access_revoked");
    assert!(revocations.len() >= 3, "{revocations:?}");
}

/// Keys-only mode: a secret that cannot be read keeps the last good keys (health says `keys
/// stale`), its return is picked up, and an empty secret lets nobody in.
#[test]
fn a_failing_source_keeps_the_last_keys_and_an_empty_one_locks_everyone_out() {
    require_loopback_only_netns();
    let dir = TestDir::new();
    let [alice, erin] = ["alice", "erin"].map(|n| generate_key(dir.path(), n));
    let moto = Moto::start();
    moto.put_secret(SECRET, &lines(&[&alice]));
    let eni = Eni {
        id: "eni-unused".into(),
        mac: "0a:00:00:00:00:01".into(),
        private: "10.0.0.5".into(),
        public: None,
    };
    let task = Task::new(&moto, "", &eni, "task0102")
        .without("DNS_HOSTED_ZONE_ID")
        .without("DNS_RECORD_NAME");
    let task = with_keys(task, &dir, false, false);
    let mut rig = Rig::start(moto, task, dir);
    assert!(rig.logs_in(&alice), "alice cannot log in at start");
    let revoked = std::fs::read_to_string(rig.dir.join("revoked_keys")).expect("revoked_keys");
    assert!(revoked.lines().all(|l| l.starts_with('#')), "{revoked}");
    let health = rig.health();
    health.expect_success("keys-only healthcheck");
    assert!(
        health.stdout.contains("ok keys current"),
        "{}",
        health.stdout
    );

    // (e) The secret deleted: the last good keys stay, the health line says stale.
    rig.moto.delete_secret(SECRET);
    let deleted = Instant::now();
    let failed = rig.sidecar.expect_event("keys_sync_failed", within());
    eprintln!(
        "(e) secret deleted -> keys_sync_failed logged: {} ms",
        deleted.elapsed().as_millis()
    );
    assert_eq!(failed["code"], "ResourceNotFoundException", "{failed}");
    assert!(
        failed["hint"].as_str().unwrap_or("").contains("not found"),
        "{failed}"
    );
    let health = rig.health();
    health.expect_success("healthcheck with stale keys");
    assert!(
        health.stdout.contains("keys stale since"),
        "{}",
        health.stdout
    );
    assert!(
        rig.logs_in(&alice),
        "alice lost access while the secret was unreadable"
    );
    std::thread::sleep(Duration::from_secs(5));
    let repeats = rig
        .sidecar
        .events()
        .iter()
        .filter(|e| e["event"] == "keys_sync_failed")
        .count();
    assert_eq!(repeats, 1, "one failure, logged once");

    // The secret back (with a new key): picked up.
    rig.moto.put_secret(SECRET, &lines(&[&alice, &erin]));
    let back = rig.login_becomes(&erin, true, "secret recreated with erin");
    eprintln!(
        "(e) secret recreated -> new key logs in: {} ms",
        back.as_millis()
    );
    rig.sidecar.expect_event("keys_sync_recovered", within());
    assert!(rig.health().stdout.contains("keys current"));

    // (f) An empty secret: nobody logs in, open tunnels close.
    let (_ssh, mut stream) = rig.tunnel(&alice, "alice");
    rig.moto.put_secret(SECRET, "# nobody may log in for now\n");
    let emptied = Instant::now();
    let closed = closed_after(&mut stream, emptied, "secret emptied");
    eprintln!(
        "(f) secret emptied -> tunnel closed: {} ms",
        closed.as_millis()
    );
    rig.sidecar.expect_event("keys_empty", within());
    assert!(
        !rig.logs_in(&alice) && !rig.logs_in(&erin),
        "someone still logs in"
    );
}
