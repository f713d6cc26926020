#!/usr/bin/env python3
"""Writes the binary seeds of fuzz/corpus/ (PROXY headers, certificates); rerun to regenerate.

proxy_header inputs are: a control byte (mode = b % 3, peer = b // 3 % 4: trusted 10.0.0.1,
loopback, untrusted, mapped 192.168.1.1), a count k of chunk-size bytes, k bytes, then what
the peer sends. Certificates come from ssh-keygen (a throwaway CA in a temporary directory).
"""
import os
import struct
import subprocess
import tempfile
import base64

HERE = os.path.dirname(os.path.abspath(__file__))
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
SSH = b"SSH-2.0-OpenSSH_9.2\r\n"


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def v2(command, family, addrs, tlvs=b""):
    body = addrs + tlvs
    return V2_SIG + bytes([0x20 | command, family]) + struct.pack(">H", len(body)) + body


def proxy_seeds():
    v4 = bytes([192, 0, 2, 7, 10, 0, 0, 5]) + struct.pack(">HH", 51234, 22)
    v6 = bytes(16 * [0x20]) + bytes(15 * [0] + [1]) + struct.pack(">HH", 40000, 22)
    vpce = b"\x01vpce-0123456789abcdef0"
    aws_tlv = b"\xea" + struct.pack(">H", len(vpce)) + vpce
    headers = {
        "v1-tcp4": b"PROXY TCP4 192.0.2.7 10.0.0.5 51234 22\r\n",
        "v1-tcp6": b"PROXY TCP6 2001:db8::7 fd00::5 51234 22\r\n",
        "v1-unknown": b"PROXY UNKNOWN\r\n",
        "v2-tcp4": v2(1, 0x11, v4),
        "v2-tcp6": v2(1, 0x21, v6),
        "v2-tcp4-aws-vpce": v2(1, 0x11, v4, aws_tlv),
        "v2-local": v2(0, 0x00, b""),
        "v2-local-with-addrs": v2(0, 0x11, v4),
    }
    for name, header in headers.items():
        # Trusted peer, required mode, split into 3/1/7-byte reads.
        write("proxy_header", name, bytes([2, 3, 2, 0, 6]) + header + SSH)
    # Optional mode without a header; loopback health check (LOCAL) in required mode.
    write("proxy_header", "optional-no-header", bytes([1, 0]) + SSH)
    write("proxy_header", "loopback-v2-local", bytes([5, 1, 0]) + headers["v2-local"])


def certificate_seeds():
    with tempfile.TemporaryDirectory() as tmp:
        ca, user = os.path.join(tmp, "ca"), os.path.join(tmp, "user")
        for path in (ca, user):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
        variants = {
            "cert-ed25519": ["-n", "alice,deploy"],
            "cert-source-address": ["-n", "alice", "-O", "source-address=10.0.0.0/8,fd00::/8"],
            "cert-force-command": ["-n", "alice", "-O", "force-command=/bin/true"],
            "cert-no-principals": [],
        }
        for name, extra in variants.items():
            subprocess.run(["ssh-keygen", "-q", "-s", ca, "-I", name, "-z", "7", "-V", "-5m:+520w"]
                           + extra + [user + ".pub"], check=True)
            with open(user + "-cert.pub", "rb") as f:
                text = f.read()
            write("certificates", name + ".txt", text)
            write("certificates", name + ".bin", base64.b64decode(text.split()[1]))


if __name__ == "__main__":
    proxy_seeds()
    certificate_seeds()
