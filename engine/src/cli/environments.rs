//! `ferry env`: start a project with environments, list them, and find a pipeline of one
//! (`--env NAME` on the commands that take a pipeline).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use crate::environment::{AssetKind, CATALOGUES, FILE, Project, Secrets};

#[derive(Subcommand)]
pub enum EnvCommand {
    /// Start a project: environments.toml with the environments named, their catalogue folders
    /// and a .gitignore that keeps bookkeeping out of git.
    #[command(after_help = "Example:\n  ferry env init migration --environments dev,test,prod")]
    Init {
        dir: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "dev,test,prod")]
        environments: Vec<String>,
    },
    /// Each environment: its catalogue (how many of each asset), state dir, secrets source, roles.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub fn env(project: Option<PathBuf>, command: EnvCommand) -> ExitCode {
    match command {
        EnvCommand::Init { dir, environments } => init(&dir, &environments),
        EnvCommand::List { json } => match Project::locate(project.as_deref()) {
            Ok(p) => list(&p, json),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(super::INVALID)
            }
        },
    }
}

fn init(dir: &Path, names: &[String]) -> ExitCode {
    if dir.join(FILE).exists() {
        eprintln!("error: {} exists already", dir.join(FILE).display());
        return ExitCode::from(super::INVALID);
    }
    if let Some(bad) = names.iter().find(|n| !crate::environment::is_asset_name(n)) {
        eprintln!("error: \"{bad}\": an environment's name is letters, digits, - and _");
        return ExitCode::from(super::INVALID);
    }
    let mut text = String::from(
        "# Environments: each has a catalogue under environments/<name>/ and its own bookkeeping.\n\
         # Secrets are never written here: ${secret.NAME} in a connection reads the environment's\n\
         # secrets_file (outside this folder) or secrets_command; ${vars.NAME} reads [vars] below.\n",
    );
    for name in names {
        text.push_str(&format!(
            "\n[environments.{name}]\n\
             # secrets_file = \"~/.config/ferry/{name}.secrets.toml\"\n\
             # secrets_command = [\"vault\", \"kv\", \"get\", \"-field={{name}}\", \"secret/ferry/{name}\"]\n\
             # runners = [\"*\"]            # who may run pipelines here (users, group:NAME)\n\
             # promoters = [\"*\"]          # who may promote into here\n\
             [environments.{name}.vars]\n"
        ));
    }
    let made = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(FILE), text)?;
        std::fs::write(dir.join(".gitignore"), ".ferry/\n")?;
        for name in names {
            for kind in AssetKind::ALL {
                std::fs::create_dir_all(dir.join(CATALOGUES).join(name).join(kind.folder()))?;
            }
        }
        Ok(())
    })();
    if let Err(e) = made {
        eprintln!("error: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    say!(
        "created {} with {}: define connections in {}/<env>/connections/, pipelines in \
         .../pipelines/, then `ferry run --env {} PIPELINE`",
        dir.join(FILE).display(),
        names.join(", "),
        dir.join(CATALOGUES).display(),
        names.first().map(String::as_str).unwrap_or("dev")
    );
    ExitCode::SUCCESS
}

fn list(project: &Project, json: bool) -> ExitCode {
    let secrets = |s: &Secrets| match s {
        Secrets::None => "none".to_string(),
        Secrets::File(f) => format!("file {}", f.display()),
        Secrets::Command(c) => format!("command {}", c.first().cloned().unwrap_or_default()),
    };
    let roles =
        |r: &Option<Vec<String>>| r.as_ref().map(|r| r.join(" ")).unwrap_or("anyone".into());
    if json {
        let envs: Vec<serde_json::Value> = project
            .environments
            .values()
            .map(|e| {
                let assets: serde_json::Map<String, serde_json::Value> = AssetKind::ALL
                    .iter()
                    .map(|k| (k.folder().to_string(), e.assets(*k).into()))
                    .collect();
                serde_json::json!({
                    "name": e.name,
                    "description": e.description,
                    "catalogue": e.dir(),
                    "state_dir": e.state_dir,
                    "secrets": secrets(&e.secrets),
                    "runners": e.runners,
                    "promoters": e.promoters,
                    "vars": e.vars.keys().collect::<Vec<_>>(),
                    "assets": assets,
                })
            })
            .collect();
        say!("{}", serde_json::Value::Array(envs));
        return ExitCode::SUCCESS;
    }
    say!("project {}", project.root.display());
    for e in project.environments.values() {
        let counts: Vec<String> = AssetKind::ALL
            .iter()
            .map(|k| format!("{} {}", e.assets(*k).len(), k.folder()))
            .collect();
        say!(
            "  {:<8} {}{}",
            e.name,
            counts.join(", "),
            e.description
                .as_ref()
                .map(|d| format!(" - {d}"))
                .unwrap_or_default()
        );
        say!(
            "           state {}, secrets {}, runners {}, promoters {}",
            e.state_dir.display(),
            secrets(&e.secrets),
            roles(&e.runners),
            roles(&e.promoters)
        );
    }
    ExitCode::SUCCESS
}

/// With `--env NAME`, a pipeline given by name is that environment's file; a path is checked to
/// be in that environment's catalogue.
pub fn pipeline_in(project: Option<&Path>, env: &str, pipeline: &Path) -> Result<PathBuf, String> {
    let project = Project::locate(project)?;
    let environment = project.environment(env)?;
    let is_name = pipeline.components().count() == 1 && pipeline.extension().is_none();
    let file = if is_name {
        environment.asset_file(AssetKind::Pipelines, &pipeline.to_string_lossy())
    } else {
        pipeline.to_path_buf()
    };
    match Project::of_file(&file) {
        Some(Ok(e)) if e.name == env => {}
        Some(Ok(e)) => {
            return Err(format!(
                "{} is a pipeline of \"{}\", not of \"{env}\"",
                file.display(),
                e.name
            ));
        }
        _ if !file.exists() => {}
        _ => {
            return Err(format!(
                "{} is not in \"{env}\"'s catalogue ({})",
                file.display(),
                environment.dir().join("pipelines").display()
            ));
        }
    }
    if !file.is_file() {
        let names = environment.assets(AssetKind::Pipelines);
        return Err(format!(
            "environment \"{env}\" has no pipeline {} (it has: {})",
            pipeline.display(),
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        ));
    }
    Ok(file)
}
