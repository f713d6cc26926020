//! Harness for the dns-sidecar end-to-end tests: a `moto` server (the Route 53 / EC2 /
//! Secrets Manager / SSM emulator, seeded and inspected through boto3 by
//! `scripts/moto_seed.py`), the ECS task-metadata and container-credentials endpoints (they
//! have no emulator: `scripts/task_endpoints.py`, which also serves the tests' echo URL), and
//! the `dns-sidecar` process itself with a clean environment, so nothing from the developer's
//! shell (AWS profiles, real endpoints) can leak in. The seeding and the endpoints are the
//! Python ones `scripts/local-task` uses, driven here as subprocesses.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::{
    find_binary, free_local_port, parse_events, poll_until, run_command, workspace_root,
    ChildGuard, Finished, Input,
};

/// How long moto gets to start answering.
pub const MOTO_START: Duration = Duration::from_secs(60);

/// The `dns-sidecar` binary: `DNS_SIDECAR_BIN`, else the newest of target/{debug,release}.
pub fn sidecar_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| find_binary("dns-sidecar", "DNS_SIDECAR_BIN"))
        .clone()
}

/// The project's Python (with boto3 and moto), installed by scripts/install-test-deps.sh.
pub fn venv_bin(tool: &str) -> PathBuf {
    let path = workspace_root().join(".local/venv/bin").join(tool);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/install-test-deps.sh (it installs moto into .local/venv)",
        path.display()
    );
    path
}

/// A moto server on 127.0.0.1, killed when dropped.
pub struct Moto {
    _proc: ChildGuard,
    pub endpoint: String,
}

/// A network interface seeded in moto.
#[derive(Debug, Clone)]
pub struct Eni {
    pub id: String,
    pub mac: String,
    pub private: String,
    pub public: Option<String>,
}

impl Moto {
    pub fn start() -> Moto {
        // moto_server has no "port 0": take a free port, retry on a clash.
        for _ in 0..5 {
            let port = free_local_port();
            let mut cmd = Command::new(venv_bin("moto_server"));
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            let mut proc = ChildGuard::spawn(&mut cmd, "moto_server", Input::Null);
            let endpoint = format!("http://127.0.0.1:{port}");
            let up = poll_until(MOTO_START, Duration::from_millis(100), || {
                if proc.try_status().is_some() {
                    return Some(false);
                }
                http_get(&format!("127.0.0.1:{port}"), "/moto-api/").map(|_| true)
            });
            match up {
                Some(true) => {
                    return Moto {
                        _proc: proc,
                        endpoint,
                    }
                }
                Some(false) => continue,
                None => panic!(
                    "moto_server did not answer on {endpoint} within {MOTO_START:?}; stderr:\n{}",
                    proc.stderr().text()
                ),
            }
        }
        panic!("moto_server could not get a free port in 5 tries")
    }

    /// Run scripts/moto_seed.py with `args`; its JSON output.
    pub fn fixture(&self, args: &[&str]) -> Value {
        let script = workspace_root().join("scripts/moto_seed.py");
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg(script)
            .args(args)
            .args(["--endpoint", &self.endpoint]);
        cmd.env_remove("AWS_PROFILE")
            .env_remove("AWS_CA_BUNDLE")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        let out = run_command(&mut cmd, "moto_seed.py", Duration::from_secs(60));
        out.expect_success(&format!("moto_seed.py {args:?}"));
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("moto_seed.py printed no JSON ({e}): {}", out.stdout))
    }

    pub fn create_zone(&self, name: &str) -> String {
        self.fixture(&["zone", "--name", name])["zone"]
            .as_str()
            .expect("zone id")
            .to_string()
    }

    pub fn create_eni(&self, private: &str, public: Option<&str>) -> Eni {
        let mut args = vec!["eni", "--private", private];
        if let Some(p) = public {
            args.extend(["--public", p]);
        }
        let v = self.fixture(&args);
        Eni {
            id: v["eni"].as_str().expect("eni").to_string(),
            mac: v["mac"].as_str().expect("mac").to_string(),
            private: v["private"].as_str().expect("private").to_string(),
            public: v["public"].as_str().map(str::to_string),
        }
    }

    /// The zone's A and AAAA record sets: `{Name, Type, TTL, SetIdentifier, Values}`.
    pub fn records(&self, zone: &str) -> Vec<Value> {
        match self.fixture(&["records", "--zone", zone]) {
            Value::Array(a) => a,
            other => panic!("records: not a list: {other}"),
        }
    }

    /// Create secret `name` holding `value`, or give it a new `AWSCURRENT` version; its id.
    pub fn put_secret(&self, name: &str, value: &str) -> String {
        self.fixture(&["secret", "--name", name, "--value", value])["version"]
            .as_str()
            .expect("secret version")
            .to_string()
    }

    /// Delete secret `name` at once (`ForceDeleteWithoutRecovery`).
    pub fn delete_secret(&self, name: &str) {
        self.fixture(&["secret-delete", "--name", name]);
    }

    /// Put SSM parameter `name` (SecureString with `secure`), overwriting; its version.
    pub fn put_parameter(&self, name: &str, value: &str, secure: bool) -> i64 {
        let mut args = vec!["param", "--name", name, "--value", value];
        if secure {
            args.push("--secure");
        }
        self.fixture(&args)["version"]
            .as_i64()
            .expect("parameter version")
    }

    pub fn delete_parameter(&self, name: &str) {
        self.fixture(&["param-delete", "--name", name]);
    }

    /// A task running in ECS cluster `cluster` (created if missing); its id.
    pub fn ecs_task(&self, cluster: &str) -> String {
        self.fixture(&["ecs-task", "--cluster", cluster])["task_id"]
            .as_str()
            .expect("task id")
            .to_string()
    }

    /// ECS StopTask: `task` no longer runs in `cluster`.
    pub fn stop_ecs_task(&self, cluster: &str, task: &str) {
        self.fixture(&["ecs-task-stop", "--cluster", cluster, "--task", task]);
    }

    /// Someone else's change: UPSERT `name` A `value` (with an optional set identifier).
    pub fn upsert(&self, zone: &str, name: &str, value: &str, set_id: Option<&str>) {
        let mut args = vec!["upsert", "--zone", zone, "--name", name, "--value", value];
        if let Some(s) = set_id {
            args.extend(["--set-id", s]);
        }
        self.fixture(&args);
    }
}

/// How long the task endpoints (a Python subprocess) get to print their address.
pub const ENDPOINTS_START: Duration = Duration::from_secs(30);

/// One plain HTTP/1.0 request over a fresh connection: the status and body.
fn http(host: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split(' ').nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// One plain HTTP GET over a fresh connection; the body when the status is 2xx.
/// The JSON line a test server prints once it listens (its addresses); a panic naming `what`,
/// its exit and its output when none comes within `ENDPOINTS_START`.
pub(crate) fn ready_line(proc: &mut ChildGuard, what: &str) -> Value {
    let printed = proc
        .stdout()
        .wait_until(ENDPOINTS_START, |bytes, eof| eof || bytes.contains(&b'\n'));
    let line = proc.stdout().text();
    serde_json::from_str(line.lines().next().unwrap_or(""))
        .ok()
        .filter(|_| printed)
        .unwrap_or_else(|| {
            panic!(
                "{what} printed no address within {ENDPOINTS_START:?} (exit: {:?}); \
                 stdout: {line}; stderr:\n{}",
                proc.try_status(),
                proc.stderr().text()
            )
        })
}

fn http_get(host: &str, path: &str) -> Option<String> {
    let (status, body) = http(host, "GET", path, "")?;
    (200..300).contains(&status).then_some(body)
}

/// The ECS task-metadata and container-credentials endpoints of one task:
/// `scripts/task_endpoints.py serve` (the implementation local-task uses too), run as a
/// subprocess and killed when dropped. Its test routes answer any other path the test sets
/// (an echo URL, a changed task document) and count the requests per path.
pub struct Endpoints {
    proc: ChildGuard,
    /// `127.0.0.1:port`.
    host: String,
    pub metadata_uri: String,
    pub credentials_uri: String,
}

impl Endpoints {
    /// The endpoints of a task of cluster `jumpbox` whose network interface is `eni`.
    pub fn start(eni: &Eni, task_id: &str, region: &str) -> Endpoints {
        Endpoints::start_in(eni, task_id, region, "jumpbox")
    }

    /// The endpoints of a task of `cluster` whose network interface is `eni`.
    pub fn start_in(eni: &Eni, task_id: &str, region: &str, cluster: &str) -> Endpoints {
        let script = workspace_root().join("scripts/task_endpoints.py");
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg(script).args([
            "serve",
            "--task-id",
            task_id,
            "--private-ip",
            &eni.private,
            "--mac",
            &eni.mac,
            "--region",
            region,
            "--cluster",
            cluster,
        ]);
        let mut proc = ChildGuard::spawn(&mut cmd, "task_endpoints.py", Input::Null);
        let ready = ready_line(&mut proc, "task_endpoints.py");
        let field = |name: &str| ready[name].as_str().unwrap_or_default().to_string();
        Endpoints {
            host: field("base").trim_start_matches("http://").to_string(),
            metadata_uri: field("metadata_uri"),
            credentials_uri: field("credentials_uri"),
            proc,
        }
    }

    /// From now on, answer GET `path` with `status` and `body` (text/plain).
    pub fn route(&self, path: &str, status: u16, body: impl Into<String>) {
        let answer = serde_json::json!({"status": status, "body": body.into()}).to_string();
        let put = http(
            &self.host,
            "PUT",
            &format!("/_test/route?path={path}"),
            &answer,
        );
        assert!(
            matches!(put, Some((200, _))),
            "setting the test route {path}: {put:?}; stderr:\n{}",
            self.proc.stderr().text()
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host)
    }

    /// How many requests asked for `path`.
    pub fn hits(&self, path: &str) -> usize {
        let answer = http_get(&self.host, &format!("/_test/hits?path={path}"))
            .unwrap_or_else(|| panic!("asking the task endpoints for the hits of {path}"));
        let v: Value = serde_json::from_str(&answer).expect("hits answer is JSON");
        v["hits"].as_u64().expect("hits count") as usize
    }

    /// The path of the task metadata document (`${ECS_CONTAINER_METADATA_URI_V4}/task`).
    pub fn task_path(&self) -> String {
        let base = self.url("");
        format!("{}/task", self.metadata_uri.trim_start_matches(&base))
    }

    /// The task metadata document the endpoints serve now.
    pub fn task_metadata(&self) -> Value {
        let body = http_get(&self.host, &self.task_path())
            .unwrap_or_else(|| panic!("GET {} failed", self.task_path()));
        serde_json::from_str(&body).expect("the task metadata is JSON")
    }
}

/// One simulated task: the metadata and credentials it sees, its sidecar's environment.
pub struct Task {
    /// The task's metadata and credentials endpoints (also serving the test's echo URL).
    pub http: Endpoints,
    pub task_id: String,
    pub env: BTreeMap<String, String>,
}

impl Task {
    /// A task of cluster `jumpbox` whose metadata describes `eni`, talking to `moto`,
    /// publishing in `zone`.
    pub fn new(moto: &Moto, zone: &str, eni: &Eni, task_id: &str) -> Task {
        Task::in_cluster(moto, zone, eni, task_id, "jumpbox")
    }

    /// The same, for a task of ECS cluster `cluster`.
    pub fn in_cluster(moto: &Moto, zone: &str, eni: &Eni, task_id: &str, cluster: &str) -> Task {
        let http = Endpoints::start_in(eni, task_id, "eu-west-1", cluster);
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                http.credentials_uri.clone(),
            ),
            ("ECS_CONTAINER_METADATA_URI_V4", http.metadata_uri.clone()),
            ("DNS_HOSTED_ZONE_ID", zone.to_string()),
            ("DNS_RECORD_NAME", "jumpbox.{region}.example.com".into()),
            (
                "DNS_HEALTH_LISTEN",
                format!("127.0.0.1:{}", free_local_port()),
            ),
            ("DNS_LOG_FORMAT", "json".into()),
        ] {
            env.insert(k.to_string(), v);
        }
        Task {
            http,
            task_id: task_id.to_string(),
            env,
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Task {
        self.env.insert(key.to_string(), value.into());
        self
    }

    pub fn without(mut self, key: &str) -> Task {
        self.env.remove(key);
        self
    }

    /// The sidecar command with exactly this task's environment (plus PATH).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(sidecar_bin());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(&self.env)
            .args(args);
        cmd
    }

    pub fn start(&self) -> Sidecar {
        let mut cmd = self.command(&[]);
        Sidecar {
            proc: ChildGuard::spawn(
                &mut cmd,
                &format!("dns-sidecar {}", self.task_id),
                Input::Null,
            ),
        }
    }

    /// Run to completion (a failing or dry run) within `timeout`.
    pub fn run(&self, args: &[&str], timeout: Duration) -> Finished {
        run_command(&mut self.command(args), "dns-sidecar", timeout)
    }

    pub fn healthcheck(&self) -> Finished {
        self.run(&["healthcheck", "--timeout", "2s"], Duration::from_secs(10))
    }
}

/// A running sidecar.
pub struct Sidecar {
    pub proc: ChildGuard,
}

impl Sidecar {
    pub fn events(&self) -> Vec<Value> {
        parse_events(&self.proc.stderr().text())
    }

    /// The first event named `name`, waiting up to `timeout`; panics with the log if none.
    pub fn expect_event(&mut self, name: &str, timeout: Duration) -> Value {
        let found = poll_until(timeout, Duration::from_millis(20), || {
            self.events().into_iter().find(|e| e["event"] == name)
        });
        found.unwrap_or_else(|| {
            panic!(
                "dns-sidecar logged no `{name}` event within {timeout:?} (exit: {:?}); stderr:\n{}",
                self.proc.try_status(),
                self.proc.stderr().text()
            )
        })
    }
}

/// A slow Route 53: `tests/peers/slow_route53.py`, a proxy in front of moto that answers
/// GetChange with PENDING for its first seconds (moto answers INSYNC at once) and forwards
/// everything else. Killed when dropped.
pub struct SlowRoute53 {
    _proc: ChildGuard,
    pub endpoint: String,
}

impl SlowRoute53 {
    /// GetChange is PENDING for `pending` from now, then moto's answer.
    pub fn start(moto: &Moto, pending: Duration) -> SlowRoute53 {
        let script = workspace_root().join("tests/peers/slow_route53.py");
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg(script)
            .arg(&moto.endpoint)
            .arg(pending.as_secs_f64().to_string());
        let mut proc = ChildGuard::spawn(&mut cmd, "slow_route53.py", Input::Null);
        let ready = ready_line(&mut proc, "slow_route53.py");
        SlowRoute53 {
            endpoint: ready["endpoint"].as_str().unwrap_or_default().to_string(),
            _proc: proc,
        }
    }

    /// How many GetChange requests came, and how many were answered PENDING.
    pub fn get_changes(&self) -> (u64, u64) {
        let host = self.endpoint.trim_start_matches("http://");
        let answer = http_get(host, "/_test/hits").expect("asking slow_route53.py for its hits");
        let v: Value = serde_json::from_str(&answer).expect("hits answer is JSON");
        (
            v["get_change"].as_u64().unwrap_or(0),
            v["pending"].as_u64().unwrap_or(0),
        )
    }
}
