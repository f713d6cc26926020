//! What a login is told it may reach: its `permitopen` entries within the server's rules, or
//! the server's rules; bounded, terminal-safe, with an example.

use super::*;
use crate::authorized_keys::AuthorizedKeys;
use crate::key_options::parse_options;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICIjdiUtJdomjTqyaNtCcLVJrVxramimyS26/xj01HsR";

fn policy(rules: &str) -> DestinationPolicy {
    DestinationPolicy::parse(rules).unwrap()
}

/// The options of an authorized_keys line.
fn key(options: &str) -> KeyRestrictions {
    if options.is_empty() {
        return KeyRestrictions::default();
    }
    let (options, _key) = parse_options(&format!("{options} {KEY} comment")).unwrap();
    KeyRestrictions::from_options(&options).unwrap()
}

/// The listed destinations of a notice (the indented lines), without `\r\n`.
fn listed(text: &str) -> Vec<String> {
    text.split("\r\n")
        .filter_map(|l| l.strip_prefix("  "))
        .map(str::to_owned)
        .collect()
}

fn assert_terminal_safe(text: &str) {
    for line in text.split("\r\n") {
        assert!(
            !line.chars().any(|c| c.is_control()),
            "a control character in {line:?}"
        );
    }
    assert!(text.ends_with("\r\n"), "{text:?} does not end with \\r\\n");
    assert!(
        !text.replace("\r\n", "").contains(['\r', '\n']),
        "a bare CR or LF in {text:?}"
    );
}

#[test]
fn without_permitopen_the_server_rules_are_listed_for_people() {
    let reach = Reach::of(
        &policy("10.0.0.0/8:5432,*.db.internal:*,cache.internal:6379,[fd00::/8]:*"),
        &key(""),
    );
    let notice = reach.shell_notice();
    assert_eq!(
        listed(&notice),
        [
            "10.0.0.0/8 port 5432",
            "*.db.internal any port",
            "cache.internal port 6379",
            "fd00::/8 any port"
        ]
    );
    assert!(notice.contains("(this server's rules)"), "{notice}");
    assert!(!notice.contains("still apply"), "{notice}");
    assert!(
        notice.contains("Example: ssh -N -L 16379:cache.internal:6379 <user>@<this host>\r\n"),
        "the first concrete rule is the example: {notice}"
    );
    assert!(notice.contains("only forwards ports") && notice.contains("add -N"));
    assert_terminal_safe(&notice);
}

#[test]
fn the_default_policy_lists_the_private_ranges() {
    let text = Reach::of(&policy(""), &key("")).no_commands();
    assert_eq!(
        listed(&text),
        [
            "10.0.0.0/8 any port",
            "172.16.0.0/12 any port",
            "192.168.0.0/16 any port",
            "fc00::/7 any port"
        ]
    );
    assert!(
        text.contains("ssh -N -L local_port:destination:port"),
        "no concrete destination: the generic form: {text}"
    );
    assert!(text.starts_with("This host only forwards ports: commands, sftp and scp"));
    assert_terminal_safe(&text);
}

#[test]
fn a_narrower_permitopen_lists_only_its_entries() {
    let reach = Reach::of(
        &policy("10.0.0.0/8:*,*.db.internal:5432"),
        &key(r#"permitopen="10.1.2.3:5432",permitopen="orders.db.internal:5432""#),
    );
    let notice = reach.shell_notice();
    assert_eq!(
        listed(&notice),
        ["10.1.2.3:5432", "orders.db.internal:5432"]
    );
    assert!(
        !notice.contains("10.0.0.0/8"),
        "server rules leaked: {notice}"
    );
    assert!(
        !notice.contains("*.db.internal"),
        "server rules leaked: {notice}"
    );
    assert!(notice.contains("(its permitopen entries)"), "{notice}");
    assert!(
        notice.contains("a name that resolves outside them is refused"),
        "{notice}"
    );
    assert!(
        notice.contains("Example: ssh -N -L 15432:10.1.2.3:5432 <user>@<this host>"),
        "{notice}"
    );
    assert_terminal_safe(&notice);
}

#[test]
fn permitopen_entries_the_server_refuses_outright_are_left_out() {
    let reach = Reach::of(
        &policy("10.0.0.0/8:5432,*.db.internal:5432"),
        &key(concat!(
            r#"permitopen="192.168.1.1:5432","#,        // outside every rule
            r#"permitopen="10.1.2.3:22","#,             // right address, wrong port
            r#"permitopen="127.0.0.1:5432","#,          // loopback, no rule names it
            r#"permitopen="a.db.internal:22","#,        // name rule, wrong port
            r#"permitopen="orders.db.internal:5432","#, // a name rule admits it
            r#"permitopen="elsewhere.example:5432","#,  // may resolve into 10/8
            r#"permitopen="10.9.9.9:*""#                // port 5432 works
        )),
    );
    let notice = reach.shell_notice();
    assert_eq!(
        listed(&notice),
        [
            "orders.db.internal:5432",
            "elsewhere.example:5432",
            "10.9.9.9:* (any port)"
        ]
    );
    assert!(
        notice.contains("Example: ssh -N -L 15432:orders.db.internal:5432"),
        "{notice}"
    );
}

#[test]
fn name_rules_only_refuse_names_they_do_not_cover() {
    let reach = Reach::of(
        &policy("*.db.internal:5432"),
        &key(r#"permitopen="web.example:5432",permitopen="[fd00::5]:5432""#),
    );
    assert_eq!(
        reach
            .shell_notice()
            .matches("None of this key's permitopen")
            .count(),
        1,
        "no address rule: neither a foreign name nor a literal can pass"
    );
    let v6 = Reach::of(
        &policy("[fd00::/8]:5432"),
        &key(r#"permitopen="[fd00::5]:5432""#),
    );
    let text = v6.no_commands();
    assert_eq!(listed(&text), ["[fd00::5]:5432"]);
    assert!(text.contains("ssh -N -L 15432:[fd00::5]:5432"), "{text}");
}

#[test]
fn an_any_host_entry_stands_for_the_server_rules_on_its_port() {
    let reach = Reach::of(
        &policy("10.0.0.0/8:*,db.internal:5432,cache.internal:6379"),
        &key(r#"permitopen="*:5432""#),
    );
    assert_eq!(
        listed(&reach.shell_notice()),
        ["10.0.0.0/8 port 5432", "db.internal port 5432"]
    );
}

#[test]
fn a_certificate_login_sees_its_ca_lines_permitopen() {
    // A certificate carries no destinations of its own (OpenSSH has no such critical option);
    // its logins take the options of the `cert-authority` line that trusts its CA.
    let keys = AuthorizedKeys::load(
        Some(&format!(
            "cert-authority,permitopen=\"db.internal:5432\" {KEY} ca\n"
        )),
        None,
    )
    .unwrap();
    let ca = keys.authorities().next().unwrap();
    let reach = Reach::of(&policy("10.0.0.0/8:*"), &ca.restrictions);
    assert_eq!(listed(&reach.shell_notice()), ["db.internal:5432"]);
}

#[test]
fn a_long_list_is_cut_at_twenty_lines() {
    let rules: Vec<String> = (1..=25).map(|i| format!("10.0.0.{i}:22")).collect();
    let text = Reach::of(&policy(&rules.join(",")), &key("")).shell_notice();
    let lines = listed(&text);
    assert_eq!(lines.len(), MAX_LINES + 1);
    assert_eq!(lines[MAX_LINES - 1], "10.0.0.20 port 22");
    assert_eq!(lines[MAX_LINES], "... and 5 more");
    assert!(!text.contains("10.0.0.21"), "{text}");
}

#[test]
fn hostile_hosts_never_reach_the_terminal() {
    // `permitopen` refuses whitespace and control characters; anything else it keeps, and the
    // server refuses such a host as "not a valid host name", so it is left out.
    let entries = [
        "permitopen=\"$(reboot):22\"",
        "permitopen=\"evil\u{202e}txt.internal:22\"",
        "permitopen=\"10.0.0.5:22\"",
    ]
    .join(",");
    let text = Reach::of(&policy(""), &key(&entries)).shell_notice();
    assert_eq!(listed(&text), ["10.0.0.5:22"]);
    for hostile in ["$(reboot)", "reboot", "evil", "\u{202e}"] {
        assert!(
            !text.contains(hostile),
            "{hostile:?} reached the notice: {text:?}"
        );
    }
    assert_terminal_safe(&text);
    // And whatever reaches a line is escaped: no control character survives `safe`.
    assert_eq!(safe("a\u{1b}[31mb\u{202e}"), "a?[31mb\\u{202e}");
    assert!(safe(&"x".repeat(500)).len() <= LINE_MAX + 3);
}
