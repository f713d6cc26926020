//! `ecs/stack.yaml` deploys into moto's CloudFormation (direct mode, no NLB) to
//! CREATE_COMPLETE, with the resources, outputs and task definition a user relies on. moto's
//! CloudFormation cannot create the NLB variant (its load balancer ignores `Type: network`,
//! so the TCP listener is refused): that mode is covered by cfn-lint and
//! `scripts/check-deploy.py` only. The alarms and metric filters are created too, but moto lists
//! them without a logical id or type, so they are not asserted here.

use e2e::require_loopback_only_netns;
use e2e::sidecar::Moto;

#[test]
fn the_stack_deploys_into_moto_cloudformation() {
    require_loopback_only_netns();
    let moto = Moto::start();
    let template = e2e::workspace_root().join("ecs/stack.yaml");
    let template = template.to_str().expect("utf-8 path");
    let out = moto.fixture(&["stack", "--template", template]);
    assert_eq!(out["status"], "CREATE_COMPLETE", "{out:#}");
    assert_eq!(
        out["outputs"]["DnsName"], "jumpbox.eu-west-1.example.com",
        "{out:#}"
    );
    let ssh = out["outputs"]["SshCommand"].as_str().unwrap_or("");
    assert!(
        ssh.starts_with("ssh ") && ssh.contains("jumpbox.eu-west-1.example.com"),
        "{ssh}"
    );
    let resources: Vec<&str> = out["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    for (logical, kind) in [
        ("Cluster", "AWS::ECS::Cluster"),
        ("Service", "AWS::ECS::Service"),
        ("TaskDefinition", "AWS::ECS::TaskDefinition"),
        ("TaskRole", "AWS::IAM::Role"),
        ("ExecutionRole", "AWS::IAM::Role"),
        ("TaskSecurityGroup", "AWS::EC2::SecurityGroup"),
        ("LogGroup", "AWS::Logs::LogGroup"),
    ] {
        let line = format!("{logical} {kind} CREATE_COMPLETE");
        assert!(
            resources.contains(&line.as_str()),
            "no {line} in {resources:#?}"
        );
    }
    // The task as ECS stores it, in start order: keys (key sync), then the bastion once the
    // keys are written (keys HEALTHY), then the dns-sidecar once the bastion answers (bastion
    // HEALTHY). ECS stops them in reverse: the record is withdrawn before the bastion stops.
    let names: Vec<&str> = out["containers"]
        .as_object()
        .expect("containers")
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted_names = names.clone();
    sorted_names.sort_unstable();
    assert_eq!(sorted_names, ["bastion", "dns-sidecar", "keys"], "{out:#}");
    let keys = &out["containers"]["keys"];
    let bastion = &out["containers"]["bastion"];
    let sidecar = &out["containers"]["dns-sidecar"];
    assert_eq!(
        bastion["dependsOn"],
        serde_json::json!([{"containerName": "keys", "condition": "HEALTHY"}]),
        "{out:#}"
    );
    assert_eq!(
        sidecar["dependsOn"],
        serde_json::json!([{"containerName": "bastion", "condition": "HEALTHY"}]),
        "{out:#}"
    );
    assert_eq!(keys["dependsOn"], serde_json::json!([]), "{out:#}");
    let env = sidecar["env"].to_string();
    for name in [
        "DNS_HOSTED_ZONE_ID",
        "DNS_RECORD_NAME",
        "DNS_SET_IDENTIFIER",
    ] {
        assert!(env.contains(name), "{name} not set on the sidecar: {env}");
    }
    assert!(
        !env.contains("KEYS_"),
        "the dns-sidecar publishes only: {env}"
    );
    // Every value names its region, cluster and task, so each running sidecar can remove the
    // values of this cluster's dead tasks (reconcile) without touching another stack's or
    // region's; and only A records: the bastion and the security groups are IPv4.
    let values = &sidecar["env_values"];
    assert_eq!(
        values["DNS_SET_IDENTIFIER"], "{region}/{cluster}/{task_id}",
        "{out:#}"
    );
    assert!(
        values["DNS_RECONCILE_INTERVAL"].is_null(),
        "the default reconcile (5 min) is left on: {out:#}"
    );
    assert!(
        matches!(values["DNS_RECORD_TYPES"].as_str(), None | Some("A")),
        "only A records: {out:#}"
    );
    // Live keys: the keys container writes them into the shared volume, the bastion only reads
    // them there; no key material is injected into the bastion at start.
    let keys_env = keys["env"].to_string();
    for name in ["KEYS_DIR", "KEYS_SECRET_ID", "KEYS_INTERVAL"] {
        assert!(
            keys_env.contains(name),
            "{name} not set on keys: {keys_env}"
        );
    }
    assert!(
        !keys_env.contains("DNS_HOSTED_ZONE_ID"),
        "keys syncs keys only: {keys_env}"
    );
    let mount = |c: &serde_json::Value| {
        c["mountPoints"]
            .as_array()
            .and_then(|m| m.first())
            .map(|m| {
                (
                    m["sourceVolume"].as_str().unwrap_or("").to_string(),
                    m["containerPath"].as_str().unwrap_or("").to_string(),
                    m["readOnly"].as_bool().unwrap_or(false),
                )
            })
    };
    assert_eq!(
        mount(keys),
        Some(("keys".into(), "/keys".into(), false)),
        "{out:#}"
    );
    assert_eq!(mount(sidecar), None, "{out:#}");
    assert_eq!(
        mount(bastion),
        Some(("keys".into(), "/keys".into(), true)),
        "{out:#}"
    );
    let bastion_env = bastion["env"].to_string();
    assert!(
        bastion_env.contains("BASTION_AUTHORIZED_KEYS_FILE"),
        "{bastion_env}"
    );
    assert_eq!(
        bastion["secrets"],
        serde_json::json!(["BASTION_HOST_KEY"]),
        "only the host key is injected: {out:#}"
    );
}
