//! The accept loop and a connection's life: SSH transport settings, admission before any SSH
//! byte (the unauthenticated-connection cap, the PROXY header, the client rules), the login
//! deadline (which also covers the banner exchange, since russh has none of its own), and
//! graceful shutdown when the `shutdown` future given to [`serve`] resolves: stop accepting,
//! let open tunnels finish within the grace period, then close.
//!
//! The server wires the layers together and owns no policy: `admission`, `proxy_header`,
//! `client_policy`, `session`, `connections` and `reload` each own theirs.

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
use russh::{cipher, kex, MethodKind, MethodSet, Preferred, SshId};
use tokio::net::{TcpListener, TcpStream};

use crate::admission::{StartupSlot, Startups};
use crate::audit::{self, ProxyProblem};
use crate::client_policy::LivePolicy;
use crate::config::Settings;
use crate::connections::{ConnState, Registry};
use crate::flow::{Flow, FlowLimits, GatedStream};
use crate::key_store::KeyStore;
use crate::proxy_header::{self, Outcome, Prefixed, ProxyConfig, ProxyError};
use crate::reload::{Reloadable, Watcher, POLL_INTERVAL};
use crate::session::{SessionHandler, SessionSettings};
use crate::tunnel::TunnelSettings;

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
    login_grace: Duration,
    startups: Startups,
    next_id: AtomicU64,
    registry: Arc<Registry>,
    proxy: ProxyConfig,
    clients: Arc<LivePolicy>,
    health_checks: AtomicU64,
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
    let server = Arc::new(Server::new(settings));
    // One watcher for every reloadable file; it also makes SIGHUP a reload signal.
    let watcher = Watcher::spawn(server.reloadables(), POLL_INTERVAL);
    let revoker = tokio::spawn(revoke_on_change(
        server.session.keys.clone(),
        server.registry.clone(),
    ));
    audit::listening(local);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => accept(&server, stream, peer),
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    audit::accept_error(&e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
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
    drop(watcher);
    revoker.abort();
    Ok(())
}

impl Server {
    fn new(settings: Settings) -> Server {
        Server {
            config: Arc::new(ssh_config(&settings)),
            session: SessionSettings {
                keys: settings.keys,
                max_auth_tries: settings.max_auth_tries,
                tunnels: Arc::new(TunnelSettings {
                    destinations: settings.destinations,
                    connect_timeout: settings.connect_timeout,
                }),
            },
            flow_limits: settings.flow,
            login_grace: settings.login_grace_time,
            startups: Startups::new(settings.max_startups as usize),
            next_id: AtomicU64::new(1),
            registry: Arc::new(Registry::default()),
            proxy: settings.proxy,
            clients: settings.clients,
            health_checks: AtomicU64::new(0),
        }
    }

    /// The files to watch: the client rules always (a SIGHUP re-reads them), the keys when
    /// they come from files (content from the environment never changes).
    fn reloadables(&self) -> Vec<Arc<dyn Reloadable>> {
        let mut files: Vec<Arc<dyn Reloadable>> = vec![self.clients.clone()];
        if self.session.keys.has_files() {
            files.push(self.session.keys.clone());
        }
        files
    }
}

/// After each key reload: close the connections of keys that were removed or revoked.
async fn revoke_on_change(keys: Arc<KeyStore>, registry: Arc<Registry>) {
    let mut changes = keys.subscribe();
    while changes.changed().await.is_ok() {
        let keys = changes.borrow_and_update().clone();
        registry.revoke_gone(&keys);
    }
}

fn accept(server: &Arc<Server>, stream: TcpStream, peer: SocketAddr) {
    let Some(slot) = server.startups.try_take() else {
        audit::connection_dropped(
            peer,
            "too many unauthenticated connections (BASTION_MAX_STARTUPS)",
        );
        return;
    };
    let id = server.next_id.fetch_add(1, Ordering::Relaxed);
    let server = server.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let Some(admitted) = admit(&server, stream, peer).await else {
            return;
        };
        let Admitted {
            stream,
            client,
            health_check,
            vpce_id,
        } = admitted;
        let sender = (client != peer).then_some(peer);
        audit::connection_opened(id, client, sender, vpce_id.as_deref(), health_check);
        let reason = connection(&server, id, stream, client, slot).await;
        server.registry.remove(id);
        audit::connection_closed(id, client, started.elapsed(), &reason, health_check);
    });
}

struct Admitted {
    stream: Prefixed<TcpStream>,
    /// The settled client address: the PROXY source, or the socket peer.
    client: SocketAddr,
    /// A load balancer's health check (PROXY v2 LOCAL / v1 UNKNOWN): kept out of the audit.
    health_check: bool,
    vpce_id: Option<String>,
}

fn proxy_problem(error: &ProxyError) -> ProxyProblem {
    match error {
        ProxyError::UntrustedSender(_) => ProxyProblem::Untrusted,
        ProxyError::Io(_) => ProxyProblem::Ended,
        _ => ProxyProblem::Invalid,
    }
}

/// Before any SSH byte: read the PROXY header (per BASTION_PROXY_PROTOCOL), settle the real
/// client address once, and apply the client allow/deny policy to it. `None` = dropped.
async fn admit(server: &Arc<Server>, stream: TcpStream, peer: SocketAddr) -> Option<Admitted> {
    let _ = stream.set_nodelay(true);
    let (outcome, stream) = match proxy_header::accept(stream, peer, &server.proxy).await {
        Ok(ok) => ok,
        Err(e) => {
            audit::proxy_rejected(peer, proxy_problem(&e), &e.to_string());
            return None;
        }
    };
    let client = outcome.client(peer);
    let health_check = matches!(outcome, Outcome::Local { .. });
    if health_check {
        let n = server.health_checks.fetch_add(1, Ordering::Relaxed) + 1;
        audit::health_check(peer, n);
    }
    let vpce_id = match outcome {
        Outcome::Proxied { vpce_id, .. } => vpce_id,
        _ => None,
    };
    let decision = server.clients.check(client.ip());
    if !decision.is_allowed() {
        audit::client_refused(client, peer, decision.rule().unwrap_or("client policy"));
        return None;
    }
    Some(Admitted {
        stream,
        client,
        health_check,
        vpce_id,
    })
}

/// Close the connection if it has not authenticated by the deadline.
fn login_watchdog(
    id: u64,
    client: SocketAddr,
    deadline: tokio::time::Instant,
    flow: Arc<Flow>,
    state: Arc<ConnState>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep_until(deadline).await;
        if !state.is_authenticated() {
            audit::login_timeout(id, client);
            flow.kill();
        }
    })
}

/// One connection from accept to close; returns why it ended.
async fn connection(
    server: &Arc<Server>,
    id: u64,
    stream: Prefixed<TcpStream>,
    client: SocketAddr,
    slot: StartupSlot,
) -> String {
    let flow = Flow::new(server.flow_limits);
    let state = Arc::new(ConnState::default());
    server.registry.insert(id, flow.clone(), state.clone());
    let handler = SessionHandler::new(
        id,
        client,
        &server.session,
        flow.clone(),
        state.clone(),
        slot,
    );
    // The login deadline covers the banner exchange too: a silent client is dropped.
    let login_deadline = tokio::time::Instant::now() + server.login_grace;
    let watchdog = login_watchdog(id, client, login_deadline, flow.clone(), state);
    let gated = GatedStream::new(stream, flow.clone());
    let started = tokio::time::timeout_at(
        login_deadline,
        russh::server::run_stream(server.config.clone(), gated, handler),
    )
    .await;
    let reason = match started {
        Err(_) => "no SSH banner before the login deadline".to_owned(),
        Ok(Err(e)) => format!("SSH handshake failed: {e}"),
        Ok(Ok(running)) => {
            server.registry.set_handle(id, running.handle());
            ended(running.await, &flow)
        }
    };
    watchdog.abort();
    flow.kill();
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
