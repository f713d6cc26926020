use std::net::UdpSocket;
use std::time::Instant as StdInstant;

use super::*;

/// A DNS server that reads nothing and answers nothing, and the resolv.conf naming it.
struct Silent {
    socket: UdpSocket,
}

impl Silent {
    fn start() -> Silent {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("binding a UDP socket on loopback");
        Silent { socket }
    }

    fn port(&self) -> u16 {
        self.socket.local_addr().expect("local address").port()
    }

    /// A resolver asking only this server, with `hosts` as `/etc/hosts`.
    fn resolver(&self, hosts: &str, total: usize, per_connection: usize) -> Arc<Resolver> {
        let system = system::SystemConfig::parse(Some(b"nameserver 127.0.0.1\n"), hosts.as_bytes())
            .expect("test configuration")
            .on_port(self.port());
        let limits = LookupLimits {
            total,
            per_connection,
        };
        Arc::new(Resolver::assemble(system, limits).expect("test resolver"))
    }
}

const HOLD: Duration = Duration::from_secs(3);
const SHORT: Duration = Duration::from_millis(300);

/// Starts `n` lookups that the silent server leaves hanging for `HOLD`.
fn hang(lookups: &Arc<ConnectionLookups>, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let lookups = lookups.clone();
            tokio::spawn(async move {
                let _ = lookups.lookup(&format!("hang{i}.example"), HOLD).await;
            })
        })
        .collect()
}

/// Lets the spawned lookups take their slots.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_connection_has_at_most_its_slots_and_others_keep_theirs() {
    let dns = Silent::start();
    let resolver = dns.resolver("", 16, 2);
    let greedy = Arc::new(resolver.for_connection());
    let held = hang(&greedy, 2);
    settle().await;
    let third = greedy.lookup("third.example", SHORT).await;
    let Err(e) = third else {
        panic!("a third lookup on a connection with 2 slots: {third:?}")
    };
    assert_eq!(
        e,
        LookupError::Busy {
            timeout: SHORT,
            scope: Scope::Connection(2)
        }
    );
    assert_eq!(
        e.to_string(),
        "no lookup slot free within 300ms (this connection has 2 lookups in progress, \
         BASTION_DNS_MAX_LOOKUPS_PER_CONNECTION)"
    );
    // Another connection gets a slot: its lookup is asked, and finds no answer.
    let other = resolver.for_connection();
    assert_eq!(
        other.lookup("other.example", SHORT).await,
        Err(LookupError::NoAnswer(SHORT))
    );
    held.iter().for_each(|h| h.abort());
}

#[tokio::test]
async fn the_bastion_wide_bound_holds_across_connections() {
    let dns = Silent::start();
    let resolver = dns.resolver("", 3, 2);
    let first = Arc::new(resolver.for_connection());
    let second = Arc::new(resolver.for_connection());
    let mut held = hang(&first, 2);
    held.extend(hang(&second, 1));
    settle().await;
    let third = resolver.for_connection();
    let got = third.lookup("late.example", SHORT).await;
    assert_eq!(
        got,
        Err(LookupError::Busy {
            timeout: SHORT,
            scope: Scope::Bastion(3)
        })
    );
    let text = got.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("the bastion has 3 lookups in progress, BASTION_DNS_MAX_LOOKUPS"));
    held.iter().for_each(|h| h.abort());
}

/// The deadline ends the lookup (not hickory's 5 s × 2 attempts) and frees its slot at once.
#[tokio::test]
async fn the_deadline_ends_the_lookup_and_frees_its_slot() {
    let dns = Silent::start();
    let resolver = dns.resolver("", 1, 1);
    let lookups = resolver.for_connection();
    for round in 0..2 {
        let started = StdInstant::now();
        let got = lookups.lookup("silent.example", SHORT).await;
        let took = started.elapsed();
        assert_eq!(got, Err(LookupError::NoAnswer(SHORT)), "round {round}");
        assert!(took < SHORT * 3, "round {round} took {took:?}");
    }
    assert_eq!(resolver.slots.available_permits(), 1);
    assert_eq!(lookups.slots.available_permits(), 1);
}

/// A hosts-file name is answered from the file, as given, with every address of both
/// families, even while every slot is taken and the DNS server is silent.
#[tokio::test]
async fn hosts_file_names_need_no_dns_and_no_slot() {
    let dns = Silent::start();
    let hosts = "# comment\n10.1.2.3 db.corp db\nfd00::7 db.corp\n10.1.2.4 db.corp\n";
    let resolver = dns.resolver(hosts, 1, 1);
    let lookups = Arc::new(resolver.for_connection());
    let held = hang(&lookups, 1);
    settle().await;
    let started = StdInstant::now();
    let got = lookups.lookup("DB.corp.", SHORT).await;
    assert!(started.elapsed() < SHORT, "{:?}", started.elapsed());
    let want: Vec<IpAddr> = ["10.1.2.3", "10.1.2.4", "fd00::7"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(got, Ok(want));
    assert_eq!(
        lookups.lookup("db", SHORT).await,
        Ok(vec!["10.1.2.3".parse().unwrap()])
    );
    held.iter().for_each(|h| h.abort());
}

/// RFC 6761 names are answered without a server: `localhost` (with no hosts line) is
/// loopback, `.invalid` does not exist.
#[tokio::test]
async fn special_use_names_need_no_server() {
    let dns = Silent::start();
    let lookups = dns.resolver("", 4, 4).for_connection();
    let local = lookups.lookup("localhost", SHORT).await.unwrap();
    assert!(
        !local.is_empty() && local.iter().all(IpAddr::is_loopback),
        "{local:?}"
    );
    assert_eq!(
        lookups.lookup("nothing.invalid", SHORT).await,
        Err(LookupError::NoSuchName)
    );
}

#[test]
fn resolv_conf_is_read_as_glibc_reads_it() {
    let describe = |conf: Option<&str>| {
        let r = Resolver::new(
            conf.map(str::as_bytes),
            b"",
            LookupLimits {
                total: 256,
                per_connection: 8,
            },
        );
        r.map(|r| r.describe().to_owned()).unwrap()
    };
    let none = describe(None);
    assert!(
        none.starts_with("nameservers 127.0.0.1 (no /etc/resolv.conf); "),
        "{none}"
    );
    assert!(
        none.ends_with("/etc/hosts first; at most 256 lookups at once, 8 per connection"),
        "{none}"
    );
    let no_server = describe(Some(
        "search corp.example\noptions ndots:2 timeout:0 attempts:0\n",
    ));
    assert_eq!(
        no_server,
        "nameservers 127.0.0.1; search corp.example; ndots 2, timeout 1s, 1 attempts; \
         /etc/hosts first; at most 256 lookups at once, 8 per connection"
    );
    let full = describe(Some(
        "nameserver 10.0.0.2\nnameserver fd00::2\nsearch a.example b.example\n\
         options rotate timeout:2\n",
    ));
    assert!(
        full.starts_with(
            "nameservers 10.0.0.2 fd00::2; search a.example b.example; ndots 1, timeout 2s, \
             2 attempts;"
        ),
        "{full}"
    );
}

#[test]
fn unreadable_files_stop_the_start_and_missing_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let limits = LookupLimits {
        total: 1,
        per_connection: 1,
    };
    let missing = dir.path().join("missing");
    assert!(Resolver::from_files(&missing, &missing, limits).is_ok());
    // A directory cannot be read as a file.
    let e = Resolver::from_files(dir.path(), &missing, limits)
        .err()
        .unwrap_or_default();
    assert!(e.starts_with("cannot read "), "{e}");
    assert!(e.contains("need it readable (or absent)"), "{e}");
}
