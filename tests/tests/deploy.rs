//! `scripts/deploy` end to end against moto (ECR, Secrets Manager, CloudFormation, ECS, IAM,
//! EC2, Route 53), through the boto3 calls the script makes, inside the loopback-only network
//! namespace. From nothing, one run builds both images (buildah), pushes them to the registry
//! the ECR repositories name (a real registry, `e2e::registry`, since moto's ECR has none) with
//! the login ECR issues, and creates the secrets and the stack; a second run changes nothing.
//! With the images already in ECR (`moto_seed.py ecr-image`, what an earlier push leaves): a
//! dry run changes nothing; the first run prints the ssh command and the known_hosts line of
//! the host key it made; a second run changes nothing (the host key secret keeps its value and
//! version); a second region gets the same host key. Direct mode only: moto's CloudFormation
//! cannot create the NLB variant (see stack_in_moto.rs); the NLB ssh command's formatting is
//! checked on its own below.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::registry::EcrRegistry;
use e2e::sidecar::{venv_bin, Moto};
use e2e::{
    require_loopback_only_netns, require_root, require_tool, run_command, workspace_root, Finished,
    TestDir,
};
use serde_json::Value;

const TAG: &str = "test-1";
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// `scripts/deploy ARGS` with moto as every AWS endpoint and dummy credentials; nothing from
/// the developer's AWS configuration can leak in.
fn deploy(moto: &Moto, home: &Path, args: &[&str]) -> Finished {
    deploy_with(Command::new(venv_bin("python")), moto, home, args)
}

/// `deploy`, run by `cmd` (the Python interpreter, possibly wrapped).
fn deploy_with(mut cmd: Command, moto: &Moto, home: &Path, args: &[&str]) -> Finished {
    cmd.arg(workspace_root().join("scripts/deploy"))
        .args(args)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_CA_BUNDLE")
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-aws-credentials"),
        )
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "AKIADEPLOYTEST000000")
        .env("AWS_SECRET_ACCESS_KEY", "deploy-test-dummy-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    run_command(&mut cmd, "scripts/deploy", RUN_TIMEOUT)
}

/// The deploy arguments of one region with its network (`moto_seed.py network`).
fn region_args(region: &str, net: &Value) -> Vec<String> {
    let s = |k: &str| net[k].as_str().expect("network field").to_string();
    vec![
        "--region".into(),
        region.into(),
        "--vpc".into(),
        format!("{region}={}", s("VpcId")),
        "--subnets".into(),
        format!("{region}={}", s("PublicSubnetIds")),
        "--hosted-zone".into(),
        format!("{region}={}", s("HostedZoneId")),
    ]
}

/// A region with a VPC, subnets, the zone and both images already in its ECR.
fn prepare_region(moto: &Moto, region: &str) -> Vec<String> {
    let net = moto.fixture(&["network", "--region", region]);
    images_in_ecr(moto, region, TAG);
    region_args(region, &net)
}

/// Both images with `tag` in `region`'s ECR, as its API shows them after a push.
fn images_in_ecr(moto: &Moto, region: &str, tag: &str) {
    for image in ["jumpbox/bastion", "jumpbox/dns-sidecar"] {
        moto.fixture(&[
            "ecr-image",
            "--region",
            region,
            "--name",
            image,
            "--value",
            tag,
        ]);
    }
}

fn deployed(moto: &Moto, region: &str) -> Value {
    moto.fixture(&["deployed", "--region", region, "--name", "jumpbox"])
}

/// `ssh-keygen -y` of a private key: its public key (type and base64, no comment).
fn public_key_of(dir: &TestDir, private: &str) -> String {
    let path = dir.join("host_key_from_secret");
    std::fs::write(&path, private).expect("writing the host key");
    let mut perms = std::fs::metadata(&path).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&path, perms).expect("chmod 600");
    let mut cmd = Command::new("ssh-keygen");
    cmd.arg("-y").arg("-f").arg(&path);
    let out = run_command(&mut cmd, "ssh-keygen -y", Duration::from_secs(20));
    out.expect_success("ssh-keygen -y of the host key secret");
    let words: Vec<&str> = out.stdout.split_whitespace().take(2).collect();
    words.join(" ")
}

/// The value printed after `[region] what: `.
fn printed<'a>(stdout: &'a str, region: &str, what: &str) -> Vec<&'a str> {
    let prefix = format!("[{region}] {what}: ");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// The direct mode's ssh command and known_hosts line for `region`, with host key `public`.
fn assert_connect_lines(stdout: &str, region: &str, public: &str) {
    let host = format!("jumpbox.{region}.example.com");
    let ssh = format!("ssh -p 2222 -N -L LOCAL_PORT:DESTINATION:PORT tunnel@{host}");
    assert_eq!(printed(stdout, region, "ssh"), [ssh], "{stdout}");
    let known_hosts = format!("[{host}]:2222 {public}");
    assert_eq!(
        printed(stdout, region, "known_hosts"),
        [known_hosts],
        "{stdout}"
    );
}

fn changes(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| {
            [": created", ": updated", ": pushed"]
                .iter()
                .any(|s| l.contains(s))
        })
        .collect()
}

/// The test key as an authorized_keys file for `--authorized-keys`; its path.
fn authorized_keys_file(dir: &TestDir) -> String {
    let keys = dir.join("authorized_keys");
    std::fs::write(&keys, format!("{}\n", dir.key.public_line)).expect("authorized_keys");
    keys.to_str().expect("utf-8 path").to_string()
}

/// The options every deploy of these tests gives besides the region's network.
fn site_args(tag: &str, keys: &str) -> Vec<String> {
    [
        "--record-name",
        "jumpbox.{region}.example.com",
        "--allowed-cidrs",
        "203.0.113.0/24",
        "--image-tag",
        tag,
        "--authorized-keys",
        keys,
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn deploy_creates_everything_once_and_then_changes_nothing() {
    require_loopback_only_netns();
    let dir = TestDir::new();
    let moto = Moto::start();
    let keys = authorized_keys_file(&dir);
    let mut args = prepare_region(&moto, "eu-west-1");
    args.extend(site_args(TAG, &keys));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let dry = deploy(&moto, dir.path(), &[&args[..], &["--dry-run"]].concat());
    dry.expect_success("deploy --dry-run");
    assert!(dry.stdout.contains("would create"), "{}", dry.stdout);
    assert!(
        dry.stdout.contains("RuntimePlatform=X86_64"),
        "{}",
        dry.stdout
    );
    // Graviton: --platform picks the task's CPU architecture along with the images'.
    let arm = deploy(
        &moto,
        dir.path(),
        &[&args[..], &["--dry-run", "--platform", "linux/arm64"]].concat(),
    );
    arm.expect_success("deploy --dry-run --platform linux/arm64");
    assert!(
        arm.stdout.contains("RuntimePlatform=ARM64"),
        "{}",
        arm.stdout
    );
    let state = deployed(&moto, "eu-west-1");
    assert_eq!(
        state["secrets"],
        serde_json::json!({}),
        "the dry run created secrets"
    );
    assert!(
        state["stack"].is_null(),
        "the dry run created the stack: {state:#}"
    );

    let first = deploy(&moto, dir.path(), &args);
    first.expect_success("first deploy");
    let state = deployed(&moto, "eu-west-1");
    assert_eq!(
        state["stack"]["status"], "CREATE_COMPLETE",
        "{state:#}\n{}",
        first.stdout
    );
    for repo in ["jumpbox/bastion", "jumpbox/dns-sidecar"] {
        assert_eq!(
            state["repositories"][repo],
            serde_json::json!([TAG]),
            "{state:#}"
        );
    }
    assert_eq!(
        state["secrets"]["authorized-keys"]["value"].as_str(),
        Some(format!("{}\n", dir.key.public_line).as_str())
    );
    let host_key = state["secrets"]["host-key"]["value"]
        .as_str()
        .expect("host key secret");
    let public = public_key_of(&dir, host_key);
    assert_connect_lines(&first.stdout, "eu-west-1", &public);
    for line in ["secret jumpbox/host-key: created", "stack jumpbox: created"] {
        assert!(
            first.stdout.contains(line),
            "no '{line}' in:\n{}",
            first.stdout
        );
    }

    let second = deploy(&moto, dir.path(), &args);
    second.expect_success("second deploy");
    assert_eq!(
        changes(&second.stdout),
        Vec::<&str>::new(),
        "{}",
        second.stdout
    );
    assert!(
        second
            .stdout
            .contains("[eu-west-1] stack jumpbox: unchanged"),
        "{}",
        second.stdout
    );
    let again = deployed(&moto, "eu-west-1");
    assert_eq!(
        again["secrets"], state["secrets"],
        "the second run changed a secret"
    );

    // A second region: the same host key, copied; the first region untouched.
    let mut two: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    two.extend(prepare_region(&moto, "us-east-1"));
    let two: Vec<&str> = two.iter().map(String::as_str).collect();
    let third = deploy(&moto, dir.path(), &two);
    third.expect_success("deploy to two regions");
    let east = deployed(&moto, "us-east-1");
    assert_eq!(east["stack"]["status"], "CREATE_COMPLETE", "{east:#}");
    assert_eq!(
        east["secrets"]["host-key"]["value"],
        state["secrets"]["host-key"]["value"]
    );
    assert_eq!(deployed(&moto, "eu-west-1")["secrets"], state["secrets"]);
    assert!(
        changes(&third.stdout)
            .iter()
            .all(|l| l.starts_with("[us-east-1]")),
        "{}",
        third.stdout
    );
    assert_connect_lines(&third.stdout, "us-east-1", &public);
}

#[test]
fn deploy_refuses_missing_parameters_and_aaaa_before_changing_anything() {
    require_loopback_only_netns();
    let dir = TestDir::new();
    let moto = Moto::start();
    let keys = authorized_keys_file(&dir);
    let args = [
        "--region",
        "eu-west-1",
        "--image-tag",
        TAG,
        "--authorized-keys",
        &keys,
    ];
    let out = deploy(&moto, dir.path(), &args);
    assert!(!out.status.success(), "{}", out.stdout);
    assert!(
        out.stderr.contains("the stack needs VpcId") && out.stderr.contains("--vpc"),
        "{}",
        out.stderr
    );
    // AAAA records cannot work (the bastion and the security groups are IPv4 only): asking for
    // them is refused by name, before anything changes, not published to hang clients.
    let aaaa = deploy(
        &moto,
        dir.path(),
        &[&args[..], &["--param", "RecordTypes=A,AAAA"]].concat(),
    );
    assert!(!aaaa.status.success(), "{}", aaaa.stdout);
    assert!(
        aaaa.stderr
            .contains("RecordTypes is not a parameter of ecs/stack.yaml"),
        "{}",
        aaaa.stderr
    );
    let state = deployed(&moto, "eu-west-1");
    assert_eq!(state["secrets"], serde_json::json!({}), "{state:#}");
    assert_eq!(state["repositories"], serde_json::json!({}), "{state:#}");
}

/// The one command from nothing: no repository, no image. The script builds both images with
/// buildah (scripts/build-images.sh, from the static binaries), logs in with the token moto's
/// ECR issues and pushes them to the registry the repositories' URIs name (a real registry,
/// tests/peers/ecr_registry.py, that admits only that login), then creates the secrets and the
/// stack. A second run, once ECR lists the pushed tags (as real ECR does after a push),
/// builds nothing and changes nothing.
#[test]
fn deploy_builds_pushes_and_creates_everything_in_one_command() {
    require_loopback_only_netns();
    require_root("building images with buildah and the registry's /etc/hosts");
    require_tool("buildah");
    let dir = TestDir::new();
    let moto = Moto::start();
    let region = "eu-west-1";
    let registry = EcrRegistry::start(&moto, region, &dir.join("registry"));
    let net = moto.fixture(&["network", "--region", region]);
    let mut args = region_args(region, &net);
    let tag = "e2e-build";
    args.extend(site_args(tag, &authorized_keys_file(&dir)));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // buildah's login goes to this file, not the machine's /run/containers (it must exist).
    let auth_file = dir.join("registry-auth.json");
    std::fs::write(&auth_file, "{}").expect("registry auth file");
    let run = || {
        let mut cmd = registry.command(&venv_bin("python"));
        cmd.env("SSL_CERT_FILE", &registry.cert)
            .env("REGISTRY_AUTH_FILE", &auth_file);
        deploy_with(cmd, &moto, dir.path(), &args)
    };

    let first = run();
    let _images = LocalImages(tag);
    first.expect_success("deploy from nothing");
    for image in ["bastion", "dns-sidecar"] {
        for line in [
            format!("[{region}] ecr repository jumpbox/{image}: created"),
            format!("[{region}] image jumpbox/{image}:{tag}: pushed"),
        ] {
            assert!(
                first.stdout.contains(&line),
                "no '{line}' in:\n{}",
                first.stdout
            );
        }
        assert!(
            registry.has_tag(&format!("jumpbox/{image}"), tag),
            "jumpbox/{image}:{tag} is not in the registry {}:\n{}",
            registry.host,
            first.stdout
        );
    }
    let state = deployed(&moto, region);
    assert_eq!(state["stack"]["status"], "CREATE_COMPLETE", "{state:#}");
    for (param, image) in [
        ("BastionImage", "bastion"),
        ("DnsSidecarImage", "dns-sidecar"),
    ] {
        let uri = format!("{}/jumpbox/{image}:{tag}", registry.host);
        assert_eq!(
            state["stack"]["parameters"][param],
            uri.as_str(),
            "{state:#}"
        );
    }
    let host_key = state["secrets"]["host-key"]["value"]
        .as_str()
        .expect("host key secret");
    assert_connect_lines(&first.stdout, region, &public_key_of(&dir, host_key));

    // What ECR's API shows after a push; then nothing is left to do.
    images_in_ecr(&moto, region, tag);
    let second = run();
    second.expect_success("second deploy");
    assert_eq!(
        changes(&second.stdout),
        Vec::<&str>::new(),
        "{}",
        second.stdout
    );
    assert!(!second.stdout.contains("building"), "{}", second.stdout);
}

/// Removes the images a test built from the repository's buildah storage when it ends.
struct LocalImages(&'static str);

impl Drop for LocalImages {
    fn drop(&mut self) {
        let store = workspace_root().join(".local/containers");
        for image in ["bastion", "dns-sidecar"] {
            let mut cmd = Command::new("buildah");
            cmd.arg("--root")
                .arg(store.join("storage"))
                .arg("--runroot")
                .arg(store.join("run"))
                .args(["--storage-driver", "vfs", "rmi"])
                .arg(format!("localhost/jumpbox/{image}:{}", self.0));
            let _ = run_command(&mut cmd, "buildah rmi", Duration::from_secs(60));
        }
    }
}

/// The NLB listens on 22 and the known_hosts entry carries no port (moto cannot deploy this
/// mode, so the script's formatting is asked directly).
#[test]
fn nlb_mode_prints_port_22_commands() {
    let script = workspace_root().join("scripts/deploy");
    let code = "import importlib.machinery, importlib.util, sys\n\
        loader = importlib.machinery.SourceFileLoader('deploy', sys.argv[1])\n\
        m = importlib.util.module_from_spec(importlib.util.spec_from_loader('deploy', loader))\n\
        loader.exec_module(m)\n\
        for line in m.ssh_lines('jumpbox.eu-west-1.example.com', True, 'ssh-ed25519 AAAAkey'):\n    print(line)\n\
        for line in m.ssh_lines('jumpbox.eu-west-1.example.com', False, 'ssh-ed25519 AAAAkey'):\n    print(line)\n";
    let mut cmd = Command::new(venv_bin("python"));
    cmd.arg("-c").arg(code).arg(script);
    let out = run_command(&mut cmd, "python", Duration::from_secs(30));
    out.expect_success("ssh_lines");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "ssh -N -L LOCAL_PORT:DESTINATION:PORT tunnel@jumpbox.eu-west-1.example.com",
            "jumpbox.eu-west-1.example.com ssh-ed25519 AAAAkey",
            "ssh -p 2222 -N -L LOCAL_PORT:DESTINATION:PORT tunnel@jumpbox.eu-west-1.example.com",
            "[jumpbox.eu-west-1.example.com]:2222 ssh-ed25519 AAAAkey",
        ]
    );
}
