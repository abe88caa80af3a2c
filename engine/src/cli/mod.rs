//! The `ferry` command line: what was typed (clap), then what it means (the commands below).

/// Prints a line to stdout; a closed pipe (`ferry history | head`) ends the output, not the program.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod book;
mod connectors;
mod dropbox;
pub mod dry_run;
mod emulate;
mod environments;
pub(crate) mod job_history;
mod preview;
mod promote;
mod quarantine;
mod schedule;
pub use schedule::scheduler_only_variables;
mod show;
pub mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::run::{self, RunSettings};
use crate::spec::Pipeline;

const EXAMPLE: &str = r#"A pipeline file (TOML):

  name = "orders-summary"

  [connections.warehouse]
  url = "sqlite://out/warehouse.db"        # relative paths: from the pipeline file's folder

  [sources.orders]
  path = "data/orders/*.parquet"           # parquet | csv | json | xlsx | delta, file, folder or glob

  [sources.customers]
  path = "data/customers.csv"

  [[steps]]
  name = "paid"
  sql = "SELECT * FROM orders WHERE paid"

  [[steps]]                                # the last step feeds the target
  name = "summary"
  sql = "SELECT customer_id, count(*) AS orders FROM @result1 GROUP BY customer_id"

  [target]
  connection = "warehouse"                 # or: path = "out/summary.parquet"
  table = "order_summary"
  mode = "upsert"                          # insert | upsert | truncate | sync
  key = ["customer_id"]
  create = true

Exit codes: 0 every row landed; 1 the run failed; 2 the pipeline file or target is wrong;
3 some rows were rejected (Partial Success); 70 a bug in Ferry; 75 busy or unavailable for now
(another run holds the pipeline, the target does not answer): try again later; 130 stopped with
Ctrl-C."#;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Moves data from files and databases into databases and services: fast, every batch accounted for.",
    after_help = EXAMPLE
)]
pub struct Cli {
    /// Print what each batch does (repeat for more: -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Work in an environment of the project (environments.toml): a pipeline is then named by
    /// its name (`ferry run --env test accounts`), resolved with that environment's connections.
    #[arg(long, global = true, value_name = "NAME")]
    pub env: Option<String>,

    /// The project folder (with environments.toml); by default the current folder or the
    /// nearest one above it that has one.
    #[arg(long, global = true, value_name = "DIR")]
    pub project: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a pipeline: read the sources, run the steps, write the last step's rows to the target.
    #[command(after_help = "Example:\n  ferry run pipelines/quickstart.toml\n\n".to_string() + EXAMPLE)]
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
        /// No progress bar (it is shown only on a terminal anyway).
        #[arg(long)]
        quiet: bool,
        /// Start a new run, even if the last one did not finish (by default it is resumed: the
        /// batches its log records as written are skipped).
        #[arg(long)]
        fresh: bool,
        /// Confirm a run that resets its target (truncate on an OData service deletes every record
        /// before loading).
        #[arg(long)]
        yes: bool,
        /// Write nothing: count the inserts, updates and deletes the run would make in its
        /// PostgreSQL or MySQL target table, and exit.
        #[arg(long)]
        dry_run: bool,
        /// Set a parameter of the pipeline's [params] for this run: --param region=EMEA (repeat for
        /// more). Filled into the SQL as a literal of the declared type, never as SQL text.
        #[arg(long, value_name = "NAME=VALUE")]
        param: Vec<String>,
        /// Lead a run shared by N processes: this one and N-1 `ferry worker --join PIPELINE`, on
        /// this machine or others sharing the state dir. Each writes some of the target's
        /// partitions ([target] workers) through its own connections; a process that dies has its
        /// partitions taken over. Keyed modes only (upsert, or insert with a key). Partitions are
        /// ranges of the key when its bounds are known (parquet, a database table read with
        /// partitions over the key): each process then reads only its ranges.
        #[arg(long, value_name = "N")]
        spread: Option<usize>,
    },
    /// Show the first rows of a step (the last one by default). Writes nothing.
    #[command(
        after_help = "Examples:\n  ferry preview pipelines/quickstart.toml\n  ferry preview pipelines/quickstart.toml --step paid --limit 5"
    )]
    Preview {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The step (or source) to show.
        #[arg(long)]
        step: Option<String>,
        /// How many rows.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Set a parameter of the pipeline's [params] for this run: --param region=EMEA (repeat for
        /// more). Filled into the SQL as a literal of the declared type, never as SQL text.
        #[arg(long, value_name = "NAME=VALUE")]
        param: Vec<String>,
    },
    /// Check a pipeline without writing: the file, every source and step, and the target. Reports every
    /// problem at once.
    #[command(after_help = "Example:\n  ferry validate pipelines/quickstart.toml")]
    Validate {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Set a parameter of the pipeline's [params] for this run: --param region=EMEA (repeat for
        /// more). Filled into the SQL as a literal of the declared type, never as SQL text.
        #[arg(long, value_name = "NAME=VALUE")]
        param: Vec<String>,
    },
    /// Compare the target with the pipeline's result, computed again from its sources: every column
    /// of every key (or only the row counts), naming the keys missing, different or extra.
    /// Exit codes: 0 they agree, 1 they differ, 2 the pipeline or target cannot be compared.
    #[command(
        after_help = "Examples:\n  ferry reconcile pipelines/accounts.toml\n  ferry reconcile pipelines/accounts.toml --count\n\nAfter every run: [run] reconcile = \"checksum\" (or \"count\"); the state table's\n`validated` is then true only when they agree."
    )]
    Reconcile {
        pipeline: PathBuf,
        /// Compare the numbers of rows only.
        #[arg(long)]
        count: bool,
        /// Set a parameter of the pipeline's [params]: --param region=EMEA (repeat for more).
        #[arg(long, value_name = "NAME=VALUE")]
        param: Vec<String>,
    },
    /// The batches of a run (the latest by default), from the log table.
    #[command(
        after_help = "Examples:\n  ferry log pipelines/quickstart.toml\n  ferry log pipelines/quickstart.toml --errors --json"
    )]
    Log {
        pipeline: PathBuf,
        /// The run to show (see `ferry history`).
        #[arg(long)]
        run: Option<String>,
        /// Only batches with an error or rejected rows.
        #[arg(long)]
        errors: bool,
        /// One JSON object per line, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Runs, newest first: status, rows, throughput, errors. Of one pipeline, or of every pipeline
    /// whose bookkeeping is in --state-dir.
    #[command(
        after_help = "Examples:\n  ferry history pipelines/quickstart.toml\n  ferry history pipelines/quickstart.toml --status Failed --since 2026-11-01\n  ferry history --state-dir pipelines/.ferry"
    )]
    History {
        pipeline: Option<PathBuf>,
        /// Without a pipeline: the state folder to read (a folder, or s3://…, az://…, gs://…).
        #[arg(long, default_value = ".ferry")]
        state_dir: PathBuf,
        /// Only runs with this status: Running, Completed, "Partial Success", Failed, Stopped.
        #[arg(long)]
        status: Option<String>,
        /// Only runs started on or after this date (2026-11-01) or time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run the jobs of a folder on their schedules: every pipeline file in DIR with a [schedule]
    /// section (with --env: the environment's jobs). Runs until Ctrl-C or SIGTERM (running runs
    /// then stop at their next batch).
    #[command(after_help = SCHEDULE_HELP)]
    Schedule {
        /// The folder of pipeline files (with --env, the environment's jobs folder by default).
        dir: Option<PathBuf>,
        /// Runs at once across all jobs (default: the number of cores).
        #[arg(long)]
        max_concurrent_runs: Option<usize>,
        /// Tests: start the clock at a time, optionally faster ("2026-01-01T00:00:00Z*600").
        #[arg(long, hide = true)]
        clock: Option<String>,
        /// Tests: stop after this much of the clock's time.
        #[arg(long, hide = true)]
        stop_after: Option<String>,
    },
    /// The jobs of a folder: list them, show when one fires next, run one now, enable, disable or
    /// delete one.
    Jobs {
        /// The folder of pipeline files.
        dir: PathBuf,
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// A dropbox: a folder where business users drop workbooks (and a JSON of options) for Ferry to
    /// stage, migrate in order, archive, and hand the refused rows back.
    #[command(subcommand, after_help = DROPBOX_HELP)]
    Dropbox(DropboxCommand),
    /// Move definitions (connections, pipelines, jobs, dropbox configurations) from one
    /// environment to another: preview, complete or discard, history, comments, revert.
    #[command(after_help = promote::PROMOTE_HELP)]
    Promote(promote::PromoteArgs),
    /// A project's environments: start one, list them.
    #[command(subcommand)]
    Env(environments::EnvCommand),
    /// A read-only dashboard of a state dir in the browser: pipelines (failing first), runs, their
    /// errors by cause and batches, quarantined rows and their workbook.
    #[command(
        after_help = "Examples:\n  ferry serve --state-dir pipelines/.ferry\n  ferry serve --env prod --port 8080\n  FERRY_SERVE_TOKEN=... ferry serve --bind 0.0.0.0 --port 8080\n\nOpen it while a migration runs: each page reads the tables as they are."
    )]
    Serve {
        /// The state dir to show (with --env: the environment's).
        #[arg(long, default_value = ".ferry")]
        state_dir: PathBuf,
        /// 0 picks a free port (printed).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// The address to listen on; any other than a loopback one needs a token.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Every request must carry it (Authorization: Bearer, or ?token=); or FERRY_SERVE_TOKEN.
        #[arg(long)]
        token: Option<String>,
        /// A jobs folder whose schedule and runs the Jobs page shows (with --env: the environment's).
        #[arg(long)]
        jobs: Option<PathBuf>,
    },
    /// Work for a run led elsewhere. With --join PIPELINE: write some of the target's partitions of
    /// the spread run `ferry run PIPELINE --spread N` leads (same pipeline file, same state dir),
    /// taking over those of a process that dies. With --listen: serve the steps' stages of
    /// pipelines whose [run] cluster names this address (needs --features distributed), and write
    /// their keyed PostgreSQL, MySQL or OData targets (filling the pipeline's ${VAR}s from this
    /// process's environment, logging in the pipeline's state dir).
    #[command(
        after_help = "Examples:\n  ferry worker --join pipelines/accounts.toml           # beside: ferry run pipelines/accounts.toml --spread 3\n  ferry worker --listen 0.0.0.0:7470                   # reachable from other machines: a private network\n\nIn a pipeline file, for --listen workers:\n  [run]\n  cluster = [\"http://10.0.0.5:7470\", \"http://10.0.0.6:7470\"]"
    )]
    Worker {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:7470", conflicts_with = "join")]
        listen: std::net::SocketAddr,
        /// Instead: help write the spread run of this pipeline file (led by `ferry run --spread`).
        #[arg(long, value_name = "PIPELINE")]
        join: Option<PathBuf>,
        /// With --join: how long to wait for the run to start.
        #[arg(long, default_value = "60s", value_parser = parse_wait)]
        wait: std::time::Duration,
    },
    /// Emulate a target service on this machine.
    #[command(subcommand)]
    Emulate(EmulateCommand),
    /// Rejected rows: list the tables, show the rows, export them to Excel, retry them.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// The databases, services and files Ferry writes, and what each can do (modes, keys,
    /// atomic batches, truncate, reading).
    Connectors,
    /// Forget what was done: checkpoints (incremental sources read every file again), state and log
    /// (the next run starts afresh), or everything. Asks first on a terminal; needs --yes otherwise.
    #[command(after_help = "Example:\n  ferry reset pipelines/quickstart.toml --checkpoints --yes")]
    Reset {
        pipeline: PathBuf,
        #[arg(long)]
        checkpoints: bool,
        #[arg(long)]
        state: bool,
        #[arg(long)]
        all: bool,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

const SCHEDULE_HELP: &str = r#"A job is a pipeline file with a [schedule] section:

  [schedule]
  cron = "0 2 * * *"            # 5 fields, or 6 with seconds first; L, #, W, MON-FRI, @daily
  timezone = "Europe/Paris"     # IANA name; UTC by default
  enabled = true
  max_retries = 2               # whole-run retries of a failed run (0-10)
  retry_backoff = "1m"          # doubled each retry, with jitter
  timeout = "2h"                # the run is stopped cleanly (resumable) and marked Timed Out
  overlap = "skip"              # skip | queue: a fire while the last run still goes
  catch_up = "last"             # none | last | all: fires missed while the scheduler was down

A dropbox is a job with a file of its own: dropbox = "../drop" and a [schedule] table (in an
environment's jobs/: pipeline = "NAME" or dropbox = "NAME").

Every fire is recorded in DIR/.ferry/schedule/fires (a Delta table), each run's output in
DIR/.ferry/schedule/logs/. Example:
  ferry schedule jobs/
  ferry jobs jobs/ list"#;

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Each job: schedule in words, enabled, next fire, last status and duration.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One job: its file, its schedule's settings, its next fires and its latest runs.
    Show { job: String },
    /// What the scheduler ran: trigger, fire time, duration, status (and why a fire was skipped),
    /// rows read / written / failed and rows/s; a run and its retries shown as one group.
    History {
        /// Only this job's runs.
        job: Option<String>,
        /// Only chains with a run of this status: Completed, "Partial Success", Failed, Stopped,
        /// "Timed Out", Skipped.
        #[arg(long)]
        status: Option<String>,
        /// Only fires on or after this date (2026-11-01) or time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only fires before this date or time.
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The next fire times of a job (check a cron expression with it).
    Next {
        job: String,
        #[arg(long, default_value_t = 10)]
        count: usize,
    },
    /// Run a job now, in the foreground; its schedule is left as it is.
    Run {
        job: String,
        /// Set a parameter of the job's [params] for this run: --param region=EMEA.
        #[arg(long, value_name = "NAME=VALUE")]
        param: Vec<String>,
    },
    /// Let a job fire again (sets `enabled = true` in its file).
    Enable { job: String },
    /// Stop a job firing, keeping it (sets `enabled = false` in its file).
    Disable { job: String },
    /// Stop a job for good: its file is renamed `<file>.deleted`; its history stays.
    Delete { job: String },
}

const DROPBOX_HELP: &str = r#"A dropbox folder:
  dropbox.toml   the target connection and options (`ferry dropbox init DIR` writes one)
  inbox/         drop xlsx, csv or parquet files here, and a JSON of options:
                 { "accounts.xlsx": { "target_entity": "account", "key": ["accountnumber"] },
                   "contacts.xlsx": { "after": ["account"], "rename": { "Account No": "accountnumber" } } }
  archive/       every file taken, under a timestamped name
  rejected/      files that could not be read, each with <name>.error.txt
  outbox/        <entity>.quarantine.xlsx: the refused rows; correct them and drop the file back

Examples:
  ferry dropbox init drop --url postgres://loader@db/crm
  ferry dropbox run drop        # what is there now, then exit (a scheduled job can do this)
  ferry dropbox watch drop      # keeps going: each drop taken once it stops changing
  ferry dropbox status drop"#;

#[derive(Subcommand)]
pub enum DropboxCommand {
    /// Create a dropbox folder: dropbox.toml (edit its connection) and inbox/.
    Init {
        dir: PathBuf,
        /// The target connection's URL.
        #[arg(long, default_value = "sqlite://out/target.db")]
        url: String,
    },
    /// Take what the inbox holds now, migrate it, and exit. Exit codes as `ferry run`: 0 all
    /// landed, 3 rows refused (see outbox/), 1 a migration failed, 2 a file or option was wrong.
    Run { dir: PathBuf },
    /// Take each drop once it is stable, until Ctrl-C or SIGTERM.
    Watch { dir: PathBuf },
    /// Every file the dropbox has seen: its entity, status, rows staged / written / refused, the
    /// first error, where it was archived.
    Status {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum EmulateCommand {
    /// A Dataverse-like OData v4 Web API: records in memory, validation errors, OAuth2 tokens,
    /// service protection limits (429 + Retry-After) and injected faults.
    #[command(
        after_help = "Examples:\n  ferry emulate dynamics --port 8080\n  ferry emulate dynamics --requests 600 --window 30s --fail 0.1 --lost 0.02"
    )]
    Dynamics(emulate::EmulateArgs),
}

#[derive(Subcommand)]
pub enum QuarantineCommand {
    /// Each quarantine table with its unresolved and resolved rows.
    List {
        pipeline: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The unresolved rows of a table (the pipeline's target by default), with their errors.
    Show {
        pipeline: PathBuf,
        table: Option<String>,
        /// Resolved rows too.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// The unresolved rows into an Excel workbook, for a person to correct.
    #[command(
        after_help = "Example:\n  ferry quarantine export pipelines/accounts.toml accounts rejected.xlsx"
    )]
    Export {
        pipeline: PathBuf,
        table: String,
        file: PathBuf,
    },
    /// Write the unresolved rows (or the corrected rows of a workbook) through the target again.
    /// Rows that land are marked resolved; the others keep their new error.
    #[command(
        after_help = "Example:\n  ferry quarantine retry pipelines/accounts.toml accounts --from rejected.xlsx"
    )]
    Retry {
        pipeline: PathBuf,
        table: String,
        /// The corrected workbook from `ferry quarantine export`.
        #[arg(long)]
        from: Option<PathBuf>,
    },
}

/// Runs the command and says how it went as an exit code.
pub async fn main(mut cli: Cli) -> ExitCode {
    if let Some(env) = cli.env.clone()
        && let Err(e) = in_environment(&mut cli.command, cli.project.as_deref(), &env)
    {
        eprintln!("error: {e}");
        return ExitCode::from(INVALID);
    }
    match cli.command {
        Command::Run {
            pipeline,
            quiet,
            fresh,
            yes,
            dry_run,
            param,
            spread,
        } => {
            if dry_run {
                return dry_run::dry_run_command(&pipeline, &param).await;
            }
            let settings = RunSettings {
                progress: !quiet,
                fresh,
                confirmed: yes,
            };
            run_command(&pipeline, &param, &settings, spread).await
        }
        Command::Preview {
            pipeline,
            step,
            limit,
            param,
        } => preview::preview(&pipeline, step.as_deref(), limit, &param).await,
        Command::Validate { pipeline, param } => validate::validate(&pipeline, &param).await,
        Command::Reconcile {
            pipeline,
            count,
            param,
        } => reconcile_command(&pipeline, count, &param).await,
        Command::Log {
            pipeline,
            run,
            errors,
            json,
        } => book::log(&pipeline, run, errors, json).await,
        Command::History {
            pipeline,
            state_dir,
            status,
            since,
            json,
        } => book::history(pipeline.as_deref(), &state_dir, status, since, json).await,
        Command::Schedule {
            dir,
            max_concurrent_runs,
            clock,
            stop_after,
        } => {
            let Some(dir) = dir else {
                eprintln!(
                    "error: name the jobs folder, or an environment: ferry schedule --env prod"
                );
                return ExitCode::from(INVALID);
            };
            schedule::schedule(&dir, max_concurrent_runs, clock, stop_after).await
        }
        Command::Promote(args) => promote::promote(cli.project, args).await,
        Command::Worker {
            join: Some(file),
            wait,
            ..
        } => {
            let pipeline = match load_filled(&file, &[], false).await {
                Ok(p) => p,
                Err(code) => return code,
            };
            match run::join(&pipeline, wait).await {
                Ok(joined) => {
                    let read = joined
                        .source_rows
                        .map(|n| format!(", its sources gave {n}"))
                        .unwrap_or_default();
                    say!(
                        "joined run {}: wrote partitions {:?} ({} rows{read}); every partition is done",
                        joined.run_id,
                        joined.partitions,
                        joined.rows_written
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(if e.is_retryable() { 75 } else { 1 })
                }
            }
        }
        Command::Worker { listen, .. } => match crate::plan::cluster::serve_worker(listen).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(INVALID)
            }
        },
        Command::Serve {
            state_dir,
            port,
            bind,
            token,
            jobs,
        } => {
            let project = match &cli.project {
                Some(dir) => Some(dir.clone()),
                None => std::env::current_dir()
                    .ok()
                    .and_then(|here| crate::environment::Project::find(&here)),
            };
            let app = crate::serve::App {
                state_dir: state_dir.display().to_string(),
                token: token.or_else(|| std::env::var("FERRY_SERVE_TOKEN").ok()),
                project,
                jobs,
            };
            match crate::serve::serve(app, std::net::SocketAddr::new(bind, port)).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(INVALID)
                }
            }
        }
        Command::Env(command) => environments::env(cli.project, command),
        Command::Jobs { dir, command } => match command {
            JobsCommand::List { json } => schedule::list(&dir, json).await,
            JobsCommand::Show { job } => job_history::show(&dir, &job).await,
            JobsCommand::History {
                job,
                status,
                since,
                until,
                json,
            } => {
                let filter = job_history::Filter {
                    job,
                    status,
                    since,
                    until,
                };
                job_history::history(&dir, filter, json).await
            }
            JobsCommand::Next { job, count } => schedule::next(&dir, &job, count),
            JobsCommand::Run { job, param } => schedule::run_now(&dir, &job, &param).await,
            JobsCommand::Enable { job } => schedule::set_enabled(&dir, &job, true),
            JobsCommand::Disable { job } => schedule::set_enabled(&dir, &job, false),
            JobsCommand::Delete { job } => schedule::delete(&dir, &job),
        },
        Command::Dropbox(command) => {
            let env = match &cli.env {
                None => None,
                Some(name) => match crate::environment::Project::locate(cli.project.as_deref())
                    .and_then(|p| p.environment(name).cloned())
                {
                    Ok(env) => Some(env),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(INVALID);
                    }
                },
            };
            let env = env.as_ref();
            match command {
                DropboxCommand::Init { dir, url } => dropbox::init(&dir, &url),
                DropboxCommand::Run { dir } => dropbox::run(&dir, env).await,
                DropboxCommand::Watch { dir } => dropbox::watch(&dir, env).await,
                DropboxCommand::Status { dir, json } => dropbox::status(&dir, env, json).await,
            }
        }
        Command::Emulate(EmulateCommand::Dynamics(args)) => emulate::dynamics(args).await,
        Command::Connectors => connectors::list(),
        Command::Quarantine(q) => match q {
            QuarantineCommand::List { pipeline, json } => quarantine::list(&pipeline, json).await,
            QuarantineCommand::Show {
                pipeline,
                table,
                all,
                json,
            } => quarantine::show_rows(&pipeline, table, all, json).await,
            QuarantineCommand::Export {
                pipeline,
                table,
                file,
            } => quarantine::export(&pipeline, &table, &file).await,
            QuarantineCommand::Retry {
                pipeline,
                table,
                from,
            } => quarantine::retry(&pipeline, &table, from.as_deref()).await,
        },
        Command::Reset {
            pipeline,
            checkpoints,
            state,
            all,
            yes,
        } => {
            let what = book::ResetWhat {
                checkpoints,
                state,
                all,
            };
            book::reset(&pipeline, what, yes).await
        }
    }
}

/// Exit code for a pipeline file or target that is wrong.
pub const INVALID: u8 = 2;

/// Reads a pipeline file; its errors are printed, and become exit code 2. A pipeline of an
/// environment is refused to a user the environment does not list as a runner.
fn load(file: &std::path::Path) -> Result<Pipeline, ExitCode> {
    let pipeline = Pipeline::load(file).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(INVALID)
    })?;
    if let Some(env) = &pipeline.environment
        && let Err(e) = env.check_runner(&crate::environment::Identity::current())
    {
        eprintln!("error: refused: {e}");
        return Err(ExitCode::from(INVALID));
    }
    Ok(pipeline)
}

/// `--env NAME`: the pipeline a command names is that environment's; `ferry schedule` and `ferry
/// jobs` take its jobs folder.
fn in_environment(
    command: &mut Command,
    project: Option<&std::path::Path>,
    env: &str,
) -> Result<(), String> {
    let pipeline = match command {
        Command::Run { pipeline, .. }
        | Command::Preview { pipeline, .. }
        | Command::Validate { pipeline, .. }
        | Command::Log { pipeline, .. }
        | Command::Reconcile { pipeline, .. }
        | Command::Reset { pipeline, .. }
        | Command::Quarantine(
            QuarantineCommand::List { pipeline, .. }
            | QuarantineCommand::Show { pipeline, .. }
            | QuarantineCommand::Export { pipeline, .. }
            | QuarantineCommand::Retry { pipeline, .. },
        ) => pipeline,
        Command::History {
            pipeline: Some(pipeline),
            ..
        } => pipeline,
        Command::History {
            pipeline: None,
            state_dir,
            ..
        } => {
            let project = crate::environment::Project::locate(project)?;
            *state_dir = project.environment(env)?.state_dir.clone();
            return Ok(());
        }
        Command::Serve {
            state_dir, jobs, ..
        } => {
            let project = crate::environment::Project::locate(project)?;
            let environment = project.environment(env)?;
            *state_dir = environment.state_dir.clone();
            jobs.get_or_insert(environment.dir().join("jobs"));
            return Ok(());
        }
        Command::Schedule { dir, .. } => {
            let project = crate::environment::Project::locate(project)?;
            let jobs = project.environment(env)?.dir().join("jobs");
            dir.get_or_insert(jobs);
            return Ok(());
        }
        Command::Promote(_) | Command::Env(_) => {
            return Err("--env is for running: promote takes --from and --to".into());
        }
        _ => return Ok(()),
    };
    *pipeline = environments::pipeline_in(project, env, pipeline)?;
    Ok(())
}

/// Reads a pipeline file and fills its `${...}` for a run (`--param NAME=VALUE` given); errors
/// are printed, and become exit code 2.
async fn load_filled(
    file: &std::path::Path,
    params: &[String],
    fresh: bool,
) -> Result<Pipeline, ExitCode> {
    let pipeline = load(file)?;
    run::params::fill_for_run(&pipeline, params, fresh)
        .await
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(INVALID)
        })
}

/// Opens a pipeline's bookkeeping tables; an error is printed, and becomes exit code 1.
async fn open_book(pipeline: &Pipeline) -> Result<crate::book::Book, ExitCode> {
    crate::book::Book::open(&pipeline.state_dir, &pipeline.name)
        .await
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })
}

async fn reconcile_command(file: &std::path::Path, count: bool, params: &[String]) -> ExitCode {
    let pipeline = match load_filled(file, params, false).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let depth = if count {
        run::reconcile::Depth::Count
    } else {
        run::reconcile::Depth::Checksum
    };
    match run::reconcile::reconcile(&pipeline, depth).await {
        Ok(found) => {
            say!("{found}");
            if found.agrees() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(INVALID)
        }
    }
}

async fn run_command(
    file: &std::path::Path,
    params: &[String],
    settings: &RunSettings,
    spread: Option<usize>,
) -> ExitCode {
    let pipeline = match load_filled(file, params, settings.fresh).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let ran = match spread {
        Some(processes) => run::run_spread(&pipeline, settings, processes).await,
        None => run::run(&pipeline, settings).await,
    };
    match ran {
        Ok(report) => {
            say!("{report}");
            ExitCode::from(report.status.exit_code() as u8)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `--wait 90s`: a duration as pipeline files write them.
fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    crate::spec::parse_duration(text)
        .ok_or_else(|| format!("\"{text}\" is not a duration (e.g. 90s, 5m)"))
}
