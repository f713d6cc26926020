"""A raw-socket SSH peer for the pre-authentication checks of tests/tests/russh_surface.rs: it
speaks the cleartext start of the protocol (banner, KEXINIT, key exchange) byte by byte, so it
can send what no SSH library would: a KEXINIT followed by an IGNORE under strict kex, a packet
length of 4 GiB, a name-list claiming 4 GiB, endless pre-banner lines, an all-zero or short
X25519 key, a cipher without a MAC, compression only.

Prints one JSON object on stdout: what the server sent and whether it closed the connection.
Standard library only; every socket operation has a timeout.

Usage: raw_preauth.py HOST PORT MODE
"""

import json
import os
import socket
import struct
import sys
import time

TIMEOUT = 10.0
MSG_IGNORE = 2
MSG_KEXINIT = 20
MSG_KEX_ECDH_INIT = 30
MSG_KEX_ECDH_REPLY = 31

STRICT_C = "kex-strict-c-v00@openssh.com"
STRICT_S = "kex-strict-s-v00@openssh.com"


def name_list(names):
    data = ",".join(names).encode()
    return struct.pack(">I", len(data)) + data


def packet(payload, block=8):
    """An unencrypted binary packet (RFC 4253 section 6) with random padding."""
    pad = block - ((5 + len(payload)) % block)
    if pad < 4:
        pad += block
    return struct.pack(">IB", 1 + len(payload) + pad, pad) + payload + os.urandom(pad)


def kexinit(kex=None, cipher=None, mac=None, compression=None):
    kex = kex or ["curve25519-sha256", STRICT_C]
    cipher = cipher or ["aes128-ctr"]
    mac = mac or ["hmac-sha2-256-etm@openssh.com"]
    compression = compression or ["none"]
    return (
        bytes([MSG_KEXINIT])
        + os.urandom(16)
        + name_list(kex)
        + name_list(["ssh-ed25519"])
        + name_list(cipher)
        + name_list(cipher)
        + name_list(mac)
        + name_list(mac)
        + name_list(compression)
        + name_list(compression)
        + name_list([])
        + name_list([])
        + b"\x00"
        + struct.pack(">I", 0)
    )


class Conn:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.sock.settimeout(TIMEOUT)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def recv_some(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def read_line(self):
        while b"\n" not in self.buf:
            self.recv_some()
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def read_banner(self):
        while True:
            line = self.read_line()
            if line.startswith(b"SSH-"):
                return line.decode(errors="replace")

    def read_packet(self):
        while len(self.buf) < 4:
            self.recv_some()
        length = struct.unpack(">I", self.buf[:4])[0]
        if length > 256 * 1024:
            raise ValueError("server packet of %d bytes" % length)
        while len(self.buf) < 4 + length:
            self.recv_some()
        body, self.buf = self.buf[4 : 4 + length], self.buf[4 + length :]
        pad = body[0]
        return body[1 : len(body) - pad]

    def closed_within(self, seconds):
        """True if the server closes (EOF or reset) within `seconds`; data it sends meanwhile
        is kept in the buffer."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except OSError:
                return True
            if not data:
                return True
            self.buf += data
        return False

    def close(self):
        self.sock.close()


def parse_kexinit(payload):
    names = []
    r = payload[17:]
    for _ in range(10):
        n = struct.unpack(">I", r[:4])[0]
        names.append(r[4 : 4 + n].decode().split(",") if n else [])
        r = r[4 + n :]
    keys = ["kex", "host_key", "cipher_c2s", "cipher_s2c", "mac_c2s", "mac_s2c", "comp_c2s", "comp_s2c"]
    return dict(zip(keys, names))


def hello(host, port):
    """Connects, exchanges banners and reads the server's KEXINIT."""
    conn = Conn(host, port)
    conn.send(b"SSH-2.0-raw_preauth_test\r\n")
    banner = conn.read_banner()
    payload = conn.read_packet()
    assert payload[0] == MSG_KEXINIT, payload[0]
    return conn, banner, parse_kexinit(payload)


def strict_kex(host, port):
    """Terrapin (CVE-2023-48795): the server advertises strict kex, and under it an IGNORE
    during the initial key exchange ends the connection, while the same exchange without the
    IGNORE is still waiting a second later."""
    conn, banner, names = hello(host, port)
    conn.send(packet(kexinit()))
    conn.send(packet(bytes([MSG_IGNORE]) + struct.pack(">I", 4) + b"junk"))
    closed_after_ignore = conn.closed_within(5)
    conn.close()
    control, _, _ = hello(host, port)
    control.send(packet(kexinit()))
    control_closed = control.closed_within(1.0)
    control.close()
    return {
        "banner": banner,
        "server_kex": names["kex"],
        "strict_advertised": STRICT_S in names["kex"],
        "closed_after_ignore": closed_after_ignore,
        "control_closed": control_closed,
    }


def huge_packet(host, port):
    """CVE-2024-43410: a packet length of ~4 GiB right after the banners, on 8 connections at
    once, each then trickling a few bytes. The server must close them, not allocate."""
    conns = []
    for _ in range(8):
        conn, _, _ = hello(host, port)
        conn.send(struct.pack(">I", 0xFFFFFFF0) + b"\x04" + b"A" * 64)
        conns.append(conn)
    closed = 0
    for conn in conns:
        try:
            conn.send(b"B" * 1024)
        except OSError:
            pass
        if conn.closed_within(5):
            closed += 1
        conn.close()
    return {"connections": len(conns), "closed": closed}


def pre_banner(host, port):
    """CVE-2026-48108: lines before the banner without end. The server must close the
    connection after a bounded number of them, not read for ever."""
    conn = Conn(host, port)
    sent = 0
    closed = False
    line = b"x" * 200 + b"\r\n"
    try:
        while sent < 8 * 1024 * 1024:
            conn.send(line * 64)
            sent += len(line) * 64
    except OSError:
        closed = True
    if not closed:
        closed = conn.closed_within(5)
    conn.close()
    long_line = Conn(host, port)
    sent_long = 0
    closed_long = False
    try:
        while sent_long < 8 * 1024 * 1024:
            long_line.send(b"y" * 65536)
            sent_long += 65536
    except OSError:
        closed_long = True
    if not closed_long:
        closed_long = long_line.closed_within(5)
    long_line.close()
    return {
        "lines_bytes_sent": sent,
        "lines_closed": closed,
        "long_line_bytes_sent": sent_long,
        "long_line_closed": closed_long,
    }


def huge_name_list(host, port):
    """CVE-2026-48110: a small KEXINIT whose first name-list claims 0xFFFFFF00 bytes. The server
    must refuse it without allocating that much."""
    results = []
    for _ in range(8):
        conn, _, _ = hello(host, port)
        payload = bytes([MSG_KEXINIT]) + os.urandom(16) + struct.pack(">I", 0xFFFFFF00) + b"a" * 32
        conn.send(packet(payload))
        results.append(conn.closed_within(5))
        conn.close()
    return {"connections": len(results), "closed": sum(results)}


def ecdh(host, port, q_c):
    """A strict-kex curve25519 exchange with `q_c` as the client's public value: did the server
    reply with KEX_ECDH_REPLY, or close?"""
    conn, _, _ = hello(host, port)
    conn.send(packet(kexinit()))
    conn.send(packet(bytes([MSG_KEX_ECDH_INIT]) + struct.pack(">I", len(q_c)) + q_c))
    replied = False
    try:
        reply = conn.read_packet()
        replied = reply[0] == MSG_KEX_ECDH_REPLY
    except (EOFError, OSError, ValueError):
        pass
    closed = conn.closed_within(5)
    conn.close()
    return {"replied": replied, "closed": closed}


def bad_x25519(host, port):
    """GHSA-cqvm-j2r2-hwpg (weak key-exchange values) and GHSA-g9hv-x236-4qp3 (wrong-length
    X25519 panic): an all-zero and a 31-byte client public value."""
    return {
        "valid": ecdh(host, port, os.urandom(32)),
        "all_zero": ecdh(host, port, b"\x00" * 32),
        "short": ecdh(host, port, os.urandom(31)),
    }


def negotiation(host, port):
    """GHSA-p8qx-h547-fjw9 (a block cipher negotiated without a MAC) and RUSTSEC-2026-0493
    (zlib): what the server offers, and that it closes when no MAC or only zlib is offered."""
    conn, _, names = hello(host, port)
    conn.send(packet(kexinit(cipher=["aes128-ctr"], mac=["none"])))
    mac_none_closed = conn.closed_within(5)
    conn.close()
    conn, _, _ = hello(host, port)
    conn.send(packet(kexinit(cipher=["aes128-ctr"], mac=["hmac-md5-nonexistent"])))
    mac_unknown_closed = conn.closed_within(5)
    conn.close()
    conn, _, _ = hello(host, port)
    conn.send(packet(kexinit(compression=["zlib@openssh.com", "zlib"])))
    zlib_closed = conn.closed_within(5)
    conn.close()
    return {
        "server_mac": names["mac_c2s"],
        "server_compression": names["comp_c2s"],
        "server_cipher": names["cipher_c2s"],
        "mac_none_closed": mac_none_closed,
        "mac_unknown_closed": mac_unknown_closed,
        "zlib_only_closed": zlib_closed,
    }


def main():
    host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    modes = {
        "strict-kex": strict_kex,
        "huge-packet": huge_packet,
        "pre-banner": pre_banner,
        "huge-name-list": huge_name_list,
        "bad-x25519": bad_x25519,
        "negotiation": negotiation,
    }
    result = modes[mode](host, port)
    result["mode"] = mode
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
