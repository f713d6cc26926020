"""The ECS agent's two HTTP endpoints a Fargate task's containers see, on 127.0.0.1: task
metadata v4 (`${ECS_CONTAINER_METADATA_URI_V4}/task`) and container credentials
(`AWS_CONTAINER_CREDENTIALS_FULL_URI`). The one implementation, used by scripts/local-task
(`TaskEndpoints` in a thread) and by the dns-sidecar end-to-end tests (`serve` below, as a
subprocess driven by tests/src/sidecar.rs).

  serve --task-id ID --private-ip IP --mac MAC [--region R] [--cluster C] [--az AZ]
        [--subnet-cidr CIDR]
      prints one JSON line {"base", "metadata_uri", "credentials_uri"} on stdout, then serves
      until killed. For the tests it also answers two control requests:
        PUT /_test/route?path=P   (body: {"status": N, "body": "..."}) serves P with that
                                  answer from now on (before the ECS routes): an echo URL,
                                  or a changed task document
        GET /_test/hits?path=P    {"hits": N}: how many requests asked for P

Nothing here talks to AWS; the credentials are dummies that only moto accepts.
"""

import argparse
import copy
import datetime
import ipaddress
import json
import sys
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in scripts/ for the module below
# The account and the dummy credentials moto is seeded with (moto accepts any credentials).
from moto_seed import ACCOUNT_ID, DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY  # noqa: E402

FIXTURE = (
    Path(__file__).resolve().parent.parent
    / "dns-sidecar" / "tests" / "fixtures" / "ecs-task-metadata-v4-task.json"
)


def rfc3339(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def container_metadata(template, *, name, docker_id, region, cluster, task_id, private_ip,
                       mac, subnet_cidr):
    """One container's document: a copy of the fixture's with this name and the task's network."""
    network = ipaddress.ip_network(subnet_cidr)
    gateway = network.network_address + 1
    c = copy.deepcopy(template)
    c["Name"] = name
    c["DockerName"] = name
    c["DockerId"] = docker_id
    c["Image"] = f"local-task/{name}"
    c["ContainerARN"] = (
        f"arn:aws:ecs:{region}:{ACCOUNT_ID}:container/{cluster}/{task_id}/{uuid.uuid4()}"
    )
    for net in c.get("Networks", []):
        net["IPv4Addresses"] = [private_ip]
        net["MACAddress"] = mac
        net["IPv4SubnetCIDRBlock"] = subnet_cidr
        net["DomainNameServers"] = [str(network.network_address + 2)]
        net["DomainNameSearchList"] = [f"{region}.compute.internal"]
        net["PrivateDNSName"] = f"ip-{private_ip.replace('.', '-')}.{region}.compute.internal"
        net["SubnetGatewayIpv4Address"] = f"{gateway}/{network.prefixlen}"
    return c


def task_metadata(fixture, *, region, cluster, task_id, az, private_ip, mac, subnet_cidr,
                  containers, family=None, revision=None):
    """The v4 `/task` document: the fixture's shape with this task's identity and network.
    `containers` is [(name, docker_id)]; each gets a copy of the fixture's first container.
    `family` and `revision` default to the fixture's."""
    doc = copy.deepcopy(fixture)
    doc["Cluster"] = f"arn:aws:ecs:{region}:{ACCOUNT_ID}:cluster/{cluster}"
    doc["TaskARN"] = f"arn:aws:ecs:{region}:{ACCOUNT_ID}:task/{cluster}/{task_id}"
    if family is not None:
        doc["Family"] = family
    if revision is not None:
        doc["Revision"] = str(revision)
    doc["AvailabilityZone"] = az
    template = doc["Containers"][0]
    doc["Containers"] = [
        container_metadata(template, name=name, docker_id=docker_id, region=region,
                           cluster=cluster, task_id=task_id, private_ip=private_ip, mac=mac,
                           subnet_cidr=subnet_cidr)
        for name, docker_id in containers
    ]
    return doc


def credentials():
    """Temporary credentials in the documented shape, valid for an hour."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "RoleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/local-task-role",
        "AccessKeyId": DUMMY_ACCESS_KEY,
        "SecretAccessKey": DUMMY_SECRET_KEY,
        "Token": "local-task-session-token",
        "Expiration": rfc3339(now + datetime.timedelta(hours=1)),
    }


class TaskEndpoints:
    """Task metadata v4 and container credentials on 127.0.0.1:<free port>, in a thread.

    GET /v4/<docker id>/task -> the task document
    GET /v4/<docker id>      -> that container's document
    GET /creds               -> temporary credentials (needs `Authorization: <token>` when
                                `auth_token` is set)

    With `test_control`, also the `/_test/` requests of the module doc.
    """

    def __init__(self, task_doc, auth_token, log, *, test_control=False):
        self.task_doc = task_doc
        self.auth_token = auth_token
        self.log = log  # callable(str)
        self.requests = 0
        self.test_control = test_control
        self.overrides = {}  # raw path -> (status, text body)
        self.hits = {}  # raw path -> count
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler_class())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="task-endpoints", daemon=True
        )
        self.thread.start()

    def handler_class(self):
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # noqa: N802 (stdlib name)
                endpoints.log(f"{self.address_string()} {fmt % args}")

            def answer(self, status, body, content_type="application/json"):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 (stdlib name)
                self.answer(*endpoints.get(self.path, self.headers))

            def do_PUT(self):  # noqa: N802 (stdlib name)
                length = int(self.headers.get("Content-Length") or 0)
                self.answer(*endpoints.put(self.path, self.rfile.read(length)))

        return Handler

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def metadata_uri(self, docker_id):
        return f"{self.base}/v4/{docker_id}"

    @property
    def credentials_uri(self):
        return f"{self.base}/creds"

    def get(self, raw_path, headers):
        """(status, body[, content type]) for a GET."""
        url = urllib.parse.urlsplit(raw_path)
        if self.test_control and url.path == "/_test/hits":
            path = urllib.parse.parse_qs(url.query).get("path", [""])[0]
            with self.lock:
                return 200, {"hits": self.hits.get(path, 0)}
        with self.lock:
            self.requests += 1
            self.hits[raw_path] = self.hits.get(raw_path, 0) + 1
            override = self.overrides.get(raw_path)
        if override is not None:
            return override[0], override[1], "text/plain"
        return self.route(raw_path, headers)

    def put(self, raw_path, body):
        """A test's control request: a fixed answer for a path."""
        url = urllib.parse.urlsplit(raw_path)
        if not (self.test_control and url.path == "/_test/route"):
            return 405, {"message": f"no PUT {url.path}"}
        path = urllib.parse.parse_qs(url.query).get("path", [""])[0]
        answer = json.loads(body)
        with self.lock:
            self.overrides[path] = (int(answer["status"]), str(answer["body"]))
        return 200, {"ok": True}

    def route(self, path, headers):
        path = path.split("?", 1)[0].rstrip("/")
        if path == "/creds":
            if self.auth_token is not None and headers.get("Authorization") != self.auth_token:
                return 401, {"code": "Unauthorized",
                             "message": "missing or wrong Authorization header"}
            return 200, credentials()
        parts = path.split("/")
        # ['', 'v4', '<docker id>', ...]
        if len(parts) >= 3 and parts[1] == "v4":
            docker_id = parts[2]
            rest = parts[3:]
            container = next(
                (c for c in self.task_doc["Containers"] if c["DockerId"] == docker_id), None
            )
            if container is None:
                return 404, {"message": f"no container {docker_id}"}
            if rest == ["task"]:
                return 200, self.task_doc
            if rest == []:
                return 200, container
        return 404, {"message": f"no {path} here"}

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(a):
    """The `serve` command: one task's endpoints until killed."""
    with open(a.metadata_fixture) as f:
        fixture = json.load(f)
    docker_id = f"{a.task_id}-dns-sidecar"
    doc = task_metadata(
        fixture, region=a.region, cluster=a.cluster, task_id=a.task_id,
        az=a.az or f"{a.region}a", private_ip=a.private_ip, mac=a.mac,
        subnet_cidr=a.subnet_cidr, containers=[("dns-sidecar", docker_id)],
    )
    endpoints = TaskEndpoints(doc, None, lambda line: print(line, file=sys.stderr, flush=True),
                              test_control=True)
    print(json.dumps({
        "base": endpoints.base,
        "metadata_uri": endpoints.metadata_uri(docker_id),
        "credentials_uri": endpoints.credentials_uri,
    }), flush=True)
    endpoints.thread.join()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["serve"])
    p.add_argument("--task-id", required=True)
    p.add_argument("--private-ip", required=True)
    p.add_argument("--mac", required=True)
    p.add_argument("--region", default="eu-west-1")
    p.add_argument("--cluster", default="jumpbox")
    p.add_argument("--az")
    p.add_argument("--subnet-cidr", default="172.31.0.0/16")
    p.add_argument("--metadata-fixture", default=str(FIXTURE))
    serve(p.parse_args())


if __name__ == "__main__":
    main()
