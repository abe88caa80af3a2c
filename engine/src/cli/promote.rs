//! `ferry promote`: preview (Pending), complete, discard, history, show, comment, revert. The
//! work is `crate::promote`'s; this prints it and turns it into exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Subcommand};

use crate::environment::{AssetKind, Project};
use crate::promote::plan::Selection;
use crate::promote::record::{Promotion, StepStatus};
use crate::promote::{Problem, Promoter, report};

pub const PROMOTE_HELP: &str = r#"A project folder holds environments.toml and a catalogue per environment
(environments/<env>/connections|pipelines|jobs|dropbox/<name>.toml). A promotion copies
definitions from one catalogue to another, one asset type at a time:

  ferry promote --from dev --to test connections crm
  ferry promote --from dev --to test pipelines accounts --with-dependencies
  ferry promote complete 2      # the preview above is Pending until completed or discarded
  ferry promote discard 2
  ferry promote history
  ferry promote show 2 --markdown
  ferry promote comment 2 "checked with the CRM team"
  ferry promote revert 2

Secrets travel as references only (${secret.NAME}); each environment resolves its own. Jobs
arrive disabled unless --enable. Roles: you must be a runner of --from and a promoter of --to
(environments.toml). The summary is saved as .ferry/promotions/<id>/changes.md and .json, each
completion's log as .ferry/promotions/logs/ferry_promote_YYYYMMDD_HHMMSS.log.
Exit codes: 0 done; 1 a step failed; 2 refused (nothing changed); 130 stopped with Ctrl-C."#;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PromoteArgs {
    #[command(subcommand)]
    pub command: Option<PromoteCommand>,
    /// The environment the definitions come from.
    #[arg(long)]
    pub from: Option<String>,
    /// The environment they go to.
    #[arg(long)]
    pub to: Option<String>,
    /// connections, pipelines, jobs or dropbox.
    #[arg(value_name = "TYPE")]
    pub kind: Option<String>,
    /// The assets, by name.
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Every asset of the type.
    #[arg(long)]
    pub all: bool,
    /// Add what the target lacks (connections a pipeline names, a job's pipeline), in order.
    #[arg(long)]
    pub with_dependencies: bool,
    /// Promoted jobs arrive enabled (by default a new job arrives disabled).
    #[arg(long)]
    pub enable: bool,
    /// A title for the history (default: the type and names).
    #[arg(long)]
    pub title: Option<String>,
    /// A first comment for the history.
    #[arg(long)]
    pub comment: Option<String>,
    /// Complete at once after the preview (scripts; the summary is still printed and saved).
    #[arg(long)]
    pub complete: bool,
    /// The name the history records (default: the OS user). Roles are always the OS user's.
    #[arg(long = "as", global = true, value_name = "NAME")]
    pub as_name: Option<String>,
    /// Print the promotion (or the history) as JSON, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum PromoteCommand {
    /// Carry out a Pending promotion: its steps, then the verification in the target.
    Complete { id: i64 },
    /// Drop a Pending promotion; nothing was changed.
    Discard { id: i64 },
    /// Every promotion, newest first.
    History,
    /// One promotion: its changes, steps, warnings, guidance, comments and log file.
    Show {
        id: i64,
        /// The change summary as Markdown.
        #[arg(long)]
        markdown: bool,
    },
    /// Comment on a promotion, or delete one of your comments (--delete N).
    Comment {
        id: i64,
        text: Option<String>,
        #[arg(long, value_name = "N")]
        delete: Option<u32>,
    },
    /// Restore the target's definitions of exactly what a promotion changed.
    Revert {
        id: i64,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn promote(project: Option<PathBuf>, args: PromoteArgs) -> ExitCode {
    let project = match Project::locate(project.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(super::INVALID);
        }
    };
    let promoter = Promoter::new(project, args.as_name.clone());
    let json = args.json;
    let result = match args.command {
        Some(PromoteCommand::Complete { id }) => complete(&promoter, id, json).await,
        Some(PromoteCommand::Discard { id }) => promoter.discard(id).await.map(|p| {
            say!(
                "promotion {} discarded: nothing was changed in \"{}\"",
                p.id,
                p.to
            );
        }),
        Some(PromoteCommand::History) => {
            promoter
                .store
                .all()
                .await
                .map_err(Problem::from)
                .map(|all| {
                    if json {
                        say!(
                            "{}",
                            serde_json::Value::Array(all.iter().map(report::json).collect())
                        );
                    } else if all.is_empty() {
                        say!("no promotion yet");
                    } else {
                        say!("{}", report::history(&all));
                    }
                })
        }
        Some(PromoteCommand::Show { id, markdown }) => promoter.get(id).await.map(|p| {
            if json {
                say!("{}", report::json(&p));
            } else if markdown {
                say!("{}", report::markdown(&p));
            } else {
                say!("{}", report::show(&p));
            }
        }),
        Some(PromoteCommand::Comment { id, text, delete }) => match (text, delete) {
            (_, Some(n)) => promoter
                .delete_comment(id, n)
                .await
                .map(|()| say!("comment {n} of promotion {id} deleted")),
            (Some(text), None) => promoter
                .comment(id, &text)
                .await
                .map(|n| say!("comment {n} added to promotion {id}")),
            (None, None) => Err(Problem {
                message: "a comment needs its text: ferry promote comment ID \"text\"".into(),
                code: super::INVALID,
            }),
        },
        Some(PromoteCommand::Revert { id, yes }) => revert(&promoter, id, yes).await,
        None => new(&promoter, &args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(p) => {
            eprintln!("error: {}", p.message);
            ExitCode::from(p.code)
        }
    }
}

async fn new(promoter: &Promoter, args: &PromoteArgs) -> Result<(), Problem> {
    let refused = |message: &str| Problem {
        message: message.to_string(),
        code: super::INVALID,
    };
    let (Some(from), Some(to)) = (&args.from, &args.to) else {
        return Err(refused(
            "say where from and where to: ferry promote --from dev --to test pipelines NAME (see --help)",
        ));
    };
    let Some(kind) = &args.kind else {
        return Err(refused(
            "say what to promote: connections, pipelines, jobs or dropbox, then names (or --all)",
        ));
    };
    let kind = AssetKind::parse(kind).map_err(|e| refused(&e))?;
    if args.names.is_empty() && !args.all {
        let have = promoter
            .project
            .environment(from)
            .map(|e| e.assets(kind))
            .unwrap_or_default();
        return Err(refused(&format!(
            "name the {} to promote, or --all ({from} has: {})",
            kind.folder(),
            if have.is_empty() {
                "none".to_string()
            } else {
                have.join(", ")
            }
        )));
    }
    let selection = Selection {
        kind,
        names: if args.all {
            Vec::new()
        } else {
            args.names.clone()
        },
        with_dependencies: args.with_dependencies,
        enable: args.enable,
    };
    let p = promoter
        .preview(
            from,
            to,
            &selection,
            args.title.clone(),
            args.comment.clone(),
        )
        .await?;
    if args.json && !args.complete {
        say!("{}", report::json(&p));
        return Ok(());
    }
    say!("{}", report::text(&p));
    let dir = promoter.store.dir().join(p.id.to_string());
    say!(
        "summary: {} and {}",
        dir.join("changes.md").display(),
        dir.join("changes.json").display()
    );
    if args.complete {
        return complete(promoter, p.id, args.json).await;
    }
    say!(
        "Pending: `ferry promote complete {0}` carries it out, `ferry promote discard {0}` drops it",
        p.id
    );
    Ok(())
}

async fn complete(promoter: &Promoter, id: i64, json: bool) -> Result<(), Problem> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
            eprintln!("stopping at the next step (the steps done stay done)...");
        }
    });
    if !json {
        say!("promotion {id}:");
    }
    let result = promoter
        .complete(id, &stop, |_, step| {
            if !json && step.status != StepStatus::Running {
                say!("{}", report::step_line(step));
            }
        })
        .await;
    watcher.abort();
    let p = result?;
    if json {
        say!("{}", report::json(&p));
    } else {
        summary(&p);
    }
    match p.status {
        crate::promote::record::Status::Complete => Ok(()),
        crate::promote::record::Status::Stopped => Err(Problem {
            message: format!(
                "promotion {id} stopped: the steps above marked Success are done (ferry promote revert {id} undoes them)"
            ),
            code: 130,
        }),
        status => Err(Problem {
            message: format!(
                "promotion {id} {status}: the steps above marked Success are done, the rest not (ferry promote revert {id} undoes them; the log: {})",
                p.log_file
                    .as_ref()
                    .map(|l| l.display().to_string())
                    .unwrap_or_default()
            ),
            code: 1,
        }),
    }
}

fn summary(p: &Promotion) {
    for w in &p.warnings {
        say!("warning: {w}");
    }
    for g in &p.guidance {
        say!("next: {g}");
    }
    if let Some(log) = &p.log_file {
        say!("log: {}", log.display());
    }
    say!("promotion {}: {}", p.id, p.status);
}

async fn revert(promoter: &Promoter, id: i64, yes: bool) -> Result<(), Problem> {
    let (p, actions, changed_since) = promoter.revert_plan(id).await?;
    say!("revert promotion {} \"{}\" in \"{}\":", p.id, p.title, p.to);
    for a in &actions {
        say!("  {a}");
    }
    for w in &changed_since {
        say!("warning: {w}");
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Problem {
                message: "a revert changes the target's catalogue: confirm with --yes".into(),
                code: super::INVALID,
            });
        }
        eprint!("Revert? [y/N] ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(Problem {
                message: "not reverted".into(),
                code: super::INVALID,
            });
        }
    }
    let p = promoter
        .revert(id, |step| say!("{}", report::step_line(step)))
        .await?;
    if let Some(log) = p.revert.as_ref().and_then(|r| r.log_file.as_ref()) {
        say!("log: {}", log.display());
    }
    say!("promotion {}: {}", p.id, p.status);
    Ok(())
}
