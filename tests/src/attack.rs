//! One attacker and one innocent user against a fresh bastion, the setup the attack tests share
//! (`russh_surface`, `memory_bounds`). The attacker logs in with the test directory's key
//! through a peer from `tests/peers/`; the other user's `ssh -W` to an echo shows whether the
//! bastion still serves everyone else; the bastion's resident memory before the attack is the
//! baseline its growth is measured from.

use std::time::{Duration, Instant};

use crate::attempts::{attempt, expect_moves_bytes};
use crate::bastion::{Bastion, BastionBuilder};
use crate::keys::{generate_key, KeyPair};
use crate::netns::require_loopback_only_netns;
use crate::peers::Peer;
use crate::servers::TestServer;
use crate::testdir::TestDir;

/// How long another user's `ssh -W` round trip may take while an attack runs.
pub const OTHER_USER_BUDGET: Duration = Duration::from_secs(10);

/// A bastion permitting an echo (and any extra destinations), with two users: the attacker
/// (`dir.key`) and an innocent other user.
pub struct Attack {
    pub dir: TestDir,
    pub other: KeyPair,
    pub echo: TestServer,
    pub bastion: Bastion,
    pub baseline_kib: u64,
}

impl Attack {
    /// Starts the bastion with `settings`, permitting the echo and each of `extra`.
    pub fn start(extra: &[&TestServer], settings: &[(&str, &str)]) -> Attack {
        require_loopback_only_netns();
        let dir = TestDir::new();
        let other = generate_key(dir.path(), "other_user");
        let echo = TestServer::echo_v4();
        let permit: Vec<String> = std::iter::once(&echo)
            .chain(extra.iter().copied())
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        let keys = format!("{}\n{}\n", dir.key.public_line, other.public_line);
        let mut builder = BastionBuilder::new(&keys).permit_open(permit.join(","));
        for (key, value) in settings {
            builder = builder.env(key, *value);
        }
        let bastion = builder.start();
        let baseline_kib = bastion.rss_kib();
        Attack {
            dir,
            other,
            echo,
            bastion,
            baseline_kib,
        }
    }

    /// The attacking peer (`russh_peer.py MODE ARGS`), logged in with `dir.key`.
    pub fn peer(&self, mode: &str, args: &[&str]) -> Peer {
        Peer::spawn(
            self.bastion.addr(),
            &self.dir.key.private,
            mode,
            args,
            &format!("russh_peer {mode}"),
        )
    }

    /// The other user's `ssh -W` to the echo: it must carry bytes within
    /// [`OTHER_USER_BUDGET`]. Returns how long it took.
    pub fn other_user_tunnel_works(&self, during: &str) -> Duration {
        let started = Instant::now();
        let run = attempt(
            self.bastion.ssh(&self.other.private),
            &self.echo.spec(),
            "other user's bytes\n",
        );
        let took = started.elapsed();
        expect_moves_bytes(&run, &format!("another user's tunnel during {during}"));
        assert!(
            took < OTHER_USER_BUDGET,
            "another user's tunnel during {during} took {took:?} (budget {OTHER_USER_BUDGET:?})"
        );
        took
    }

    /// How much the bastion's peak RSS grew over the baseline, printed with `what`.
    pub fn peak_growth_kib(&self, what: &str) -> u64 {
        let grown = self
            .bastion
            .peak_rss_kib()
            .saturating_sub(self.baseline_kib);
        println!(
            "{what}: bastion peak RSS grew by {grown} KiB (from {} KiB)",
            self.baseline_kib
        );
        grown
    }
}
