"""Test fixture for the dns-sidecar end-to-end tests: seeds and inspects a moto server through
boto3 (the real AWS client library), so the tests see Route 53 and EC2 state the way AWS tools
would. Run with the project's venv python; prints JSON on stdout.

  zone     --endpoint URL --name example.com.                 -> {"zone": "..."}
  eni      --endpoint URL --private IP [--public IP] [--az AZ] -> {"eni", "mac", "private", "public"}
  records  --endpoint URL --zone Z                            -> [{"Name","Type","TTL","SetIdentifier","Values"}]
  upsert   --endpoint URL --zone Z --name N --value V [--set-id S] [--ttl T]
  ecs-task --endpoint URL --cluster C                         -> {"task_id": "..."} (a running task)
  stack    --endpoint URL --template ecs/stack.yaml            -> {"status", "reason", "resources"}
"""
import argparse
import json
import sys

import boto3

REGION = "eu-west-1"


def client(kind, endpoint):
    return boto3.client(
        kind,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="AKIATESTFIXTURE",
        aws_secret_access_key="test-secret",
    )


def deploy_stack(a):
    """Deploy the template (direct mode) with real-looking parameters; wait for a final state."""
    import time

    ec2 = client("ec2", a.endpoint)
    r53 = client("route53", a.endpoint)
    sm = client("secretsmanager", a.endpoint)
    cfn = client("cloudformation", a.endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=REGION + z)[
            "Subnet"
        ]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    zone = r53.create_hosted_zone(Name="example.com.", CallerReference="stack")["HostedZone"]
    host = sm.create_secret(Name="jumpbox/host-key", SecretString="key")["ARN"]
    keys = sm.create_secret(Name="jumpbox/authorized-keys", SecretString="keys")["ARN"]
    params = {
        "VpcId": vpc,
        "PublicSubnetIds": ",".join(subnets),
        "AllowedClientCidrs": "203.0.113.0/24",
        "HostedZoneId": zone["Id"].split("/")[-1],
        "RecordName": "jumpbox.{region}.example.com",
        "HostKeySecretArn": host,
        "AuthorizedKeysSecretArn": keys,
        "BastionImage": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/jumpbox/bastion:1",
        "DnsSidecarImage": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/jumpbox/dns-sidecar:1",
    }
    with open(a.template) as f:
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
    containers = {}
    for r in resources:
        if r["ResourceType"] == "AWS::ECS::TaskDefinition":
            ecs = client("ecs", a.endpoint)
            td = ecs.describe_task_definition(taskDefinition=r["PhysicalResourceId"])
            containers = {
                c["name"]: {
                    "dependsOn": c.get("dependsOn", []),
                    "stopTimeout": c.get("stopTimeout"),
                    "env": sorted(e["name"] for e in c.get("environment", [])),
                }
                for c in td["taskDefinition"]["containerDefinitions"]
            }
    return {
        "containers": containers,
        "status": stack["StackStatus"],
        "reason": stack.get("StackStatusReason", ""),
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        "resources": sorted(
            f'{r["LogicalResourceId"]} {r["ResourceType"]} {r["ResourceStatus"]}'
            for r in resources
        ),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["zone", "eni", "records", "upsert", "ecs-task", "stack"])
    p.add_argument("--template")
    p.add_argument("--cluster")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--name")
    p.add_argument("--zone")
    p.add_argument("--private")
    p.add_argument("--public")
    p.add_argument("--az", default=REGION + "a")
    p.add_argument("--value")
    p.add_argument("--set-id")
    p.add_argument("--ttl", type=int, default=300)
    a = p.parse_args()
    if a.command == "zone":
        r53 = client("route53", a.endpoint)
        z = r53.create_hosted_zone(Name=a.name, CallerReference=a.name)["HostedZone"]["Id"]
        out = {"zone": z.split("/")[-1]}
    elif a.command == "eni":
        ec2 = client("ec2", a.endpoint)
        vpc = ec2.create_vpc(CidrBlock="172.31.0.0/16")["Vpc"]["VpcId"]
        sub = ec2.create_subnet(VpcId=vpc, CidrBlock="172.31.0.0/16", AvailabilityZone=a.az)
        eni = ec2.create_network_interface(
            SubnetId=sub["Subnet"]["SubnetId"], PrivateIpAddress=a.private
        )["NetworkInterface"]
        eni_id = eni["NetworkInterfaceId"]
        if a.public:
            alloc = ec2.allocate_address(Domain="vpc", Address=a.public)
            ec2.associate_address(AllocationId=alloc["AllocationId"], NetworkInterfaceId=eni_id)
        d = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0]
        out = {
            "eni": eni_id,
            "mac": d["MacAddress"],
            "private": d["PrivateIpAddress"],
            "public": d.get("Association", {}).get("PublicIp"),
        }
    elif a.command == "records":
        r53 = client("route53", a.endpoint)
        sets = r53.list_resource_record_sets(HostedZoneId=a.zone)["ResourceRecordSets"]
        out = [
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
    elif a.command == "ecs-task":
        # moto's RunTask fails for FARGATE (it looks for a private DNS name moto's network
        # interfaces lack), so the running task is an EC2-launch one on a registered instance:
        # ListTasks, which is what prune asks, does not tell them apart.
        ecs = client("ecs", a.endpoint)
        ec2 = client("ec2", a.endpoint)
        ecs.create_cluster(clusterName=a.cluster)
        ami = ec2.describe_images()["Images"][0]["ImageId"]
        inst = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]
        document = {
            "instanceId": inst["InstanceId"],
            "availabilityZone": REGION + "a",
            "region": REGION,
            "privateIp": inst["PrivateIpAddress"],
            "instanceType": "t3.micro",
            "imageId": ami,
            "accountId": "123456789012",
        }
        ecs.register_container_instance(
            cluster=a.cluster, instanceIdentityDocument=json.dumps(document)
        )
        ecs.register_task_definition(
            family="jumpbox",
            containerDefinitions=[
                {"name": "bastion", "image": "bastion", "essential": True, "cpu": 128, "memory": 256}
            ],
        )
        task = ecs.run_task(cluster=a.cluster, taskDefinition="jumpbox", launchType="EC2")
        out = {"task_id": task["tasks"][0]["taskArn"].split("/")[-1]}
    elif a.command == "stack":
        out = deploy_stack(a)
    else:
        r53 = client("route53", a.endpoint)
        rrset = {
            "Name": a.name,
            "Type": "A",
            "TTL": a.ttl,
            "ResourceRecords": [{"Value": a.value}],
        }
        if a.set_id:
            rrset["SetIdentifier"] = a.set_id
            rrset["MultiValueAnswer"] = True
        r53.change_resource_record_sets(
            HostedZoneId=a.zone,
            ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": rrset}]},
        )
        out = {"ok": True}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
