"""Public-key logins the stock OpenSSH client will not attempt, for tests/tests/key_strength.rs:
paramiko (an SSH implementation independent of russh and OpenSSH) patched where needed.

Modes (each prints one JSON object on stdout and exits 0 whatever the server decided; a crash
or a timeout exits non-zero):

  rsa HOST PORT KEY ALGORITHM [CERT]
      Log in with the OpenSSH RSA private key KEY (or with its certificate CERT, as the
      ALGORITHM-cert-v01@openssh.com request), signing with ALGORITHM (ssh-rsa, i.e. SHA-1,
      or rsa-sha2-256 / rsa-sha2-512), as a patched client would: paramiko is told to disable
      the other RSA algorithms and its choice is forced, since a stock paramiko 5 neither
      signs with SHA-1 nor picks ssh-rsa once the server's server-sig-algs leave it out.
  sk-line SEED
      Print the authorized_keys line of the sk-ssh-ed25519@openssh.com key made from SEED
      (64 hex digits, the Ed25519 private key), application "ssh:".
  sk HOST PORT SEED FLAGS [CERT]
      Log in with that security key (or with its certificate CERT, made by ssh-keygen -s from
      the sk-line), signing as an authenticator would with the given FLAGS byte (0: no user
      presence, i.e. not touched; 1: user present; see OpenSSH PROTOCOL.u2f) and counter 1.

The report: {"event": "auth", "authenticated": bool, "algorithm": the algorithm signed with,
"error": paramiko's error when refused}.
"""

import base64
import hashlib
import json
import socket
import struct
import sys

import paramiko
from paramiko.auth_handler import AuthHandler
from paramiko.message import Message
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

TIMEOUT = 20
SK_ED25519 = "sk-ssh-ed25519@openssh.com"
RSA_ALGORITHMS = ("ssh-rsa", "rsa-sha2-256", "rsa-sha2-512")


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class SkEd25519Key(paramiko.PKey):
    """An sk-ssh-ed25519@openssh.com key whose "authenticator" is in this process: it signs
    sha256(application) || flags || counter || sha256(data) and returns the signature in the
    SSH form (string type, string signature, byte flags, uint32 counter)."""

    def __init__(self, seed, application, flags=0, counter=1):
        self.private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.application = application
        self.flags = flags
        self.counter = counter
        self.public_blob = None

    def get_name(self):
        return SK_ED25519

    @property
    def _fields(self):
        return (SK_ED25519, self.public, self.application)

    def get_bits(self):
        return 256

    def can_sign(self):
        return True

    def asbytes(self):
        m = Message()
        m.add_string(SK_ED25519)
        m.add_string(self.public)
        m.add_string(self.application)
        return m.asbytes()

    def authorized_keys_line(self):
        return "%s %s e2e-security-key" % (SK_ED25519, base64.b64encode(self.asbytes()).decode())

    def sign_ssh_data(self, data, algorithm=None):
        signed = (
            hashlib.sha256(self.application.encode()).digest()
            + bytes([self.flags])
            + struct.pack(">I", self.counter)
            + hashlib.sha256(data).digest()
        )
        m = Message()
        m.add_string(SK_ED25519)
        m.add_string(self.private.sign(signed))
        m.add_byte(bytes([self.flags]))
        m.add_int(self.counter)
        return m


def log_in(host, port, key, algorithm, disabled=None):
    """Authenticate with `key`, signing with `algorithm`; report what the server said."""
    signed_with = []
    original_sign = key.sign_ssh_data

    def recording_sign(data, algorithm=None):
        signed_with.append(algorithm)
        return original_sign(data, algorithm)

    key.sign_ssh_data = recording_sign
    # The patch (part 2 for ssh-rsa): sign with the algorithm asked for, whatever the
    # server's server-sig-algs says.
    AuthHandler._finalize_pubkey_algorithm = lambda _self, _key_type: algorithm
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    transport = paramiko.Transport(sock, disabled_algorithms=disabled or {})
    transport.banner_timeout = TIMEOUT
    transport.auth_timeout = TIMEOUT
    error = None
    try:
        transport.start_client(timeout=TIMEOUT)
        transport.auth_publickey("tunnel", key)
    except paramiko.SSHException as e:
        error = "%s: %s" % (type(e).__name__, e)
    authenticated = transport.is_authenticated()
    transport.close()
    emit("auth", authenticated=authenticated, algorithm=(signed_with or [None])[-1], error=error)


def rsa(args):
    host, port, path, algorithm = args[:4]
    if algorithm not in RSA_ALGORITHMS:
        raise SystemExit("ALGORITHM must be one of %s" % ", ".join(RSA_ALGORITHMS))
    # The patch, part 1: paramiko 5 no longer knows how to sign ssh-rsa (SHA-1).
    paramiko.RSAKey.HASHES.setdefault("ssh-rsa", hashes.SHA1)
    paramiko.RSAKey.HASHES.setdefault("ssh-rsa-cert-v01@openssh.com", hashes.SHA1)
    key = paramiko.RSAKey.from_private_key_file(path)
    others = [a for a in RSA_ALGORITHMS if a != algorithm]
    if len(args) == 5:
        key.load_certificate(args[4])
        algorithm += "-cert-v01@openssh.com"
    log_in(host, int(port), key, algorithm, {"pubkeys": others})


def sk_key(seed_hex, flags=0):
    seed = bytes.fromhex(seed_hex)
    if len(seed) != 32:
        raise SystemExit("SEED must be 64 hex digits")
    return SkEd25519Key(seed, "ssh:", flags=flags)


def main(argv):
    if len(argv) < 1:
        raise SystemExit(__doc__)
    mode, args = argv[0], argv[1:]
    if mode == "rsa" and len(args) in (4, 5):
        rsa(args)
    elif mode == "sk-line" and len(args) == 1:
        print(sk_key(args[0]).authorized_keys_line())
    elif mode == "sk" and len(args) in (4, 5):
        host, port, seed, flags = args[:4]
        key = sk_key(seed, int(flags))
        algorithm = SK_ED25519
        if len(args) == 5:
            # What paramiko presents instead of the plain key: the certificate's type and blob.
            key.public_blob = paramiko.PublicBlob.from_file(args[4])
            algorithm = key.public_blob.key_type
        log_in(host, int(port), key, algorithm)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
