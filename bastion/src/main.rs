//! The `bastion` binary: parse the configuration, then serve, run the health check, or only
//! check the configuration.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use bastion::config::{parse_listen, Cli, Command};
use clap::Parser;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bastion: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Healthcheck { timeout }) => runtime.block_on(healthcheck(
            &cli.options.listen,
            timeout,
            cli.options.proxy_protocol != bastion::proxy_header::ProxyMode::Off,
        )),
        Some(Command::CheckConfig) => runtime.block_on(async { check_config(cli.options) }),
        None => runtime.block_on(serve(cli.options)),
    }
}

/// `bastion check-config`: what a start would accept, without listening or logging events.
fn check_config(options: bastion::config::Options) -> ExitCode {
    let settings = match options.into_settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bastion check-config: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let keys = settings.keys.current();
    println!("configuration ok");
    println!("listen: {}", settings.listen);
    if let Some(cert) = &settings.host_certificate {
        let s = cert.summary(bastion::key_options::now_unix());
        println!(
            "host_certificate: key id {:?}, principals {}, serial {}, valid until {}, CA {}",
            s.key_id, s.principals, s.serial, s.valid_until, s.ca_fingerprint
        );
    }
    println!("permit_open: {}", settings.destinations.describe());
    println!("proxy_protocol: {}", settings.proxy.mode);
    println!("clients: {}", settings.clients.current().summary());
    println!("name_lookups: {}", settings.resolver.describe());
    println!(
        "authorized_keys: {} keys, {} rejected lines",
        keys.keys.len(),
        keys.rejected.len()
    );
    for e in &keys.rejected {
        println!("rejected: {} line {}: {}", keys.source, e.line, e.message);
    }
    ExitCode::SUCCESS
}

/// clap's own errors name the flag (`--shutdown-grace`); in a container the user set the
/// environment variable, so name that too.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let env = arg.as_deref().and_then(|arg| {
        let cmd = <Cli as clap::CommandFactory>::command();
        let env = cmd
            .get_arguments()
            .find(|a| {
                a.get_long()
                    .is_some_and(|l| arg.split_whitespace().next() == Some(&format!("--{l}")))
            })
            .and_then(|a| a.get_env().map(|v| v.to_string_lossy().into_owned()));
        env
    });
    match env {
        Some(env) => {
            let detail = e.to_string();
            let first = detail.lines().next().unwrap_or_default();
            eprintln!(
                "bastion: configuration error: {env}: {}",
                first.trim_start_matches("error: ")
            );
            ExitCode::from(2)
        }
        None => {
            let _ = e.print();
            ExitCode::from(2)
        }
    }
}

async fn healthcheck(listen: &str, timeout: std::time::Duration, proxy_local: bool) -> ExitCode {
    let listen = match parse_listen(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bastion healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    match bastion::healthcheck::check(listen, timeout, proxy_local).await {
        Ok(banner) => {
            println!("healthy: {banner}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bastion healthcheck: unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(options: bastion::config::Options) -> ExitCode {
    bastion::audit::init(options.log_format);
    // Before the wait for key files, so SIGTERM during it stops the bastion at once.
    let mut signals = match bastion::shutdown::Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bastion: {e}");
            return ExitCode::FAILURE;
        }
    };
    let still_missing = match wait_for_keys(&options, &mut signals).await {
        Ok(missing) => missing,
        Err(stopped) => return stopped,
    };
    let mut settings = match options.into_settings() {
        Ok(s) => s,
        Err(e) => {
            match still_missing {
                Some(missing) => eprintln!("bastion: configuration error: {e} ({missing})"),
                None => eprintln!("bastion: configuration error: {e}"),
            }
            return ExitCode::from(2);
        }
    };
    log_start(&settings);
    if let Err(e) = fit_fd_caps(&mut settings) {
        eprintln!("bastion: {e}");
        return ExitCode::from(2);
    }
    let listener = match bastion::server::bind(&settings).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bastion: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(cert) = &settings.host_certificate {
        let started = bastion::key_options::now_unix();
        tokio::spawn(bastion::host_certificate::watch_expiry(
            cert.clone(),
            started,
        ));
    }
    match bastion::server::serve(listener, settings, signals.recv()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bastion: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `BASTION_WAIT_FOR_KEYS`: wait for key files not written yet. `Ok` with the file still
/// missing when the wait ran out (the load then fails and says so), `Err` with the exit code
/// when a stop signal ended the wait.
async fn wait_for_keys(
    options: &bastion::config::Options,
    signals: &mut bastion::shutdown::Signals,
) -> Result<Option<bastion::key_wait::StillMissing>, ExitCode> {
    let files = options.key_files();
    tokio::select! {
        waited = bastion::key_wait::wait_for(&files, options.wait_for_keys) => Ok(waited.err()),
        signal = signals.next() => {
            bastion::audit::shutdown(signal, std::time::Duration::ZERO);
            bastion::audit::shutdown_complete();
            Err(ExitCode::SUCCESS)
        }
    }
}

/// The start events: host key, rejected key lines, notes on key options, the configuration.
fn log_start(settings: &bastion::config::Settings) {
    use bastion::audit;
    let generated = settings.host_key.source == bastion::host_key::HostKeySource::Generated;
    let fingerprint = settings.host_key.fingerprint();
    audit::host_key(&fingerprint, settings.host_key.source.as_str(), generated);
    if let Some(cert) = &settings.host_certificate {
        cert.log(bastion::key_options::now_unix());
    }
    let keys = settings.keys.current();
    bastion::key_store::log_lines(&keys);
    audit::config(&audit::ConfigSummary {
        authorized_keys: keys.keys.len(),
        certificate_authorities: keys.authorities().count(),
        revoked: keys.revoked.len(),
        keys_source: keys.source.clone(),
        permit_open: settings.destinations.describe(),
        proxy_protocol: settings.proxy.mode.to_string(),
        clients: settings.clients.current().summary(),
        name_lookups: settings.resolver.describe().to_owned(),
    });
}

/// Raise the open file limit to the hard limit and fit `BASTION_MAX_CONNECTIONS` and
/// `BASTION_MAX_TUNNELS` into it (lowered, with a warning, when they do not fit).
fn fit_fd_caps(settings: &mut bastion::config::Settings) -> Result<(), String> {
    use bastion::fd_limit::{self, FdCaps};
    let limit = fd_limit::raise();
    let wanted = FdCaps {
        max_connections: settings.admission.max_connections,
        max_tunnels: settings.channels.max_tunnels,
    };
    let fitted = fd_limit::fit(limit.soft, wanted)?;
    settings.admission.max_connections = fitted.max_connections;
    settings.channels.max_tunnels = fitted.max_tunnels;
    let problems: Vec<String> = limit
        .error
        .iter()
        .cloned()
        .chain(fd_limit::lowered_note(limit.soft, wanted, fitted))
        .collect();
    bastion::audit::fd_limit(&bastion::audit::FdSummary {
        soft_before: limit.soft_before,
        limit: limit.soft,
        hard: limit.hard,
        reserve: fd_limit::RESERVE,
        max_connections: fitted.max_connections,
        max_tunnels: fitted.max_tunnels,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
    });
    Ok(())
}
