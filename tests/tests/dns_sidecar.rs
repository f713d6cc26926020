//! dns-sidecar end to end: the real binary, through the real AWS SDK, against a real moto
//! server (Route 53 and EC2), with test servers standing in only for the ECS task-metadata,
//! container-credentials and echo endpoints. Runs in the loopback-only network namespace, so a
//! misconfigured endpoint can never reach AWS.

use std::time::{Duration, Instant};

use e2e::require_loopback_only_netns;
use e2e::sidecar::{Moto, SlowRoute53, Task};
use serde_json::Value;

const PUBLISH: Duration = Duration::from_secs(30);
const STOP: Duration = Duration::from_secs(20);
const NAME: &str = "jumpbox.eu-west-1.example.com.";

fn setup(public: Option<&str>) -> (Moto, String, e2e::sidecar::Eni) {
    require_loopback_only_netns();
    let moto = Moto::start();
    let zone = moto.create_zone("example.com.");
    let eni = moto.create_eni("172.31.42.189", public);
    (moto, zone, eni)
}

fn values_of(records: &[Value], name: &str) -> Vec<(Option<String>, Vec<String>, i64)> {
    values_of_type(records, name, "A")
}

fn values_of_type(
    records: &[Value],
    name: &str,
    rtype: &str,
) -> Vec<(Option<String>, Vec<String>, i64)> {
    let mut out: Vec<_> = records
        .iter()
        .filter(|r| r["Name"] == name && r["Type"] == rtype)
        .map(|r| {
            (
                r["SetIdentifier"].as_str().map(str::to_string),
                r["Values"]
                    .as_array()
                    .map(|v| {
                        v.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                r["TTL"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn publishes_the_public_ip_with_the_ttl_and_removes_it_on_sigterm() {
    let (moto, zone, eni) = setup(Some("52.95.110.1"));
    let task = Task::new(&moto, &zone, &eni, "task0001").env("DNS_TTL", "45");
    let started = Instant::now();
    let mut sidecar = task.start();
    let upsert = sidecar.expect_event("upsert", PUBLISH);
    let published = sidecar.expect_event("published", PUBLISH);
    println!(
        "process start -> UPSERT sent: {} ms (sidecar's own clock), published after {} ms; \
         test saw it after {} ms",
        upsert["ms_since_start"],
        published["ms_since_start"],
        started.elapsed().as_millis()
    );
    assert_eq!(published["ip"], "52.95.110.1", "{published}");
    assert_eq!(published["name"], "jumpbox.eu-west-1.example.com");
    let found = values_of(&moto.records(&zone), NAME);
    assert_eq!(found, vec![(None, vec!["52.95.110.1".to_string()], 45)]);
    // The discovery went through EC2 (the authoritative source), not an echo.
    let discovered = sidecar.expect_event("discovered", PUBLISH);
    assert_eq!(discovered["source"], "ec2:DescribeNetworkInterfaces");
    let health = task.healthcheck();
    health.expect_success("healthcheck after publishing");
    assert!(health.stdout.contains("52.95.110.1"), "{}", health.stdout);

    sidecar.proc.signal("TERM");
    let status = sidecar.proc.expect_exit(STOP, "stopping the sidecar");
    assert!(status.success(), "exit status {status}");
    sidecar.expect_event("deleted", STOP);
    assert!(
        values_of(&moto.records(&zone), NAME).is_empty(),
        "record left behind"
    );
    assert!(
        !task.healthcheck().status.success(),
        "healthcheck passes with no sidecar"
    );
}

/// The metadata of a task on a dual-stack subnet: the ENI also has these IPv6 addresses.
fn dual_stack(task: &Task, ipv6: &[&str]) {
    let mut doc = task.http.task_metadata();
    doc["Containers"][0]["Networks"][0]["IPv6Addresses"] = serde_json::json!(ipv6);
    task.http
        .route(&task.http.task_path(), 200, doc.to_string());
}

#[test]
fn dual_stack_publishes_a_and_aaaa_and_removes_both() {
    let (moto, zone, eni) = setup(Some("52.95.110.1"));
    let task = Task::new(&moto, &zone, &eni, "task0006").env("DNS_RECORD_TYPES", "A,AAAA");
    // A link-local address first: only the globally routable one may be published.
    dual_stack(&task, &["fe80::1", "2600:1f18:4a3:6901::5"]);
    let mut sidecar = task.start();
    sidecar.expect_event("published", PUBLISH);
    // One `published` event per record: wait (bounded) for the second.
    let deadline = Instant::now() + PUBLISH;
    let mut published = loop {
        let found: Vec<(String, Value)> = sidecar
            .events()
            .iter()
            .filter(|e| e["event"] == "published")
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or("?").to_string(),
                    e["ip"].clone(),
                )
            })
            .collect();
        if found.len() >= 2 || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    published.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        published,
        vec![
            ("A".to_string(), Value::from("52.95.110.1")),
            ("AAAA".to_string(), Value::from("2600:1f18:4a3:6901::5")),
        ]
    );
    let records = moto.records(&zone);
    assert_eq!(
        values_of(&records, NAME),
        vec![(None, vec!["52.95.110.1".to_string()], 60)]
    );
    assert_eq!(
        values_of_type(&records, NAME, "AAAA"),
        vec![(None, vec!["2600:1f18:4a3:6901::5".to_string()], 60)]
    );
    task.healthcheck()
        .expect_success("healthcheck with A and AAAA");

    sidecar.proc.signal("TERM");
    assert!(sidecar
        .proc
        .expect_exit(STOP, "stopping the sidecar")
        .success());
    let records = moto.records(&zone);
    assert!(values_of(&records, NAME).is_empty(), "A left behind");
    assert!(
        values_of_type(&records, NAME, "AAAA").is_empty(),
        "AAAA left behind"
    );
}

#[test]
fn aaaa_without_a_global_ipv6_address_is_a_clear_error() {
    let (moto, zone, eni) = setup(Some("52.95.110.1"));
    let task = Task::new(&moto, &zone, &eni, "task0007").env("DNS_RECORD_TYPES", "AAAA");
    dual_stack(&task, &["fe80::1"]);
    let out = task.run(&[], PUBLISH);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("no globally routable IPv6 address")
            && out.stderr.contains("fe80::1")
            && out.stderr.contains("DNS_RECORD_TYPES=A"),
        "{}",
        out.stderr
    );
    let records = moto.records(&zone);
    assert!(
        values_of(&records, NAME).is_empty() && values_of_type(&records, NAME, "AAAA").is_empty()
    );
}

#[test]
fn two_tasks_share_one_name_and_each_removes_only_its_own() {
    let (moto, zone, eni_a) = setup(Some("52.95.110.1"));
    let eni_b = moto.create_eni("172.31.42.190", Some("52.95.110.2"));
    let a = Task::new(&moto, &zone, &eni_a, "taskaaaa").env("DNS_SET_IDENTIFIER", "{task_id}");
    let b = Task::new(&moto, &zone, &eni_b, "taskbbbb").env("DNS_SET_IDENTIFIER", "{task_id}");
    let mut sa = a.start();
    let mut sb = b.start();
    sa.expect_event("published", PUBLISH);
    sb.expect_event("published", PUBLISH);
    let both = values_of(&moto.records(&zone), NAME);
    assert_eq!(
        both,
        vec![
            (Some("taskaaaa".into()), vec!["52.95.110.1".into()], 60),
            (Some("taskbbbb".into()), vec!["52.95.110.2".into()], 60),
        ]
    );
    sa.proc.signal("TERM");
    assert!(sa.proc.expect_exit(STOP, "stopping task a").success());
    let left = values_of(&moto.records(&zone), NAME);
    assert_eq!(
        left,
        vec![(Some("taskbbbb".into()), vec!["52.95.110.2".into()], 60)]
    );
    b.healthcheck().expect_success("task b still healthy");
    sb.proc.signal("TERM");
    assert!(sb.proc.expect_exit(STOP, "stopping task b").success());
    assert!(values_of(&moto.records(&zone), NAME).is_empty());
}

#[test]
fn a_record_changed_by_someone_else_is_left_untouched() {
    let (moto, zone, eni) = setup(Some("52.95.110.1"));
    let task = Task::new(&moto, &zone, &eni, "task0003").env("DNS_VERIFY_INTERVAL", "300ms");
    let mut sidecar = task.start();
    sidecar.expect_event("published", PUBLISH);
    // Another task (or a person) takes the name over.
    moto.upsert(&zone, NAME, "52.95.110.99", None);
    let lost = sidecar.expect_event("record_lost", Duration::from_secs(10));
    assert!(
        lost["reason"]
            .as_str()
            .unwrap_or("")
            .contains("52.95.110.99"),
        "{lost}"
    );
    let health = task.healthcheck();
    assert!(
        !health.status.success(),
        "healthcheck passes though the record is not ours"
    );
    assert!(health.stderr.contains("52.95.110.99"), "{}", health.stderr);
    sidecar.proc.signal("TERM");
    assert!(sidecar.proc.expect_exit(STOP, "stopping").success());
    let untouched = sidecar.expect_event("left_untouched", STOP);
    assert!(untouched["reason"]
        .as_str()
        .unwrap_or("")
        .contains("52.95.110.99"));
    assert_eq!(
        values_of(&moto.records(&zone), NAME),
        vec![(None, vec!["52.95.110.99".to_string()], 300)]
    );
}

#[test]
fn delete_on_exit_false_publishes_and_exits() {
    let (moto, zone, eni) = setup(Some("52.95.110.1"));
    let task = Task::new(&moto, &zone, &eni, "task0004").env("DNS_DELETE_ON_EXIT", "false");
    let out = task.run(&[], PUBLISH);
    out.expect_success("DNS_DELETE_ON_EXIT=false");
    assert_eq!(
        values_of(&moto.records(&zone), NAME),
        vec![(None, vec!["52.95.110.1".to_string()], 60)]
    );
}

#[test]
fn a_task_without_a_public_ip_is_a_clear_error() {
    let (moto, zone, eni) = setup(None);
    let task = Task::new(&moto, &zone, &eni, "task0005").env("DNS_TIMEOUT", "20s");
    let out = task.run(&[], PUBLISH);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("the task has no public IP"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("assignPublicIp"), "{}", out.stderr);
    assert!(values_of(&moto.records(&zone), NAME).is_empty());
}

#[test]
fn dry_run_prints_the_exact_batch_and_changes_nothing() {
    let (moto, zone, eni) = setup(Some("52.95.110.1"));
    let task = Task::new(&moto, &zone, &eni, "task0006")
        .env("DNS_SET_IDENTIFIER", "{cluster}-{task_id}")
        .env("DNS_TTL", "30");
    let out = task.run(&["--dry-run"], PUBLISH);
    out.expect_success("--dry-run");
    let batch: Value = serde_json::from_str(&out.stdout).expect("--dry-run prints JSON");
    assert_eq!(
        batch,
        serde_json::json!({
            "HostedZoneId": zone,
            "ChangeBatch": {
                "Comment": "dns-sidecar: task task0006",
                "Changes": [{
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": NAME,
                        "Type": "A",
                        "TTL": 30,
                        "SetIdentifier": "jumpbox-task0006",
                        "MultiValueAnswer": true,
                        "ResourceRecords": [{"Value": "52.95.110.1"}]
                    }
                }]
            }
        })
    );
    assert!(moto.records(&zone).is_empty(), "--dry-run changed the zone");
}

#[test]
fn echo_source_accepts_one_public_address_only() {
    let (moto, zone, eni) = setup(Some("52.95.110.1"));
    let task = Task::new(&moto, &zone, &eni, "task0007")
        .env("DNS_IP_SOURCE", "echo")
        .env("DNS_TIMEOUT", "10s");
    let echo = task.http.url("/echo");
    let task = task.env("DNS_ECHO_URL", echo);
    task.http.route("/echo", 200, "52.95.110.77\n");
    let out = task.run(&["--dry-run"], PUBLISH);
    out.expect_success("echo with a public address");
    assert!(out.stdout.contains("\"52.95.110.77\""), "{}", out.stdout);
    assert_eq!(task.http.hits("/echo"), 1);

    for (body, why) in [
        ("10.0.3.4", "private"),
        ("100.64.0.9", "shared address space"),
        ("<html>blocked by proxy</html>", "not an IP address"),
        ("52.95.110.77 52.95.110.78", "not an IP address"),
    ] {
        task.http.route("/echo", 200, body);
        let out = task.run(&["--dry-run"], PUBLISH);
        assert_eq!(out.status.code(), Some(1), "{body}: {}", out.stderr);
        assert!(
            out.stderr.contains("DNS_ECHO_URL"),
            "{body}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(why), "{body}: {}", out.stderr);
        assert!(
            out.stdout.is_empty(),
            "{body}: printed a batch: {}",
            out.stdout
        );
    }
    assert!(moto.records(&zone).is_empty());
}

#[test]
fn bad_configuration_names_the_setting_and_exits_2() {
    let (moto, zone, eni) = setup(Some("52.95.110.1"));
    let base = || Task::new(&moto, &zone, &eni, "task0008");
    let cases: Vec<(Task, &str)> = vec![
        (
            base().without("DNS_HOSTED_ZONE_ID"),
            "DNS_HOSTED_ZONE_ID is not set",
        ),
        (
            base().without("DNS_RECORD_NAME"),
            "DNS_RECORD_NAME is not set",
        ),
        (
            base().env("DNS_RECORD_NAME", "jumpbox.{regoin}.example.com"),
            "DNS_RECORD_NAME: unknown placeholder {regoin}",
        ),
        (base().env("DNS_TTL", "-5"), "DNS_TTL"),
        (base().env("DNS_TIMEOUT", "soon"), "DNS_TIMEOUT"),
        (base().env("DNS_IP_SOURCE", "imds"), "DNS_IP_SOURCE"),
        (base().env("DNS_RECORD_TYPES", "A,MX"), "DNS_RECORD_TYPES"),
        (base().env("DNS_IP", "not-an-ip"), "DNS_IP"),
        (
            base().env("DNS_HOSTED_ZONE_ID", "example.com"),
            "DNS_HOSTED_ZONE_ID",
        ),
        (
            base().without("ECS_CONTAINER_METADATA_URI_V4"),
            "ECS_CONTAINER_METADATA_URI_V4 is not set",
        ),
    ];
    for (task, needle) in cases {
        let started = Instant::now();
        let out = task.run(&[], Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(2), "{needle}: {}", out.stderr);
        assert!(
            out.stderr.contains(needle),
            "expected {needle:?} in:\n{}",
            out.stderr
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{needle}: took {:?}",
            started.elapsed()
        );
    }
    assert!(moto.records(&zone).is_empty());
}

#[test]
fn an_unreachable_metadata_endpoint_fails_within_the_timeout() {
    let (moto, zone, eni) = setup(Some("52.95.110.1"));
    let dead = format!("http://127.0.0.1:{}/v4/gone", e2e::free_local_port());
    let task = Task::new(&moto, &zone, &eni, "task0009")
        .env("ECS_CONTAINER_METADATA_URI_V4", dead)
        .env("DNS_TIMEOUT", "3s");
    let started = Instant::now();
    let out = task.run(&[], Duration::from_secs(20));
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("ECS_CONTAINER_METADATA_URI_V4"),
        "{}",
        out.stderr
    );
    assert!(
        took < Duration::from_secs(8),
        "took {took:?} with DNS_TIMEOUT=3s"
    );
    // It retried until the deadline left no room for another attempt. (How long that takes
    // depends on the backoff's jitter: from about 1.4 s to 2.9 s with DNS_TIMEOUT=3s, so the
    // time alone cannot tell; the attempt count can: 5 to 7.)
    let attempts: u32 = out
        .stderr
        .split("gave up after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no attempt count in the error: {}", out.stderr));
    assert!(
        attempts >= 5,
        "gave up after {attempts} attempts in {took:?}: no retries?"
    );
    assert!(
        took >= Duration::from_millis(1300),
        "gave up after {took:?}, long before the 3 s deadline"
    );
    // The failure is also one JSON `error` event on stderr.
    let events = e2e::parse_events(&out.stderr);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "error" && e["exit_code"] == 1),
        "{}",
        out.stderr
    );
}

/// The set identifier the README recommends: the cluster and the task.
const SET_ID: &str = "{cluster}/{task_id}";

#[test]
fn prune_removes_only_values_of_tasks_that_no_longer_run() {
    let (moto, zone, eni) = setup(Some("52.95.110.1"));
    let running = moto.ecs_task("jumpbox");
    let me = moto.ecs_task("jumpbox");
    let gone = "0123456789abcdef0123456789abcdef";
    moto.upsert(
        &zone,
        NAME,
        "52.95.110.3",
        Some(&format!("jumpbox/{running}")),
    );
    moto.upsert(&zone, NAME, "52.95.110.4", Some(&format!("jumpbox/{gone}")));
    moto.upsert(&zone, NAME, "52.95.110.5", Some("added-by-hand"));
    // The old `{task_id}` form names no cluster: never judged.
    moto.upsert(&zone, NAME, "52.95.110.6", Some(gone));
    let task = Task::new(&moto, &zone, &eni, &me)
        .env("DNS_SET_IDENTIFIER", SET_ID)
        .env("DNS_PRUNE", "true")
        .env("DNS_DELETE_ON_EXIT", "false");
    let out = task.run(&[], PUBLISH);
    out.expect_success("publish with DNS_PRUNE=true");
    let prune = e2e::parse_events(&out.stderr)
        .into_iter()
        .find(|e| e["event"] == "prune")
        .unwrap_or_else(|| panic!("no prune event: {}", out.stderr));
    assert_eq!(prune["deleted"], 1, "{prune}");
    let ids: Vec<Option<String>> = values_of(&moto.records(&zone), NAME)
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    let mut expected = vec![
        Some(gone.to_string()),
        Some("added-by-hand".to_string()),
        Some(format!("jumpbox/{me}")),
        Some(format!("jumpbox/{running}")),
    ];
    expected.sort();
    assert_eq!(
        ids, expected,
        "the stale value of {gone} should be the only one removed"
    );
}

/// Wait (bounded) until `set_id`'s value of NAME is gone; how long it took.
fn wait_gone(moto: &Moto, zone: &str, set_id: &str, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    e2e::poll_until(limit, Duration::from_millis(100), || {
        let ids: Vec<Option<String>> = values_of(&moto.records(zone), NAME)
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        (!ids.contains(&Some(set_id.to_string()))).then(|| started.elapsed())
    })
}

#[test]
fn two_clusters_sharing_a_name_never_delete_each_others_values() {
    let (moto, zone, eni_blue) = setup(Some("52.95.110.1"));
    let eni_green = moto.create_eni("172.31.42.190", Some("52.95.110.2"));
    let blue_task = moto.ecs_task("blue");
    let green_task = moto.ecs_task("green");
    // A task of each cluster died without its clean-up and left its value behind.
    let blue_dead = moto.ecs_task("blue");
    moto.stop_ecs_task("blue", &blue_dead);
    let green_dead = moto.ecs_task("green");
    moto.stop_ecs_task("green", &green_dead);
    moto.upsert(
        &zone,
        NAME,
        "52.95.110.3",
        Some(&format!("blue/{blue_dead}")),
    );
    moto.upsert(
        &zone,
        NAME,
        "52.95.110.4",
        Some(&format!("green/{green_dead}")),
    );
    // Green does not reconcile here: only blue could remove green's values.
    let green = Task::in_cluster(&moto, &zone, &eni_green, &green_task, "green")
        .env("DNS_SET_IDENTIFIER", SET_ID)
        .env("DNS_RECONCILE_INTERVAL", "0");
    let blue = Task::in_cluster(&moto, &zone, &eni_blue, &blue_task, "blue")
        .env("DNS_SET_IDENTIFIER", SET_ID)
        .env("DNS_RECONCILE_INTERVAL", "1s");
    let mut sg = green.start();
    sg.expect_event("published", PUBLISH);
    let mut sb = blue.start();
    sb.expect_event("published", PUBLISH);
    // Blue reconciles: its own cluster's stale value goes...
    let took = wait_gone(&moto, &zone, &format!("blue/{blue_dead}"), PUBLISH);
    assert!(
        took.is_some(),
        "blue's stale value stayed; stderr:\n{}",
        sb.proc.stderr().text()
    );
    let reconciled = sb.expect_event("reconcile", STOP);
    assert_eq!(reconciled["deleted"], 1, "{reconciled}");
    // ...and over several more periods green's values, the dead task's included, stay.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !sb.events().iter().any(|e| e["event"] == "reconcile_failed"),
        "{}",
        sb.proc.stderr().text()
    );
    let mut expected = vec![
        (
            Some(format!("blue/{blue_task}")),
            vec!["52.95.110.1".into()],
            60,
        ),
        (
            Some(format!("green/{green_dead}")),
            vec!["52.95.110.4".into()],
            300,
        ),
        (
            Some(format!("green/{green_task}")),
            vec!["52.95.110.2".into()],
            60,
        ),
    ];
    expected.sort();
    assert_eq!(values_of(&moto.records(&zone), NAME), expected);
    green.healthcheck().expect_success("green still healthy");
    blue.healthcheck().expect_success("blue still healthy");
    for (s, what) in [(&mut sb, "blue"), (&mut sg, "green")] {
        s.proc.signal("TERM");
        assert!(s.proc.expect_exit(STOP, what).success());
    }
    assert_eq!(
        values_of(&moto.records(&zone), NAME),
        vec![(
            Some(format!("green/{green_dead}")),
            vec!["52.95.110.4".into()],
            300
        )]
    );
}

#[test]
fn a_value_of_a_task_killed_with_sigkill_goes_within_one_reconcile_period() {
    let (moto, zone, eni_a) = setup(Some("52.95.110.1"));
    let eni_b = moto.create_eni("172.31.42.190", Some("52.95.110.2"));
    let (task_a, task_b) = (moto.ecs_task("jumpbox"), moto.ecs_task("jumpbox"));
    let interval = Duration::from_secs(2);
    let task = |eni, id: &str| {
        Task::new(&moto, &zone, eni, id)
            .env("DNS_SET_IDENTIFIER", SET_ID)
            .env("DNS_RECONCILE_INTERVAL", "2s")
    };
    let (a, b) = (task(&eni_a, &task_a), task(&eni_b, &task_b));
    let mut sa = a.start();
    let mut sb = b.start();
    sa.expect_event("published", PUBLISH);
    sb.expect_event("published", PUBLISH);
    assert_eq!(values_of(&moto.records(&zone), NAME).len(), 2);
    // Task b dies hard: no SIGTERM, no clean-up; ECS then reports it stopped.
    sb.proc.signal("KILL");
    sb.proc.expect_exit(STOP, "SIGKILLed sidecar");
    moto.stop_ecs_task("jumpbox", &task_b);
    let stopped = Instant::now();
    let reconciled = sa.expect_event("reconcile", Duration::from_secs(15));
    let took = stopped.elapsed();
    assert_eq!(reconciled["deleted"], 1, "{reconciled}");
    assert!(
        reconciled["set_identifiers"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("jumpbox/{task_b}")),
        "{reconciled}"
    );
    // One period is at most interval + 20 % (2.4 s); a run that read the task list just before
    // StopTask adds one run, and the run that deletes another (each well under 1 s on moto).
    let bound = interval.mul_f64(1.2) + Duration::from_secs(2);
    println!("value of the SIGKILLed task removed {took:?} after StopTask (bound {bound:?})");
    assert!(took <= bound, "took {took:?}, bound {bound:?}");
    assert_eq!(
        values_of(&moto.records(&zone), NAME),
        vec![(
            Some(format!("jumpbox/{task_a}")),
            vec!["52.95.110.1".into()],
            60
        )]
    );
    a.healthcheck()
        .expect_success("the surviving task stays healthy");
    // The count the stack's "fewer jumpboxes than desired" alarm reads: the run that deleted
    // b's value saw one running task, published.
    let counted = sa
        .events()
        .into_iter()
        .rev()
        .find(|e| e["event"] == "reconcile_count")
        .expect("a reconcile_count event with the reconcile");
    assert_eq!(
        (&counted["running"], &counted["published"]),
        (&Value::from(1), &Value::from(1)),
        "{counted}"
    );
    sa.proc.signal("TERM");
    assert!(sa.proc.expect_exit(STOP, "stopping task a").success());
    assert!(values_of(&moto.records(&zone), NAME).is_empty());
}

#[test]
fn a_change_not_insync_within_the_timeout_is_a_warning_not_a_crash() {
    let (moto, zone, eni) = setup(Some("52.95.110.1"));
    // GetChange says PENDING for 8 s; the start deadline is 4 s.
    let slow = SlowRoute53::start(&moto, Duration::from_secs(8));
    let task = Task::new(&moto, &zone, &eni, "task0010")
        .env("AWS_ENDPOINT_URL", slow.endpoint.clone())
        .env("DNS_TIMEOUT", "4s");
    let mut sidecar = task.start();
    let warned = sidecar.expect_event("insync_slow", PUBLISH);
    assert_eq!(warned["status"], "PENDING", "{warned}");
    sidecar.expect_event("published", STOP);
    assert!(
        sidecar.proc.try_status().is_none(),
        "the sidecar exited: {}",
        sidecar.proc.stderr().text()
    );
    let health = task.healthcheck();
    health.expect_success("healthcheck while the change is PENDING");
    assert!(health.stdout.contains("52.95.110.1"), "{}", health.stdout);
    assert_eq!(
        values_of(&moto.records(&zone), NAME),
        vec![(None, vec!["52.95.110.1".to_string()], 60)]
    );
    // Still checking in the background: INSYNC is logged when it comes.
    let insync = sidecar.expect_event("insync", Duration::from_secs(30));
    let ms = insync["insync_ms"].as_u64().unwrap_or(0);
    assert!(ms >= 3000, "{insync}");
    let (get_changes, pending) = slow.get_changes();
    assert!(
        pending >= 2 && get_changes > pending,
        "{get_changes} {pending}"
    );
    println!("INSYNC after {ms} ms; {get_changes} GetChange calls, {pending} answered PENDING");
    task.healthcheck()
        .expect_success("healthcheck after INSYNC");
    sidecar.proc.signal("TERM");
    assert!(sidecar.proc.expect_exit(STOP, "stopping").success());
    assert!(values_of(&moto.records(&zone), NAME).is_empty());
}
