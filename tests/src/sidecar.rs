//! Harness for the dns-sidecar end-to-end tests: a `moto` server (the Route 53 / EC2
//! emulator, seeded and inspected through boto3 by `tests/moto_fixture.py`), a small HTTP test
//! server standing in for the ECS task-metadata, container-credentials and echo endpoints
//! (they have no emulator), and the `dns-sidecar` process itself with a clean environment,
//! so nothing from the developer's shell (AWS profiles, real endpoints) can leak in.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
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

    /// Run tests/moto_fixture.py with `args`; its JSON output.
    pub fn fixture(&self, args: &[&str]) -> Value {
        let script = workspace_root().join("tests/moto_fixture.py");
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg(script)
            .args(args)
            .args(["--endpoint", &self.endpoint]);
        cmd.env_remove("AWS_PROFILE")
            .env_remove("AWS_CA_BUNDLE")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        let out = run_command(&mut cmd, "moto_fixture.py", Duration::from_secs(60));
        out.expect_success(&format!("moto_fixture.py {args:?}"));
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("moto_fixture.py printed no JSON ({e}): {}", out.stdout))
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

    /// Someone else's change: UPSERT `name` A `value` (with an optional set identifier).
    pub fn upsert(&self, zone: &str, name: &str, value: &str, set_id: Option<&str>) {
        let mut args = vec!["upsert", "--zone", zone, "--name", name, "--value", value];
        if let Some(s) = set_id {
            args.extend(["--set-id", s]);
        }
        self.fixture(&args);
    }
}

/// One plain HTTP GET over a fresh connection; the body when the status is 2xx.
fn http_get(host: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let ok = buf.split(' ').nth(1).is_some_and(|c| c.starts_with('2'));
    ok.then(|| {
        buf.split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default()
    })
}

type Routes = Arc<Mutex<HashMap<String, (u16, String)>>>;

/// A tiny HTTP/1.1 server on 127.0.0.1 (port 0) answering GETs from a route table the test
/// can change at any time; unknown paths get 404. Stops when dropped.
pub struct TestHttp {
    addr: SocketAddr,
    routes: Routes,
    hits: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl TestHttp {
    pub fn start() -> TestHttp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the test HTTP server");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("test HTTP address");
        let routes: Routes = Arc::default();
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, h, st) = (routes.clone(), hits.clone(), stop.clone());
        thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (r, h) = (r.clone(), h.clone());
                        thread::spawn(move || serve_one(conn, &r, &h));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TestHttp {
            addr,
            routes,
            hits,
            stop,
        }
    }

    pub fn route(&self, path: &str, status: u16, body: impl Into<String>) {
        self.routes
            .lock()
            .expect("routes lock")
            .insert(path.to_string(), (status, body.into()));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests asked for `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("hits lock")
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

impl Drop for TestHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_one(mut conn: TcpStream, routes: &Routes, hits: &Mutex<Vec<String>>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
    hits.lock().expect("hits lock").push(path.clone());
    let (status, body) = routes
        .lock()
        .expect("routes lock")
        .get(&path)
        .cloned()
        .unwrap_or((404, "not found".into()));
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: \
         close\r\n\r\n{body}",
        body.len()
    );
}

/// The documented Fargate task metadata (`/task`), with this test's task id, region, zone and
/// network interface filled in.
pub fn task_metadata(eni: &Eni, task_id: &str, region: &str) -> String {
    let path = workspace_root().join("dns-sidecar/tests/fixtures/ecs-task-metadata-v4-task.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut doc: Value = serde_json::from_str(&text).expect("fixture is JSON");
    doc["TaskARN"] = format!("arn:aws:ecs:{region}:123456789012:task/jumpbox/{task_id}").into();
    doc["Cluster"] = format!("arn:aws:ecs:{region}:123456789012:cluster/jumpbox").into();
    doc["AvailabilityZone"] = format!("{region}a").into();
    let net = &mut doc["Containers"][0]["Networks"][0];
    net["IPv4Addresses"] = serde_json::json!([eni.private]);
    net["MACAddress"] = eni.mac.clone().into();
    doc.to_string()
}

/// A container-credentials answer (the documented shape), valid for an hour.
pub fn credentials_json() -> String {
    serde_json::json!({
        "AccessKeyId": "AKIATESTSIDECAR",
        "SecretAccessKey": "test-secret",
        "Token": "test-session-token",
        "Expiration": "2099-01-01T00:00:00Z",
    })
    .to_string()
}

/// One simulated task: the metadata and credentials it sees, its sidecar's environment.
pub struct Task {
    pub http: TestHttp,
    pub task_id: String,
    pub env: BTreeMap<String, String>,
}

impl Task {
    /// A task whose metadata describes `eni`, talking to `moto`, publishing in `zone`.
    pub fn new(moto: &Moto, zone: &str, eni: &Eni, task_id: &str) -> Task {
        let http = TestHttp::start();
        http.route(
            "/v4/meta/task",
            200,
            task_metadata(eni, task_id, "eu-west-1"),
        );
        http.route("/creds", 200, credentials_json());
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", http.url("/creds")),
            ("ECS_CONTAINER_METADATA_URI_V4", http.url("/v4/meta")),
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
