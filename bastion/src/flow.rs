//! Bounded, deadlock-free buffering between a connection's channels and their destinations.
//!
//! Why this exists: russh 0.65 replenishes a channel's receive window when data *arrives*, not
//! when it is consumed, and its session loop awaits a bounded per-channel queue. Left alone, a
//! destination that reads slowly freezes the whole connection (both directions, every tunnel).
//!
//! The design, in five parts:
//! 1. **Drain at once.** The handler's `data` callback hands each packet to its channel's
//!    [`ChannelQueue`] without awaiting, so the session loop never blocks on a destination.
//!    While nothing is queued or being written for a channel, the packet is written straight
//!    to the destination socket (a non-blocking write); only what the socket does not take at
//!    once is copied into the queue. Uploads to a destination that keeps up thus cost no copy,
//!    no allocation and no task switch per packet.
//! 2. **Gate the client socket.** The stream given to russh is wrapped in [`GatedStream`]. While
//!    the connection's queued bytes exceed [`FlowLimits::pause_above`], reads of the client
//!    socket pause: this is the backpressure that reaches the client through TCP.
//! 3. **Never starve the return direction.** A paused read would also hide the client's window
//!    adjusts for the return direction, and the destination's replies would then wait for ever:
//!    deadlock. So while any return write has waited longer than
//!    [`FlowLimits::starve_after`] for window ([`Flow::starving`]), reads resume, up to
//!    [`FlowLimits::connection_cap`] and no further: a client that never reopens a return
//!    window must not switch the cap off. At the cap the return direction waits until the
//!    destinations drain (or, for one that reads nothing, until `stall_timeout` closes it).
//! 4. **Size the window to the need.** [`Flow::window_target`] grants sshd's 2 MiB normally,
//!    up to 16 MiB (what a WAN upload needs: russh tops a window up once half is used, so about
//!    half is in flight per round trip) while the connection's queue stays near empty, as long
//!    as the server-wide [`WindowBudget`] for windows above 2 MiB lasts (the client's credit
//!    ends up in kernel socket buffers: 100 uploads with 16 MiB each pushed the kernel into TCP
//!    memory pressure and slowed every connection 20-fold; the budget is 32 MiB). While the connection is over the
//!    cap it grants 256 KiB, so the data that can still arrive during (3) is small.
//! 5. **Do not let one stuck destination hold the others.** A channel whose destination has
//!    accepted nothing for [`FlowLimits::stall_grace`] while data waits is *stalled*: its bytes
//!    stop counting toward the pause (they still count toward
//!    [`FlowLimits::connection_cap`]), so the connection's other tunnels keep flowing while the
//!    stalled channel fills up to its hard cap.
//!
//! What counts is what is held: each queued packet is charged its payload plus
//! [`ITEM_COST`] for its allocation and queue slot, so a flood of one-byte packets reaches the
//! caps as soon as its real memory would.
//!
//! Hard limits: a channel holding more than [`FlowLimits::channel_hard_cap`] is closed, and a
//! channel whose destination accepts nothing for [`FlowLimits::stall_timeout`] while data waits
//! is closed (see `tunnel`). Reads also pause while the connection holds more than
//! `connection_cap` in all. Head-of-line: a destination that reads slowly but steadily paces
//! the whole connection (as a slow reader paces a TCP socket); one that stops reading holds the
//! others for at most `stall_grace`.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// What one queued packet costs beyond its payload: the `Bytes` and its heap block, and its
/// slot in the queue (measured: ~64 bytes per one-byte packet with glibc's allocator; charged
/// twice that, to stay on the safe side of allocator and queue growth).
pub const ITEM_COST: usize = 128;

/// Caps and timings of the flow control. The defaults are what the README documents.
#[derive(Debug, Clone, Copy)]
pub struct FlowLimits {
    /// Pause reading the client socket while the connection has more than this queued.
    pub pause_above: usize,
    /// A channel queueing more than this is closed (its destination is not keeping up).
    pub channel_hard_cap: usize,
    /// Receive window granted per channel normally (russh's `window_size`; sshd's 2 MiB).
    pub window: u32,
    /// Window granted while the connection's queue stays near empty and the budget allows.
    /// russh tops a window up once half is used, so about half is in flight per round trip:
    /// 16 MiB lets an upload reach ~160 MB/s at 50 ms RTT.
    pub window_max: u32,
    /// Server-wide total of windows granted above `window` (see [`WindowBudget`]).
    pub window_budget: usize,
    /// Receive window granted while the connection is over `pause_above`.
    pub window_over_cap: u32,
    /// A return write waiting this long for window lets client reads resume.
    pub starve_after: Duration,
    /// A destination that accepts nothing for this long while data waits is abandoned.
    pub stall_timeout: Duration,
    /// A destination that accepts nothing for this long no longer holds the connection's
    /// other tunnels (its channel is marked stalled).
    pub stall_grace: Duration,
    /// Reads pause while the connection holds more than this in all (stalled channels included).
    pub connection_cap: usize,
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits {
            pause_above: 4 << 20,
            channel_hard_cap: 32 << 20,
            window: 2 << 20,
            window_max: 16 << 20,
            window_budget: 32 << 20,
            window_over_cap: 256 << 10,
            starve_after: Duration::from_millis(2),
            stall_timeout: Duration::from_secs(30),
            stall_grace: Duration::from_secs(1),
            connection_cap: 64 << 20,
        }
    }
}

/// What all connections together may grant in windows above [`FlowLimits::window`]: a
/// client's credit can land in kernel socket buffers, so the total must stay bounded.
#[derive(Debug)]
pub struct WindowBudget {
    available: AtomicUsize,
}

impl WindowBudget {
    pub fn new(bytes: usize) -> Arc<WindowBudget> {
        Arc::new(WindowBudget {
            available: AtomicUsize::new(bytes),
        })
    }

    fn take(&self, n: usize) -> bool {
        self.available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| a.checked_sub(n))
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.available.fetch_add(n, Ordering::AcqRel);
    }

    /// Bytes still available (for tests and the audit).
    pub fn available(&self) -> usize {
        self.available.load(Ordering::Acquire)
    }
}

/// Per-connection flow state, shared by the handler, the tunnels and the gated stream.
#[derive(Debug)]
pub struct Flow {
    limits: FlowLimits,
    budget: Arc<WindowBudget>,
    /// This connection's share of `budget`.
    extra: AtomicUsize,
    queued: AtomicUsize,
    /// Part of `queued` held by stalled channels.
    stalled: AtomicUsize,
    peak: AtomicUsize,
    starving: AtomicUsize,
    killed: AtomicBool,
    draining: AtomicBool,
    reader: Mutex<Option<Waker>>,
}

impl Flow {
    /// A connection with a budget of its own (tests).
    pub fn new(limits: FlowLimits) -> Arc<Flow> {
        Flow::with_budget(limits, WindowBudget::new(limits.window_budget))
    }

    /// A connection drawing on the server's window budget.
    pub fn with_budget(limits: FlowLimits, budget: Arc<WindowBudget>) -> Arc<Flow> {
        Arc::new(Flow {
            limits,
            budget,
            extra: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            stalled: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            starving: AtomicUsize::new(0),
            killed: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            reader: Mutex::new(None),
        })
    }

    pub fn limits(&self) -> &FlowLimits {
        &self.limits
    }

    /// Bytes queued for destinations across the connection.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The most ever queued at once on this connection.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Queued bytes that pace the connection: those of channels that are not stalled.
    fn counted(&self) -> usize {
        self.queued()
            .saturating_sub(self.stalled.load(Ordering::Acquire))
    }

    fn over(&self) -> bool {
        self.counted() > self.limits.pause_above || self.queued() > self.limits.connection_cap
    }

    /// Should reads of the client socket wait? Over the connection cap, always; over the
    /// pause threshold, unless a return write is starving for window (module doc, part 3).
    pub fn paused(&self) -> bool {
        self.queued() > self.limits.connection_cap
            || (self.over() && self.starving.load(Ordering::Acquire) == 0)
    }

    /// The receive-window target russh should grant next (see module doc, part 4).
    pub fn window_target(&self) -> u32 {
        if self.over() {
            self.release_extra();
            return self.limits.window_over_cap;
        }
        if self.counted() > self.limits.pause_above / 4 {
            // The destinations are not keeping up: a larger window would only fill buffers.
            self.release_extra();
            return self.limits.window;
        }
        let want = self.limits.window_max.saturating_sub(self.limits.window) as usize;
        let held = self.extra.load(Ordering::Acquire);
        if held < want && self.budget.take(want - held) {
            self.extra.store(want, Ordering::Release);
        }
        let extra = u32::try_from(self.extra.load(Ordering::Acquire)).unwrap_or(0);
        self.limits.window.saturating_add(extra)
    }

    fn release_extra(&self) {
        let held = self.extra.swap(0, Ordering::AcqRel);
        if held > 0 {
            self.budget.give(held);
        }
    }

    fn add(&self, n: usize) {
        let now = self.queued.fetch_add(n, Ordering::AcqRel).wrapping_add(n);
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn sub(&self, n: usize, stalled: bool) {
        if stalled {
            self.stalled.fetch_sub(n, Ordering::AcqRel);
        }
        self.queued.fetch_sub(n, Ordering::AcqRel);
        // Cheap and spurious-safe: the reader re-checks `paused` when woken.
        self.wake_reader();
    }

    fn wake_reader(&self) {
        let waker = match self.reader.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn park_reader(&self, waker: &Waker) {
        let mut slot = match self.reader.lock() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        match slot.as_ref() {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Mark a return write as starving for window until the guard drops.
    pub fn starving(self: &Arc<Self>) -> StarvingGuard {
        if self.starving.fetch_add(1, Ordering::AcqRel) == 0 {
            self.wake_reader();
        }
        StarvingGuard { flow: self.clone() }
    }

    /// End the connection: the client stream reports an error on its next read or write.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.wake_reader();
    }

    /// The server is shutting down: finished tunnels wait for the client's close (see
    /// `tunnel::pump`) so the last bytes are not cut by the disconnect that follows.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.release_extra();
    }
}

/// Returned by [`Flow::starving`]; the starving count drops with it.
#[derive(Debug)]
pub struct StarvingGuard {
    flow: Arc<Flow>,
}

impl Drop for StarvingGuard {
    fn drop(&mut self) {
        self.flow.starving.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a channel's destination writer receives, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    Data(Bytes),
    /// The client sent EOF: shut down the destination's write side after the data.
    Eof,
}

/// Why a channel was refused more data.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    /// The channel queued more than the hard cap: close it.
    HardCap { queued: usize },
    /// The destination side is gone.
    Closed,
}

#[derive(Debug, Default)]
struct QueueState {
    items: VecDeque<Inbound>,
    bytes: usize,
    /// No more pushes; `next` returns what is queued, then `None`.
    finished: bool,
    /// Dropped: `next` returns `None` at once.
    closed: bool,
    /// The destination stopped accepting data (see module doc, part 5).
    stalled: bool,
    /// The destination writer holds an item it took from the queue and has not written yet.
    writing: bool,
    /// Why the bastion closed it, if it did.
    reason: Option<String>,
}

/// One channel's queue from client to destination. Pushing never waits.
#[derive(Debug)]
pub struct ChannelQueue {
    flow: Arc<Flow>,
    state: Mutex<QueueState>,
    ready: Notify,
    closed: Notify,
    /// The channel open was confirmed to the client (so the client will close it).
    opened: AtomicBool,
    /// Still counted among the connection's open tunnels (see [`ChannelQueue::release`]).
    counted: AtomicBool,
    /// The client sent CHANNEL_CLOSE.
    client_closed: AtomicBool,
    /// The destination socket, once connected (module doc, part 1).
    direct: OnceLock<Arc<TcpStream>>,
    /// Bytes written to the destination by [`ChannelQueue::push`] itself.
    direct_bytes: AtomicU64,
}

impl ChannelQueue {
    pub fn new(flow: Arc<Flow>) -> Arc<ChannelQueue> {
        Arc::new(ChannelQueue {
            flow,
            state: Mutex::new(QueueState::default()),
            ready: Notify::new(),
            closed: Notify::new(),
            opened: AtomicBool::new(false),
            counted: AtomicBool::new(false),
            client_closed: AtomicBool::new(false),
            direct: OnceLock::new(),
            direct_bytes: AtomicU64::new(0),
        })
    }

    /// The destination is connected: from now on `push` may write to it directly.
    pub fn attach(&self, destination: Arc<TcpStream>) {
        let _ = self.direct.set(destination);
    }

    /// Bytes [`ChannelQueue::push`] wrote to the destination itself (the tunnel's own writes
    /// are counted by the tunnel).
    pub fn direct_bytes(&self) -> u64 {
        self.direct_bytes.load(Ordering::Acquire)
    }

    /// Write what the destination takes at once, if nothing is queued or being written before
    /// it (so bytes stay in order); returns the part left to queue. A write error leaves the
    /// data to the queue: the tunnel's own write meets the same error and reports it.
    fn write_through<'a>(&self, st: &QueueState, data: &'a [u8]) -> &'a [u8] {
        if !st.items.is_empty() || st.writing || st.stalled {
            return data;
        }
        let Some(destination) = self.direct.get() else {
            return data;
        };
        match destination.try_write(data) {
            Ok(n) => {
                self.direct_bytes.fetch_add(n as u64, Ordering::AcqRel);
                data.get(n..).unwrap_or_default()
            }
            Err(_) => data,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Queue client data for the destination (called from the session loop: never waits).
    pub fn push(&self, data: &[u8]) -> Result<(), PushError> {
        let mut st = self.lock();
        if st.closed || st.finished {
            return Err(PushError::Closed);
        }
        let data = self.write_through(&st, data);
        if data.is_empty() {
            return Ok(());
        }
        let charge = data.len() + ITEM_COST;
        if st.bytes + charge > self.flow.limits.channel_hard_cap {
            return Err(PushError::HardCap {
                queued: st.bytes + charge,
            });
        }
        st.bytes += charge;
        // Count before the item becomes visible, so a fast writer's `consumed` never
        // subtracts bytes the connection total has not seen yet.
        self.flow.add(charge);
        if st.stalled {
            self.flow.stalled.fetch_add(charge, Ordering::AcqRel);
        }
        st.items
            .push_back(Inbound::Data(Bytes::copy_from_slice(data)));
        drop(st);
        self.ready.notify_one();
        Ok(())
    }

    /// Queue the client's EOF.
    pub fn push_eof(&self) {
        let mut st = self.lock();
        if !st.closed {
            st.items.push_back(Inbound::Eof);
        }
        drop(st);
        self.ready.notify_one();
    }

    /// Mark the channel as confirmed to the client; it counts as an open tunnel until
    /// [`ChannelQueue::release`].
    pub fn set_opened(&self) {
        self.counted.store(true, Ordering::Release);
        self.opened.store(true, Ordering::Release);
    }

    /// Stop counting this tunnel as open: true the first time only, so the client's close and
    /// the end of the tunnel task can both call it.
    pub fn release(&self) -> bool {
        self.counted.swap(false, Ordering::AcqRel)
    }

    /// Resolves once the client has closed the channel (it sends CHANNEL_CLOSE after writing
    /// everything it received to its local socket).
    pub async fn client_closed(&self) {
        loop {
            let notified = self.closed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.client_closed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    pub fn was_opened(&self) -> bool {
        self.opened.load(Ordering::Acquire)
    }

    /// The client closed the channel: deliver what is queued, then end.
    pub fn finish(&self) {
        self.lock().finished = true;
        self.client_closed.store(true, Ordering::Release);
        self.ready.notify_one();
        self.closed.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Close the queue with a reason the tunnel reports (hard cap, connection ended).
    pub fn close_with_reason(&self, reason: &str) {
        {
            let mut st = self.lock();
            if !st.closed {
                st.reason = Some(reason.to_owned());
            }
        }
        self.close();
    }

    /// Why the bastion closed this queue, if it did.
    pub fn close_reason(&self) -> Option<String> {
        self.lock().reason.clone()
    }

    /// Close the queue: pending data is dropped and released from the connection's count;
    /// the destination writer sees `None`.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.items.clear();
        let bytes = std::mem::take(&mut st.bytes);
        let stalled = std::mem::take(&mut st.stalled);
        drop(st);
        if bytes > 0 {
            self.flow.sub(bytes, stalled);
        }
        self.ready.notify_one();
        self.closed.notify_waiters();
    }

    /// Resolves once the queue is closed (to abandon a write the destination never takes).
    pub async fn closed(&self) {
        loop {
            let notified = self.closed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Next item for the destination, waiting while the queue is empty; `None` once closed.
    /// Its payload stays counted until [`ChannelQueue::consumed`] reports it written; its
    /// [`ITEM_COST`] is released here, as it leaves the queue.
    pub async fn next(&self) -> Option<Inbound> {
        loop {
            let notified = self.ready.notified();
            {
                let mut st = self.lock();
                if st.closed {
                    return None;
                }
                if let Some(item) = st.items.pop_front() {
                    if matches!(item, Inbound::Data(_)) {
                        st.writing = true;
                        st.bytes = st.bytes.saturating_sub(ITEM_COST);
                        let stalled = st.stalled;
                        drop(st);
                        self.flow.sub(ITEM_COST, stalled);
                    }
                    return Some(item);
                }
                if st.finished {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// `n` bytes previously returned by `next` reached the destination.
    pub fn consumed(&self, n: usize) {
        let mut st = self.lock();
        st.writing = false;
        if st.closed {
            return;
        }
        st.bytes = st.bytes.saturating_sub(n);
        let stalled = st.stalled;
        drop(st);
        self.flow.sub(n, stalled);
    }

    /// Mark the destination stalled (true) or moving again (false).
    pub fn set_stalled(&self, stalled: bool) {
        let mut st = self.lock();
        if st.closed || st.stalled == stalled {
            return;
        }
        st.stalled = stalled;
        tracing::debug!(
            stalled,
            bytes = st.bytes,
            queued = self.flow.queued(),
            "channel stall state"
        );
        if stalled {
            self.flow.stalled.fetch_add(st.bytes, Ordering::AcqRel);
        } else {
            self.flow.stalled.fetch_sub(st.bytes, Ordering::AcqRel);
        }
        drop(st);
        self.flow.wake_reader();
    }

    /// Bytes queued or in flight to the destination.
    pub fn queued(&self) -> usize {
        self.lock().bytes
    }
}

/// The client socket as russh sees it: reads pause while [`Flow::paused`], and everything
/// fails once [`Flow::kill`] was called.
pub struct GatedStream<S> {
    inner: S,
    flow: Arc<Flow>,
}

impl<S> GatedStream<S> {
    pub fn new(inner: S, flow: Arc<Flow>) -> Self {
        GatedStream { inner, flow }
    }
}

fn killed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection closed by the bastion",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for GatedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.flow.is_killed() {
            return Poll::Ready(Err(killed_error()));
        }
        if self.flow.paused() {
            tracing::trace!(queued = self.flow.queued(), "client reads paused");
            self.flow.park_reader(cx.waker());
            // Re-check after parking so a wake between the check and the park is not lost.
            if self.flow.paused() && !self.flow.is_killed() {
                return Poll::Pending;
            }
        }
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Pending => {
                // Also park here, so `kill` can end a read that waits on the socket.
                self.flow.park_reader(cx.waker());
                if self.flow.is_killed() {
                    return Poll::Ready(Err(killed_error()));
                }
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GatedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.flow.is_killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
