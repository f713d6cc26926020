//! Unit tests of `config`.
use super::*;

#[test]
fn listen_accepts_ipv4_and_ipv6() {
    assert!(parse_listen("0.0.0.0:2222").is_ok());
    assert!(parse_listen("[::]:2222").is_ok());
    let e = parse_listen("localhost:22").unwrap_err().to_string();
    assert!(
        e.contains("BASTION_LISTEN") && e.contains("localhost:22"),
        "{e}"
    );
    assert!(parse_listen("0.0.0.0").is_err());
    assert!(parse_listen("0.0.0.0:99999").is_err());
}

#[test]
fn durations_explain_the_format() {
    assert_eq!(parse_duration("25s"), Ok(Duration::from_secs(25)));
    assert!(parse_duration("soon").unwrap_err().contains("30s"));
}

#[test]
fn cli_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

/// The settings of a minimal valid configuration plus `extra` (flag, value) pairs.
fn settings_with(extra: &[&str]) -> Result<Settings, ConfigError> {
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEbXWm1Cq1cC0t5F6Xb5J1z4B8k1v1Qm5pXl0bV8aQhI x";
    let mut argv = vec!["bastion", "--authorized-keys", key];
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv)
        .expect("arguments parse")
        .options
        .into_settings()
}

#[test]
fn flood_limits_have_safe_defaults() {
    let s = settings_with(&[]).expect("defaults are valid");
    assert_eq!(s.admission.max_startups, 64);
    assert_eq!(s.admission.per_source_startups, 8);
    assert_eq!(s.admission.per_source_connections, 64);
    assert_eq!(s.admission.per_source_rate, 20);
    assert_eq!(s.net_blocks.to_string(), "32:64");
    assert!(s.penalties.enabled);
    assert_eq!(s.penalties, PenaltySettings::default());
    assert!(s.penalty_exempt.allowed && s.penalty_exempt.nets.is_empty());
    assert_eq!(s.banner_timeout, Duration::from_secs(5));
    assert_eq!(s.channels.max_open, 256);
    assert_eq!(s.channels.open_rate, 50);
    assert_eq!(s.admission.max_connections, 1024);
    assert_eq!(s.channels.max_sessions, 10);
    assert_eq!(s.channels.max_tunnels, 4096);
    for flag in ["--max-connections", "--max-sessions", "--max-tunnels"] {
        let parsed = Cli::try_parse_from(["bastion", flag, "0"]);
        assert!(parsed.is_err(), "{flag} 0 is refused");
    }
}

#[test]
fn bad_flood_limits_name_the_setting() {
    for (flag, value, setting) in [
        (
            "--per-source-net-block-size",
            "40:64",
            "BASTION_PER_SOURCE_NET_BLOCK_SIZE",
        ),
        (
            "--per-source-penalties",
            "authfail:often",
            "BASTION_PER_SOURCE_PENALTIES",
        ),
        (
            "--per-source-penalty-exempt",
            "10.0.0.1/8",
            "BASTION_PER_SOURCE_PENALTY_EXEMPT",
        ),
        (
            "--per-source-penalty-exempt",
            "everyone",
            "BASTION_PER_SOURCE_PENALTY_EXEMPT",
        ),
        ("--banner-timeout", "0s", "BASTION_BANNER_TIMEOUT"),
    ] {
        let e = match settings_with(&[flag, value]) {
            Ok(_) => panic!("{flag} {value} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(e.starts_with(setting), "{flag} {value}: {e}");
    }
    let exempt = settings_with(&["--per-source-penalty-exempt", "192.0.2.0/24, 2001:db8::/48"])
        .expect("CIDRs without `allowed`")
        .penalty_exempt;
    assert!(!exempt.allowed && exempt.nets.len() == 2);
}

#[test]
fn min_rsa_bits_defaults_to_2048_and_stops_at_1024() {
    let s = settings_with(&[]).expect("defaults are valid");
    assert_eq!(s.keys.current().min_rsa_bits.bits(), 2048);
    let s = settings_with(&["--min-rsa-bits", "1024"]).expect("1024 is allowed");
    assert_eq!(s.keys.current().min_rsa_bits.bits(), 1024);
    let e = settings_with(&["--min-rsa-bits", "512"])
        .err()
        .expect("512 is refused")
        .to_string();
    assert!(
        e.starts_with("BASTION_MIN_RSA_BITS: 512 is below 1024"),
        "{e}"
    );
}

#[test]
fn host_certificate_text_and_file_conflict_and_errors_name_the_setting() {
    let both = Cli::try_parse_from([
        "bastion",
        "--host-certificate",
        "x",
        "--host-certificate-file",
        "/x",
    ]);
    assert!(both.is_err(), "text and file were both accepted");
    let e = settings_with(&["--host-certificate", "not a certificate"])
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with("BASTION_HOST_CERTIFICATE:"), "{e}");
    assert!(settings_with(&[]).unwrap().host_certificate.is_none());
}
