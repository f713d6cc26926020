//! The `dns-sidecar` binary: parse the configuration, then publish (and/or sync keys), prune
//! or probe health.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use dns_sidecar::config::{Cli, Command};
use dns_sidecar::error::Error;
use tracing::error;

fn main() -> ExitCode {
    let started = tokio::time::Instant::now();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dns-sidecar: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Healthcheck { timeout }) = cli.command {
        let addr = match cli.options.health_listen.trim().parse() {
            Ok(a) => a,
            Err(_) => {
                eprintln!(
                    "dns-sidecar healthcheck: DNS_HEALTH_LISTEN: \"{}\" is not an address:port",
                    cli.options.health_listen
                );
                return ExitCode::from(2);
            }
        };
        return match runtime.block_on(dns_sidecar::health::check(addr, timeout)) {
            Ok(line) => {
                println!("healthy: {line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("dns-sidecar healthcheck: unhealthy: {e}");
                ExitCode::FAILURE
            }
        };
    }
    dns_sidecar::logging::init(cli.options.log_format);
    let result = match cli.command {
        Some(Command::Prune) => cli
            .options
            .into_settings()
            .and_then(|s| runtime.block_on(dns_sidecar::lifecycle::prune_command(s))),
        _ => cli
            .options
            .into_plan()
            .and_then(|plan| runtime.block_on(dns_sidecar::lifecycle::run(plan, started))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &Error) -> ExitCode {
    error!(event = "error", error = %e, exit_code = e.exit_code(), "dns-sidecar failed");
    eprintln!("dns-sidecar: {e}");
    ExitCode::from(e.exit_code())
}

/// clap names the flag (`--ttl`); in a container the user set the variable: name it too.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let flag = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.split_whitespace().next().map(str::to_string),
        _ => None,
    };
    let cmd = <Cli as clap::CommandFactory>::command();
    let env = flag.and_then(|flag| {
        cmd.get_arguments()
            .find(|a| a.get_long().is_some_and(|l| flag == format!("--{l}")))
            .and_then(|a| a.get_env())
            .map(|v| v.to_string_lossy().into_owned())
    });
    let text = e.to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ");
    match env {
        Some(env) => eprintln!("dns-sidecar: configuration error: {env}: {first}"),
        None => eprintln!("dns-sidecar: configuration error: {first}"),
    }
    ExitCode::from(2)
}
