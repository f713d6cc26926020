//! Unit tests of `flow`.
use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn small() -> FlowLimits {
    FlowLimits {
        pause_above: 100,
        channel_hard_cap: 1000,
        ..FlowLimits::default()
    }
}

#[tokio::test]
async fn queue_accounts_bytes_and_caps_a_channel() {
    let flow = Flow::new(small());
    let q = ChannelQueue::new(flow.clone());
    q.push(&[0; 600]).unwrap();
    assert_eq!(
        flow.queued(),
        600 + ITEM_COST,
        "payload plus the packet's cost"
    );
    assert!(flow.paused());
    assert_eq!(flow.window_target(), small().window_over_cap);
    assert_eq!(
        q.push(&[0; 600]),
        Err(PushError::HardCap {
            queued: 2 * (600 + ITEM_COST)
        })
    );
    assert!(matches!(q.next().await, Some(Inbound::Data(_))));
    assert_eq!(
        flow.queued(),
        600,
        "the cost is released as the packet leaves the queue"
    );
    q.consumed(550);
    assert_eq!(flow.queued(), 50);
    assert!(!flow.paused());
    assert_eq!(flow.window_target(), small().window);
    assert_eq!(flow.peak(), 600 + ITEM_COST);
    q.close();
    assert_eq!(flow.queued(), 0, "closing releases what was queued");
    assert_eq!(q.push(b"x"), Err(PushError::Closed));
}

#[test]
fn one_byte_packets_reach_the_channel_cap_at_their_real_cost() {
    let limits = FlowLimits {
        channel_hard_cap: 100 * (1 + ITEM_COST),
        ..FlowLimits::default()
    };
    let flow = Flow::new(limits);
    let q = ChannelQueue::new(flow.clone());
    let accepted = (0..1000).take_while(|_| q.push(b"x").is_ok()).count();
    assert_eq!(
        accepted, 100,
        "100 one-byte packets fill a cap of 100 times their cost"
    );
}

#[test]
fn a_stalled_channel_stops_pacing_the_connection_within_the_connection_cap() {
    let limits = FlowLimits {
        pause_above: 300,
        channel_hard_cap: 2000,
        connection_cap: 900,
        ..FlowLimits::default()
    };
    let flow = Flow::new(limits);
    let stuck = ChannelQueue::new(flow.clone());
    let busy = ChannelQueue::new(flow.clone());
    stuck.push(&[0; 200]).unwrap();
    assert!(flow.paused());
    stuck.set_stalled(true);
    assert!(!flow.paused(), "a stalled channel must not hold the others");
    busy.push(&[0; 50]).unwrap();
    assert!(!flow.paused());
    stuck.push(&[0; 200]).unwrap();
    assert!(
        !flow.paused(),
        "data of a stalled channel does not pace the others"
    );
    stuck.push(&[0; 200]).unwrap();
    assert!(
        flow.paused(),
        "the connection cap still bounds stalled data"
    );
    let _starving = flow.starving();
    assert!(
        flow.paused(),
        "a starving return write must not lift the connection cap"
    );
    stuck.set_stalled(false);
    stuck.close();
    busy.close();
    assert_eq!(flow.queued(), 0);
    let again = ChannelQueue::new(flow.clone());
    again.push(&[0; 10]).unwrap();
    again.set_stalled(true);
    again.close();
    assert_eq!(flow.queued(), 0);
    assert!(!flow.paused());
    assert_eq!(
        flow.counted(),
        0,
        "closing a stalled queue releases its stalled bytes"
    );
}

#[test]
fn starving_return_write_unpauses_below_the_connection_cap() {
    let flow = Flow::new(small());
    let q = ChannelQueue::new(flow.clone());
    q.push(&[0; 200]).unwrap();
    assert!(flow.paused());
    let guard = flow.starving();
    assert!(
        !flow.paused(),
        "a starving return write must let reads resume"
    );
    drop(guard);
    assert!(flow.paused());
}

#[tokio::test]
async fn queue_delivers_in_order_then_eof_then_none_after_close() {
    let flow = Flow::new(small());
    let q = ChannelQueue::new(flow.clone());
    q.push(b"ab").unwrap();
    q.push_eof();
    assert_eq!(
        q.next().await,
        Some(Inbound::Data(Bytes::from_static(b"ab")))
    );
    q.consumed(2);
    assert_eq!(q.next().await, Some(Inbound::Eof));
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move { q.next().await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    q.close();
    let got = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, None, "close wakes a waiting writer");
}

#[tokio::test]
async fn finish_delivers_queued_data_then_ends() {
    let flow = Flow::new(small());
    let q = ChannelQueue::new(flow.clone());
    q.push(b"c").unwrap();
    q.finish();
    assert_eq!(q.push(b"late"), Err(PushError::Closed));
    assert_eq!(
        q.next().await,
        Some(Inbound::Data(Bytes::from_static(b"c")))
    );
    assert_eq!(q.next().await, None);
}

#[tokio::test]
async fn gated_stream_pauses_and_resumes_reads() {
    let flow = Flow::new(small());
    let q = ChannelQueue::new(flow.clone());
    let (a, mut b) = tokio::io::duplex(1024);
    let mut gated = GatedStream::new(a, flow.clone());
    b.write_all(b"hello").await.unwrap();
    q.push(&[0; 200]).unwrap();
    let mut buf = [0u8; 5];
    let paused = tokio::time::timeout(Duration::from_millis(50), gated.read(&mut buf)).await;
    assert!(paused.is_err(), "read must wait while over the cap");
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 5];
        gated.read_exact(&mut buf).await.map(|_| buf)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(q.next().await.is_some());
    q.consumed(200);
    let got = tokio::time::timeout(Duration::from_secs(2), reader)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"hello");
}

#[tokio::test]
async fn kill_fails_a_parked_read() {
    let flow = Flow::new(small());
    let (a, _b) = tokio::io::duplex(64);
    let mut gated = GatedStream::new(a, flow.clone());
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 1];
        gated.read(&mut buf).await
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    flow.kill();
    let res = tokio::time::timeout(Duration::from_secs(2), reader)
        .await
        .unwrap()
        .unwrap();
    assert!(res.is_err());
}

/// A connected loopback pair: (the destination socket the queue writes to, its far end).
async fn destination_pair() -> (Arc<TcpStream>, TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (near, far) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (Arc::new(near.unwrap()), far.unwrap().0)
}

#[tokio::test]
async fn data_goes_straight_to_a_destination_that_keeps_up_and_is_queued_in_order_otherwise() {
    let flow = Flow::new(FlowLimits::default());
    let q = ChannelQueue::new(flow.clone());
    let (near, mut far) = destination_pair().await;
    q.push(b"before-").unwrap();
    q.attach(near.clone());
    q.push(b"queued-first ").unwrap();
    assert_eq!(
        q.direct_bytes(),
        0,
        "queued data waits: nothing may overtake it"
    );
    let Some(Inbound::Data(first)) = q.next().await else {
        panic!("the queued packets come first");
    };
    q.push(b"while-writing ").unwrap();
    assert_eq!(
        q.direct_bytes(),
        0,
        "a packet being written is not overtaken"
    );
    near.try_write(&first).unwrap();
    q.consumed(first.len());
    for _ in 0..2 {
        let Some(Inbound::Data(next)) = q.next().await else {
            panic!("the packets queued before and during the write");
        };
        near.try_write(&next).unwrap();
        q.consumed(next.len());
    }
    q.push(b"direct").unwrap();
    assert_eq!(q.direct_bytes(), 6, "nothing waits: written at once");
    assert_eq!(flow.queued(), 0, "and never queued");
    let mut got = vec![0; 40];
    far.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"before-queued-first while-writing direct");
}

#[tokio::test]
async fn a_destination_that_stops_reading_gets_its_data_queued_and_counted() {
    let flow = Flow::new(FlowLimits::default());
    let q = ChannelQueue::new(flow.clone());
    let (near, mut far) = destination_pair().await;
    q.attach(near);
    let packet = vec![7u8; 32 * 1024];
    // Far more than loopback socket buffers hold: the rest must wait in the queue.
    for _ in 0..1024 {
        q.push(&packet).unwrap();
    }
    let direct = q.direct_bytes() as usize;
    assert!(direct > 0 && direct < 1024 * packet.len(), "{direct}");
    assert!(
        flow.queued() >= 1024 * packet.len() - direct,
        "what the socket did not take is queued and counted: {}",
        flow.queued()
    );
    let mut got = vec![0; direct];
    far.read_exact(&mut got).await.unwrap();
    assert!(got.iter().all(|&b| b == 7));
}

#[test]
fn large_windows_come_from_a_server_wide_budget_and_return_to_it() {
    let limits = FlowLimits::default();
    let extra = (limits.window_max - limits.window) as usize;
    let budget = WindowBudget::new(extra + extra / 2);
    let first = Flow::with_budget(limits, budget.clone());
    let second = Flow::with_budget(limits, budget.clone());
    assert_eq!(
        first.window_target(),
        limits.window_max,
        "an empty queue grows"
    );
    assert_eq!(
        second.window_target(),
        limits.window,
        "the budget is spent: sshd's window, not more"
    );
    let q = ChannelQueue::new(first.clone());
    q.push(&vec![0; limits.pause_above / 2]).unwrap();
    assert_eq!(
        first.window_target(),
        limits.window,
        "a queue that builds up gives its share back"
    );
    assert_eq!(second.window_target(), limits.window_max);
    q.close();
    drop(second);
    assert_eq!(
        budget.available(),
        extra + extra / 2,
        "a closed connection returns its share"
    );
}
