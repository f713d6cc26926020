"""Seeding and inspecting a moto server (the Route 53 / EC2 / ECS / CloudFormation emulator)
through boto3, the real AWS client library: the one implementation, used by
scripts/local-task (`seed_task`) and by the dns-sidecar end-to-end tests (the command line
below, through tests/src/sidecar.rs).

Nothing here talks to real AWS: every client is built with an explicit endpoint (moto on
127.0.0.1) and dummy credentials. The command line prints JSON on stdout:

  zone     --endpoint URL --name example.com.                 -> {"zone": "..."}
  eni      --endpoint URL --private IP [--public IP] [--az AZ] -> {"eni", "mac", "private", "public"}
  records  --endpoint URL --zone Z                            -> [{"Name","Type","TTL","SetIdentifier","Values"}]
  upsert   --endpoint URL --zone Z --name N --value V [--set-id S] [--ttl T]
  ecs-task --endpoint URL --cluster C                         -> {"task_id": "..."} (a running task)
  ecs-task-stop --endpoint URL --cluster C --task T            -> {"ok": true} (StopTask)
  stack    --endpoint URL --template ecs/stack.yaml            -> {"status", "reason", "resources", ...}
  secret   --endpoint URL --name N --value V   (create, or a new AWSCURRENT version) -> {"arn", "version"}
  secret-delete --endpoint URL --name N        (ForceDeleteWithoutRecovery)       -> {"ok": true}
  param    --endpoint URL --name /p/a --value V [--secure]  (put, overwrite)      -> {"version": n}
  param-delete --endpoint URL --name /p/a                                         -> {"ok": true}
  network  --endpoint URL [--region R]  (a VPC, two subnets, zone example.com.) -> {"VpcId", ...}
  ecr-image --endpoint URL --region R --name REPO --value TAG  (an image with that tag, the
               repository created if missing: what an earlier push left)       -> {"digest"}
  deployed --endpoint URL --region R --name jumpbox  (what scripts/deploy left there)
               -> {"repositories": {name: [tags]}, "secrets": {kind: {value, version}}, "stack"}
"""

import argparse
import ipaddress
import json
import secrets
import sys
import time
import uuid

REGION = "eu-west-1"
ACCOUNT_ID = "123456789012"
# moto accepts any credentials; these never leave the machine.
DUMMY_ACCESS_KEY = "AKIALOCALTASK0000000"
DUMMY_SECRET_KEY = "local-task-dummy-secret-key-0000000000000"


def client(kind, endpoint, region=REGION):
    """A boto3 client of `kind` talking to moto at `endpoint`."""
    import boto3  # the project venv has it; imported late so `--help` works without it
    from botocore.config import Config

    config = Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    return boto3.session.Session().client(
        kind,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=DUMMY_SECRET_KEY,
        config=config,
    )


def zone(route53, name):
    """The id (without `/hostedzone/`) of the public hosted zone `name`, created if missing."""
    name = name.rstrip(".") + "."
    listed = route53.list_hosted_zones_by_name(DNSName=name)
    for z in listed.get("HostedZones", []):
        if z["Name"] == name and not z.get("Config", {}).get("PrivateZone"):
            return z["Id"].rsplit("/", 1)[-1]
    created = route53.create_hosted_zone(Name=name, CallerReference=f"seed-{uuid.uuid4()}")
    return created["HostedZone"]["Id"].rsplit("/", 1)[-1]


def eni(ec2, *, vpc_cidr, subnet_cidr, az, private=None, public=None, description=""):
    """A fresh VPC, subnet and network interface (with `private` as its address, else one moto
    picks), and with `public` an Elastic IP associated with it, so DescribeNetworkInterfaces
    shows `Association.PublicIp` as it does for a Fargate task with a public IP. What moto
    shows for it afterwards."""
    vpc_id = ec2.create_vpc(CidrBlock=vpc_cidr)["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock=subnet_cidr, AvailabilityZone=az)[
        "Subnet"
    ]["SubnetId"]
    kwargs = {"SubnetId": subnet_id}
    if description:
        kwargs["Description"] = description
    if private:
        kwargs["PrivateIpAddress"] = private
    eni_id = ec2.create_network_interface(**kwargs)["NetworkInterface"]["NetworkInterfaceId"]
    allocation_id = None
    if public:
        allocation_id = ec2.allocate_address(Domain="vpc", Address=public)["AllocationId"]
        ec2.associate_address(AllocationId=allocation_id, NetworkInterfaceId=eni_id)
    d = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0]
    return {
        "eni": eni_id,
        "mac": d.get("MacAddress"),
        "private": d.get("PrivateIpAddress"),
        "public": d.get("Association", {}).get("PublicIp"),
        "association": d.get("Association"),
        "vpc_id": vpc_id,
        "subnet_id": subnet_id,
        "availability_zone": d.get("AvailabilityZone") or az,
        "allocation_id": allocation_id,
    }


def seed_task(moto_url, region, zone_name, public_ip):
    """What scripts/local-task's task finds in AWS: the hosted zone (reused if it exists) and
    a fresh VPC, subnet, ENI and associated Elastic IP, read back from moto and checked."""
    route53 = client("route53", moto_url, region)
    ec2 = client("ec2", moto_url, region)
    zone_id = zone(route53, zone_name)
    seeded = eni(ec2, vpc_cidr="10.0.0.0/16", subnet_cidr="10.0.1.0/24", az=f"{region}a",
                 public=public_ip, description="local-task: the Fargate task's ENI")
    if seeded["public"] != public_ip:
        raise RuntimeError(
            f"moto did not associate {public_ip} with {seeded['eni']}: "
            f"DescribeNetworkInterfaces shows Association {seeded['association']!r}"
        )
    for field, aws_name in (("mac", "MacAddress"), ("private", "PrivateIpAddress")):
        if not seeded[field]:
            raise RuntimeError(f"moto's {seeded['eni']} has no {aws_name}: {seeded!r}")
    return {
        "hosted_zone_id": zone_id,
        "zone_name": zone_name.rstrip(".") + ".",
        "vpc_id": seeded["vpc_id"],
        "subnet_id": seeded["subnet_id"],
        "availability_zone": seeded["availability_zone"],
        "eni_id": seeded["eni"],
        "private_ip": seeded["private"],
        "mac": seeded["mac"],
        "public_ip": public_ip,
        "allocation_id": seeded["allocation_id"],
    }


def random_public_ip():
    """A globally routable-looking IPv4 address for the Elastic IP, in the block moto itself
    uses for fake public IPs (54.214.0.0/16). It only ever lives in moto; nothing connects to
    it. Documentation ranges (203.0.113.0/24, ...) would be refused by the sidecar as not
    global, which is right."""
    return str(ipaddress.IPv4Address("54.214.0.0") + secrets.randbelow(65534) + 1)


def records(route53, zone_id):
    """The zone's A and AAAA record sets."""
    sets = route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return [
        {
            "Name": s["Name"],
            "Type": s["Type"],
            "TTL": s.get("TTL"),
            "SetIdentifier": s.get("SetIdentifier"),
            "Values": [v["Value"] for v in s.get("ResourceRecords", [])],
        }
        for s in sets
        if s["Type"] in ("A", "AAAA")
    ]


def upsert(route53, zone_id, name, value, set_id=None, ttl=300):
    """Someone else's change: UPSERT `name` A `value` (multivalue with a set identifier)."""
    rrset = {"Name": name, "Type": "A", "TTL": ttl, "ResourceRecords": [{"Value": value}]}
    if set_id:
        rrset["SetIdentifier"] = set_id
        rrset["MultiValueAnswer"] = True
    route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": rrset}]},
    )


def running_ecs_task(endpoint, cluster):
    """A running task in `cluster`; its id.

    moto's RunTask fails for FARGATE (it looks for a private DNS name moto's network
    interfaces lack), so the running task is an EC2-launch one on a registered instance:
    ListTasks, which is what prune asks, does not tell them apart."""
    ecs = client("ecs", endpoint)
    ec2 = client("ec2", endpoint)
    ecs.create_cluster(clusterName=cluster)
    ami = ec2.describe_images()["Images"][0]["ImageId"]
    inst = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]
    document = {
        "instanceId": inst["InstanceId"],
        "availabilityZone": REGION + "a",
        "region": REGION,
        "privateIp": inst["PrivateIpAddress"],
        "instanceType": "t3.micro",
        "imageId": ami,
        "accountId": ACCOUNT_ID,
    }
    ecs.register_container_instance(cluster=cluster, instanceIdentityDocument=json.dumps(document))
    ecs.register_task_definition(
        family="jumpbox",
        containerDefinitions=[
            {"name": "bastion", "image": "bastion", "essential": True, "cpu": 128, "memory": 256}
        ],
    )
    task = ecs.run_task(cluster=cluster, taskDefinition="jumpbox", launchType="EC2")
    return task["tasks"][0]["taskArn"].split("/")[-1]


def network(endpoint, region=REGION):
    """A VPC with two subnets in `region` and the public zone example.com., created in moto:
    the network parameters of ecs/stack.yaml."""
    ec2 = client("ec2", endpoint, region)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=region + z)[
            "Subnet"
        ]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    return {
        "VpcId": vpc,
        "PublicSubnetIds": ",".join(subnets),
        "HostedZoneId": zone(client("route53", endpoint, region), "example.com."),
    }


def stack_parameters(endpoint):
    """Real-looking parameters for ecs/stack.yaml: a VPC with two subnets, a hosted zone and
    the two secrets, created in moto."""
    sm = client("secretsmanager", endpoint)
    return {
        **network(endpoint),
        "AllowedClientCidrs": "203.0.113.0/24",
        "RecordName": "jumpbox.{region}.example.com",
        "HostKeySecretArn": sm.create_secret(Name="jumpbox/host-key", SecretString="key")["ARN"],
        "AuthorizedKeysSecretArn": sm.create_secret(
            Name="jumpbox/authorized-keys", SecretString="keys"
        )["ARN"],
        "BastionImage": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/jumpbox/bastion:1",
        "DnsSidecarImage": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/jumpbox/dns-sidecar:1",
    }


def task_containers(endpoint, resources):
    """The containers of the stack's task definition: dependsOn, stopTimeout, variable names."""
    for r in resources:
        if r["ResourceType"] == "AWS::ECS::TaskDefinition":
            td = client("ecs", endpoint).describe_task_definition(
                taskDefinition=r["PhysicalResourceId"]
            )
            # moto's CloudFormation keeps a list item that is `!Ref AWS::NoValue` (a variable set
            # only in some modes) as null; CloudFormation drops it. Skip those here.
            return {
                c["name"]: {
                    "dependsOn": c.get("dependsOn", []),
                    "stopTimeout": c.get("stopTimeout"),
                    "env": sorted(e["name"] for e in c.get("environment") or [] if e),
                    "env_values": {e["name"]: e.get("value") for e in c.get("environment") or [] if e},
                    "secrets": sorted(e["name"] for e in c.get("secrets") or [] if e),
                    "mountPoints": c.get("mountPoints", []),
                }
                for c in td["taskDefinition"]["containerDefinitions"]
            }
    return {}


def deploy_stack(endpoint, template):
    """Deploy the template (direct mode) with real-looking parameters; wait for a final state."""
    cfn = client("cloudformation", endpoint)
    params = stack_parameters(endpoint)
    with open(template) as f:
        body = f.read()
    cfn.create_stack(
        StackName="jumpbox",
        TemplateBody=body,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    for _ in range(120):
        stack = cfn.describe_stacks(StackName="jumpbox")["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.5)
    resources = cfn.list_stack_resources(StackName="jumpbox")["StackResourceSummaries"]
    return {
        "containers": task_containers(endpoint, resources),
        "status": stack["StackStatus"],
        "reason": stack.get("StackStatusReason", ""),
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        "resources": sorted(
            f'{r["LogicalResourceId"]} {r["ResourceType"]} {r["ResourceStatus"]}'
            for r in resources
        ),
    }


def put_secret(sm, name, value):
    """Create secret `name` with `value`, or give it a new AWSCURRENT version."""
    try:
        created = sm.create_secret(Name=name, SecretString=value)
        return {"arn": created["ARN"], "version": created["VersionId"]}
    except sm.exceptions.ResourceExistsException:
        put = sm.put_secret_value(SecretId=name, SecretString=value)
        return {"arn": put["ARN"], "version": put["VersionId"]}


def put_parameter(ssm, name, value, secure):
    """Put parameter `name` (String, or SecureString with the AWS-managed key), overwriting."""
    kind = "SecureString" if secure else "String"
    put = ssm.put_parameter(Name=name, Value=value, Type=kind, Overwrite=True)
    return {"version": put["Version"]}


def ecr_image(ecr, repository, tag):
    """An image `repository:tag` in moto's ECR (moto has no registry endpoint to push to): a
    minimal manifest put through the API, as a finished push leaves it."""
    try:
        ecr.create_repository(repositoryName=repository)
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                   "digest": "sha256:" + "0" * 64},
        "layers": [],
    })
    put = ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag)
    return {"digest": put["image"]["imageId"]["imageDigest"]}


def deployed(endpoint, region, prefix):
    """What scripts/deploy left in `region`: repositories, image tags, its two secrets (value
    and current version) and the stack `prefix` (its status, outputs and parameters)."""
    ecr = client("ecr", endpoint, region)
    sm = client("secretsmanager", endpoint, region)
    cfn = client("cloudformation", endpoint, region)
    repos = {
        r["repositoryName"]: sorted(
            t for i in ecr.describe_images(repositoryName=r["repositoryName"])["imageDetails"]
            for t in i.get("imageTags", [])
        )
        for r in ecr.describe_repositories()["repositories"]
    }
    secrets = {}
    for kind in ("host-key", "authorized-keys"):
        try:
            got = sm.get_secret_value(SecretId=f"{prefix}/{kind}")
            secrets[kind] = {"value": got["SecretString"], "version": got["VersionId"]}
        except sm.exceptions.ResourceNotFoundException:
            pass
    try:
        stack = cfn.describe_stacks(StackName=prefix)["Stacks"][0]
        stack = {
            "status": stack["StackStatus"],
            "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
            "parameters": {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])},
        }
    except cfn.exceptions.ClientError:
        stack = None
    return {"repositories": repos, "secrets": secrets, "stack": stack}


def command(a):
    """One command line's JSON answer."""
    if a.command == "zone":
        return {"zone": zone(client("route53", a.endpoint), a.name)}
    if a.command == "eni":
        seeded = eni(client("ec2", a.endpoint), vpc_cidr="172.31.0.0/16",
                     subnet_cidr="172.31.0.0/16", az=a.az, private=a.private, public=a.public)
        return {k: seeded[k] for k in ("eni", "mac", "private", "public")}
    if a.command == "records":
        return records(client("route53", a.endpoint), a.zone)
    if a.command == "ecs-task":
        return {"task_id": running_ecs_task(a.endpoint, a.cluster)}
    if a.command == "ecs-task-stop":
        client("ecs", a.endpoint).stop_task(cluster=a.cluster, task=a.task, reason="test")
        return {"ok": True}
    if a.command == "stack":
        return deploy_stack(a.endpoint, a.template)
    if a.command == "secret":
        return put_secret(client("secretsmanager", a.endpoint), a.name, a.value)
    if a.command == "secret-delete":
        client("secretsmanager", a.endpoint).delete_secret(
            SecretId=a.name, ForceDeleteWithoutRecovery=True
        )
        return {"ok": True}
    if a.command == "param":
        return put_parameter(client("ssm", a.endpoint), a.name, a.value, a.secure)
    if a.command == "deployed":
        return deployed(a.endpoint, a.region, a.name)
    if a.command == "network":
        return network(a.endpoint, a.region)
    if a.command == "ecr-image":
        return ecr_image(client("ecr", a.endpoint, a.region), a.name, a.value)
    if a.command == "param-delete":
        client("ssm", a.endpoint).delete_parameter(Name=a.name)
        return {"ok": True}
    upsert(client("route53", a.endpoint), a.zone, a.name, a.value, a.set_id, a.ttl)
    return {"ok": True}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "command",
        choices=["zone", "eni", "records", "upsert", "ecs-task", "ecs-task-stop", "stack", "secret",
                 "secret-delete", "param", "param-delete", "ecr-image", "network", "deployed"],
    )
    p.add_argument("--template")
    p.add_argument("--cluster")
    p.add_argument("--task")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--name")
    p.add_argument("--zone")
    p.add_argument("--private")
    p.add_argument("--public")
    p.add_argument("--az", default=REGION + "a")
    p.add_argument("--region", default=REGION)
    p.add_argument("--value")
    p.add_argument("--set-id")
    p.add_argument("--ttl", type=int, default=300)
    p.add_argument("--secure", action="store_true")
    json.dump(command(p.parse_args()), sys.stdout)


if __name__ == "__main__":
    main()
