//! OpenSSH host certificates end to end: `ssh-keygen -s host_ca -h` signs the bastion's host
//! key, the bastion presents the certificate (`BASTION_HOST_CERTIFICATE`), and the stock `ssh`
//! with `StrictHostKeyChecking=yes` and a known_hosts file holding only
//! `@cert-authority *.example.test <CA>` trusts it for a name among its principals
//! (`HostKeyAlias`), refuses it for another name and once it has expired, and never opens a
//! tunnel then. A client that pins the plain host key still connects. The bastion refuses to
//! start with a user certificate, a certificate of another key or an expired one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::*;

/// The name clients connect as (through `HostKeyAlias`); a principal of the good certificate.
const NAME: &str = "jump.example.test";

/// What the stock client prints when it does not trust the server's host key.
const UNTRUSTED: &str = "Host key verification failed";

/// A host CA, a host key, an echo destination and a known_hosts file trusting the CA only.
struct Setup {
    dir: TestDir,
    ca: KeyPair,
    host: KeyPair,
    echo: TestServer,
    ca_known_hosts: PathBuf,
}

fn setup() -> Setup {
    let dir = TestDir::new();
    let ca = generate_key(dir.path(), "host_ca");
    let host = generate_key(dir.path(), "host_key");
    let echo = TestServer::echo_v4();
    let ca_known_hosts = dir.join("known_hosts_ca");
    std::fs::write(
        &ca_known_hosts,
        format!("@cert-authority *.example.test {}\n", ca.public_line),
    )
    .expect("writing the known_hosts file");
    Setup {
        dir,
        ca,
        host,
        echo,
        ca_known_hosts,
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

impl Setup {
    /// `ssh-keygen -s host_ca -I jumpbox -h -n PRINCIPALS -V VALIDITY` of `key`'s public key.
    fn sign(&self, key: &KeyPair, name: &str, principals: &str, validity: &str) -> String {
        let options = ["-I", "jumpbox", "-h", "-n", principals, "-V", validity];
        let cert = sign_certificate(self.dir.path(), &self.ca, key, name, &options);
        std::fs::read_to_string(cert).expect("reading the signed certificate")
    }

    /// A bastion with the host key and this certificate, tunnelling to the echo server.
    fn bastion(&self, certificate: &str) -> BastionBuilder {
        self.dir
            .bastion()
            .env("BASTION_HOST_KEY_FILE", path_str(&self.host.private))
            .env("BASTION_HOST_CERTIFICATE", certificate)
            .permit_open(format!("127.0.0.1:{}", self.echo.port()))
    }

    /// A strict client that knows the bastion as `NAME` through `known_hosts` only.
    fn client(&self, bastion: &Bastion, known_hosts: &Path) -> Ssh {
        bastion
            .ssh(&self.dir.key.private)
            .option("StrictHostKeyChecking", "yes")
            .option("UserKnownHostsFile", path_str(known_hosts))
            .option("HostKeyAlias", NAME)
            .arg("-v")
    }

    /// One `ssh -W` echo through `bastion`, trusting the CA only.
    fn try_ca(&self, bastion: &Bastion, payload: &str) -> Attempt {
        attempt(
            self.client(bastion, &self.ca_known_hosts),
            &self.echo.spec(),
            payload,
        )
    }
}

/// The client trusted the server (and logged which certificate it was shown).
fn expect_certificate_trusted(tried: &Attempt, what: &str) {
    expect_moves_bytes(tried, what);
    assert!(
        tried
            .stderr
            .contains("Server host certificate: ssh-ed25519-cert-v01@openssh.com"),
        "{what}: the client was not shown the host certificate: {}",
        tried.stderr
    );
}

/// The client refused the server's host key: nothing moved, and the bastion saw no login.
fn expect_host_refused(tried: &Attempt, bastion: &Bastion, reason: &str, what: &str) {
    assert!(!tried.echoed, "{what}: bytes moved: {tried:?}");
    assert!(!tried.status.success(), "{what}: ssh exited 0: {tried:?}");
    assert!(
        tried.stderr.contains(UNTRUSTED) && tried.stderr.contains(reason),
        "{what}: expected {UNTRUSTED:?} after {reason:?}: {}",
        tried.stderr
    );
    assert!(
        bastion.events_named("auth").is_empty(),
        "{what}: the client authenticated to a host it should not trust: {:?}",
        bastion.events_named("auth")
    );
}

/// The good case: a certificate whose principals include the name the client uses is trusted
/// on the strength of the `@cert-authority` line alone, and the tunnel works; the start event
/// names the certificate.
#[test]
fn a_client_trusting_the_host_ca_connects() {
    let s = setup();
    let cert = s.sign(
        &s.host,
        "good",
        &format!("{NAME},jump-eu.example.test"),
        "-5m:+30d",
    );
    let bastion = s.bastion(&cert).start();
    let tried = s.try_ca(&bastion, "trusted through the host CA\n");
    expect_certificate_trusted(&tried, "a certificate for the name used");
    assert_eq!(s.echo.accepted(), 1);

    let event = bastion
        .wait_event(Duration::from_secs(5), |e| e["event"] == "host_certificate")
        .unwrap_or_else(|| panic!("no host_certificate event: {}", bastion.stderr_text()));
    assert_eq!(
        event["level"], "INFO",
        "30 days left is no warning: {event}"
    );
    assert_eq!(event["key_id"], "jumpbox", "{event}");
    assert_eq!(
        event["principals"],
        format!("{NAME},jump-eu.example.test"),
        "{event}"
    );
    assert_eq!(
        event["ca_fingerprint"].as_str(),
        Some(s.ca.fingerprint().as_str()),
        "{event}"
    );
}

/// The plain host key is still offered: a client that pins it (no CA line) connects, also
/// when it accepts only the plain `ssh-ed25519` host key type.
#[test]
fn a_client_pinning_the_plain_host_key_still_connects() {
    let s = setup();
    let cert = s.sign(&s.host, "good", NAME, "-5m:+1h");
    let bastion = s.bastion(&cert).start();
    let pinned = s.dir.join("known_hosts_plain");
    std::fs::write(&pinned, format!("{NAME} {}\n", s.host.public_line))
        .expect("writing the known_hosts file");
    let tried = attempt(
        s.client(&bastion, &pinned),
        &s.echo.spec(),
        "trusted through the pinned key\n",
    );
    expect_moves_bytes(&tried, "a client pinning the plain host key");
    // A client that accepts only the plain key type is served the plain key.
    let plain_only = s
        .client(&bastion, &pinned)
        .option("HostKeyAlgorithms", "ssh-ed25519");
    let tried = attempt(plain_only, &s.echo.spec(), "plain key only\n");
    expect_moves_bytes(&tried, "a client accepting only ssh-ed25519 host keys");
    assert!(
        !tried.stderr.contains("Server host certificate"),
        "the plain-key-only client was shown a certificate: {}",
        tried.stderr
    );
}

/// A certificate whose principals do not include the name the client uses is refused by the
/// client: no login, no tunnel.
#[test]
fn a_certificate_for_another_name_is_refused_by_the_client() {
    let s = setup();
    let cert = s.sign(&s.host, "other-name", "other.example.test", "-5m:+1h");
    let bastion = s.bastion(&cert).start();
    let tried = s.try_ca(&bastion, "wrong principal\n");
    expect_host_refused(
        &tried,
        &bastion,
        "not a listed principal",
        "a certificate for other.example.test",
    );
    assert_eq!(s.echo.accepted(), 0, "a tunnel opened");
}

/// A certificate valid at start that expires while the bastion runs: clients trust it before,
/// refuse it after, and the bastion logs the expiry at error level.
#[test]
fn an_expired_certificate_is_refused_by_the_client() {
    const VALID_FOR: Duration = Duration::from_secs(20);
    let s = setup();
    let cert = s.sign(
        &s.host,
        "short",
        NAME,
        &format!("-5m:+{}s", VALID_FOR.as_secs()),
    );
    // After signing: valid_before is at most this + VALID_FOR.
    let signed = Instant::now();
    let bastion = s.bastion(&cert).start();
    let warned = bastion.wait_event(Duration::from_secs(5), |e| {
        e["event"] == "host_certificate" && e["level"] == "WARN"
    });
    assert!(
        warned.is_some(),
        "no warning for a certificate expiring within 7 days: {}",
        bastion.stderr_text()
    );
    expect_certificate_trusted(
        &s.try_ca(&bastion, "before expiry\n"),
        "the certificate before it expires",
    );

    // Past valid_before (plus a second for ssh-keygen's rounding).
    let expired_at = signed + VALID_FOR + Duration::from_secs(2);
    std::thread::sleep(expired_at.saturating_duration_since(Instant::now()));
    let logged = bastion.wait_event(Duration::from_secs(5), |e| {
        e["event"] == "host_certificate" && e["level"] == "ERROR"
    });
    assert!(
        logged.is_some_and(|e| e["message"].as_str().is_some_and(|m| m.contains("expired"))),
        "no error event once the certificate expired: {}",
        bastion.stderr_text()
    );
    let auth_before = bastion.events_named("auth").len();
    let tried = s.try_ca(&bastion, "after expiry\n");
    assert!(!tried.echoed && !tried.status.success(), "{tried:?}");
    assert!(
        tried.stderr.contains(UNTRUSTED) && tried.stderr.contains("expired"),
        "the client did not refuse the expired certificate: {}",
        tried.stderr
    );
    assert_eq!(
        bastion.events_named("auth").len(),
        auth_before,
        "the client authenticated to a host with an expired certificate"
    );
    assert_eq!(s.echo.accepted(), 1, "only the tunnel before expiry opened");
}

/// Certificates the bastion refuses to start with, and what its message says.
#[test]
fn the_bastion_refuses_to_start_with_an_unusable_certificate() {
    let s = setup();
    let other = generate_key(s.dir.path(), "other_key");
    let user_cert = {
        let options = ["-I", "jumpbox", "-n", NAME, "-V", "-5m:+1h"];
        let path = sign_certificate(s.dir.path(), &s.ca, &s.host, "user", &options);
        std::fs::read_to_string(path).expect("reading the signed certificate")
    };
    let cases = [
        (
            "a certificate of another key",
            s.sign(&other, "other", NAME, "-5m:+1h"),
            vec![
                format!("the certificate is for key {}", other.fingerprint()),
                format!("not for the host key {}", s.host.fingerprint()),
            ],
        ),
        (
            "a user certificate",
            user_cert,
            vec!["is a user certificate, not a host certificate".to_string()],
        ),
        (
            "an expired certificate",
            s.sign(&s.host, "expired", NAME, "20200101:20200102"),
            vec![
                "the certificate expired at 2020-01-02".to_string(),
                format!("ssh-keygen -s host_ca -I \"jumpbox\" -h -n {NAME} -V"),
            ],
        ),
    ];
    for (what, cert, needles) in cases {
        let out = s.bastion(&cert).run_to_exit(Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(2), "{what}: {}", out.stderr);
        assert!(
            out.stderr.contains("BASTION_HOST_CERTIFICATE:"),
            "{what}: the message does not name the setting: {}",
            out.stderr
        );
        for needle in needles {
            assert!(
                out.stderr.contains(&needle),
                "{what}: the message lacks {needle:?}: {}",
                out.stderr
            );
        }
        assert!(
            parse_events(&out.stderr)
                .iter()
                .all(|e| e["event"] != "listening"),
            "{what}: the bastion listened: {}",
            out.stderr
        );
    }
}
