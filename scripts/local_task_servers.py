"""The AWS side of `scripts/local-task`: what a Fargate task finds around it, on 127.0.0.1.

- `seed_moto`: a moto server stands in for Route 53 and EC2. It gets a hosted zone, a VPC and
  subnet, a network interface (the task's ENI) and an Elastic IP associated with it, so
  `DescribeNetworkInterfaces` shows `Association.PublicIp` as it does for a Fargate task with a
  public IP.
- `TaskEndpoints`: the ECS agent's two HTTP endpoints, task metadata v4
  (`${ECS_CONTAINER_METADATA_URI_V4}/task`) and container credentials
  (`AWS_CONTAINER_CREDENTIALS_FULL_URI`), answering with the moto ENI's private IP and MAC.

Nothing here talks to real AWS: every client is built with an explicit endpoint on 127.0.0.1
and dummy credentials.
"""

import copy
import datetime
import ipaddress
import json
import secrets
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCOUNT_ID = "123456789012"
# moto accepts any credentials; these never leave the machine.
DUMMY_ACCESS_KEY = "AKIALOCALTASK0000000"
DUMMY_SECRET_KEY = "local-task-dummy-secret-key-0000000000000"


def _clients(moto_url, region):
    import boto3  # the project venv has it; imported late so `--help` works without it
    from botocore.config import Config

    config = Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    kwargs = dict(
        endpoint_url=moto_url,
        region_name=region,
        aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=DUMMY_SECRET_KEY,
        config=config,
    )
    session = boto3.session.Session()
    return session.client("route53", **kwargs), session.client("ec2", **kwargs)


def seed_moto(moto_url, region, zone_name, public_ip):
    """Creates (or reuses) the hosted zone and creates a fresh VPC, subnet, ENI and associated
    Elastic IP. Returns what the rest of local-task needs, read back from moto."""
    route53, ec2 = _clients(moto_url, region)
    zone_name = zone_name.rstrip(".") + "."

    zone_id = None
    listed = route53.list_hosted_zones_by_name(DNSName=zone_name)
    for zone in listed.get("HostedZones", []):
        if zone["Name"] == zone_name and not zone.get("Config", {}).get("PrivateZone"):
            zone_id = zone["Id"]
            break
    if zone_id is None:
        zone_id = route53.create_hosted_zone(
            Name=zone_name, CallerReference=f"local-task-{uuid.uuid4()}"
        )["HostedZone"]["Id"]
    zone_id = zone_id.rsplit("/", 1)[-1]

    az = f"{region}a"
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(
        VpcId=vpc_id, CidrBlock="10.0.1.0/24", AvailabilityZone=az
    )["Subnet"]["SubnetId"]
    eni_id = ec2.create_network_interface(
        SubnetId=subnet_id, Description="local-task: the Fargate task's ENI"
    )["NetworkInterface"]["NetworkInterfaceId"]
    allocation_id = ec2.allocate_address(Domain="vpc", Address=public_ip)["AllocationId"]
    ec2.associate_address(AllocationId=allocation_id, NetworkInterfaceId=eni_id)

    eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0]
    seen_ip = eni.get("Association", {}).get("PublicIp")
    if seen_ip != public_ip:
        raise RuntimeError(
            f"moto did not associate {public_ip} with {eni_id}: "
            f"DescribeNetworkInterfaces shows Association {eni.get('Association')!r}"
        )
    for field in ("MacAddress", "PrivateIpAddress"):
        if not eni.get(field):
            raise RuntimeError(f"moto's {eni_id} has no {field}: {eni!r}")
    return {
        "hosted_zone_id": zone_id,
        "zone_name": zone_name,
        "vpc_id": vpc_id,
        "subnet_id": subnet_id,
        "availability_zone": eni.get("AvailabilityZone") or az,
        "eni_id": eni_id,
        "private_ip": eni["PrivateIpAddress"],
        "mac": eni["MacAddress"],
        "public_ip": public_ip,
        "allocation_id": allocation_id,
    }


def random_public_ip():
    """A globally routable-looking IPv4 address for the Elastic IP, in the block moto itself
    uses for fake public IPs (54.214.0.0/16). It only ever lives in moto; nothing connects to
    it. Documentation ranges (203.0.113.0/24, ...) would be refused by the sidecar as not
    global, which is right."""
    return str(ipaddress.IPv4Address("54.214.0.0") + secrets.randbelow(65534) + 1)


def rfc3339(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def task_metadata(fixture, *, region, cluster, task_id, family, revision, az, private_ip,
                  mac, subnet_cidr, containers):
    """The v4 `/task` document: the fixture's shape with this task's identity and network.
    `containers` is [(name, docker_id)]; each gets a copy of the fixture's first container."""
    doc = copy.deepcopy(fixture)
    doc["Cluster"] = f"arn:aws:ecs:{region}:{ACCOUNT_ID}:cluster/{cluster}"
    doc["TaskARN"] = f"arn:aws:ecs:{region}:{ACCOUNT_ID}:task/{cluster}/{task_id}"
    doc["Family"] = family
    doc["Revision"] = str(revision)
    doc["AvailabilityZone"] = az
    template = doc["Containers"][0]
    network = ipaddress.ip_network(subnet_cidr)
    gateway = network.network_address + 1
    out = []
    for name, docker_id in containers:
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
            net["PrivateDNSName"] = (
                f"ip-{private_ip.replace('.', '-')}.{region}.compute.internal"
            )
            net["SubnetGatewayIpv4Address"] = f"{gateway}/{network.prefixlen}"
        out.append(c)
    doc["Containers"] = out
    return doc


class TaskEndpoints:
    """Task metadata v4 and container credentials on 127.0.0.1:<free port>, in a thread.

    GET /v4/<docker id>/task -> the task document
    GET /v4/<docker id>      -> that container's document
    GET /creds               -> temporary credentials (needs `Authorization: <token>`)
    """

    def __init__(self, task_doc, auth_token, log):
        self.task_doc = task_doc
        self.auth_token = auth_token
        self.log = log  # callable(str)
        self.requests = 0
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # noqa: N802 (stdlib name)
                endpoints.log(f"{self.address_string()} {fmt % args}")

            def do_GET(self):  # noqa: N802 (stdlib name)
                endpoints.requests += 1
                status, body = endpoints.route(self.path, self.headers)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="task-endpoints", daemon=True
        )
        self.thread.start()

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def metadata_uri(self, docker_id):
        return f"{self.base}/v4/{docker_id}"

    @property
    def credentials_uri(self):
        return f"{self.base}/creds"

    def route(self, path, headers):
        path = path.split("?", 1)[0].rstrip("/")
        if path == "/creds":
            if headers.get("Authorization") != self.auth_token:
                return 401, {"code": "Unauthorized",
                             "message": "missing or wrong Authorization header"}
            now = datetime.datetime.now(datetime.timezone.utc)
            return 200, {
                "RoleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/local-task-role",
                "AccessKeyId": DUMMY_ACCESS_KEY,
                "SecretAccessKey": DUMMY_SECRET_KEY,
                "Token": "local-task-session-token",
                "Expiration": rfc3339(now + datetime.timedelta(hours=1)),
            }
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
        return 404, {"message": f"local-task serves no {path}"}

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
