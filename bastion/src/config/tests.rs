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
