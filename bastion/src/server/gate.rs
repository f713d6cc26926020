//! The gate before SSH: everything decided about a connection before its first SSH byte, in
//! order: the client rules and the source's penalty (at accept when the client address is the
//! socket peer, else once the PROXY header names it), the per-source limits and a
//! pre-authentication slot (`admission`), and the PROXY header itself. At the end of an
//! unauthenticated connection, the gate also records its penalty.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpStream;

use crate::admission::{Admission, Refusal, StartupSlot, Ticket};
use crate::audit::{self, ProxyProblem};
use crate::client_policy::{Decision, LivePolicy};
use crate::limit_counters::{Limit, LimitCounters, LOGGED_PER_PERIOD};
use crate::penalties::{Offence, Penalties, Verdict};
use crate::proxy_header::{self, Outcome, Prefixed, ProxyConfig, ProxyError, ProxyMode};
use crate::source::NetBlockSize;

/// The admission state shared by every connection.
pub(super) struct Gate {
    pub admission: Arc<Admission>,
    pub penalties: Penalties,
    pub blocks: NetBlockSize,
    pub proxy: ProxyConfig,
    pub clients: Arc<LivePolicy>,
    pub counters: Arc<LimitCounters>,
    pub health_checks: AtomicU64,
    /// The bastion listens on a non-loopback address, so a loopback peer is a process of the
    /// task (the container's health check), let in a little past `BASTION_MAX_CONNECTIONS`.
    pub local_is_health_check: bool,
}

/// A client that passed the rules and penalties: whether it may ever be penalised.
#[derive(Debug, Clone, Copy)]
pub(super) struct Screened {
    pub exempt: bool,
}

/// A connection ready for SSH.
pub(super) struct Admitted {
    pub stream: Prefixed<TcpStream>,
    /// The settled client address: the PROXY source, or the socket peer.
    pub client: SocketAddr,
    /// A load balancer's health check (PROXY v2 LOCAL / v1 UNKNOWN): kept out of the audit.
    pub health_check: bool,
    pub vpce_id: Option<String>,
    pub screened: Screened,
}

fn proxy_problem(error: &ProxyError) -> ProxyProblem {
    match error {
        ProxyError::UntrustedSender(_) => ProxyProblem::Untrusted,
        ProxyError::Io(_) => ProxyProblem::Ended,
        _ => ProxyProblem::Invalid,
    }
}

fn limit_of(refusal: Refusal) -> Limit {
    match refusal {
        Refusal::SourceRate => Limit::SourceRate,
        Refusal::SourceConnections => Limit::SourceConnections,
        Refusal::SourceStartups => Limit::SourceStartups,
        Refusal::Connections => Limit::ConnectionsFull,
        Refusal::Startups => Limit::StartupsFull,
    }
}

impl Gate {
    /// The client address when no PROXY header can change it: the socket peer.
    fn direct_client(&self, peer: SocketAddr) -> Option<SocketAddr> {
        let header_expected = match self.proxy.mode {
            ProxyMode::Off => false,
            ProxyMode::Optional => self.proxy.is_trusted(peer.ip()),
            ProxyMode::Required => true,
        };
        (!header_expected).then_some(peer)
    }

    /// At accept, before any byte: rules, penalty and limits for a known client; a pending
    /// slot for a connection whose client the PROXY header will name. `None`: closed.
    pub fn at_accept(&self, peer: SocketAddr) -> Option<(Ticket, StartupSlot, Option<Screened>)> {
        let client = self.direct_client(peer);
        let screened = match client {
            Some(client) => Some(self.screen(client, peer)?),
            None => None,
        };
        let source = client.map(|c| self.blocks.source(c.ip()));
        let local = self.local_is_health_check && peer.ip().to_canonical().is_loopback();
        match self.admission.admit(source, local) {
            Ok((ticket, slot, evicted)) => {
                if evicted.is_some() {
                    self.counters.bump(Limit::Evicted);
                }
                Some((ticket, slot, screened))
            }
            Err(refusal) => {
                self.refused(client.unwrap_or(peer), refusal);
                None
            }
        }
    }

    /// The client rules, then the penalty of the client's source.
    fn screen(&self, client: SocketAddr, sender: SocketAddr) -> Option<Screened> {
        let source = self.blocks.source(client.ip());
        let decision = self.clients.check(client.ip());
        if !decision.is_allowed() {
            if self
                .counters
                .refused(source, Limit::ClientRules, Instant::now())
            {
                audit::client_refused(client, sender, decision.rule().unwrap_or("client policy"));
            }
            return None;
        }
        if let Verdict::Refused { remaining, first } = self.penalties.check(source, Instant::now())
        {
            self.counters.bump(Limit::Penalised);
            if first {
                let why = format!(
                    "penalised for {} s more (further refusals during this penalty are only \
                     counted)",
                    remaining.as_secs().max(1)
                );
                audit::connection_dropped(&source, "BASTION_PER_SOURCE_PENALTIES", &why);
            }
            return None;
        }
        let allow_listed = matches!(decision, Decision::Allow { rule: Some(_) });
        Some(Screened {
            exempt: self.penalties.is_exempt(client.ip(), allow_listed),
        })
    }

    fn refused(&self, client: SocketAddr, refusal: Refusal) {
        let source = self.blocks.source(client.ip());
        if self
            .counters
            .refused(source, limit_of(refusal), Instant::now())
        {
            let why = match refusal {
                Refusal::Startups => "every pre-authentication slot holds a connection that is \
                                      logging in"
                    .to_owned(),
                Refusal::Connections => format!(
                    "the bastion holds its maximum number of connections and none can be \
                     evicted; past {LOGGED_PER_PERIOD} a minute from one source, refusals are \
                     only counted"
                ),
                _ => format!(
                    "over this source's limit ({source}); past {LOGGED_PER_PERIOD} a minute, \
                     refusals are only counted"
                ),
            };
            audit::connection_dropped(&client, refusal.setting(), &why);
        }
    }

    /// In the connection's task: the PROXY header (racing eviction), then, for a client it
    /// names, the rules, penalty and per-source limits. `None`: closed.
    pub async fn before_ssh(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        ticket: &mut Ticket,
        slot: &StartupSlot,
        screened: Option<Screened>,
    ) -> Option<Admitted> {
        let _ = stream.set_nodelay(true);
        let read = proxy_header::accept(stream, peer, &self.proxy);
        let (outcome, stream) = tokio::select! {
            read = read => match read {
                Ok(ok) => ok,
                Err(e) => {
                    if matches!(e, ProxyError::Timeout) {
                        self.counters.bump(Limit::ProxyTimeout);
                    }
                    audit::proxy_rejected(peer, proxy_problem(&e), &e.to_string());
                    return None;
                }
            },
            () = slot.progress().evicted() => return None,
        };
        let client = outcome.client(peer);
        let health_check = matches!(outcome, Outcome::Local { .. });
        if health_check {
            let n = self.health_checks.fetch_add(1, Ordering::Relaxed) + 1;
            audit::health_check(peer, n);
        }
        let screened = match screened {
            Some(screened) => screened,
            None if health_check => Screened { exempt: true },
            None => self.settle(client, peer, ticket, slot)?,
        };
        slot.progress().advance(crate::progress::Stage::Connected);
        let vpce_id = match outcome {
            Outcome::Proxied { vpce_id, .. } => vpce_id,
            _ => None,
        };
        Some(Admitted {
            stream,
            client,
            health_check,
            vpce_id,
            screened,
        })
    }

    /// The PROXY header named the client: screen it and count it under its source's limits.
    fn settle(
        &self,
        client: SocketAddr,
        sender: SocketAddr,
        ticket: &mut Ticket,
        slot: &StartupSlot,
    ) -> Option<Screened> {
        let screened = self.screen(client, sender)?;
        let source = self.blocks.source(client.ip());
        if let Err(refusal) = self.admission.claim(ticket, slot, source) {
            self.refused(client, refusal);
            return None;
        }
        Some(screened)
    }

    /// An unauthenticated connection ended: add its penalty to its source.
    pub fn penalise(
        &self,
        ticket: &Ticket,
        screened: Screened,
        client: SocketAddr,
        offence: Offence,
    ) {
        if screened.exempt {
            return;
        }
        let Some(source) = ticket.source() else {
            return;
        };
        if let Some(started) = self
            .penalties
            .record(source, client.ip(), offence, Instant::now())
        {
            self.counters.bump(Limit::PenaltyStarted);
            audit::penalty(&started.source, offence.name(), started.duration);
        }
    }
}
