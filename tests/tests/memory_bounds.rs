//! The memory caps hold against the clients that tried to defeat them: tunnels whose return
//! windows the client never reopens cannot switch the connection cap off, and one-byte
//! packets are charged what they really cost, so a channel's cap bounds its real memory. The
//! attacker is the paramiko peer (`tests/peers/russh_peer.py`); the bastion's peak RSS is
//! printed and held under a stated bound, and another user's tunnel works afterwards.

use std::time::Duration;

use e2e::*;
use serde_json::Value;

/// The connection cap (`FlowLimits::connection_cap`, 64 MiB), plus room for everything else
/// the attack costs (russh's buffers, the return data in flight, allocator slack).
const STARVE_BUDGET_KIB: u64 = (64 + 48) * 1024;
/// A channel's cap is 32 MiB of charged bytes; one-byte packets may hold no more than that.
const TINY_BUDGET_KIB: u64 = 48 * 1024;

/// Runs the peer in `mode` to its result, then checks that another user is still served;
/// returns the result and the bastion's peak RSS growth.
fn attack(setup: &Attack, mode: &str, args: &[&str], limit: Duration) -> (Value, u64) {
    let result = setup.peer(mode, args).expect_event("result", limit);
    println!("{mode}: {result}");
    let grown = setup.peak_growth_kib(mode);
    setup.other_user_tunnel_works(&format!("after the {mode} attack"));
    (result, grown)
}

/// 16 tunnels to a destination that floods replies and reads nothing; the client never reads
/// the replies (their return windows never reopen, so the bastion's return writes wait for
/// window for good) and sends on every tunnel as fast as it is taken. Reads of the client
/// stop at the connection cap: the bastion's memory stays near 64 MiB, not 16 × 32 MiB.
#[test]
fn return_windows_that_never_reopen_cannot_lift_the_connection_cap() {
    let dest = TestServer::floods_never_reads();
    let setup = Attack::start(&[&dest], &[("BASTION_TUNNEL_STALL_TIMEOUT", "10m")]);
    let spec = dest.spec();
    let args = ["--count", "16", "--dest", spec.as_str(), "--hold", "60"];
    let (result, grown) = attack(&setup, "starve", &args, Duration::from_secs(120));
    assert!(
        grown < STARVE_BUDGET_KIB,
        "the bastion's peak RSS grew by {} MiB (bound {} MiB) while the client sent {} bytes",
        grown / 1024,
        STARVE_BUDGET_KIB / 1024,
        result["sent"]
    );
}

/// One tunnel to a destination that reads nothing: 16 MiB in full packets fill the kernel's
/// socket buffers and part of the channel's queue, then 400,000 one-byte packets follow. Each
/// holds far more memory than its byte; charged at its real cost, the channel reaches its
/// 32 MiB cap after well under 400,000 of them and the bastion closes the tunnel, its memory
/// bounded by the cap (counted in payload bytes, 400,000 packets are 0.4 MB and stay queued).
#[test]
fn one_byte_packets_reach_the_channel_cap_at_their_real_cost() {
    let dest = TestServer::never_reads();
    let setup = Attack::start(&[&dest], &[("BASTION_TUNNEL_STALL_TIMEOUT", "10m")]);
    let spec = dest.spec();
    let args = [
        "--count",
        "400000",
        "--prefill",
        "16",
        "--dest",
        spec.as_str(),
    ];
    let (result, grown) = attack(&setup, "tiny", &args, Duration::from_secs(300));
    assert_eq!(
        result["closed"], true,
        "the bastion kept a tunnel open after {} one-byte packets to a destination that reads \
         nothing: its cap counts payload bytes, not what the packets hold",
        result["sent"]
    );
    let closes = setup.bastion.events_named("tunnel_close");
    assert!(
        closes.iter().any(|e| e["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not keeping up"))),
        "the tunnel was not closed by its cap: {closes:?}"
    );
    assert!(
        grown < TINY_BUDGET_KIB,
        "the bastion's peak RSS grew by {} MiB (bound {} MiB)",
        grown / 1024,
        TINY_BUDGET_KIB / 1024
    );
}
