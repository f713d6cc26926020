//! The accept loop and a connection's life: SSH transport settings, the gate before any SSH
//! byte ([`gate`]: client rules, penalties, per-source limits and slots, the PROXY header), the
//! pre-authentication watchdog (eviction, the banner deadline and the login deadline, since
//! russh has none of its own), the penalty a failed connection earns, and graceful shutdown
//! when the `shutdown` future given to [`serve`] resolves: stop accepting, let open tunnels
//! finish within the grace period, then close.
//!
//! The server wires the layers together and owns no policy: `admission`, `penalties`,
//! `proxy_header`, `client_policy`, `session`, `connections` and `reload` each own theirs.

mod accept_errors;
mod gate;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::keys::{Algorithm, EcdsaCurve, HashAlg};
use russh::server::Config;
use russh::{cipher, kex, mac, MethodKind, MethodSet, Preferred, SshId};
use tokio::net::{TcpListener, TcpStream};

use tokio::task::JoinHandle;
use tokio::time::Instant as TokioInstant;

use crate::admission::{Admission, StartupSlot};
use crate::audit;
use crate::channel_budget::TunnelSlots;
use crate::config::Settings;
use crate::connections::{ConnState, Registry};
use crate::flow::{Flow, FlowLimits, GatedStream, WindowBudget};
use crate::key_store::KeyStore;
use crate::limit_counters::{Limit, LimitCounters, LOG_PERIOD};
use crate::own_listener::OwnListeners;
use crate::penalties::{Offence, Penalties};
use crate::progress::{Cut, Progress, Stage, Watched};
use crate::proxy_header::Prefixed;
use crate::reload::{Reloadable, Watcher, POLL_INTERVAL};
use crate::session::{SessionHandler, SessionSettings};
use crate::tunnel::TunnelSettings;
use accept_errors::AcceptErrors;
use gate::Gate;

/// The identification string: no library or version to fingerprint.
pub const SERVER_ID: &str = "SSH-2.0-bastion";

/// Transport settings: what current OpenSSH clients ask for, nothing weak.
pub fn ssh_config(settings: &Settings) -> Config {
    let preferred = Preferred {
        kex: Cow::Borrowed(&[
            kex::MLKEM768X25519_SHA256,
            kex::CURVE25519,
            kex::CURVE25519_PRE_RFC_8731,
            kex::EXTENSION_SUPPORT_AS_SERVER,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]),
        cipher: Cow::Borrowed(&[
            cipher::AES_128_GCM,
            cipher::CHACHA20_POLY1305,
            cipher::AES_256_GCM,
            cipher::AES_128_CTR,
            cipher::AES_256_CTR,
        ]),
        // Encrypt-then-MAC only (for the CTR ciphers; the AEAD ones carry their own tag):
        // russh's default list also offers `hmac-sha2-256`/`-512`, which MAC the plaintext
        // and which ssh-audit flags.
        mac: Cow::Borrowed(&[mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM]),
        // Signature algorithms for host and user keys: no SHA-1 `ssh-rsa`.
        key: Cow::Borrowed(&[
            Algorithm::Ed25519,
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP384,
            },
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP521,
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
        ]),
        ..Preferred::default()
    };
    Config {
        server_id: SshId::Standard(Cow::Borrowed(SERVER_ID)),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_millis(500),
        // OpenSSH clients probe with "none" first: answer that at once.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![settings.host_key.key.clone()],
        // Offered (as `*-cert-v01@openssh.com`) ahead of the plain key, which stays offered
        // for clients that pin the key itself.
        certificates: settings
            .host_certificate
            .iter()
            .map(|c| c.certificate.clone())
            .collect(),
        window_size: settings.flow.window,
        maximum_packet_size: 32768,
        preferred,
        // Our own counter (auth.rs) also counts probes of unknown keys, as sshd does.
        max_auth_attempts: settings.max_auth_tries as usize,
        // Dead peers are found by keepalives; the login deadline is enforced here.
        inactivity_timeout: None,
        keepalive_interval: settings.keepalive_interval,
        keepalive_max: 3,
        nodelay: true,
        ..Config::default()
    }
}

/// Everything the accept loop and the connection tasks share.
struct Server {
    config: Arc<Config>,
    session: SessionSettings,
    flow_limits: FlowLimits,
    window_budget: Arc<WindowBudget>,
    login_grace: Duration,
    banner_timeout: Duration,
    next_id: AtomicU64,
    registry: Arc<Registry>,
    gate: Gate,
}

/// Bind the listen address (fails before anything else happens if it cannot).
pub async fn bind(settings: &Settings) -> Result<TcpListener, String> {
    TcpListener::bind(settings.listen).await.map_err(|e| {
        format!(
            "BASTION_LISTEN: cannot listen on {}: {e}; pick a free port or an address of this host",
            settings.listen
        )
    })
}

/// Serve until `shutdown` resolves (with the name of what stopped it, for the audit event),
/// then shut down gracefully: no new connections, open tunnels finish within the grace period.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = &'static str>,
) -> Result<(), String> {
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let grace = settings.shutdown_grace;
    let server = Arc::new(Server::new(settings, local));
    // One watcher for every reloadable file; it also makes SIGHUP a reload signal.
    let watcher = Watcher::spawn(server.reloadables(), POLL_INTERVAL);
    let revoker = tokio::spawn(recheck_on_change(
        server.session.keys.clone(),
        server.registry.clone(),
    ));
    let reporter = tokio::spawn(report_limits(server.gate.counters.clone()));
    audit::listening(local);
    tokio::pin!(shutdown);
    let mut errors = AcceptErrors::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => accept(&server, stream, peer),
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; keep the listener.
                    let pause = errors.failed(&e, Instant::now());
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
            },
            signal = &mut shutdown => {
                audit::shutdown(signal, grace);
                break;
            }
        }
    }
    drop(listener);
    server.registry.drain(grace).await;
    reporter.abort();
    server.gate.counters.report();
    drop(watcher);
    revoker.abort();
    Ok(())
}

impl Server {
    /// `local`: the bound listening address (tunnels back to it are refused).
    fn new(settings: Settings, local: SocketAddr) -> Server {
        let counters = Arc::new(LimitCounters::default());
        Server {
            config: Arc::new(ssh_config(&settings)),
            session: SessionSettings {
                keys: settings.keys,
                max_auth_tries: settings.max_auth_tries,
                tunnels: Arc::new(TunnelSettings {
                    destinations: settings.destinations,
                    own_listeners: OwnListeners::new(vec![local]),
                    resolver: settings.resolver,
                    connect_timeout: settings.connect_timeout,
                }),
                channels: settings.channels,
                tunnel_slots: TunnelSlots::new(settings.channels.max_tunnels),
                counters: counters.clone(),
            },
            flow_limits: settings.flow,
            window_budget: WindowBudget::new(settings.flow.window_budget),
            login_grace: settings.login_grace_time,
            banner_timeout: settings.banner_timeout,
            next_id: AtomicU64::new(1),
            registry: Arc::new(Registry::default()),
            gate: Gate {
                admission: Admission::new(settings.admission),
                penalties: Penalties::new(settings.penalties, settings.penalty_exempt),
                blocks: settings.net_blocks,
                proxy: settings.proxy,
                clients: settings.clients,
                counters,
                health_checks: AtomicU64::new(0),
                local_is_health_check: !local.ip().is_loopback(),
            },
        }
    }

    /// The files to watch: the client rules always (a SIGHUP re-reads them), the keys when
    /// they come from files (content from the environment never changes).
    fn reloadables(&self) -> Vec<Arc<dyn Reloadable>> {
        let mut files: Vec<Arc<dyn Reloadable>> = vec![self.gate.clients.clone()];
        if self.session.keys.has_files() {
            files.push(self.session.keys.clone());
        }
        files
    }
}

/// After each key reload: re-check every login against its key's new line (close it, or
/// apply the new options to its later tunnels).
async fn recheck_on_change(keys: Arc<KeyStore>, registry: Arc<Registry>) {
    let mut changes = keys.subscribe();
    while changes.changed().await.is_ok() {
        let keys = changes.borrow_and_update().clone();
        registry.recheck(&keys, crate::auth::now_unix());
    }
}

/// The `limits` event, once a minute when a count changed.
async fn report_limits(counters: Arc<LimitCounters>) {
    let mut every = tokio::time::interval(LOG_PERIOD);
    every.tick().await;
    loop {
        every.tick().await;
        counters.report();
    }
}

/// Admission checks that need no byte from the peer run here, synchronously, so a refused
/// or penalised source costs no task and no slot; the rest runs in the connection's task.
fn accept(server: &Arc<Server>, stream: TcpStream, peer: SocketAddr) {
    let Some((ticket, slot, screened)) = server.gate.at_accept(peer) else {
        return;
    };
    let id = server.next_id.fetch_add(1, Ordering::Relaxed);
    let server = server.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let mut ticket = ticket;
        let Some(admitted) = server
            .gate
            .before_ssh(stream, peer, &mut ticket, &slot, screened)
            .await
        else {
            return;
        };
        let (client, health_check) = (admitted.client, admitted.health_check);
        let sender = (client != peer).then_some(peer);
        audit::connection_opened(
            id,
            client,
            sender,
            admitted.vpce_id.as_deref(),
            health_check,
        );
        let progress = slot.progress().clone();
        let state = Arc::new(ConnState::default());
        let reason = connection(&server, id, admitted.stream, client, slot, state.clone()).await;
        server.registry.remove(id);
        let reason = cut_reason(progress.cut_reason()).unwrap_or(reason);
        audit::connection_closed(id, client, started.elapsed(), &reason, health_check);
        if !health_check && !state.is_authenticated() {
            let offence = offence(progress.cut_reason(), &state);
            server
                .gate
                .penalise(&ticket, admitted.screened, client, offence);
        }
    });
}

/// What an unauthenticated connection earned at its end.
fn offence(cut: Option<Cut>, state: &ConnState) -> Offence {
    match cut {
        Some(Cut::LoginTimeout) => Offence::GraceExceeded,
        _ if state.had_auth_failure() => Offence::AuthFail,
        _ => Offence::NoAuth,
    }
}

/// The close reason when the bastion cut the connection before authentication.
fn cut_reason(cut: Option<Cut>) -> Option<String> {
    Some(match cut? {
        Cut::Evicted(stage) => format!(
            "evicted ({}) to make room for a new connection at BASTION_MAX_STARTUPS or \
             BASTION_MAX_CONNECTIONS",
            stage.describe()
        ),
        Cut::BannerTimeout => "no SSH identification within BASTION_BANNER_TIMEOUT".to_owned(),
        Cut::LoginTimeout => "not authenticated within BASTION_LOGIN_GRACE_TIME".to_owned(),
    })
}

/// Close the connection when its pre-authentication time is up: eviction by a newcomer,
/// no identification line by the banner deadline, no login by the login deadline.
struct Watchdog {
    id: u64,
    client: SocketAddr,
    progress: Arc<Progress>,
    flow: Arc<Flow>,
    state: Arc<ConnState>,
    counters: Arc<LimitCounters>,
}

impl Watchdog {
    fn spawn(self, banner_by: TokioInstant, login_by: TokioInstant) -> JoinHandle<()> {
        tokio::spawn(async move {
            let progress = self.progress.clone();
            let banner = async {
                tokio::time::sleep_until(banner_by).await;
                if progress.stage() >= Stage::Banner {
                    std::future::pending::<()>().await;
                }
            };
            let cut = tokio::select! {
                () = progress.evicted() => None,
                () = banner => Some(Cut::BannerTimeout),
                () = tokio::time::sleep_until(login_by) => Some(Cut::LoginTimeout),
            };
            if self.state.is_authenticated() {
                return;
            }
            match cut {
                Some(Cut::BannerTimeout) => {
                    self.counters.bump(Limit::BannerTimeout);
                    audit::banner_timeout(self.id, self.client);
                }
                Some(Cut::LoginTimeout) => {
                    self.counters.bump(Limit::LoginTimeout);
                    audit::login_timeout(self.id, self.client);
                }
                _ => {}
            }
            if let Some(cut) = cut {
                progress.cut(cut);
            }
            self.flow.kill();
        })
    }
}

/// One connection from admission to close; returns why it ended.
async fn connection(
    server: &Arc<Server>,
    id: u64,
    stream: Prefixed<TcpStream>,
    client: SocketAddr,
    slot: StartupSlot,
    state: Arc<ConnState>,
) -> String {
    let flow = Flow::with_budget(server.flow_limits, server.window_budget.clone());
    server.registry.insert(id, flow.clone(), state.clone());
    let progress = slot.progress().clone();
    let now = TokioInstant::now();
    let watchdog = Watchdog {
        id,
        client,
        progress: progress.clone(),
        flow: flow.clone(),
        state: state.clone(),
        counters: server.gate.counters.clone(),
    }
    .spawn(now + server.banner_timeout, now + server.login_grace);
    let handler = SessionHandler::new(
        id,
        client,
        &server.session,
        flow.clone(),
        state.clone(),
        slot,
    );
    let stream = GatedStream::new(Watched::new(stream, progress), flow.clone());
    let started = russh::server::run_stream(server.config.clone(), stream, handler).await;
    let reason = match started {
        Err(e) => format!("SSH handshake failed: {e}"),
        Ok(running) => {
            server.registry.set_handle(id, running.handle());
            ended(running.await, &flow)
        }
    };
    watchdog.abort();
    flow.kill();
    state.tunnels_logged(Duration::from_secs(2)).await;
    reason
}

/// Why a running connection ended, in the user's words.
fn ended(result: Result<(), russh::Error>, flow: &Flow) -> String {
    match result {
        Ok(()) => "client disconnected".to_owned(),
        Err(_) if flow.is_killed() => "closed by the bastion".to_owned(),
        Err(russh::Error::HUP | russh::Error::Disconnect) => "client disconnected".to_owned(),
        Err(russh::Error::IO(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "client disconnected".to_owned()
        }
        Err(russh::Error::KeepaliveTimeout) => "client stopped answering keepalives".to_owned(),
        Err(e) => format!("connection error: {e}"),
    }
}
