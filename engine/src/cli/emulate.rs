//! `ferry emulate dynamics`: the Dataverse-like OData service on this machine, to rehearse a
//! migration and tune it without touching a real environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use ferry_emulator::limits::Limits;
use ferry_emulator::model::Model;
use ferry_emulator::{self as emulator, Config, Faults, Latency};

use super::INVALID;
use crate::spec::parse_duration;

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).ok_or_else(|| format!("\"{text}\" is not a duration (250ms, 90s, 5m, 1h)"))
}

fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "\"{text}\" is not a share between 0 and 1 (0.1 is one request in ten)"
        )),
    }
}

#[derive(Args)]
pub struct EmulateArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The entity sets, keys and attributes (TOML); built in: accounts and contacts.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Accept requests without a bearer token.
    #[arg(long)]
    no_auth: bool,
    /// How long tokens from /oauth2/v2.0/token live.
    #[arg(long, default_value = "1h", value_parser = duration)]
    token_lifetime: Duration,
    /// No service protection limits at all.
    #[arg(long)]
    no_limits: bool,
    /// Requests per client in the window.
    #[arg(long, default_value_t = 6000)]
    requests: usize,
    /// The sliding window of the limits.
    #[arg(long, default_value = "300s", value_parser = duration)]
    window: Duration,
    /// Send Retry-After with fractions of a second (HTTP and Dataverse send whole seconds): for
    /// rehearsals that compress the window to seconds.
    #[arg(long)]
    retry_after_fractions: bool,
    /// Combined execution time per client in the window.
    #[arg(long, default_value = "1200s", value_parser = duration)]
    execution: Duration,
    /// Concurrent requests per client.
    #[arg(long, default_value_t = 52)]
    concurrency: usize,
    /// The parallelism recommended in x-ms-dop-hint.
    #[arg(long, default_value_t = 8)]
    dop_hint: usize,
    /// Simulated execution time of every request.
    #[arg(long, default_value = "5ms", value_parser = duration)]
    latency: Duration,
    /// Simulated execution time per record of a $batch (a bulk message's record costs a quarter
    /// of it created, three quarters updated; a record a GET returns, a twentieth).
    #[arg(long, default_value = "2ms", value_parser = duration)]
    per_record: Duration,
    /// Jitter of the execution time, as a share of it.
    #[arg(long, default_value = "0.2", value_parser = share)]
    jitter: f64,
    /// Share of requests answered 500/503.
    #[arg(long, default_value = "0", value_parser = share)]
    fail: f64,
    /// Share of requests answered late (by --slow-by).
    #[arg(long, default_value = "0", value_parser = share)]
    slow: f64,
    #[arg(long, default_value = "2s", value_parser = duration)]
    slow_by: Duration,
    /// Share of connections dropped before the request is done.
    #[arg(long, default_value = "0", value_parser = share)]
    drop: f64,
    /// Share of requests done whose response is then lost.
    #[arg(long, default_value = "0", value_parser = share)]
    lost: f64,
    /// Spare GET requests from the faults: only writes meet them.
    #[arg(long)]
    faults_on_writes_only: bool,
    /// A throttling storm that passes: the first N writes are answered 429 (Retry-After: 1).
    #[arg(long, default_value = "0", value_name = "N")]
    storm: u64,
    /// Records per page of a GET.
    #[arg(long, default_value_t = 5000)]
    page_size: usize,
    /// Keep the records in this SQLite file too, so they outlive the emulator (in memory otherwise).
    #[arg(long)]
    data: Option<PathBuf>,
    /// A client id that lacks the privileges to bypass custom business logic and plug-ins
    /// (every other client holds them); repeat for more.
    #[arg(long, value_name = "CLIENT_ID")]
    without_bypass: Vec<String>,
}

pub async fn dynamics(args: EmulateArgs) -> ExitCode {
    let model = match &args.model {
        None => Model::builtin(),
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| Model::from_toml(&t))
        {
            Ok(m) => m,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::from(INVALID);
            }
        },
    };
    let config = Config {
        model,
        limits: Limits {
            enabled: !args.no_limits,
            window: args.window,
            requests: args.requests,
            execution: args.execution,
            concurrency: args.concurrency,
            dop_hint: args.dop_hint,
            retry_after_fractions: args.retry_after_fractions,
        },
        latency: Latency {
            base: args.latency,
            per_record: args.per_record,
            jitter: args.jitter,
            ..Latency::none()
        },
        faults: Faults {
            errors: args.fail,
            slow: args.slow,
            slow_by: args.slow_by,
            dropped: args.drop,
            lost: args.lost,
            writes_only: args.faults_on_writes_only,
            storm: args.storm,
        },
        auth: !args.no_auth,
        token_lifetime: args.token_lifetime,
        page_size: args.page_size,
        data_file: args.data.clone(),
        without_bypass: args.without_bypass.clone(),
    };
    let sets: Vec<String> = config.model.sets.keys().cloned().collect();
    let addr: SocketAddr = match format!("{}:{}", args.host, args.port).parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {}:{} is not an address: {e}", args.host, args.port);
            return ExitCode::from(INVALID);
        }
    };
    let running = match emulator::start(config, addr).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {addr}: {e}\n  hint: pick another --port, or --port 0 for any free one"
            );
            return ExitCode::FAILURE;
        }
    };
    say!("Dataverse-like emulator at {}", running.url());
    say!("  entity sets   {}", sets.join(", "));
    if args.no_auth {
        say!("  auth          none");
    } else {
        say!(
            "  token         POST {} (client_credentials; any id and secret)",
            running.token_url()
        );
    }
    if args.no_limits {
        say!("  limits        off");
    } else {
        say!(
            "  limits        {} requests and {}s execution per {}s, {} at once, per client",
            args.requests,
            args.execution.as_secs(),
            args.window.as_secs(),
            args.concurrency
        );
    }
    say!(
        "  stats         GET http://{}/_emulator/stats, reset with POST /_emulator/reset",
        running.addr
    );
    say!("Ctrl-C stops it.");
    tokio::select! {
        _ = running.wait() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    ExitCode::SUCCESS
}
