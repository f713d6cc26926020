//! Every flag and `DNS_*` variable, their defaults, and validation into [`Settings`].
//! A bad value fails at start, before any AWS call, with the variable named (exit 2).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{Error, Result};
use crate::keys::settings::{KeySettings, KeysOptions};
use crate::logging::LogFormat;
use crate::prune::check_templates;
use crate::template::Template;
use dns_sidecar_route53::address::{parse_explicit, parse_record_types, printable, RecordType};

const ABOUT: &str = "Publish this ECS task's public IP in Route 53 while the task runs.";
const LONG_ABOUT: &str = "\
Publish this ECS task's public IP in Route 53 while the task runs.

At start: read the ECS task metadata (ECS_CONTAINER_METADATA_URI_V4), find the task's public \
address (EC2 DescribeNetworkInterfaces on the task's network interface, or DNS_IP), UPSERT the \
record named by DNS_RECORD_NAME and wait until Route 53 reports it INSYNC (a change still not \
INSYNC after DNS_TIMEOUT is logged as insync_slow and followed in the background: the record \
is published). Then stay idle, checking now and then that the record still holds this task's \
address and (multivalue records) removing this cluster's values of tasks that no longer run \
(DNS_RECONCILE_INTERVAL), until SIGTERM; then DELETE the record if, and only if, it still \
holds this task's address.

With KEYS_DIR and a key source (KEYS_SECRET_ID, KEYS_PARAMETER_PATH) set, it also keeps the \
bastion's authorized_keys and revoked_keys files in KEYS_DIR in step with Secrets Manager and \
SSM Parameter Store, from the start until SIGTERM. With DNS_HOSTED_ZONE_ID unset it does only \
that (keys-only mode: no DNS record, e.g. behind a load balancer).

AWS credentials, region and endpoints come from the standard AWS chain (ECS container \
credentials in a task; AWS_REGION, AWS_ENDPOINT_URL, profiles elsewhere).

Exit status: 0 done; 1 discovery, AWS or network failure; 2 bad configuration. The reason is \
one line on stderr and an `error` event in the log.";

#[derive(Debug, Parser)]
#[command(name = "dns-sidecar", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub options: Options,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Exit 0 if the running sidecar reports its record published and still ours and, with
    /// key sync, the key files written at least once (stale keys stay healthy; the line says
    /// so). Asks the status port DNS_HEALTH_LISTEN; for ECS health checks: the image has no
    /// shell.
    Healthcheck {
        /// How long to wait for the answer.
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Delete multivalue records of DNS_RECORD_NAME whose set identifier names this cluster and
    /// a task that no longer runs in it (DNS_SET_IDENTIFIER with {cluster} and {task_id};
    /// needs ecs:ListTasks), then exit. Other clusters' values are never touched.
    Prune,
}

/// Where the public IPv4 address comes from (`DNS_IP_SOURCE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IpSource {
    /// EC2 DescribeNetworkInterfaces; the echo URL only if that call is not permitted.
    Auto,
    /// EC2 DescribeNetworkInterfaces only (authoritative).
    Ecs,
    /// The echo URL only (in a private subnet it returns the NAT gateway's address).
    Echo,
}

/// What a lost record does to the health check (`DNS_ON_RECORD_LOST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnRecordLost {
    /// The health check fails while the record is not ours.
    Unhealthy,
    /// Logged (record_lost); the health check stays ok.
    Warn,
}

#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Route 53 hosted zone id that holds the record (Z...). Unset or empty with key sync
    /// configured (KEYS_DIR): keys-only mode, no record is published.
    #[arg(long, env = "DNS_HOSTED_ZONE_ID")]
    pub hosted_zone_id: Option<String>,

    /// Record name, a template: {region}, {az}, {cluster}, {task_id}, {family}
    /// (e.g. jumpbox.{region}.example.com).
    #[arg(long, env = "DNS_RECORD_NAME")]
    pub record_name: Option<String>,

    /// Record TTL in seconds.
    #[arg(long, env = "DNS_TTL", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..=172_800))]
    pub ttl: u32,

    /// Publish this address instead of discovering one (one IPv4 and/or one IPv6,
    /// comma-separated).
    #[arg(long, env = "DNS_IP")]
    pub ip: Option<String>,

    /// Where the public IPv4 address comes from.
    #[arg(long, env = "DNS_IP_SOURCE", value_enum, default_value_t = IpSource::Auto)]
    pub ip_source: IpSource,

    /// URL that answers with the caller's public IPv4 address as plain text.
    #[arg(
        long,
        env = "DNS_ECHO_URL",
        default_value = "https://checkip.amazonaws.com"
    )]
    pub echo_url: String,

    /// Set identifier template; recommended: {cluster}/{task_id} (add {region} when
    /// DNS_RECORD_NAME has none). When set, the record is a multivalue-answer record owned by
    /// this task, so several tasks can share one name; with {cluster} and {task_id} in it,
    /// reconcile and prune can tell this cluster's stale values from others'. Without it, the
    /// last task to start owns the name.
    #[arg(long, env = "DNS_SET_IDENTIFIER")]
    pub set_identifier: Option<String>,

    /// On SIGTERM, delete the record if it still holds this task's address. With false, exit
    /// as soon as the record is published.
    #[arg(long, env = "DNS_DELETE_ON_EXIT", default_value = "true", value_parser = parse_bool,
          action = clap::ArgAction::Set)]
    pub delete_on_exit: bool,

    /// Wait (up to DNS_TIMEOUT) until Route 53 reports the change INSYNC before reporting it
    /// published. Still not INSYNC then: a warning (insync_slow), published anyway, and the
    /// change is followed in the background (insync).
    #[arg(long, env = "DNS_WAIT_INSYNC", default_value = "true", value_parser = parse_bool,
          action = clap::ArgAction::Set)]
    pub wait_insync: bool,

    /// Deadline for the whole start: metadata, discovery, the change and INSYNC (e.g. 120s).
    #[arg(long, env = "DNS_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Deadline for the clean-up after SIGTERM; keep it below the container's stopTimeout.
    #[arg(long, env = "DNS_STOP_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub stop_timeout: Duration,

    /// Record types to publish: A, AAAA or A,AAAA (AAAA uses the task's IPv6 address from the
    /// metadata, present on dual-stack subnets).
    #[arg(long, env = "DNS_RECORD_TYPES", default_value = "A")]
    pub record_types: String,

    /// Also reconcile once at start, before publishing (see the prune command and
    /// DNS_RECONCILE_INTERVAL; needs DNS_SET_IDENTIFIER with {cluster} and {task_id}, and
    /// ecs:ListTasks).
    #[arg(long, env = "DNS_PRUNE", default_value = "false", value_parser = parse_bool,
          action = clap::ArgAction::Set)]
    pub prune: bool,

    /// How often every running sidecar removes this cluster's values of the name whose task no
    /// longer runs (jittered ±20 %; 0 disables). Default: 5m when DNS_SET_IDENTIFIER names
    /// {cluster} and {task_id} (and DNS_RECORD_NAME or it {region}), else off with a warning.
    /// Needs ecs:ListTasks on the cluster. A failed run is a warning, retried next period.
    #[arg(long, env = "DNS_RECONCILE_INTERVAL", value_parser = parse_duration)]
    pub reconcile_interval: Option<Duration>,

    /// How often to check that the record still holds this task's address (0 disables).
    #[arg(long, env = "DNS_VERIFY_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub verify_interval: Duration,

    /// What a lost record (changed or deleted by someone else: record_lost) does to the
    /// health check: unhealthy (ECS replaces the task, whose new sidecar publishes again) or
    /// warn (logged, health stays ok).
    #[arg(long, env = "DNS_ON_RECORD_LOST", value_enum, default_value_t = OnRecordLost::Unhealthy)]
    pub on_record_lost: OnRecordLost,

    /// Loopback address of the status port the healthcheck command asks.
    #[arg(long, env = "DNS_HEALTH_LISTEN", default_value = "127.0.0.1:9053")]
    pub health_listen: String,

    /// Log format on stderr: json (default when stderr is not a terminal) or text.
    #[arg(long, env = "DNS_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// ECS task metadata endpoint v4 (set by ECS in every container).
    #[arg(long, env = "ECS_CONTAINER_METADATA_URI_V4")]
    pub metadata_uri: Option<String>,

    /// AWS region; defaults to AWS_DEFAULT_REGION, then the task's own region.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,

    /// Print the Route 53 change batch as JSON and exit without changing anything.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub keys: KeysOptions,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub zone_id: String,
    pub record_name: Template,
    pub set_identifier: Option<Template>,
    pub ttl: u32,
    pub explicit_ips: Vec<IpAddr>,
    pub ip_source: IpSource,
    pub echo_url: reqwest::Url,
    pub record_types: Vec<RecordType>,
    pub delete_on_exit: bool,
    pub wait_insync: bool,
    pub timeout: Duration,
    pub stop_timeout: Duration,
    pub prune: bool,
    /// Zero: no periodic reconcile (`reconcile_off` says why when it was not asked for).
    pub reconcile_interval: Duration,
    pub reconcile_off: Option<String>,
    pub verify_interval: Duration,
    pub on_record_lost: OnRecordLost,
    pub health_listen: SocketAddr,
    pub metadata_uri: Option<String>,
    pub region: Option<String>,
    pub dry_run: bool,
}

/// What a run does: publish the record, sync the keys, or both.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The DNS publication; `None` in keys-only mode (DNS_HOSTED_ZONE_ID unset).
    pub dns: Option<Settings>,
    pub keys: Option<KeySettings>,
    pub health_listen: SocketAddr,
    pub metadata_uri: Option<String>,
    pub region: Option<String>,
    /// Deadline for the start (metadata, for the region).
    pub timeout: Duration,
}

impl Options {
    /// The run's plan: keys-only when DNS_HOSTED_ZONE_ID is unset and key sync is configured;
    /// otherwise the DNS settings are validated as always (plus key sync when configured).
    pub fn into_plan(self) -> Result<Plan> {
        let keys = self.keys.clone().into_settings()?;
        let zone_set = self
            .hosted_zone_id
            .as_deref()
            .is_some_and(|z| !z.trim().is_empty());
        if zone_set || keys.is_none() {
            let dns = self.into_settings()?;
            return Ok(Plan {
                health_listen: dns.health_listen,
                metadata_uri: dns.metadata_uri.clone(),
                region: dns.region.clone(),
                timeout: dns.timeout,
                keys,
                dns: Some(dns),
            });
        }
        if self.dry_run {
            return Err(Error::config(
                "--dry-run prints the Route 53 change batch, and with DNS_HOSTED_ZONE_ID unset \
                 (key sync only) there is none: set DNS_HOSTED_ZONE_ID",
            ));
        }
        if self.timeout.is_zero() {
            return Err(Error::config("DNS_TIMEOUT: must be more than 0s"));
        }
        Ok(Plan {
            dns: None,
            keys,
            health_listen: health_listen(&self.health_listen)?,
            metadata_uri: metadata_uri(self.metadata_uri)?,
            region: region(self.region),
            timeout: self.timeout,
        })
    }

    /// Validates every setting, in the order they are documented; the first bad one is the
    /// error (naming its variable).
    pub fn into_settings(self) -> Result<Settings> {
        let zone_id = normalize_zone_id(self.hosted_zone_id.as_deref())?;
        let record_name = record_name(self.record_name.as_deref())?;
        let set_identifier = match self.set_identifier.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(Template::parse("DNS_SET_IDENTIFIER", s)?),
        };
        let record_types = parse_record_types(&self.record_types)?;
        let explicit_ips = explicit_ips(self.ip.as_deref(), &record_types, &self.record_types)?;
        let echo_url = echo_url(&self.echo_url)?;
        let health_listen = health_listen(&self.health_listen)?;
        if self.timeout.is_zero() {
            return Err(Error::config("DNS_TIMEOUT: must be more than 0s"));
        }
        if self.stop_timeout.is_zero() {
            return Err(Error::config("DNS_STOP_TIMEOUT: must be more than 0s"));
        }
        if self.prune {
            let t = set_identifier.as_ref().ok_or_else(|| {
                Error::config(
                    "DNS_PRUNE=true needs DNS_SET_IDENTIFIER (e.g. {cluster}/{task_id}): only \
                     multivalue records say which cluster and task own them",
                )
            })?;
            check_templates(&record_name, t).map_err(|e| e.context("DNS_PRUNE=true"))?;
        }
        let (reconcile_interval, reconcile_off) = reconcile(
            self.reconcile_interval,
            &record_name,
            set_identifier.as_ref(),
        )?;
        let metadata_uri = metadata_uri(self.metadata_uri)?;
        let region = region(self.region);
        Ok(Settings {
            zone_id,
            record_name,
            set_identifier,
            ttl: self.ttl,
            explicit_ips,
            ip_source: self.ip_source,
            echo_url,
            record_types,
            delete_on_exit: self.delete_on_exit,
            wait_insync: self.wait_insync,
            timeout: self.timeout,
            stop_timeout: self.stop_timeout,
            prune: self.prune,
            reconcile_interval,
            reconcile_off,
            verify_interval: self.verify_interval,
            on_record_lost: self.on_record_lost,
            health_listen,
            metadata_uri,
            region,
            dry_run: self.dry_run,
        })
    }
}

/// The default periodic reconcile interval (`DNS_RECONCILE_INTERVAL` unset).
pub const DEFAULT_RECONCILE: Duration = Duration::from_secs(300);

/// `DNS_RECONCILE_INTERVAL`: the interval (zero: off) and, when off though not asked to be,
/// why. Asked for explicitly, a set identifier that cannot be judged safely is an error; by
/// default it only turns the reconcile off.
fn reconcile(
    asked: Option<Duration>,
    record_name: &Template,
    set_identifier: Option<&Template>,
) -> Result<(Duration, Option<String>)> {
    let judgeable = match set_identifier {
        None => Err(Error::config(
            "DNS_SET_IDENTIFIER is unset (a simple record has one owner, the last task to \
             publish, and nothing to reconcile)",
        )),
        Some(t) => check_templates(record_name, t),
    };
    match (asked, judgeable) {
        (Some(d), _) if d.is_zero() => Ok((Duration::ZERO, None)),
        (Some(d), Ok(())) => Ok((d, None)),
        (Some(_), Err(e)) => Err(e.context("DNS_RECONCILE_INTERVAL is set (0 disables it)")),
        (None, Ok(())) => Ok((DEFAULT_RECONCILE, None)),
        (None, Err(e)) => Ok((Duration::ZERO, Some(e.message))),
    }
}

/// `AWS_REGION`, else `AWS_DEFAULT_REGION`; `None` when neither is set (the task metadata
/// then says).
fn region(value: Option<String>) -> Option<String> {
    value
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
}

/// `DNS_RECORD_NAME`: required, a valid name template.
fn record_name(value: Option<&str>) -> Result<Template> {
    let raw = value.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        Error::config(
            "DNS_RECORD_NAME is not set: give the record name template, e.g. \
             jumpbox.{region}.example.com",
        )
    })?;
    Template::parse("DNS_RECORD_NAME", raw.trim())
}

/// `DNS_IP`: none, or addresses whose families are all in `DNS_RECORD_TYPES`
/// (`types_setting` is that variable's value, for the message).
fn explicit_ips(
    value: Option<&str>,
    record_types: &[RecordType],
    types_setting: &str,
) -> Result<Vec<IpAddr>> {
    let explicit_ips = match value.map(str::trim) {
        None | Some("") => Vec::new(),
        Some(s) => parse_explicit(s)?,
    };
    for ip in &explicit_ips {
        let rtype = RecordType::of(*ip);
        if !record_types.contains(&rtype) {
            return Err(Error::config(format!(
                "DNS_IP: {ip} is an {rtype} address but DNS_RECORD_TYPES is {types_setting}; \
                 add {rtype} to DNS_RECORD_TYPES or remove the address"
            )));
        }
    }
    Ok(explicit_ips)
}

/// `DNS_ECHO_URL`: an http(s) URL with a host.
fn echo_url(value: &str) -> Result<reqwest::Url> {
    reqwest::Url::parse(value.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            Error::config(format!(
                "DNS_ECHO_URL: \"{}\" is not an http(s) URL",
                printable(value)
            ))
        })
}

/// `DNS_HEALTH_LISTEN`: a loopback address and port.
fn health_listen(value: &str) -> Result<SocketAddr> {
    let health_listen: SocketAddr = value.trim().parse().map_err(|_| {
        Error::config(format!(
            "DNS_HEALTH_LISTEN: \"{value}\" is not an address:port such as 127.0.0.1:9053"
        ))
    })?;
    if !health_listen.ip().is_loopback() {
        return Err(Error::config(format!(
            "DNS_HEALTH_LISTEN: {health_listen} is not a loopback address; the status port \
             is for the health check inside the task only (use 127.0.0.1:PORT)"
        )));
    }
    Ok(health_listen)
}

/// `ECS_CONTAINER_METADATA_URI_V4`: unset, or an http(s) URL (without a trailing slash).
fn metadata_uri(value: Option<String>) -> Result<Option<String>> {
    let metadata_uri = value
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty());
    if let Some(uri) = &metadata_uri {
        let ok = reqwest::Url::parse(uri)
            .ok()
            .is_some_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(Error::config(format!(
                "ECS_CONTAINER_METADATA_URI_V4: \"{}\" is not an http URL",
                printable(uri)
            )));
        }
    }
    Ok(metadata_uri)
}

/// Accepts `Z123...` and the `/hostedzone/Z123...` form the console and CLI print.
fn normalize_zone_id(value: Option<&str>) -> Result<String> {
    let raw = value
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::config(
            "DNS_HOSTED_ZONE_ID is not set: give the id of the Route 53 hosted zone that holds \
             the record (Z..., see `aws route53 list-hosted-zones`), or, to sync keys only, \
             set KEYS_DIR and KEYS_SECRET_ID or KEYS_PARAMETER_PATH",
        )
        })?;
    let id = raw.trim_start_matches("/hostedzone/");
    // Route 53 ids start with Z; emulators (moto) use other letters: check alphabet and length.
    let ok = (2..=32).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if !ok {
        return Err(Error::config(format!(
            "DNS_HOSTED_ZONE_ID: \"{}\" is not a hosted zone id; it looks like Z0123456789ABC \
             (upper-case letters and digits)",
            printable(raw)
        )));
    }
    Ok(id.to_string())
}

fn parse_bool(s: &str) -> std::result::Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("\"{s}\" is not true or false")),
    }
}

/// `30s`, `2m`, `500ms`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}: use a duration such as 30s, 2m or 500ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        let mut all = vec!["dns-sidecar"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)
    }

    fn settings(args: &[&str]) -> Result<Settings> {
        cli(args).expect("clap accepts").options.into_settings()
    }

    const BASE: [&str; 4] = [
        "--hosted-zone-id",
        "/hostedzone/Z0ABC123",
        "--record-name",
        "jumpbox.{region}.example.com",
    ];

    #[test]
    fn defaults() {
        let s = settings(&BASE).unwrap();
        assert_eq!(s.zone_id, "Z0ABC123");
        assert_eq!(s.ttl, 60);
        assert_eq!(s.record_types, vec![RecordType::A]);
        assert!(s.delete_on_exit && s.wait_insync && !s.prune && !s.dry_run);
        assert_eq!(s.timeout, Duration::from_secs(120));
        assert_eq!(s.ip_source, IpSource::Auto);
        assert_eq!(s.echo_url.as_str(), "https://checkip.amazonaws.com/");
        assert_eq!(s.health_listen, "127.0.0.1:9053".parse().unwrap());
    }

    #[test]
    fn required_settings_are_named() {
        let e = settings(&["--record-name", "a.example.com"]).unwrap_err();
        assert!(
            e.message.starts_with("DNS_HOSTED_ZONE_ID is not set"),
            "{e}"
        );
        let e = settings(&["--hosted-zone-id", "Z1"]).unwrap_err();
        assert!(e.message.starts_with("DNS_RECORD_NAME is not set"), "{e}");
        let e = settings(&["--hosted-zone-id", "example.com", "--record-name", "a.b"]).unwrap_err();
        assert!(e.message.starts_with("DNS_HOSTED_ZONE_ID:"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn malformed_values_are_named() {
        let mut args = BASE.to_vec();
        args.extend(["--ip", "1.2.3.4", "--record-types", "AAAA"]);
        assert!(settings(&args).unwrap_err().message.starts_with("DNS_IP:"));
        let mut args = BASE.to_vec();
        args.extend(["--echo-url", "ftp://x"]);
        assert!(settings(&args)
            .unwrap_err()
            .message
            .starts_with("DNS_ECHO_URL:"));
        let mut args = BASE.to_vec();
        args.extend(["--health-listen", "0.0.0.0:9053"]);
        assert!(settings(&args)
            .unwrap_err()
            .message
            .starts_with("DNS_HEALTH_LISTEN:"));
        let mut args = BASE.to_vec();
        args.extend(["--prune", "true"]);
        assert!(settings(&args)
            .unwrap_err()
            .message
            .starts_with("DNS_PRUNE"));
        assert!(cli(&["--ttl", "0"]).is_err());
        assert!(cli(&["--delete-on-exit", "maybe"]).is_err());
        assert!(cli(&["--timeout", "soon"]).is_err());
        assert!(cli(&["--ip-source", "imds"]).is_err());
    }

    #[test]
    fn keys_only_when_the_zone_is_unset_and_key_sync_is_configured() {
        let keys = ["--keys-dir", "/keys", "--keys-secret-id", "jumpbox/keys"];
        let plan = cli(&keys).unwrap().options.into_plan().unwrap();
        assert!(plan.dns.is_none());
        assert_eq!(plan.keys.unwrap().dir, std::path::PathBuf::from("/keys"));
        let mut both = BASE.to_vec();
        both.extend(keys);
        let plan = cli(&both).unwrap().options.into_plan().unwrap();
        assert!(plan.dns.is_some() && plan.keys.is_some());
        let plan = cli(&BASE).unwrap().options.into_plan().unwrap();
        assert!(plan.dns.is_some() && plan.keys.is_none());
        let e = cli(&[]).unwrap().options.into_plan().unwrap_err();
        assert!(e.message.contains("to sync keys only"), "{e}");
        let mut dry = keys.to_vec();
        dry.push("--dry-run");
        let e = cli(&dry).unwrap().options.into_plan().unwrap_err();
        assert!(e.message.starts_with("--dry-run"), "{e}");
        let e = cli(&["--keys-dir", "/keys"])
            .unwrap()
            .options
            .into_plan()
            .unwrap_err();
        assert!(e.message.starts_with("KEYS_DIR is set"), "{e}");
    }

    #[test]
    fn reconcile_follows_the_set_identifier() {
        let with = |extra: &[&str]| {
            let mut args = BASE.to_vec();
            args.extend_from_slice(extra);
            settings(&args)
        };
        // No set identifier: a simple record, nothing to reconcile.
        let s = with(&[]).unwrap();
        assert!(s.reconcile_interval.is_zero() && s.reconcile_off.is_some());
        assert_eq!(s.on_record_lost, OnRecordLost::Unhealthy);
        // The recommended template: on, every 5 minutes.
        let s = with(&["--set-identifier", "{cluster}/{task_id}"]).unwrap();
        assert_eq!(s.reconcile_interval, DEFAULT_RECONCILE);
        assert!(s.reconcile_off.is_none());
        // The old `{task_id}` form cannot tell clusters apart: off by default, with the reason.
        let s = with(&["--set-identifier", "{task_id}"]).unwrap();
        assert!(s.reconcile_interval.is_zero());
        assert!(s.reconcile_off.unwrap().contains("{cluster}"));
        // ...and an error when asked for, as is DNS_PRUNE=true.
        let e = with(&[
            "--set-identifier",
            "{task_id}",
            "--reconcile-interval",
            "1m",
        ])
        .unwrap_err();
        assert!(e.message.starts_with("DNS_RECONCILE_INTERVAL"), "{e}");
        assert_eq!(e.exit_code(), 2);
        let e = with(&["--set-identifier", "{task_id}", "--prune", "true"]).unwrap_err();
        assert!(e.message.starts_with("DNS_PRUNE=true") && e.message.contains("{cluster}"));
        let s = with(&["--set-identifier", "{task_id}", "--reconcile-interval", "0"]).unwrap();
        assert!(s.reconcile_interval.is_zero() && s.reconcile_off.is_none());
        let s = with(&[
            "--set-identifier",
            "{cluster}/{task_id}",
            "--reconcile-interval",
            "2s",
        ]);
        assert_eq!(s.unwrap().reconcile_interval, Duration::from_secs(2));
        let s = with(&["--on-record-lost", "warn"]).unwrap();
        assert_eq!(s.on_record_lost, OnRecordLost::Warn);
        assert!(cli(&["--on-record-lost", "ignore"]).is_err());
    }

    #[test]
    fn durations_and_booleans() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_bool("FALSE").is_ok_and(|b| !b));
        assert!(parse_bool("yes").unwrap());
    }
}
