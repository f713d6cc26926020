//! The server's view of its live connections: per-connection state that the server, the
//! session and its tunnels share ([`ConnState`]), and the registry of live connections with
//! what the server does to them from outside: after a key reload, re-check each login against
//! its key's new line (close it, or apply the new options to its later tunnels), and drain
//! them all at shutdown.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use russh::server::Handle;
use russh::Disconnect;

use crate::audit;
use crate::auth::{Identity, Login};
use crate::authorized_keys::AuthorizedKeys;
use crate::flow::Flow;
use crate::key_options::KeyRestrictions;

/// The login of a live connection, with the client address its options are checked against.
#[derive(Debug)]
struct LiveLogin {
    login: Login,
    client: SocketAddr,
}

/// Per-connection state observed from outside (login deadline, shutdown, key reload).
#[derive(Debug, Default)]
pub struct ConnState {
    authenticated: AtomicBool,
    auth_failed: AtomicBool,
    /// Tunnel tasks that have not yet logged their close.
    unlogged_tunnels: AtomicUsize,
    open_tunnels: AtomicUsize,
    login: Mutex<Option<LiveLogin>>,
}

impl ConnState {
    fn login(&self) -> MutexGuard<'_, Option<LiveLogin>> {
        self.login.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Record the login, to re-check on reload; the login deadline stops.
    pub fn logged_in(&self, login: Login, client: SocketAddr) {
        *self.login() = Some(LiveLogin { login, client });
        self.authenticated.store(true, Ordering::Release);
    }

    /// A key, certificate or password was refused (for the per-source penalty).
    pub fn auth_failed(&self) {
        self.auth_failed.store(true, Ordering::Release);
    }

    pub fn had_auth_failure(&self) -> bool {
        self.auth_failed.load(Ordering::Acquire)
    }

    pub fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }

    pub fn identity(&self) -> Option<Identity> {
        self.login().as_ref().map(|l| l.login.identity.clone())
    }

    /// The options of the login's key line as they are now (after any reload); the
    /// defaults before login.
    pub fn restrictions(&self) -> KeyRestrictions {
        self.login()
            .as_ref()
            .map(|l| l.login.restrictions.clone())
            .unwrap_or_default()
    }

    /// Re-check the login against reloaded keys: `Err` says why the connection must close;
    /// otherwise its key line's current options apply from now on. No login: nothing to do.
    fn recheck(&self, keys: &AuthorizedKeys, now: u64) -> Result<(), String> {
        let mut guard = self.login();
        let Some(live) = guard.as_mut() else {
            return Ok(());
        };
        match live.login.recheck(keys, live.client, now) {
            Ok(restrictions) => {
                live.login.restrictions = restrictions;
                Ok(())
            }
            Err(why) => Err(format!("{why} ({})", live.login.identity.user)),
        }
    }

    /// A tunnel opened; it counts until the client has closed it (shutdown waits for that).
    pub fn tunnel_opened(&self) {
        self.open_tunnels.fetch_add(1, Ordering::AcqRel);
    }

    pub fn tunnel_released(&self) {
        self.open_tunnels.fetch_sub(1, Ordering::AcqRel);
    }

    /// A tunnel task started; [`ConnState::tunnel_logged`] once its close is in the audit.
    pub fn tunnel_started(&self) {
        self.unlogged_tunnels.fetch_add(1, Ordering::AcqRel);
    }

    pub fn tunnel_logged(&self) {
        self.unlogged_tunnels.fetch_sub(1, Ordering::AcqRel);
    }

    /// After the connection ended: wait (at most `limit`) until every tunnel has logged its
    /// close, so no `tunnel_close` event is lost when the process exits after a drain.
    pub async fn tunnels_logged(&self, limit: Duration) {
        let until = Instant::now() + limit;
        while self.unlogged_tunnels.load(Ordering::Acquire) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn open_tunnels(&self) -> usize {
        self.open_tunnels.load(Ordering::Acquire)
    }
}

struct Live {
    flow: Arc<Flow>,
    state: Arc<ConnState>,
    handle: Option<Handle>,
}

/// Every live connection, by id.
#[derive(Default)]
pub struct Registry {
    live: Mutex<HashMap<u64, Live>>,
}

impl Registry {
    fn live(&self) -> MutexGuard<'_, HashMap<u64, Live>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn insert(&self, id: u64, flow: Arc<Flow>, state: Arc<ConnState>) {
        let live = Live {
            flow,
            state,
            handle: None,
        };
        self.live().insert(id, live);
    }

    /// The russh handle, once the handshake is done (to send a disconnect).
    pub fn set_handle(&self, id: u64, handle: Handle) {
        if let Some(live) = self.live().get_mut(&id) {
            live.handle = Some(handle);
        }
    }

    pub fn remove(&self, id: u64) {
        self.live().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.live().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn select(&self, mut pick: impl FnMut(&Live) -> bool) -> Vec<(Arc<Flow>, Option<Handle>)> {
        self.live()
            .values()
            .filter(|l| pick(l))
            .map(|l| (l.flow.clone(), l.handle.clone()))
            .collect()
    }

    /// After a key reload: close the connections (and so the tunnels) whose key was removed,
    /// revoked, or whose line now refuses them (`restrict`, `no-port-forwarding`, a past
    /// `expiry-time`, a `from=` that no longer matches), with an audit event each; the others
    /// open their later tunnels under their line's new options (a narrower `permitopen`).
    pub fn recheck(&self, keys: &AuthorizedKeys, now: u64) {
        let gone: Vec<(u64, String, Arc<Flow>, Option<Handle>)> = self
            .live()
            .iter()
            .filter_map(|(id, l)| {
                let why = l.state.recheck(keys, now).err()?;
                Some((*id, why, l.flow.clone(), l.handle.clone()))
            })
            .collect();
        for (id, why, flow, handle) in gone {
            audit::access_revoked(id, &why);
            close_connection(flow, handle, "your key is no longer authorized");
        }
    }

    /// At shutdown: close connections as their tunnels finish; at the end of the grace
    /// period, close the rest.
    pub async fn drain(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for l in self.live().values() {
            l.flow.set_draining();
        }
        loop {
            for (flow, handle) in self.select(|l| l.state.open_tunnels() == 0) {
                close_connection(flow, handle, "the bastion is shutting down");
            }
            let remaining = self.len();
            if remaining == 0 {
                audit::shutdown_complete();
                return;
            }
            if Instant::now() >= deadline {
                audit::shutdown_grace_expired(remaining);
                for (flow, handle) in self.select(|_| true) {
                    close_connection(flow, handle, "the bastion is shutting down");
                }
                // Give the connection tasks a moment to log their tunnels' close.
                let until = Instant::now() + Duration::from_secs(2);
                while !self.is_empty() && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
