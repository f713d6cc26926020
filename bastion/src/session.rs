//! The russh `Handler` of one connection: the whole channel and authentication policy in one
//! place. It permits public-key authentication and `direct-tcpip` channels (tunnels), holds a
//! `session` channel open with a notice (so `ssh -L` without `-N` keeps working), and refuses
//! everything else explicitly. Every `Handler` method with a default is overridden, because
//! russh's defaults for some requests send no reply at all and would hang the client.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use russh::keys::{Certificate, HashAlg};
use russh::server::{
    Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet, Pty, Sig};

use crate::audit::{self, ConnInfo};
use crate::authorized_keys::{AuthorizedKeys, KeyStore};
use crate::certificates::{check_user_certificate, CertificateAuthority};
use crate::destination_policy::{DestinationPolicy, Refusal};
use crate::flow::{ChannelQueue, Flow, PushError};
use crate::key_options::KeyRestrictions;

/// Shown when a client asks for a shell (`ssh host`, or `ssh -L …` without `-N`).
pub const NOTICE: &str = "\r\nThis host only forwards ports: there is no shell here.\r\n\
Your tunnels (-L, -W, ProxyJump) stay open while this session is open.\r\n\
Press Ctrl-C or type ~. to leave. Next time, add -N to skip this session.\r\n";

const NO_COMMANDS: &str = "This host only forwards ports: commands, sftp and scp are not \
available. Use ssh -N -L local_port:destination:port to open a tunnel.\r\n";

/// A connection may have at most this many tunnels open at once.
pub const MAX_TUNNELS_PER_CONNECTION: usize = 256;

/// What every connection of the server shares.
pub struct Shared {
    pub keys: Arc<KeyStore>,
    pub destinations: DestinationPolicy,
    pub connect_timeout: std::time::Duration,
    pub max_auth_tries: u32,
}

/// Held while a connection is unauthenticated; counts toward `BASTION_MAX_STARTUPS`.
pub struct StartupSlot(Arc<AtomicUsize>);

impl StartupSlot {
    /// Take a slot if fewer than `max` are taken.
    pub fn try_take(counter: &Arc<AtomicUsize>, max: usize) -> Option<StartupSlot> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| StartupSlot(counter.clone()))
    }
}

impl Drop for StartupSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Per-connection state observed from outside (server: login deadline, shutdown, key reload).
#[derive(Default)]
pub struct ConnState {
    pub authenticated: AtomicBool,
    pub open_tunnels: AtomicUsize,
    pub identity: std::sync::Mutex<Option<Identity>>,
}

/// What let a connection in, to re-check it when the key files change.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: String,
    /// SHA256 fingerprint of the user's key (the certificate's key for a certificate login).
    pub key_fingerprint: String,
    /// SHA256 fingerprint of the CA, for a certificate login.
    pub ca_fingerprint: Option<String>,
}

impl Identity {
    /// Is this identity still allowed by the (reloaded) key set? `Err` says why not.
    pub fn still_allowed(&self, keys: &AuthorizedKeys) -> Result<(), String> {
        if keys.revoked.is_revoked(&self.key_fingerprint) {
            return Err(format!("key {} was revoked", self.key_fingerprint));
        }
        match &self.ca_fingerprint {
            None => {
                let present = keys.keys.iter().any(|k| {
                    !k.restrictions.cert_authority && k.fingerprint == self.key_fingerprint
                });
                if present {
                    Ok(())
                } else {
                    Err(format!(
                        "key {} was removed from the authorized keys",
                        self.key_fingerprint
                    ))
                }
            }
            Some(ca) => {
                if keys.revoked.is_revoked(ca) {
                    return Err(format!("certificate authority {ca} was revoked"));
                }
                if keys.authorities().any(|k| &k.fingerprint == ca) {
                    Ok(())
                } else {
                    Err(format!("certificate authority {ca} was removed"))
                }
            }
        }
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct ConnectionHandler {
    id: u64,
    client: SocketAddr,
    shared: Arc<Shared>,
    flow: Arc<Flow>,
    state: Arc<ConnState>,
    startup: Option<StartupSlot>,
    failures: u32,
    conn: Option<Arc<ConnInfo>>,
    /// The options of the line that let this connection in (per-key permitopen).
    restrictions: Arc<KeyRestrictions>,
    tunnels: HashMap<ChannelId, Arc<ChannelQueue>>,
    sessions: HashSet<ChannelId>,
    shells: HashSet<ChannelId>,
}

impl ConnectionHandler {
    pub fn new(
        id: u64,
        client: SocketAddr,
        shared: Arc<Shared>,
        flow: Arc<Flow>,
        state: Arc<ConnState>,
        startup: StartupSlot,
    ) -> Self {
        ConnectionHandler {
            id,
            client,
            shared,
            flow,
            state,
            startup: Some(startup),
            failures: 0,
            conn: None,
            restrictions: Arc::new(KeyRestrictions::default()),
            tunnels: HashMap::new(),
            sessions: HashSet::new(),
            shells: HashSet::new(),
        }
    }

    fn refused(&self, kind: &str, detail: &str) {
        audit::request_refused(self.id, self.client, kind, detail);
    }

    /// Count a failed key; past the cap, end the connection (like sshd's MaxAuthTries).
    fn count_failure(&mut self) {
        self.failures += 1;
        if self.failures >= self.shared.max_auth_tries {
            audit::request_refused(
                self.id,
                self.client,
                "auth",
                "too many authentication failures (BASTION_MAX_AUTH_TRIES); disconnecting",
            );
            let flow = self.flow.clone();
            // Let russh send the rejection first, then close the socket.
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                flow.kill();
            });
        }
    }

    /// Is this key allowed to log in from this client now? Returns its line's number and
    /// restrictions, or why not.
    fn check_key(
        &self,
        key: &russh::keys::PublicKey,
    ) -> Result<(usize, KeyRestrictions, String), String> {
        let keys = self.shared.keys.current();
        let fp = key.fingerprint(HashAlg::Sha256).to_string();
        if keys.revoked.is_revoked(&fp) {
            return Err("key is revoked (BASTION_REVOKED_KEYS)".into());
        }
        let Some(entry) = keys.find(key) else {
            return Err("key not in the authorized keys".into());
        };
        entry
            .restrictions
            .check_login(self.client.ip(), now_unix())
            .map_err(|why| format!("line {}: {why}", entry.line))?;
        Ok((entry.line, entry.restrictions.clone(), keys.source.clone()))
    }

    /// Could an offer of this key be a certificate we might accept?
    fn may_be_certificate(&self, key: &russh::keys::PublicKey) -> bool {
        let keys = self.shared.keys.current();
        keys.authorities().next().is_some()
            && !keys
                .revoked
                .is_revoked(&key.fingerprint(HashAlg::Sha256).to_string())
    }

    /// Record a successful login.
    fn logged_in(&mut self, user: &str, identity: Identity, restrictions: KeyRestrictions) {
        self.conn = Some(Arc::new(ConnInfo {
            id: self.id,
            client: self.client,
            user: user.to_owned(),
            fingerprint: identity.key_fingerprint.clone(),
        }));
        self.restrictions = Arc::new(restrictions);
        if let Ok(mut slot) = self.state.identity.lock() {
            *slot = Some(identity);
        }
        self.state.authenticated.store(true, Ordering::Release);
        self.startup = None;
    }

    fn open_tunnel_count(&self) -> usize {
        self.tunnels.values().filter(|q| !q.is_closed()).count()
    }
}

impl Drop for ConnectionHandler {
    fn drop(&mut self) {
        for queue in self.tunnels.values() {
            queue.close_with_reason("SSH connection ended");
        }
    }
}

fn prohibited(reason: &str) -> ChannelOpenFailure {
    ChannelOpenFailure::Other {
        code: ChannelOpenFailure::AdministrativelyProhibited.code(),
        reason: reason.to_owned(),
    }
}

impl Handler for ConnectionHandler {
    type Error = russh::Error;

    // ---- authentication: public keys only ----

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
            partial_success: false,
        })
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        self.refused(
            "password",
            &format!("password login attempted for user {user:?}"),
        );
        self.count_failure();
        Ok(Auth::reject())
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        _response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        self.refused(
            "keyboard-interactive",
            &format!("keyboard-interactive login attempted for user {user:?}"),
        );
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        match self.check_key(offer.public_key) {
            Ok(_) => Ok(Auth::Accept),
            // russh offers a certificate as its inner key: with a CA configured, let the
            // signed request through to `auth_openssh_certificate` (or `auth_publickey`,
            // which refuses and counts an unknown plain key there).
            Err(_) if self.may_be_certificate(offer.public_key) => Ok(Auth::Accept),
            Err(why) => {
                let fp = offer.public_key.fingerprint(HashAlg::Sha256).to_string();
                audit::auth(self.id, self.client, user, &fp, false, &why);
                self.count_failure();
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let fp = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        match self.check_key(key.public_key) {
            Ok((line, restrictions, source)) => {
                audit::auth(
                    self.id,
                    self.client,
                    user,
                    &fp,
                    true,
                    &format!("{source} line {line}"),
                );
                let identity = Identity {
                    user: user.to_owned(),
                    key_fingerprint: fp,
                    ca_fingerprint: None,
                };
                self.logged_in(user, identity, restrictions);
                Ok(Auth::Accept)
            }
            Err(why) => {
                audit::auth(self.id, self.client, user, &fp, false, &why);
                self.count_failure();
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        let fp = certificate
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string();
        match self.check_certificate(user, certificate, &fp) {
            Ok((detail, identity, restrictions)) => {
                audit::auth(self.id, self.client, user, &fp, true, &detail);
                self.logged_in(user, identity, restrictions);
                Ok(Auth::Accept)
            }
            Err(why) => {
                audit::auth(self.id, self.client, user, &fp, false, &why);
                self.count_failure();
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        Ok(())
    }

    async fn authentication_banner(&mut self) -> Result<Option<String>, Self::Error> {
        Ok(None)
    }

    // ---- channels ----

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.conn.is_none() {
            reply.reject(prohibited("not authenticated")).await;
            return Ok(());
        }
        // Held only so `ssh -L` without -N keeps its tunnels; nothing ever runs in it.
        self.sessions.insert(channel.id());
        reply.accept().await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(conn) = self.conn.clone() else {
            reply.reject(prohibited("not authenticated")).await;
            return Ok(());
        };
        let destination = format!("{host_to_connect}:{port_to_connect}");
        let port = match u16::try_from(port_to_connect) {
            Ok(p) if p != 0 => p,
            _ => {
                let why = format!("invalid destination port {port_to_connect}");
                audit::tunnel_refused(&conn, &destination, &why);
                reply.reject(prohibited(&why)).await;
                return Ok(());
            }
        };
        if !self.restrictions.permits_destination(host_to_connect, port) {
            let why = format!("{destination} is not permitted by this key's permitopen option");
            audit::tunnel_refused(&conn, &destination, &why);
            reply.reject(prohibited(&why)).await;
            return Ok(());
        }
        // Forget refused opens; opened channels stay until the client closes them.
        self.tunnels.retain(|_, q| q.was_opened() || !q.is_closed());
        if self.open_tunnel_count() >= MAX_TUNNELS_PER_CONNECTION {
            let why = format!(
                "too many tunnels on this connection (at most {MAX_TUNNELS_PER_CONNECTION})"
            );
            audit::tunnel_refused(&conn, &destination, &why);
            reply
                .reject(ChannelOpenFailure::Other {
                    code: ChannelOpenFailure::ResourceShortage.code(),
                    reason: why,
                })
                .await;
            return Ok(());
        }
        let queue = ChannelQueue::new(self.flow.clone());
        self.tunnels.insert(channel.id(), queue.clone());
        let shared = self.shared.clone();
        let flow = self.flow.clone();
        let state = self.state.clone();
        let host = host_to_connect.to_owned();
        // Resolution and connect happen off the session loop; the reply is sent when known.
        tokio::spawn(async move {
            let timeout = shared.connect_timeout;
            let opened = match shared.destinations.resolve(&host, port, timeout).await {
                Ok(addrs) => crate::tunnel::connect(&addrs, timeout)
                    .await
                    .map_err(|why| {
                        (
                            ChannelOpenFailure::ConnectFailed,
                            format!("cannot connect to {destination}: {why}"),
                        )
                    }),
                Err(Refusal::Prohibited(t)) => {
                    Err((ChannelOpenFailure::AdministrativelyProhibited, t))
                }
                Err(Refusal::Unresolvable(t)) => Err((ChannelOpenFailure::ConnectFailed, t)),
            };
            let (stream, resolved) = match opened {
                Ok(ok) => ok,
                Err((code, text)) => {
                    audit::tunnel_refused(&conn, &destination, &text);
                    queue.close();
                    reply
                        .reject(ChannelOpenFailure::Other {
                            code: code.code(),
                            reason: text,
                        })
                        .await;
                    return;
                }
            };
            // Counted until the client closes the channel (`channel_close`), i.e. until it
            // has received everything: shutdown waits for that.
            state.open_tunnels.fetch_add(1, Ordering::AcqRel);
            queue.set_opened();
            reply.accept().await;
            audit::tunnel_opened(&conn, u32::from(channel.id()), &destination, resolved);
            crate::tunnel::run_and_audit(
                conn,
                channel,
                stream,
                queue.clone(),
                flow,
                destination,
                resolved,
            )
            .await;
            if queue.release() {
                state.open_tunnels.fetch_sub(1, Ordering::AcqRel);
            }
        });
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refused(
            "direct-streamlocal",
            &format!("forwarding to Unix socket {socket_path:?} is not supported"),
        );
        reply
            .reject(prohibited(
                "forwarding to Unix sockets is not supported: this bastion forwards TCP only",
            ))
            .await;
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refused("x11", "X11 channel refused");
        reply
            .reject(prohibited("X11 forwarding is not supported"))
            .await;
        Ok(())
    }

    async fn channel_open_forwarded_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refused(
            "forwarded-tcpip",
            "client-opened forwarded-tcpip channel refused",
        );
        reply
            .reject(prohibited("remote forwarding is not supported"))
            .await;
        Ok(())
    }

    async fn channel_open_confirmation(
        &mut self,
        _id: ChannelId,
        _max_packet_size: u32,
        _window_size: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The bastion never opens channels towards the client.
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(queue) = self.tunnels.get(&channel) {
            queue.push_eof();
        }
        // EOF on a held session (stdin closed) changes nothing: the tunnels stay.
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(queue) = self.tunnels.remove(&channel) {
            queue.finish();
            if queue.release() {
                self.state.open_tunnels.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.sessions.remove(&channel);
        self.shells.remove(&channel);
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(queue) = self.tunnels.get(&channel) {
            match queue.push(data) {
                Ok(()) => {}
                Err(PushError::HardCap { queued }) => {
                    let why = format!(
                        "destination is not keeping up: {queued} bytes waiting (cap {}); \
                         tunnel closed",
                        self.flow.limits().channel_hard_cap
                    );
                    queue.close_with_reason(&why);
                }
                Err(PushError::Closed) => {}
            }
            return Ok(());
        }
        if self.shells.contains(&channel) && data.iter().any(|b| *b == 0x03 || *b == 0x04) {
            // Ctrl-C / Ctrl-D: leave.
            session.data(channel, &b"\r\nBye.\r\n"[..])?;
            session.exit_status_request(channel, 0)?;
            session.eof(channel)?;
            session.close(channel)?;
            self.shells.remove(&channel);
            self.sessions.remove(&channel);
        }
        // Any other input on a held session is ignored: nothing runs here.
        Ok(())
    }

    async fn extended_data(
        &mut self,
        _channel: ChannelId,
        _code: u32,
        _data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Clients have no business sending stderr data; ignore it.
        Ok(())
    }

    async fn window_adjusted(
        &mut self,
        _channel: ChannelId,
        _new_size: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    fn adjust_window(&mut self, _channel: ChannelId, _current: u32) -> u32 {
        self.flow.window_target()
    }

    // ---- requests on a session channel ----

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Harmless: no process will ever use it. Accepting keeps `ssh -t` from complaining.
        if self.sessions.contains(&channel) {
            session.channel_success(channel)?;
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.sessions.contains(&channel) {
            session.channel_success(channel)?;
            session.data(channel, NOTICE.as_bytes())?;
            self.shells.insert(channel);
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The command itself may hold secrets: log only its length.
        self.refused("exec", &format!("command of {} bytes refused", data.len()));
        self.refuse_program(channel, session)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refused("subsystem", &format!("subsystem {name:?} refused"));
        self.refuse_program(channel, session)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refused(
            "env",
            &format!("environment variable {variable_name:?} ignored"),
        );
        if self.sessions.contains(&channel) {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refused("x11", "X11 forwarding refused");
        if self.sessions.contains(&channel) {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.refused("agent", "agent forwarding refused");
        Ok(false)
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.sessions.contains(&channel) {
            session.channel_success(channel)?;
        }
        Ok(())
    }

    async fn signal(
        &mut self,
        _channel: ChannelId,
        _signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // No process to signal.
        Ok(())
    }

    // ---- global requests ----

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.refused(
            "tcpip-forward",
            &format!("remote forwarding (-R) of {address}:{port} refused"),
        );
        Ok(false)
    }

    async fn cancel_tcpip_forward(
        &mut self,
        _address: &str,
        _port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn streamlocal_forward(
        &mut self,
        socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.refused(
            "streamlocal-forward",
            &format!("remote Unix socket forwarding of {socket_path:?} refused"),
        );
        Ok(false)
    }

    async fn cancel_streamlocal_forward(
        &mut self,
        _socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn lookup_dh_gex_group(
        &mut self,
        _gex_params: &russh::client::GexParams,
    ) -> Result<Option<russh::kex::dh::groups::DhGroup>, Self::Error> {
        // Group exchange is not offered (see server::ssh_config).
        Ok(None)
    }
}

impl ConnectionHandler {
    /// A user certificate: signed by a `cert-authority` line, valid now, for this user, from
    /// this address, allowed to forward, nothing revoked. Returns the audit detail.
    fn check_certificate(
        &self,
        user: &str,
        certificate: &Certificate,
        key_fp: &str,
    ) -> Result<(String, Identity, KeyRestrictions), String> {
        let keys = self.shared.keys.current();
        let ca_fp = certificate
            .signature_key()
            .fingerprint(HashAlg::Sha256)
            .to_string();
        if keys.revoked.is_revoked(key_fp) {
            return Err("the certificate's key is revoked (BASTION_REVOKED_KEYS)".into());
        }
        if keys.revoked.is_revoked(&ca_fp) {
            return Err(format!(
                "the signing CA {ca_fp} is revoked (BASTION_REVOKED_KEYS)"
            ));
        }
        let cas: Vec<CertificateAuthority<'_>> = keys
            .authorities()
            .map(|k| CertificateAuthority {
                key: &k.key,
                line: k.line,
                principals: k.restrictions.principals.as_deref(),
            })
            .collect();
        let now = now_unix();
        let accepted = check_user_certificate(certificate, user, self.client.ip(), now, &cas)?;
        let ca = keys
            .authority_at(accepted.ca_line)
            .ok_or_else(|| "certificate authority line vanished".to_owned())?;
        ca.restrictions
            .check_login(self.client.ip(), now)
            .map_err(|why| format!("cert-authority line {}: {why}", ca.line))?;
        let detail = format!(
            "certificate id {:?} serial {} principal {:?} signed by CA {} ({} line {})",
            accepted.key_id,
            accepted.serial,
            accepted.principal,
            accepted.ca_fingerprint,
            keys.source,
            accepted.ca_line
        );
        let identity = Identity {
            user: user.to_owned(),
            key_fingerprint: key_fp.to_owned(),
            ca_fingerprint: Some(accepted.ca_fingerprint),
        };
        Ok((detail, identity, ca.restrictions.clone()))
    }

    /// exec/subsystem: nothing runs; tell the user on stderr, exit status 1, close.
    fn refuse_program(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        if !self.sessions.contains(&channel) {
            return Ok(());
        }
        // Acknowledge, explain on stderr, exit 1: the client prints the reason, instead of
        // OpenSSH's bare "exec request failed on channel 0".
        session.channel_success(channel)?;
        session.extended_data(channel, 1, NO_COMMANDS.as_bytes())?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)?;
        self.sessions.remove(&channel);
        Ok(())
    }
}
