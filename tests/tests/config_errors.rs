//! Bad configuration stops the bastion before it listens: it exits non-zero within a few
//! seconds, logs no `listening` event, and its stderr names the setting and the bad value or
//! line (missing authorized keys, a keys file still missing after `BASTION_WAIT_FOR_KEYS`, a
//! malformed key line, an unreadable or unusable host key file, an invalid listen address, an
//! invalid destination rule or one naming a link-local address in any spelling, an invalid
//! duration or number).

use std::time::Duration;

use e2e::*;

const EXIT_WITHIN: Duration = Duration::from_secs(10);

/// Runs a bastion expected to refuse its configuration; returns its stderr.
fn refused(builder: BastionBuilder, what: &str) -> String {
    let started = std::time::Instant::now();
    let out = builder.run_to_exit(EXIT_WITHIN);
    let elapsed = started.elapsed();
    assert!(
        !out.status.success(),
        "{what}: the bastion exited 0 (should refuse the configuration); stderr:\n{}",
        out.stderr
    );
    assert!(
        parse_events(&out.stderr)
            .iter()
            .all(|e| e["event"] != "listening"),
        "{what}: the bastion listened before refusing its configuration:\n{}",
        out.stderr
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "{what}: took {elapsed:?} to refuse its configuration"
    );
    out.stderr
}

fn assert_mentions(stderr: &str, needles: &[&str], what: &str) {
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{what}: stderr does not mention {needle:?}:\n{stderr}"
        );
    }
}

/// Does the text name line `n` (`line 3`, `line: 3`, `line=3`, `:3:`)?
fn names_line(text: &str, n: usize) -> bool {
    [
        format!("line {n}"),
        format!("line: {n}"),
        format!("line={n}"),
        format!("line {n}:"),
    ]
    .iter()
    .any(|form| {
        text.match_indices(form.as_str()).any(|(i, m)| {
            // not "line 30" when looking for "line 3"
            !text[i + m.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
    })
}

#[test]
fn no_authorized_keys() {
    let dir = TestDir::new();
    let builder = dir.bastion().without("BASTION_AUTHORIZED_KEYS");
    let stderr = refused(builder, "no authorized keys");
    assert_mentions(&stderr, &["BASTION_AUTHORIZED_KEYS"], "no authorized keys");
}

#[test]
fn empty_authorized_keys() {
    let dir = TestDir::new();
    let builder = dir
        .bastion()
        .env("BASTION_AUTHORIZED_KEYS", "# only a comment\n\n");
    let stderr = refused(builder, "authorized keys without a key");
    assert_mentions(
        &stderr,
        &["BASTION_AUTHORIZED_KEYS"],
        "empty authorized keys",
    );
}

#[test]
fn a_malformed_authorized_keys_line() {
    let dir = TestDir::new();
    let good = &dir.key.public_line;
    let text = format!("# team keys\n{good}\nssh-ed25519 notbase64!! broken@laptop\n{good}\n");
    let stderr = refused(
        dir.bastion().env("BASTION_AUTHORIZED_KEYS", text),
        "malformed key line",
    );
    assert_mentions(&stderr, &["BASTION_AUTHORIZED_KEYS"], "malformed key line");
    assert!(
        names_line(&stderr, 3),
        "the error does not name line 3:\n{stderr}"
    );
}

#[test]
fn a_malformed_authorized_keys_file_line() {
    let dir = TestDir::new();
    let path = dir.join("authorized_keys");
    std::fs::write(
        &path,
        format!("{}\nnot a key at all\n", dir.key.public_line),
    )
    .expect("writing an authorized_keys file");
    let builder = dir.bastion().without("BASTION_AUTHORIZED_KEYS").env(
        "BASTION_AUTHORIZED_KEYS_FILE",
        path.to_str().expect("UTF-8 temp path"),
    );
    let stderr = refused(builder, "malformed key file line");
    assert_mentions(
        &stderr,
        &["BASTION_AUTHORIZED_KEYS_FILE"],
        "malformed key file line",
    );
    assert!(
        names_line(&stderr, 2),
        "the error does not name line 2:\n{stderr}"
    );
}

#[test]
fn an_unreadable_authorized_keys_file() {
    let dir = TestDir::new();
    let missing = dir.join("no-such-authorized_keys");
    let missing = missing.to_str().expect("UTF-8 temp path");
    let builder = dir
        .bastion()
        .without("BASTION_AUTHORIZED_KEYS")
        .env("BASTION_AUTHORIZED_KEYS_FILE", missing);
    let stderr = refused(builder, "missing authorized_keys file");
    assert_mentions(
        &stderr,
        &["BASTION_AUTHORIZED_KEYS_FILE", missing],
        "missing authorized_keys file",
    );
}

/// With `BASTION_WAIT_FOR_KEYS`, a keys file still missing when the wait runs out stops the start
/// with the usual error, plus how long it waited and the setting to raise.
#[test]
fn a_keys_file_still_missing_after_the_wait_stops_the_start() {
    let dir = TestDir::new();
    let missing = dir.join("not-written-yet");
    let missing = missing.to_str().expect("UTF-8 temp path");
    let builder = dir
        .bastion()
        .without("BASTION_AUTHORIZED_KEYS")
        .env("BASTION_AUTHORIZED_KEYS_FILE", missing)
        .env("BASTION_WAIT_FOR_KEYS", "1s");
    let started = std::time::Instant::now();
    let stderr = refused(builder, "keys file missing after BASTION_WAIT_FOR_KEYS=1s");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "gave up after {:?}, before the 1 s wait ran out",
        started.elapsed()
    );
    assert_mentions(
        &stderr,
        &[
            "BASTION_AUTHORIZED_KEYS_FILE",
            missing,
            "waited 1s",
            "raise BASTION_WAIT_FOR_KEYS",
        ],
        "keys file missing after the wait",
    );
    assert!(
        parse_events(&stderr)
            .iter()
            .any(|e| e["event"] == "keys_wait"),
        "no keys_wait event:\n{stderr}"
    );
}

#[test]
fn an_unreadable_host_key_file() {
    let dir = TestDir::new();
    let missing = dir.join("no-such-host-key");
    let missing = missing.to_str().expect("UTF-8 temp path");
    let stderr = refused(
        dir.bastion().env("BASTION_HOST_KEY_FILE", missing),
        "missing host key file",
    );
    assert_mentions(
        &stderr,
        &["BASTION_HOST_KEY_FILE", missing],
        "missing host key file",
    );
}

#[test]
fn a_host_key_file_that_is_not_a_private_key() {
    let dir = TestDir::new();
    // A public key where a private key belongs: a classic mistake.
    let path = dir
        .key
        .public
        .to_str()
        .expect("UTF-8 temp path")
        .to_string();
    let stderr = refused(
        dir.bastion().env("BASTION_HOST_KEY_FILE", path.as_str()),
        "public key as host key file",
    );
    assert_mentions(
        &stderr,
        &["BASTION_HOST_KEY_FILE", &path],
        "public key as host key file",
    );
}

#[test]
fn a_host_key_text_that_is_not_a_private_key() {
    let dir = TestDir::new();
    let stderr = refused(
        dir.bastion()
            .env("BASTION_HOST_KEY", "-----BEGIN NONSENSE-----\nxyz\n"),
        "garbage host key text",
    );
    assert_mentions(&stderr, &["BASTION_HOST_KEY"], "garbage host key text");
}

#[test]
fn invalid_listen_addresses() {
    let dir = TestDir::new();
    for bad in ["not-an-address", "127.0.0.1:99999", "127.0.0.1"] {
        let stderr = refused(
            dir.bastion().env("BASTION_LISTEN", bad),
            &format!("BASTION_LISTEN={bad}"),
        );
        assert_mentions(&stderr, &["BASTION_LISTEN", bad], "invalid listen address");
    }
}

#[test]
fn invalid_permit_open_rules() {
    let dir = TestDir::new();
    for bad in [
        "10.0.0.0/33:22",
        "db.internal",
        "127.0.0.1:notaport",
        "[::1:22",
    ] {
        let rules = format!("10.1.2.3:5432,{bad}");
        let stderr = refused(
            dir.bastion().permit_open(rules.as_str()),
            &format!("BASTION_PERMIT_OPEN={rules}"),
        );
        assert_mentions(&stderr, &["BASTION_PERMIT_OPEN", bad], "invalid rule");
    }
}

/// Rules that name the credentials endpoint, instance metadata or any link-local or EC2
/// metadata address, in every spelling the bastion knows.
const OFF_LIMITS_RULES: [&str; 14] = [
    "169.254.170.2:80",
    "169.254.0.0/16:*",
    "[::ffff:169.254.170.2]:80",
    "[::ffff:a9fe:aa02]:80",
    "[::a9fe:aa02]:80",
    "[::ffff:0:a9fe:aa02]:80",
    "[64:ff9b::a9fe:aa02]:80",
    "[64:ff9b::a9fe:0/112]:*",
    "[64:ff9b:1::a9fe:aa02]:80",
    "[2002:a9fe:aa02::/48]:*",
    "[2001:db8::5efe:a9fe:aa02]:80",
    "[fe80::1]:22",
    "[fd00:ec2::254]:80",
    "[fd00:ec2::/32]:*",
];

/// Each spelling stops the start with a message saying why; `bastion check-config` (what the
/// deploy checks run) refuses it the same way, and accepts the broadest rules.
#[test]
fn rules_naming_off_limits_addresses_in_any_spelling_stop_the_start() {
    let dir = TestDir::new();
    for bad in OFF_LIMITS_RULES {
        let rules = format!("10.0.0.0/8:*,{bad}");
        let what = format!("BASTION_PERMIT_OPEN={rules}");
        let stderr = refused(dir.bastion().permit_open(rules.as_str()), &what);
        assert_mentions(
            &stderr,
            &[
                "BASTION_PERMIT_OPEN",
                bad,
                "never forwards to 169.254.0.0/16",
            ],
            &what,
        );
        let out = dir
            .bastion()
            .permit_open(rules.as_str())
            .arg("check-config")
            .run_to_exit(EXIT_WITHIN);
        assert_eq!(out.status.code(), Some(2), "check-config {what}: {out:?}");
        assert_mentions(
            &out.stderr,
            &["BASTION_PERMIT_OPEN", bad, "never forwards"],
            &what,
        );
    }
    let out = dir
        .bastion()
        .permit_open("0.0.0.0/0:*,[::/0]:*,[fc00::/7]:*")
        .arg("check-config")
        .run_to_exit(EXIT_WITHIN);
    out.expect_success("check-config with the broadest rules");
    assert!(out.stdout.contains("configuration ok"), "{out:?}");
}

/// Durations and numbers are settings too: a bad value names the variable the operator set.
#[test]
fn invalid_durations_and_numbers_name_the_variable() {
    let dir = TestDir::new();
    for (setting, bad) in [
        ("BASTION_SHUTDOWN_GRACE", "soon"),
        ("BASTION_LOGIN_GRACE_TIME", "-5s"),
        ("BASTION_KEEPALIVE_INTERVAL", "often"),
        ("BASTION_CONNECT_TIMEOUT", "10 parsecs"),
        ("BASTION_TUNNEL_STALL_TIMEOUT", "x"),
        ("BASTION_MAX_AUTH_TRIES", "many"),
        ("BASTION_MAX_CONNECTIONS", "0"),
        ("BASTION_MAX_TUNNELS", "lots"),
        ("BASTION_MAX_SESSIONS", "-1"),
        ("BASTION_LOG_FORMAT", "xml"),
        ("BASTION_DNS_MAX_LOOKUPS", "0"),
        ("BASTION_DNS_MAX_LOOKUPS_PER_CONNECTION", "lots"),
        ("BASTION_WAIT_FOR_KEYS", "later"),
    ] {
        let stderr = refused(dir.bastion().env(setting, bad), &format!("{setting}={bad}"));
        assert_mentions(&stderr, &[setting, bad], &format!("{setting}={bad}"));
    }
}
