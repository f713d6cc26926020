//! How far an unauthenticated connection has got, so admission can tell a squatter from a
//! user mid-login: [`Stage`] (PROXY header pending → connected → SSH identification received →
//! key exchange started → key exchange done → authentication under way), when it got there, and whether admission has
//! evicted it. [`Watched`] reads the stage off the client's first bytes (the identification
//! line, then the plaintext packets up to the client's `NEWKEYS`, see [`scanner`]); the session
//! handler reports authentication attempts.

mod scanner;
#[cfg(test)]
mod tests;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

pub use scanner::KexScanner;

/// The stages, least progress first: eviction picks the lowest stage, then the oldest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Stage {
    /// Behind a load balancer: the PROXY header has not arrived, so there is no client yet.
    ProxyPending = 0,
    /// Admitted; the client has not sent its SSH identification line.
    Connected = 1,
    /// Identification received, nothing more.
    Banner = 2,
    /// The client sent key-exchange packets (its `KEXINIT`, then its key share).
    KexStarted = 3,
    /// The client sent `NEWKEYS`: the transport is encrypted. Never evicted from here on.
    KexDone = 4,
    /// An authentication request arrived.
    Authenticating = 5,
}

/// A connection without its identification line this long after admission is stale, and
/// evicted before any connection that sent one; a younger one is ordered with them by age.
const STALE_WITHOUT_BANNER_US: u64 = 1_000_000;

impl Stage {
    fn from_u8(n: u8) -> Stage {
        match n {
            0 => Stage::ProxyPending,
            1 => Stage::Connected,
            2 => Stage::Banner,
            3 => Stage::KexStarted,
            4 => Stage::KexDone,
            _ => Stage::Authenticating,
        }
    }

    /// Squatters may be evicted only before the key exchange completes.
    pub fn evictable(self) -> bool {
        self < Stage::KexDone
    }

    pub fn describe(self) -> &'static str {
        match self {
            Stage::ProxyPending => "no PROXY header yet",
            Stage::Connected => "no SSH identification yet",
            Stage::Banner => "no key exchange yet",
            Stage::KexStarted => "key exchange unfinished",
            Stage::KexDone => "no authentication attempt yet",
            Stage::Authenticating => "authenticating",
        }
    }
}

/// Why a connection's pre-authentication phase was cut short by the bastion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// A newcomer needed the slot and this one had made the least progress for longest.
    Evicted(Stage),
    /// No SSH identification within `BASTION_BANNER_TIMEOUT`.
    BannerTimeout,
    /// Not authenticated within `BASTION_LOGIN_GRACE_TIME`.
    LoginTimeout,
}

/// One connection's progress, shared by admission, the stream, the handler and the watchdog.
#[derive(Debug)]
pub struct Progress {
    epoch: Instant,
    stage: AtomicU8,
    /// Microseconds from `epoch` to reaching the current stage.
    since_us: AtomicU64,
    evicted: AtomicBool,
    wake: Notify,
    cut: OnceLock<Cut>,
}

impl Progress {
    pub fn new(stage: Stage, epoch: Instant) -> Arc<Progress> {
        let progress = Progress {
            epoch,
            stage: AtomicU8::new(stage as u8),
            since_us: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
            cut: OnceLock::new(),
        };
        progress
            .since_us
            .store(progress.us(Instant::now()), Ordering::Release);
        Arc::new(progress)
    }

    fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    pub fn stage(&self) -> Stage {
        Stage::from_u8(self.stage.load(Ordering::Acquire))
    }

    /// When the current stage was reached, as microseconds from the admission epoch.
    pub fn since_us(&self) -> u64 {
        self.since_us.load(Ordering::Acquire)
    }

    /// The eviction order at `now_us` (lowest first, then oldest `since_us`): a pending PROXY
    /// header; a connection silent for [`STALE_WITHOUT_BANNER_US`]; then, by age alone, a
    /// connection with only its identification line or one just admitted (so a newcomer
    /// whose first bytes are still in flight is not the first to go); then an unfinished key
    /// exchange. `None`: never evicted.
    pub fn eviction_rank(&self, now_us: u64) -> Option<u8> {
        let stage = self.stage();
        Some(match stage {
            Stage::ProxyPending => 0,
            Stage::Connected
                if now_us.saturating_sub(self.since_us()) >= STALE_WITHOUT_BANNER_US =>
            {
                1
            }
            Stage::Connected | Stage::Banner => 2,
            Stage::KexStarted => 3,
            Stage::KexDone | Stage::Authenticating => return None,
        })
    }

    /// Move forward to `stage` (never back); the clock restarts only on a real advance.
    pub fn advance(&self, stage: Stage) {
        let previous = self.stage.fetch_max(stage as u8, Ordering::AcqRel);
        if previous < stage as u8 {
            self.since_us
                .store(self.us(Instant::now()), Ordering::Release);
        }
    }

    /// Record why the bastion cut this connection (the first reason wins) and wake the
    /// connection's watchdog.
    pub fn cut(&self, why: Cut) {
        let _ = self.cut.set(why);
        if matches!(why, Cut::Evicted(_)) {
            self.evicted.store(true, Ordering::Release);
        }
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    pub fn cut_reason(&self) -> Option<Cut> {
        self.cut.get().copied()
    }

    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// Resolves once admission has evicted this connection.
    pub async fn evicted(&self) {
        loop {
            let notified = self.wake.notified();
            if self.is_evicted() {
                return;
            }
            notified.await;
        }
    }
}

/// The client stream as russh reads it, reporting the identification line and the end of
/// the key exchange to [`Progress`]; a plain pass-through once the exchange is done.
pub struct Watched<S> {
    inner: S,
    scanner: KexScanner,
    progress: Arc<Progress>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, progress: Arc<Progress>) -> Watched<S> {
        Watched {
            inner,
            scanner: KexScanner::default(),
            progress,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.scanner.is_done() && buf.filled().len() > before {
            let this = &mut *self;
            if let Some(stage) = this.scanner.feed(&buf.filled()[before..]) {
                this.progress.advance(stage);
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
