//! The russh `Handler` of one connection: a thin adapter between russh's callbacks and our
//! own logic. Authentication goes to `auth` (its verdicts become `Auth` replies), tunnels to
//! `tunnel` (`direct-tcpip` only), held `session` channels to `session_channels`, and every
//! other request is refused explicitly with an audit event. Every `Handler` method with a
//! default is overridden, because russh's defaults for some requests send no reply at all
//! and would hang the client.
//!
//! SSH calls the whole protocol state of a connection a session, and also names one channel
//! type `session`; here [`SessionHandler`] is the former, `SessionChannels` the latter.

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use russh::keys::Certificate;
use russh::server::{
    Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Pty, Sig};

use crate::admission::StartupSlot;
use crate::audit::{self, ConnInfo};
use crate::auth::{Authenticator, Login, Verdict};
use crate::channel_budget::{
    ChannelBudget, ChannelLimits, ChannelRefusal, TunnelPermit, TunnelSlots,
};
use crate::connections::ConnState;
use crate::flow::Flow;
use crate::key_store::KeyStore;
use crate::limit_counters::{Limit, LimitCounters};
use crate::progress::Stage;
use crate::reachable::Reach;
use crate::session_channels::SessionChannels;
use crate::tunnel::{prohibited, shortage, TunnelSettings, Tunnels};

/// What every connection's handler needs from the server.
pub struct SessionSettings {
    pub keys: Arc<KeyStore>,
    pub max_auth_tries: u32,
    pub tunnels: Arc<TunnelSettings>,
    pub channels: ChannelLimits,
    /// `BASTION_MAX_TUNNELS`, shared by every connection.
    pub tunnel_slots: Arc<TunnelSlots>,
    pub counters: Arc<LimitCounters>,
}

/// One connection as russh sees it.
pub struct SessionHandler {
    id: u64,
    client: SocketAddr,
    flow: Arc<Flow>,
    state: Arc<ConnState>,
    /// Held until authenticated: counts toward `BASTION_MAX_STARTUPS`.
    startup: Option<StartupSlot>,
    auth: Authenticator,
    /// Who is logged in, once authenticated.
    conn: Option<Arc<ConnInfo>>,
    tunnels: Tunnels,
    session_channels: SessionChannels,
    channel_budget: ChannelBudget,
    tunnel_slots: Arc<TunnelSlots>,
    counters: Arc<LimitCounters>,
    /// Requests refused so far (only the first [`LOGGED_REFUSALS`] are logged).
    refusals: u32,
}

/// Refused requests logged per connection.
const LOGGED_REFUSALS: u32 = 20;

impl SessionHandler {
    pub fn new(
        id: u64,
        client: SocketAddr,
        settings: &SessionSettings,
        flow: Arc<Flow>,
        state: Arc<ConnState>,
        startup: StartupSlot,
    ) -> Self {
        let auth = Authenticator::new(settings.keys.clone(), id, client, settings.max_auth_tries);
        let tunnels = Tunnels::new(flow.clone(), state.clone(), settings.tunnels.clone());
        SessionHandler {
            id,
            client,
            flow,
            state,
            startup: Some(startup),
            auth,
            conn: None,
            tunnels,
            session_channels: SessionChannels::default(),
            channel_budget: ChannelBudget::new(settings.channels),
            tunnel_slots: settings.tunnel_slots.clone(),
            counters: settings.counters.clone(),
            refusals: 0,
        }
    }

    /// An authentication request arrived: this connection is no squatter.
    fn authenticating(&self) {
        if let Some(slot) = &self.startup {
            slot.progress().advance(Stage::Authenticating);
        }
    }

    /// A `session` channel: the channel and session caps and the open rate.
    fn session_allowed(&mut self, conn: &ConnInfo) -> Result<(), String> {
        let open = self.tunnels.open_count() + self.session_channels.len();
        let sessions = self.session_channels.len();
        match self.channel_budget.try_open_session(open, sessions) {
            Ok(()) => Ok(()),
            Err(refusal) => Err(self.channel_refused(conn, "session channel", refusal)),
        }
    }

    /// A tunnel: the channel cap and open rate, then a server-wide tunnel slot.
    fn tunnel_allowed(&mut self, conn: &ConnInfo, kind: &str) -> Result<TunnelPermit, String> {
        let open = self.tunnels.open_count() + self.session_channels.len();
        let allowed = self.channel_budget.try_open(open).and_then(|()| {
            self.tunnel_slots
                .try_acquire()
                .ok_or(ChannelRefusal::Tunnels)
        });
        allowed.map_err(|refusal| self.channel_refused(conn, kind, refusal))
    }

    /// A refused open is counted, and logged once per connection and kind; returns the text
    /// the client sees.
    fn channel_refused(&mut self, conn: &ConnInfo, kind: &str, refusal: ChannelRefusal) -> String {
        self.counters.bump(match refusal {
            ChannelRefusal::Cap => Limit::ChannelCap,
            ChannelRefusal::Sessions => Limit::SessionCap,
            ChannelRefusal::Rate => Limit::ChannelRate,
            ChannelRefusal::Tunnels => Limit::TunnelsFull,
        });
        let why = refusal.message(self.channel_budget.limits());
        if self.channel_budget.first(refusal) {
            audit::tunnel_refused(
                conn,
                kind,
                &format!("{why} (further refusals on this connection are only counted)"),
            );
        }
        why
    }

    /// Log a refused request; past [`LOGGED_REFUSALS`] on one connection (a flood of
    /// `tcpip-forward` requests, say), they are refused silently.
    fn refused(&mut self, kind: &str, detail: &str) {
        self.refusals = self.refusals.saturating_add(1);
        match self.refusals.cmp(&LOGGED_REFUSALS) {
            std::cmp::Ordering::Less => audit::request_refused(self.id, self.client, kind, detail),
            std::cmp::Ordering::Equal => {
                let detail = format!(
                    "{detail} (further refused requests on this connection are not logged)"
                );
                audit::request_refused(self.id, self.client, kind, &detail);
            }
            std::cmp::Ordering::Greater => {}
        }
    }

    /// Turn an authentication verdict into russh's reply, recording a login.
    fn reply(&mut self, verdict: Verdict) -> Auth {
        match verdict {
            Verdict::Proceed => Auth::Accept,
            Verdict::LoggedIn(login) => {
                self.logged_in(*login);
                Auth::Accept
            }
            Verdict::Rejected { disconnect } => {
                self.state.auth_failed();
                if disconnect {
                    let flow = self.flow.clone();
                    // Let russh send the rejection first, then close the socket.
                    tokio::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        flow.kill();
                    });
                }
                Auth::reject()
            }
        }
    }

    /// What this login may open now (its key line's current options, the server's rules).
    fn reach(&self) -> Reach {
        Reach::of(self.tunnels.destinations(), &self.state.restrictions())
    }

    fn logged_in(&mut self, login: Login) {
        self.conn = Some(Arc::new(ConnInfo {
            id: self.id,
            client: self.client,
            user: login.identity.user.clone(),
            fingerprint: login.identity.key_fingerprint.clone(),
            cert: login.cert_identity(),
        }));
        // The line's options live in the shared state: a key reload may change them.
        self.state.logged_in(login, self.client);
        self.startup = None;
    }
}

impl Handler for SessionHandler {
    type Error = russh::Error;

    // ---- authentication: public keys and certificates only ----

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        self.authenticating();
        Ok(Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
            partial_success: false,
        })
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        self.authenticating();
        let verdict = self.auth.password(user);
        Ok(self.reply(verdict))
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        _response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        self.authenticating();
        self.state.auth_failed();
        self.auth.keyboard_interactive(user);
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        self.authenticating();
        let verdict = self.auth.offered(user, offer.public_key, offer.algorithm);
        Ok(self.reply(verdict))
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.authenticating();
        let verdict = self.auth.signed(user, key.public_key, key.algorithm);
        Ok(self.reply(verdict))
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        // No algorithm here: russh called `auth_publickey_offered` with this request's
        // algorithm first (or accepted a probe of the same algorithm), where SHA-1 is refused.
        self.authenticating();
        let verdict = self.auth.certificate(user, certificate);
        Ok(self.reply(verdict))
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
        let Some(conn) = self.conn.clone() else {
            reply.reject(prohibited("not authenticated")).await;
            return Ok(());
        };
        if let Err(why) = self.session_allowed(&conn) {
            reply.reject(shortage(&why)).await;
            return Ok(());
        }
        self.session_channels.opened(channel.id());
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
        let (host, port) = (host_to_connect, port_to_connect);
        let permit = match self.tunnel_allowed(&conn, &format!("{host}:{port}")) {
            Ok(permit) => permit,
            Err(why) => {
                reply.reject(shortage(&why)).await;
                return Ok(());
            }
        };
        let restrictions = self.state.restrictions();
        let request = crate::tunnel::Request { host, port, permit };
        self.tunnels
            .open(conn, &restrictions, channel, request, reply)
            .await;
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
        // EOF on a held session (stdin closed) changes nothing: the tunnels stay.
        self.tunnels.eof(channel);
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.tunnels.closed(channel);
        self.session_channels.closed(channel);
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.tunnels.data(channel, data) {
            return Ok(());
        }
        self.session_channels.input(channel, data, session)
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
        self.session_channels.accept(channel, session)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let reach = self.reach();
        self.session_channels.shell(channel, &reach, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The command itself may hold secrets: log only its length.
        self.refused("exec", &format!("command of {} bytes refused", data.len()));
        let reach = self.reach();
        self.session_channels
            .refuse_program(channel, &reach, session)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refused("subsystem", &format!("subsystem {name:?} refused"));
        let reach = self.reach();
        self.session_channels
            .refuse_program(channel, &reach, session)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let detail = format!("environment variable {variable_name:?} ignored");
        self.refused("env", &detail);
        self.session_channels.fail(channel, session)
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
        self.session_channels.fail(channel, session)
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
        self.session_channels.accept(channel, session)
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
        let detail = format!("remote forwarding (-R) of {address}:{port} refused");
        self.refused("tcpip-forward", &detail);
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
        let detail = format!("remote Unix socket forwarding of {socket_path:?} refused");
        self.refused("streamlocal-forward", &detail);
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
