//! `scripts/local-task` end to end: the whole ECS task on one machine, driven by the stock
//! clients a user would type.
//!
//! The test starts its own moto server (so it can look at Route 53 after the task is gone),
//! runs `scripts/local-task --moto-url ...` with the binaries from `BASTION_BIN` and
//! `DNS_SIDECAR_BIN`, and waits for its `READY {json}` line. Then, against real peers only:
//! the sidecar's record is in moto and holds the Elastic IP that moto's EC2 shows on the task's
//! ENI; `psql` through `ssh -N -L` (the stock OpenSSH client, via haproxy with PROXY v2, checking
//! the host key against the printed known_hosts file) runs a query on the real PostgreSQL;
//! `redis-cli` through a second tunnel gets `PONG` from the real Redis; the bastion's audit log
//! shows both tunnels and haproxy as the PROXY sender. Finally SIGTERM to local-task: it exits 0
//! within a bound after stopping in ECS order, the sidecar reports `deleted`, the record is gone
//! from moto, no process of the task's process groups remains and its directory is removed.
//!
//! The order of the task definition's containers (keys, then bastion, then dns-sidecar, by
//! `dependsOn ... HEALTHY`) is read from their JSON logs' timestamps: the keys are written
//! before the bastion listens, the record is sent to Route 53 only after the bastion listens,
//! and at SIGTERM the record is deleted before the bastion closes its listener.
//!
//! A second test checks that an unfilled `${...}` placeholder stops local-task before it starts
//! anything.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::*;
use serde_json::Value;

/// From spawn to the `READY` line: initdb, moto seeding, the sidecar's publish (INSYNC wait)
/// and the bastion's start; a few seconds normally, generous for a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// From SIGTERM to exit: a few seconds normally; the task definition's stopTimeouts (bastion
/// 30 s, sidecar 60 s) bound it in the worst case, plus the helpers.
const STOP_TIMEOUT: Duration = Duration::from_secs(150);
/// The Elastic IP local-task allocates in moto (moto's block for fake public addresses; a
/// documentation range would be refused by the sidecar as not global).
const PUBLIC_IP: &str = "54.214.7.77";

fn local_task_script() -> PathBuf {
    workspace_root().join("scripts").join("local-task")
}

// ---------------------------------------------------------------------------------------------
// moto over plain HTTP

/// A moto server of the test's own on 127.0.0.1 (the harness's; killed when dropped), read
/// through its REST APIs directly, independently of the scripts under test.
struct Moto {
    _server: e2e::sidecar::Moto,
    addr: SocketAddr,
}

impl Moto {
    fn start() -> Moto {
        let server = e2e::sidecar::Moto::start();
        let addr = server
            .endpoint
            .trim_start_matches("http://")
            .parse()
            .expect("the harness's moto endpoint is http://ip:port");
        Moto {
            _server: server,
            addr,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A GET against one of moto's AWS services. moto needs no valid signature, only an
    /// Authorization header whose credential scope names the service it should route to (and,
    /// for a regional service, the region).
    fn get(&mut self, service: &str, region: &str, path: &str) -> String {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=test/20200101/{region}/{service}/aws4_request, \
             SignedHeaders=host, Signature=0"
        );
        match http_get(self.addr, path, Some(&auth)) {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!("moto GET {path}: HTTP {status}: {body}"),
            Err(e) => panic!("moto GET {path}: {e}"),
        }
    }

    /// The record sets of a hosted zone, from the Route 53 REST API.
    fn record_sets(&mut self, zone_id: &str) -> Vec<RecordSet> {
        let xml = self.get(
            "route53",
            "us-east-1",
            &format!("/2013-04-01/hostedzone/{zone_id}/rrset"),
        );
        assert!(
            xml.contains("<ListResourceRecordSetsResponse"),
            "not a ListResourceRecordSets answer: {xml}"
        );
        assert!(
            !xml.contains("<IsTruncated>true</IsTruncated>"),
            "the test's zone should fit in one page: {xml}"
        );
        xml.split("<ResourceRecordSet>")
            .skip(1)
            .map(|chunk| {
                let chunk = chunk
                    .split("</ResourceRecordSet>")
                    .next()
                    .unwrap_or_default();
                RecordSet {
                    name: tag(chunk, "Name").unwrap_or_default().to_string(),
                    kind: tag(chunk, "Type").unwrap_or_default().to_string(),
                    values: tags(chunk, "Value")
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                }
            })
            .collect()
    }

    /// The public IP moto's EC2 shows on a network interface (`Association.PublicIp`).
    fn eni_public_ip(&mut self, region: &str, eni_id: &str) -> Option<String> {
        let xml = self.get(
            "ec2",
            region,
            &format!(
                "/?Action=DescribeNetworkInterfaces&Version=2016-11-15&NetworkInterfaceId.1=\
                 {eni_id}"
            ),
        );
        let association = tag(&xml, "association")?;
        tag(association, "publicIp").map(str::to_string)
    }
}

#[derive(Debug)]
struct RecordSet {
    name: String,
    kind: String,
    values: Vec<String>,
}

/// The text of the first `<name>...</name>` element (no nesting of the same name).
fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(&xml[start..end])
}

fn tags<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let close = format!("</{name}>");
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(value) = tag(rest, name) {
        found.push(value);
        let consumed = rest
            .find(&close)
            .map(|i| i + close.len())
            .unwrap_or(rest.len());
        rest = &rest[consumed..];
    }
    found
}

/// A bounded HTTP/1.0 GET (the server closes the connection, so the body is the rest).
fn http_get(
    addr: SocketAddr,
    path: &str,
    authorization: Option<&str>,
) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    if let Some(auth) = authorization {
        request.push_str(&format!("Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

// ---------------------------------------------------------------------------------------------
// Processes

/// local-task under test. Dropped while it still runs (a failed assertion), it first gets
/// SIGTERM and a while to stop its children and remove its directory; then the process groups
/// it reported (its children lead their own groups) are killed if anything is left, and the
/// ChildGuard kills local-task itself.
struct LocalTask {
    proc: ChildGuard,
    groups: Vec<u32>,
}

impl Drop for LocalTask {
    fn drop(&mut self) {
        if self.proc.try_status().is_none() {
            self.proc.signal("TERM");
            self.proc.wait_timeout(Duration::from_secs(60));
        }
        for pgid in &self.groups {
            if !processes_in_group(*pgid).is_empty() {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pgid}")])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// `(pid, command line)` of every process whose process group is `pgid`.
fn processes_in_group(pgid: u32) -> Vec<(u32, String)> {
    all_processes()
        .into_iter()
        .filter(|p| p.pgid == pgid)
        .map(|p| (p.pid, p.cmdline))
        .collect()
}

struct ProcInfo {
    pid: u32,
    pgid: u32,
    cmdline: String,
}

fn all_processes() -> Vec<ProcInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
            let after = &stat[stat.rfind(')')? + 1..];
            let mut fields = after.split_whitespace();
            let state = fields.next()?;
            if state == "Z" || state == "X" {
                return None; // a zombie is gone, only not yet reaped by its parent
            }
            let pgid = fields.nth(1)?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
                .unwrap_or_default();
            Some(ProcInfo { pid, pgid, cmdline })
        })
        .collect()
}

/// The first line of `text` that starts with `prefix`, with the prefix removed, as JSON.
fn json_line(text: &str, prefix: &str) -> Option<Value> {
    text.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .and_then(|rest| serde_json::from_str(rest.trim()).ok())
}

/// The JSON events each container logged, from local-task's standard error (it copies every
/// container line there as `[name] line`), as `(container, event)` in output order.
fn container_events(stderr: &str) -> Vec<(String, Value)> {
    stderr
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix('[')?;
            let (name, json) = rest.split_once("] ")?;
            let value: Value = serde_json::from_str(json.trim()).ok()?;
            value.is_object().then(|| (name.to_string(), value))
        })
        .collect()
}

/// An RFC 3339 UTC timestamp (`2026-01-01T10:00:00.123456Z`, the binaries' JSON logs) as
/// seconds since the start of its day, with the date for comparison.
fn timestamp(event: &Value) -> (String, f64) {
    let text = event["timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("event without a timestamp: {event}"));
    let (date, time) = text
        .trim_end_matches('Z')
        .split_once('T')
        .unwrap_or_else(|| panic!("not an RFC 3339 timestamp: {text}"));
    let seconds = time
        .split(':')
        .map(|part| {
            part.parse::<f64>()
                .unwrap_or_else(|_| panic!("bad time in {text}"))
        })
        .fold(0.0, |acc, part| acc * 60.0 + part);
    (date.to_string(), seconds)
}

/// The timestamp of the first (or, with `last`, the last) `event` that `container` logged.
fn event_time(
    events: &[(String, Value)],
    container: &str,
    event: &str,
    last: bool,
) -> (String, f64) {
    let mut found = events
        .iter()
        .filter(|(name, e)| name == container && e["event"] == event);
    let hit = if last {
        found.next_back()
    } else {
        found.next()
    };
    let (_, value) = hit.unwrap_or_else(|| {
        panic!(
            "{container} logged no `{event}`; its events: {:?}",
            events
                .iter()
                .filter(|(n, _)| n == container)
                .map(|(_, e)| e["event"].clone())
                .collect::<Vec<_>>()
        )
    });
    timestamp(value)
}

/// ECS order, from the containers' own logs: `earlier` happened before `later`.
fn assert_before(
    events: &[(String, Value)],
    earlier: (&str, &str, bool),
    later: (&str, &str, bool),
    why: &str,
) {
    let a = event_time(events, earlier.0, earlier.1, earlier.2);
    let b = event_time(events, later.0, later.1, later.2);
    assert!(
        a < b,
        "{why}: {} `{}` at {a:?} is not before {} `{}` at {b:?}",
        earlier.0,
        earlier.1,
        later.0,
        later.1
    );
}

fn str_field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("READY has no string `{name}`: {value}"))
}

fn port_field(value: &Value, name: &str) -> u16 {
    value[name]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("READY has no port `{name}`: {value}"))
}

/// An `ssh -N -L 127.0.0.1:<free>:127.0.0.1:<port>` through haproxy, host key checked against
/// the known_hosts file local-task wrote; returns once the forward accepts connections.
fn tunnel(
    key: &Path,
    known_hosts: &str,
    haproxy_port: u16,
    port: u16,
    name: &str,
) -> (SshProcess, u16) {
    let local = free_local_port();
    let mut ssh = Ssh::new(key, Ipv4Addr::LOCALHOST.into(), haproxy_port)
        .option("StrictHostKeyChecking", "yes")
        .option("UserKnownHostsFile", known_hosts)
        .arg("-N")
        .forward(&format!("127.0.0.1:{local}"), &format!("127.0.0.1:{port}"))
        .spawn(name, Input::Null);
    // The probe connection reaches the database and is closed at once: harmless.
    drop(ssh.connect_tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, local)), SSH_TIMEOUT));
    (ssh, local)
}

// ---------------------------------------------------------------------------------------------

#[test]
fn local_task_serves_tunnels_publishes_the_record_and_cleans_up() {
    // The sidecar talks to AWS endpoints: only the loopback-only namespace guarantees that a
    // misconfiguration cannot reach the real ones.
    require_loopback_only_netns();
    require_ssh_tools();
    for tool in ["psql", "redis-cli", "redis-server", "haproxy", "setpriv"] {
        require_tool(tool);
    }
    let bastion = find_binary("bastion", "BASTION_BIN");
    let sidecar = find_binary("dns-sidecar", "DNS_SIDECAR_BIN");
    let mut moto = Moto::start();

    let started = Instant::now();
    let mut cmd = Command::new(local_task_script());
    cmd.arg("--moto-url")
        .arg(moto.url())
        .args(["--public-ip", PUBLIC_IP])
        .env("BASTION_BIN", &bastion)
        .env("DNS_SIDECAR_BIN", &sidecar)
        .current_dir(workspace_root());
    let mut local_task = LocalTask {
        proc: ChildGuard::spawn(&mut cmd, "scripts/local-task", Input::Null),
        groups: Vec::new(),
    };
    let task = &mut local_task.proc;
    // A complete line: `READY ` at a line start, and its newline.
    let got_ready = task.stdout().wait_until(READY_TIMEOUT, |bytes, eof| {
        let text = String::from_utf8_lossy(bytes);
        eof || text
            .split_inclusive('\n')
            .any(|l| l.starts_with("READY ") && l.ends_with('\n'))
    });
    let ready = json_line(&task.stdout().text(), "READY ").unwrap_or_else(|| {
        panic!(
            "local-task printed no READY line within {READY_TIMEOUT:?} (ready wait returned \
             {got_ready}, exit {:?}); stdout:\n{}\nstderr:\n{}",
            task.try_status(),
            task.stdout().text(),
            task.stderr().text()
        )
    });
    let ready_after = started.elapsed();
    let pids: Vec<u32> = ready["pids"]
        .as_object()
        .unwrap_or_else(|| panic!("READY has no `pids`: {ready}"))
        .values()
        .filter_map(Value::as_u64)
        .filter_map(|p| u32::try_from(p).ok())
        .collect();
    for name in [
        "keys",
        "bastion",
        "dns-sidecar",
        "haproxy",
        "postgres",
        "redis",
    ] {
        assert!(
            ready["pids"][name].is_u64(),
            "READY lacks the pid of {name}: {ready}"
        );
    }
    assert!(
        ready["pids"].get("moto").is_none(),
        "with --moto-url, local-task starts no moto of its own: {ready}"
    );
    local_task.groups = pids.clone();
    let task = &mut local_task.proc;
    let dir = str_field(&ready, "dir").to_string();
    let key = PathBuf::from(str_field(&ready, "key"));
    let known_hosts = str_field(&ready, "known_hosts").to_string();
    let haproxy_port = port_field(&ready, "haproxy_port");
    let pg_port = port_field(&ready, "postgres_port");
    let redis_port = port_field(&ready, "redis_port");
    let zone_id = str_field(&ready, "hosted_zone_id").to_string();
    let record_name = str_field(&ready, "record_name").to_string();
    let eni_id = str_field(&ready, "eni_id").to_string();
    assert_eq!(str_field(&ready, "public_ip"), PUBLIC_IP, "{ready}");
    assert_eq!(str_field(&ready, "published_ip"), PUBLIC_IP, "{ready}");
    for (name, command_port) in [("ssh_postgres", pg_port), ("ssh_redis", redis_port)] {
        let printed = str_field(&ready, name);
        for needle in [
            format!(":127.0.0.1:{command_port} "),
            format!("-p {haproxy_port} "),
            format!("-i {}", key.display()),
        ] {
            assert!(
                printed.contains(&needle),
                "{name} lacks {needle:?}: {printed}"
            );
        }
    }

    // The record: in moto, named as printed, holding the Elastic IP that moto's EC2 shows on
    // the task's ENI (the sidecar found it through metadata -> DescribeNetworkInterfaces).
    assert_eq!(
        moto.eni_public_ip(str_field(&ready, "region"), &eni_id)
            .as_deref(),
        Some(PUBLIC_IP),
        "moto's EC2 does not show the Elastic IP on {eni_id}"
    );
    let fqdn = format!("{}.", record_name.trim_end_matches('.'));
    let records = moto.record_sets(&zone_id);
    let ours: Vec<&RecordSet> = records.iter().filter(|r| r.name == fqdn).collect();
    assert!(
        ours.len() == 1 && ours[0].kind == "A" && ours[0].values == [PUBLIC_IP],
        "expected one A record {fqdn} -> {PUBLIC_IP} in moto; the zone holds {records:?}"
    );

    // psql and redis-cli through the jumpbox, as printed (stock ssh via haproxy).
    let (pg_tunnel, pg_local) =
        tunnel(&key, &known_hosts, haproxy_port, pg_port, "ssh -L postgres");
    let mut psql = Command::new(require_tool("psql"));
    psql.args([
        "-X",
        "-A",
        "-t",
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-d",
        "postgres",
    ])
    .args(["-p", &pg_local.to_string()])
    .args(["-c", "select 1, inet_server_port()"])
    .env("PGCONNECT_TIMEOUT", "10");
    let out = run_command(&mut psql, "psql", SSH_TIMEOUT);
    out.expect_success("psql through the jumpbox");
    assert_eq!(
        out.stdout.trim(),
        format!("1|{pg_port}"),
        "psql through the tunnel did not reach local-task's PostgreSQL"
    );

    let (redis_tunnel, redis_local) =
        tunnel(&key, &known_hosts, haproxy_port, redis_port, "ssh -L redis");
    let redis_cli = |args: &[&str]| {
        let mut cmd = Command::new(require_tool("redis-cli"));
        cmd.args(["-h", "127.0.0.1", "-p", &redis_local.to_string()])
            .args(args);
        let out = run_command(&mut cmd, "redis-cli", SSH_TIMEOUT);
        out.expect_success("redis-cli through the jumpbox");
        out.stdout
    };
    assert_eq!(redis_cli(&["ping"]).trim(), "PONG");
    assert!(
        redis_cli(&["info", "server"]).contains(&format!("tcp_port:{redis_port}")),
        "redis-cli through the tunnel did not reach local-task's Redis"
    );

    // The bastion's audit log: both tunnels, and connections that came through haproxy's
    // PROXY v2 header (a `sender` beside the client).
    let bastion_log = std::fs::read_to_string(Path::new(&dir).join("logs").join("bastion.log"))
        .expect("reading the bastion's log in local-task's directory");
    let events = parse_events(&bastion_log);
    for port in [pg_port, redis_port] {
        let resolved = format!("127.0.0.1:{port}");
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "tunnel_open" && e["resolved"] == resolved.as_str()),
            "no tunnel_open to {resolved} in the bastion's log:\n{bastion_log}"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "connection" && e["sender"].is_string()),
        "no connection with a PROXY sender in the bastion's log:\n{bastion_log}"
    );

    // Stop the way ECS does: SIGTERM.
    drop(pg_tunnel);
    drop(redis_tunnel);
    let stop_started = Instant::now();
    task.signal("TERM");
    let status = task.expect_exit(STOP_TIMEOUT, "local-task after SIGTERM");
    let stopped_after = stop_started.elapsed();
    let stdout = task.stdout().text();
    assert!(
        status.success(),
        "local-task exited with {status} after SIGTERM; stdout:\n{stdout}\nstderr:\n{}",
        task.stderr().text()
    );
    let stopped = json_line(&stdout, "STOPPED ")
        .unwrap_or_else(|| panic!("no STOPPED line; stdout:\n{stdout}"));
    assert_eq!(stopped["clean"], true, "{stopped}");
    assert_eq!(
        stopped["processes"]["dns-sidecar"]["final_event"], "deleted",
        "the sidecar did not delete its record: {stopped}"
    );
    for name in ["keys", "bastion", "dns-sidecar"] {
        assert_eq!(stopped["processes"][name]["exit"], 0, "{name}: {stopped}");
    }

    // Start and stop order, from the containers' logs (local-task copies them to stderr).
    let events = container_events(&task.stderr().text());
    assert_before(
        &events,
        ("keys", "keys_written", false),
        ("bastion", "listening", false),
        "the bastion must start once the keys container has written the keys (HEALTHY)",
    );
    assert_before(
        &events,
        ("bastion", "listening", false),
        ("dns-sidecar", "upsert", false),
        "the record must be sent to Route 53 only once the bastion listens",
    );
    assert_before(
        &events,
        ("dns-sidecar", "deleted", true),
        ("bastion", "shutdown", true),
        "at stop the record must be deleted before the bastion closes its listener",
    );
    assert_before(
        &events,
        ("bastion", "shutdown_complete", true),
        ("keys", "stopping", true),
        "the keys container must stop after the bastion",
    );

    let records = moto.record_sets(&zone_id);
    assert!(
        records.iter().all(|r| r.name != fqdn),
        "{fqdn} is still in moto after the task stopped: {records:?}"
    );
    let leftovers: Vec<(u32, String)> = pids
        .iter()
        .flat_map(|pgid| processes_in_group(*pgid))
        .chain(
            all_processes()
                .into_iter()
                .filter(|p| p.cmdline.contains(&dir))
                .map(|p| (p.pid, p.cmdline)),
        )
        .collect();
    assert!(
        leftovers.is_empty(),
        "processes of the task outlived local-task: {leftovers:?}"
    );
    assert!(
        !Path::new(&dir).exists(),
        "local-task left its directory {dir}"
    );
    eprintln!(
        "local-task: READY after {:.1}s, stopped {:.1}s after SIGTERM",
        ready_after.as_secs_f64(),
        stopped_after.as_secs_f64()
    );
}

/// A `${...}` placeholder local-task has no value for stops it before anything starts, with a
/// message naming the placeholder and the fix.
#[test]
fn an_unfilled_placeholder_is_an_error_before_anything_starts() {
    let dir = tempfile::Builder::new()
        .prefix("local-task-e2e-")
        .tempdir()
        .expect("creating a temporary directory");
    let source = workspace_root().join("ecs").join("task-definition.json");
    let text = std::fs::read_to_string(&source)
        .unwrap_or_else(|e| panic!("reading {}: {e}", source.display()));
    let mut definition: Value = serde_json::from_str(&text).expect("the task definition is JSON");
    let sidecar = definition["containerDefinitions"]
        .as_array_mut()
        .expect("containerDefinitions")
        .iter_mut()
        .find(|c| c["name"] == "dns-sidecar")
        .expect("a dns-sidecar container");
    sidecar["environment"]
        .as_array_mut()
        .expect("the sidecar's environment")
        .push(serde_json::json!({"name": "DNS_TTL", "value": "${NoSuchParameter}"}));
    let path = dir.path().join("task-definition.json");
    std::fs::write(&path, definition.to_string()).expect("writing the task definition");

    let mut cmd = Command::new(local_task_script());
    cmd.arg("--task-definition")
        .arg(&path)
        // Never contacted (nothing may start); a free port all the same.
        .arg("--moto-url")
        .arg(format!("http://127.0.0.1:{}", free_local_port()))
        .current_dir(workspace_root());
    let out = run_command(&mut cmd, "scripts/local-task", Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("${NoSuchParameter}") && out.stderr.contains("--set"),
        "the error should name the placeholder and --set: {}",
        out.stderr
    );
    let stopped =
        json_line(&out.stdout, "STOPPED ").unwrap_or_else(|| panic!("no STOPPED line: {out:?}"));
    assert_eq!(stopped["ready"], false, "{stopped}");
    assert_eq!(
        stopped["processes"],
        serde_json::json!({}),
        "nothing may have started: {stopped}"
    );
}
