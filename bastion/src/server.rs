//! The accept loop and connection lifecycle: SSH transport settings, the unauthenticated
//! connection cap (`BASTION_MAX_STARTUPS`), the pre-authentication deadline (which also covers
//! the banner exchange, since russh has none of its own), and graceful shutdown on
//! SIGTERM/SIGINT: stop accepting, let open tunnels finish within the grace period, then close.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::keys::{Algorithm, EcdsaCurve, HashAlg};
use russh::server::{Config, Handle};
use russh::{cipher, kex, Disconnect, MethodKind, MethodSet, Preferred, SshId};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use std::net::SocketAddr;

use crate::audit;
use crate::authorized_keys::AuthorizedKeys;
use crate::client_policy::LivePolicy;
use crate::config::Settings;
use crate::flow::{Flow, FlowLimits, GatedStream};
use crate::proxy_header::{self, Outcome, Prefixed, ProxyConfig};
use crate::session::{ConnState, ConnectionHandler, Shared, StartupSlot};

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
        // Our own counter (session.rs) also counts probes of unknown keys, as sshd does.
        max_auth_attempts: settings.max_auth_tries as usize,
        // Dead peers are found by keepalives; the login deadline is enforced here.
        inactivity_timeout: None,
        keepalive_interval: settings.keepalive_interval,
        keepalive_max: 3,
        nodelay: true,
        ..Config::default()
    }
}

struct Live {
    flow: Arc<Flow>,
    state: Arc<ConnState>,
    handle: Option<Handle>,
}

/// Everything the accept loop and the connection tasks share.
struct Server {
    config: Arc<Config>,
    shared: Arc<Shared>,
    flow_limits: FlowLimits,
    login_grace: Duration,
    max_startups: usize,
    startups: Arc<AtomicUsize>,
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Live>>,
    proxy: ProxyConfig,
    clients: Arc<LivePolicy>,
    health_checks: AtomicU64,
}

impl Server {
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Live>> {
        match self.live.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
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

/// Serve until SIGTERM/SIGINT, then shut down gracefully.
pub async fn serve(listener: TcpListener, settings: Settings) -> Result<(), String> {
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let server = Arc::new(Server {
        config: Arc::new(ssh_config(&settings)),
        shared: Arc::new(Shared {
            keys: settings.keys.clone(),
            destinations: settings.destinations,
            connect_timeout: settings.connect_timeout,
            max_auth_tries: settings.max_auth_tries,
        }),
        flow_limits: settings.flow,
        login_grace: settings.login_grace_time,
        max_startups: settings.max_startups as usize,
        startups: Arc::new(AtomicUsize::new(0)),
        next_id: AtomicU64::new(1),
        live: Mutex::new(HashMap::new()),
        proxy: settings.proxy,
        clients: settings.clients.clone(),
        health_checks: AtomicU64::new(0),
    });
    let watcher = settings.clients.spawn_watcher();
    // Keys from the environment never change: watch only files.
    let key_watcher = settings.keys.has_files().then(|| {
        let server = server.clone();
        settings
            .keys
            .spawn_watcher(Duration::from_secs(2), move |keys| {
                revoke_gone(&server, &keys)
            })
    });
    let mut signals = Signals::install()?;
    info!(event = "listening", addr = %local, "listening for SSH connections");

    let shutdown = signals.shutdown();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => accept(&server, stream, peer),
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(event = "accept_error", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            signal = &mut shutdown => {
                info!(event = "shutdown", signal, grace_s = settings.shutdown_grace.as_secs_f64(),
                      "stopping: no new connections; open tunnels may finish");
                break;
            }
        }
    }
    drop(listener);
    drain(&server, settings.shutdown_grace).await;
    watcher.abort();
    if let Some(w) = key_watcher {
        w.abort();
    }
    Ok(())
}

/// SIGTERM/SIGINT (and SIGHUP, which reloads files rather than ending the process), installed
/// before the `listening` event so a signal right after it is never the default action.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    _hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Result<Signals, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let term =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
        let int =
            signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
        // The file watchers listen for SIGHUP themselves; holding one here makes sure an early
        // SIGHUP never terminates the process.
        let hup = signal(SignalKind::hangup()).ok();
        Ok(Signals {
            term,
            int,
            _hup: hup,
        })
    }

    async fn shutdown(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Close connections as their tunnels finish; at the end of the grace period, close the rest.
async fn drain(server: &Arc<Server>, grace: Duration) {
    let deadline = Instant::now() + grace;
    for l in server.live().values() {
        l.flow.set_draining();
    }
    loop {
        let idle: Vec<(Arc<Flow>, Option<Handle>)> = server
            .live()
            .values()
            .filter(|l| l.state.open_tunnels.load(Ordering::Acquire) == 0)
            .map(|l| (l.flow.clone(), l.handle.clone()))
            .collect();
        for (flow, handle) in idle {
            close_connection(flow, handle, "the bastion is shutting down");
        }
        let remaining = server.live().len();
        if remaining == 0 {
            info!(event = "shutdown_complete", "all connections closed");
            return;
        }
        if Instant::now() >= deadline {
            warn!(
                event = "shutdown_grace_expired",
                connections = remaining,
                "grace period over: closing the remaining tunnels"
            );
            let all: Vec<(Arc<Flow>, Option<Handle>)> = server
                .live()
                .values()
                .map(|l| (l.flow.clone(), l.handle.clone()))
                .collect();
            for (flow, handle) in all {
                close_connection(flow, handle, "the bastion is shutting down");
            }
            // Give the connection tasks a moment to log their tunnels' close.
            let until = Instant::now() + Duration::from_secs(2);
            while !server.live().is_empty() && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// After a key reload: close the connections (and so the tunnels) of keys that were removed
/// or revoked, with an audit event each.
fn revoke_gone(server: &Arc<Server>, keys: &AuthorizedKeys) {
    let gone: Vec<(u64, String, Arc<Flow>, Option<Handle>)> = server
        .live()
        .iter()
        .filter_map(|(id, l)| {
            let identity = l.state.identity.lock().ok()?.clone()?;
            let why = identity.still_allowed(keys).err()?;
            Some((
                *id,
                format!("{} ({})", why, identity.user),
                l.flow.clone(),
                l.handle.clone(),
            ))
        })
        .collect();
    for (id, why, flow, handle) in gone {
        warn!(event = "access_revoked", conn = id, reason = %why,
              "closing the connection and its tunnels: its key is no longer authorized");
        close_connection(flow, handle, "your key is no longer authorized");
    }
}

/// Send an SSH disconnect if possible, then cut the socket.
fn close_connection(flow: Arc<Flow>, handle: Option<Handle>, why: &'static str) {
    if flow.is_killed() {
        return;
    }
    tokio::spawn(async move {
        if let Some(h) = handle {
            let _ = tokio::time::timeout(
                Duration::from_millis(500),
                h.disconnect(Disconnect::ByApplication, why.into(), String::new()),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        flow.kill();
    });
}

fn accept(server: &Arc<Server>, stream: TcpStream, peer: SocketAddr) {
    let Some(slot) = StartupSlot::try_take(&server.startups, server.max_startups) else {
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
        server.live().remove(&id);
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

/// Before any SSH byte: read the PROXY header (per BASTION_PROXY_PROTOCOL), settle the real
/// client address once, and apply the client allow/deny policy to it. `None` = dropped.
async fn admit(server: &Arc<Server>, stream: TcpStream, peer: SocketAddr) -> Option<Admitted> {
    let _ = stream.set_nodelay(true);
    let (outcome, stream) = match proxy_header::accept(stream, peer, &server.proxy).await {
        Ok(ok) => ok,
        Err(e) => {
            audit::proxy_rejected(peer, &e);
            return None;
        }
    };
    let client = outcome.client(peer);
    let health_check = matches!(outcome, Outcome::Local { .. });
    if health_check {
        let n = server.health_checks.fetch_add(1, Ordering::Relaxed) + 1;
        debug!(event = "health_check", sender = %peer, count = n, "load balancer health check");
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

/// One connection from accept to close; returns why it ended.
async fn connection(
    server: &Arc<Server>,
    id: u64,
    stream: Prefixed<TcpStream>,
    peer: SocketAddr,
    slot: StartupSlot,
) -> String {
    let flow = Flow::new(server.flow_limits);
    let state = Arc::new(ConnState::default());
    server.live().insert(
        id,
        Live {
            flow: flow.clone(),
            state: state.clone(),
            handle: None,
        },
    );
    let handler = ConnectionHandler::new(
        id,
        peer,
        server.shared.clone(),
        flow.clone(),
        state.clone(),
        slot,
    );
    let login_deadline = tokio::time::Instant::now() + server.login_grace;
    // The login deadline covers the banner exchange too: a silent client is dropped.
    let watchdog = {
        let flow = flow.clone();
        let state = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(login_deadline).await;
            if !state.authenticated.load(Ordering::Acquire) {
                info!(event = "login_timeout", conn = id, client = %peer,
                      "not authenticated within BASTION_LOGIN_GRACE_TIME; closing");
                flow.kill();
            }
        })
    };
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
            if let Some(live) = server.live().get_mut(&id) {
                live.handle = Some(running.handle());
            }
            match running.await {
                Ok(()) => "client disconnected".to_owned(),
                Err(_) if flow.is_killed() => "closed by the bastion".to_owned(),
                Err(russh::Error::HUP | russh::Error::Disconnect) => {
                    "client disconnected".to_owned()
                }
                Err(russh::Error::IO(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    "client disconnected".to_owned()
                }
                Err(russh::Error::KeepaliveTimeout) => {
                    "client stopped answering keepalives".to_owned()
                }
                Err(e) => format!("connection error: {e}"),
            }
        }
    };
    watchdog.abort();
    flow.kill();
    reason
}
