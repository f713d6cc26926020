//! The audit catalogue: every event the bastion logs, defined once, with the fields it carries
//! and what it means. `audit` emits them; the README's event table is generated from this list
//! (and a test fails when the two differ); an in-process server test checks that what is really
//! logged stays inside it. To add an event: add a constant here, list it in [`ALL`], emit it
//! from a function in `audit`, and regenerate the README table (see `audit/tests.rs`).

/// One audit event: its `event` value, its fields (besides `event` and `message`) and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSpec {
    pub name: &'static str,
    pub fields: &'static [&'static str],
    pub meaning: &'static str,
}

macro_rules! events {
    ($($id:ident = $name:literal [$($field:literal),*] $meaning:literal;)*) => {
        $(pub const $id: EventSpec = EventSpec {
            name: $name,
            fields: &[$($field),*],
            meaning: $meaning,
        };)*
        /// Every event, in the order of the README table.
        pub const ALL: &[EventSpec] = &[$($id),*];
    };
}

events! {
    HOST_KEY = "host_key" ["fingerprint", "source"]
        "the host key in use at start (`generated` is a warning: clients will see a new key after a restart)";
    HOST_CERTIFICATE = "host_certificate" ["key_id", "principals", "serial", "valid_until", "ca_fingerprint", "expires_in_s"]
        "the host certificate presented with the host key (`BASTION_HOST_CERTIFICATE`), at start; at warn level at start and once a day while it expires within 7 days, at error level when it has expired (clients trusting the host CA then refuse the bastion): sign a new one and restart";
    CONFIG = "config" ["authorized_keys", "certificate_authorities", "revoked", "keys_source", "permit_open", "proxy_protocol", "clients", "name_lookups"]
        "the configuration in force at start (`name_lookups`: the DNS servers, search list and options read from `/etc/resolv.conf`, and the lookup limits)";
    FD_LIMIT = "fd_limit" ["soft_before", "limit", "hard", "reserve", "max_connections", "max_tunnels"]
        "the open file limit at start (the soft limit as found, raised to the hard one) and the `BASTION_MAX_CONNECTIONS` and `BASTION_MAX_TUNNELS` in force, which fit in it with `reserve` to spare; at warn level when the caps had to be lowered to fit or the limit could not be raised";
    KEY_OPTION_NOTE = "key_option_note" ["line", "fingerprint", "note"]
        "an `authorized_keys` option that has no effect on a forward-only server, or (at warn level) a line that cannot work as written: a `from=` host name, a security key without `no-touch-required`";
    KEY_LINE_REJECTED = "key_line_rejected" ["source", "line", "error"]
        "an `authorized_keys` line refused for its options or for an RSA key below `BASTION_MIN_RSA_BITS`; the other lines are loaded";
    KEYS_WAIT = "keys_wait" ["setting", "path", "limit_s"]
        "at start, a key or revocation file (`BASTION_AUTHORIZED_KEYS_FILE`, `BASTION_REVOKED_KEYS_FILE`) does not exist yet: the bastion waits for it up to `BASTION_WAIT_FOR_KEYS` before it loads keys and listens";
    KEYS_APPEARED = "keys_appeared" ["setting", "path", "waited_ms"]
        "a file the bastion waited for at start exists now, after `waited_ms`";
    LISTENING = "listening" ["addr"]
        "the listener is open";
    CONNECTION = "connection" ["conn", "client", "sender", "vpce_id"]
        "a connection was admitted (`sender`: the PROXY sender when the client address came from a header)";
    CONNECTION_DROPPED = "connection_dropped" ["client", "limit", "reason"]
        "a connection was closed at accept, before any SSH byte, by the limit or penalty `limit` names; logged at most 5 times per source and limit per minute (once per penalty), every one counted in `limits`";
    PENALTY = "penalty" ["client", "offence", "duration_s"]
        "a source's penalties reached the minimum: its new connections are refused at accept for `duration_s`";
    PROXY_REJECTED = "proxy_rejected" ["sender", "reason"]
        "no valid PROXY header, or one from an untrusted sender: closed before SSH";
    CLIENT_REFUSED = "client_refused" ["client", "sender", "rule"]
        "the client address is refused by the client rules: closed before SSH (at most 5 times per source per minute; every one counted in `limits`)";
    HEALTH_CHECK = "health_check" ["sender", "count"]
        "a load balancer health check (PROXY v2 LOCAL), logged at debug level";
    BANNER_TIMEOUT = "banner_timeout" ["conn", "client"]
        "no SSH identification within `BASTION_BANNER_TIMEOUT`: closed";
    LOGIN_TIMEOUT = "login_timeout" ["conn", "client"]
        "not authenticated within `BASTION_LOGIN_GRACE_TIME`: closed";
    AUTH = "auth" ["conn", "client", "user", "fingerprint", "key_id", "principals", "serial", "ca_fingerprint", "result", "detail"]
        "a public key or certificate was accepted or rejected, with the line or certificate that decided; for a certificate, `key_id`, `principals` (comma-joined), `serial` and `ca_fingerprint` say who it was issued to (`user` is only the login name the client chose)";
    REQUEST_REFUSED = "request_refused" ["conn", "client", "kind", "detail"]
        "a refused request: password, shell command, sftp, agent, X11, `-R`, Unix sockets";
    TUNNEL_REFUSED = "tunnel_refused" ["conn", "client", "user", "fingerprint", "key_id", "principals", "serial", "ca_fingerprint", "destination", "reason"]
        "a tunnel (or a `session` channel) was refused (policy, `permitopen`, unreachable; refusals by `BASTION_MAX_CHANNELS`, `BASTION_MAX_SESSIONS`, `BASTION_CHANNEL_OPEN_RATE` and `BASTION_MAX_TUNNELS` are logged once per connection and limit, and counted in `limits`)";
    TUNNEL_OPEN = "tunnel_open" ["conn", "client", "user", "fingerprint", "key_id", "principals", "serial", "ca_fingerprint", "channel", "destination", "resolved"]
        "a tunnel is connected to its destination (`key_id`, `principals`, `serial`, `ca_fingerprint`: the certificate of a certificate login, as in `auth`)";
    TUNNEL_CLOSE = "tunnel_close" ["conn", "client", "user", "fingerprint", "key_id", "principals", "serial", "ca_fingerprint", "channel", "destination", "resolved", "bytes_to_destination", "bytes_from_destination", "duration_ms", "reason"]
        "a tunnel ended: bytes each way, duration and why";
    CONNECTION_CLOSED = "connection_closed" ["conn", "client", "duration_ms", "reason"]
        "a connection ended, and why";
    KEYS_RELOADED = "keys_reloaded" ["trigger", "keys", "revoked", "source"]
        "the key or revocation file changed and was loaded";
    KEYS_UNCHANGED = "keys_unchanged" ["trigger"]
        "the key files were re-read (SIGHUP, or after a failure) and are unchanged";
    KEYS_RELOAD_FAILED = "keys_reload_failed" ["trigger", "error"]
        "a changed key file is broken: the previous keys stay in force";
    ACCESS_REVOKED = "access_revoked" ["conn", "reason"]
        "a connection was closed because its key or CA was removed or revoked, or its key line now refuses it (`restrict`, `no-port-forwarding`, a past `expiry-time`, a `from=` that no longer matches); a narrower `permitopen` applies to its later tunnels instead";
    CLIENT_POLICY_RELOADED = "client_policy_reloaded" ["trigger", "summary"]
        "a hosts.allow/hosts.deny file changed and was loaded";
    CLIENT_POLICY_UNCHANGED = "client_policy_unchanged" ["trigger"]
        "the client rule files were re-read (SIGHUP, or after a failure) and are unchanged";
    CLIENT_POLICY_RELOAD_FAILED = "client_policy_reload_failed" ["trigger", "error"]
        "a changed hosts file is broken: the previous client rules stay in force";
    ACCEPT_ERROR = "accept_error" ["error", "suppressed"]
        "`accept` failed (for example out of file descriptors, which the caps and their reserve should prevent); retried after 100 ms (at once for a connection reset before it was accepted), logged at most once a minute with the number of failures not logged since the last one (`suppressed`)";
    LIMITS = "limits" ["client_rules", "penalised", "penalties_started", "source_rate", "source_connections", "source_startups", "connections_full", "startups_full", "evicted", "proxy_timeout", "banner_timeout", "login_timeout", "channel_cap", "session_cap", "channel_rate", "tunnels_full"]
        "once a minute when one changed, and at shutdown: how many times each limit bit since start (refusals at accept by rule, penalty, per-source limit and `BASTION_MAX_CONNECTIONS`; evictions; deadlines; channel opens refused by `BASTION_MAX_CHANNELS`, `BASTION_MAX_SESSIONS`, `BASTION_CHANNEL_OPEN_RATE` and `BASTION_MAX_TUNNELS`)";
    SHUTDOWN = "shutdown" ["signal", "grace_s"]
        "SIGTERM/SIGINT: the listener is closed, open tunnels may finish";
    SHUTDOWN_GRACE_EXPIRED = "shutdown_grace_expired" ["connections"]
        "the shutdown grace period ended: the remaining connections are closed";
    SHUTDOWN_COMPLETE = "shutdown_complete" []
        "every connection is closed; the bastion exits";
}

/// The catalogue entry of an event name.
pub fn find(name: &str) -> Option<&'static EventSpec> {
    ALL.iter().find(|e| e.name == name)
}

/// The README's event table, generated from [`ALL`].
pub fn markdown_table() -> String {
    let mut out = String::from("| event | fields | meaning |\n|---|---|---|\n");
    for e in ALL {
        let fields: Vec<String> = e.fields.iter().map(|f| format!("`{f}`")).collect();
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            e.name,
            fields.join(", "),
            e.meaning
        ));
    }
    out
}
