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
