#!/usr/bin/env python3
"""Benchmark: the bastion against stock OpenSSH sshd configured as a forward-only jumpbox.

Both servers run side by side in one run on loopback, driven by the same `ssh` client with the
same cipher. Prints numbers; asserts nothing (speed goals are read, not tested).

Measures:
  - throughput: bytes echoed through one `ssh -N -L` tunnel, both directions at once;
  - latency: `ssh -W` connect-to-first-byte (full SSH handshake + auth + channel open);
  - memory per idle connection: proportional set size (PSS) growth of the server's processes
    with N idle `ssh -N` connections, divided by N;
  - concurrency: K tunnels on K connections moving data at once.

Usage: scripts/bench.py [--bastion target/release/bastion] [--size-mib 1024] [--idle 50]
Needs: ssh, ssh-keygen, /usr/sbin/sshd (Debian openssh-server; scripts/install-test-deps.sh).
Everything listens on 127.0.0.1 with ports picked by the kernel; all processes are killed at exit.
"""
import argparse
import atexit
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PROCS = []
# sshd needs a real account; the bastion accepts any name.
USER = __import__('getpass').getuser()


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    PROCS.append(p)
    return p


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def echo_server():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(512)

    def handle(c):
        try:
            while True:
                d = c.recv(1 << 17)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    def loop():
        while True:
            c, _ = srv.accept()
            threading.Thread(target=handle, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1]


def wait_port(port, deadline=10.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {deadline}s")


def ssh_base(key, port, cipher):
    return ["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o",
            "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR", "-o", f"Ciphers={cipher}", "-i", key, "-p", str(port)]


def echo_through(path_or_port, size):
    if isinstance(path_or_port, str):
        s = socket.socket(socket.AF_UNIX)
        s.connect(path_or_port)
    else:
        s = socket.create_connection(("127.0.0.1", path_or_port))
    chunk = os.urandom(1 << 16)
    sent_h, recv_h = hashlib.sha256(), hashlib.sha256()

    def writer():
        n = 0
        while n < size:
            s.sendall(chunk)
            sent_h.update(chunk)
            n += len(chunk)
        s.shutdown(socket.SHUT_WR)

    t0 = time.time()
    t = threading.Thread(target=writer)
    t.start()
    got = 0
    while True:
        d = s.recv(1 << 17)
        if not d:
            break
        recv_h.update(d)
        got += len(d)
    t.join()
    dt = time.time() - t0
    s.close()
    return got, dt, sent_h.digest() == recv_h.digest()


def open_tunnel(base, tmp, name, dport):
    sock = os.path.join(tmp, name)
    p = spawn(base + ["-N", "-o", "ExitOnForwardFailure=yes", "-L", f"{sock}:127.0.0.1:{dport}",
                      f"{USER}@127.0.0.1"], stderr=subprocess.DEVNULL)
    end = time.time() + 10
    while not os.path.exists(sock):
        if time.time() > end or p.poll() is not None:
            raise SystemExit(f"tunnel {name} did not come up")
        time.sleep(0.02)
    return p, sock


def pss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def server_pids(root_pid):
    """The root process and all its descendants (sshd forks two processes per connection)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children = {}
    pairs = [tuple(map(int, l.split())) for l in out.strip().splitlines()]
    for pid, ppid in pairs:
        children.setdefault(ppid, []).append(pid)
    result, todo = [], [root_pid]
    while todo:
        p = todo.pop()
        result.append(p)
        todo.extend(children.get(p, []))
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bastion", default="target/release/bastion")
    ap.add_argument("--sshd", default="/usr/sbin/sshd")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--idle", type=int, default=50)
    ap.add_argument("--concurrent", type=int, default=8)
    ap.add_argument("--latency-runs", type=int, default=10)
    ap.add_argument("--cipher", default="aes128-gcm@openssh.com")
    a = ap.parse_args()
    for tool in ("ssh", "ssh-keygen"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing: run scripts/install-test-deps.sh")
    if not os.path.exists(a.sshd):
        raise SystemExit(f"{a.sshd} missing: apt-get install openssh-server")
    if not os.path.exists(a.bastion):
        raise SystemExit(f"{a.bastion} missing: cargo build --release -p bastion")

    tmp = tempfile.mkdtemp(prefix="jumpbox-bench-")
    atexit.register(shutil.rmtree, tmp, True)
    key = os.path.join(tmp, "id")
    hostkey = os.path.join(tmp, "host")
    for k in (key, hostkey):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k], check=True)
    pub = open(key + ".pub").read()
    ak = os.path.join(tmp, "authorized_keys")
    with open(ak, "w") as f:
        f.write(pub)
    os.chmod(tmp, 0o700)
    dport = echo_server()

    # sshd as a forward-only jumpbox (the seed article's configuration, on loopback).
    sport = free_port()
    cfg = os.path.join(tmp, "sshd_config")
    with open(cfg, "w") as f:
        f.write(f"""Port {sport}
ListenAddress 127.0.0.1
HostKey {hostkey}
PidFile none
AuthorizedKeysFile {ak}
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
AllowTcpForwarding local
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
ForceCommand /bin/false
PermitOpen 127.0.0.1:{dport}
StrictModes no
UsePAM no
LogLevel ERROR
""")
    os.makedirs("/run/sshd", exist_ok=True)
    sshd = spawn([a.sshd, "-D", "-e", "-f", cfg], stderr=subprocess.DEVNULL)
    env = dict(os.environ, BASTION_AUTHORIZED_KEYS=pub, BASTION_HOST_KEY_FILE=hostkey,
               BASTION_LISTEN="127.0.0.1:0", BASTION_PERMIT_OPEN=f"127.0.0.1:{dport}",
               BASTION_LOG_FORMAT="json", RUST_LOG="warn")
    bastion = spawn([a.bastion], env=dict(env, RUST_LOG="info"), stderr=subprocess.PIPE, text=True)
    bport = None
    end = time.time() + 10
    while bport is None and time.time() < end:
        line = bastion.stderr.readline()
        if '"listening"' in line:
            bport = int(json.loads(line)["addr"].rsplit(":", 1)[1])
    if bport is None:
        raise SystemExit("bastion did not report its port")
    threading.Thread(target=lambda: [None for _ in bastion.stderr], daemon=True).start()
    wait_port(sport)

    servers = {"sshd": (sport, sshd.pid), "bastion": (bport, bastion.pid)}
    size = a.size_mib << 20
    print(f"# loopback, cipher {a.cipher}, echo {a.size_mib} MiB both ways at once")
    for name, (port, pid) in servers.items():
        base = ssh_base(key, port, a.cipher)
        p, sock = open_tunnel(base, tmp, f"{name}.sock", dport)
        got, dt, ok = echo_through(sock, size)
        print(f"throughput {name:8s}: {got / dt / 1e6:8.1f} MB/s each way ({dt:.2f} s, intact={ok})")
        p.kill()
        p.wait()

    for name, (port, pid) in servers.items():
        base = ssh_base(key, port, a.cipher)
        times = []
        for _ in range(a.latency_runs):
            t0 = time.time()
            p = subprocess.run(base + ["-W", f"127.0.0.1:{dport}", f"{USER}@127.0.0.1"], input=b"x",
                               capture_output=True, timeout=20)
            if p.stdout != b"x":
                raise SystemExit(f"{name}: -W round trip failed: {p.stderr!r}")
            times.append(time.time() - t0)
        print(f"latency    {name:8s}: ssh -W connect-to-first-byte median {statistics.median(times) * 1000:6.1f} ms "
              f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}, n={len(times)})")

    for name, (port, pid) in servers.items():
        base = ssh_base(key, port, a.cipher)
        before = pss_kib(server_pids(pid))
        conns = [open_tunnel(base, tmp, f"{name}-idle{i}.sock", dport)[0] for i in range(a.idle)]
        time.sleep(1)
        after = pss_kib(server_pids(pid))
        print(f"memory     {name:8s}: {(after - before) / a.idle:8.1f} KiB PSS per idle connection "
              f"({a.idle} connections, {before} -> {after} KiB)")
        for c in conns:
            c.kill()
            c.wait()

    per = max(size // a.concurrent, 1 << 20)
    for name, (port, pid) in servers.items():
        base = ssh_base(key, port, a.cipher)
        tunnels = [open_tunnel(base, tmp, f"{name}-c{i}.sock", dport) for i in range(a.concurrent)]
        results = [None] * a.concurrent

        def run(i):
            results[i] = echo_through(tunnels[i][1], per)

        t0 = time.time()
        ts = [threading.Thread(target=run, args=(i,)) for i in range(a.concurrent)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        dt = time.time() - t0
        total = sum(r[0] for r in results)
        print(f"concurrent {name:8s}: {a.concurrent} tunnels, {total / dt / 1e6:8.1f} MB/s total "
              f"({dt:.2f} s, all intact={all(r[2] for r in results)})")
        for p, _ in tunnels:
            p.kill()
            p.wait()
    try:
        with open(f"/proc/{bastion.pid}/status") as f:
            hwm = [l for l in f if l.startswith("VmHWM")][0].split()[1]
        print(f"bastion peak RSS over the whole run: {int(hwm) / 1024:.1f} MiB")
    except (OSError, IndexError):
        pass


if __name__ == "__main__":
    main()
