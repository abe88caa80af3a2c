//! Migration of staged entities: each is an ordinary pipeline (its staging table into the dropbox's
//! target connection), written to `<work>/pipelines/<entity>.toml` so that a person can run, log or
//! quarantine it by hand, with its own run lock, history, log and resumption. Entities go in order:
//! `order`, then `after` (parents before the entities whose lookups point to them), then the order
//! the files were dropped.

use std::path::{Path, PathBuf};

use super::config::{Dropbox, FileOptions};
use super::stage::staging_path;
use crate::run::{RunReport, RunSettings};
use crate::spec::Pipeline;

/// The largest entity `atomic = true` takes on an OData service: one changeset holds at most 1,000
/// operations.
pub const ATOMIC_LIMIT: u64 = 1_000;
/// The most rows an atomic entity on a SQL target holds: one batch, in memory, one transaction.
pub const SQL_ATOMIC_LIMIT: u64 = 1_000_000;

/// Where an entity's generated pipeline is.
pub fn pipeline_path(dropbox: &Dropbox, entity: &str) -> PathBuf {
    dropbox
        .work()
        .join("pipelines")
        .join(format!("{entity}.toml"))
}

/// The target connection's URL scheme: sqlite, postgres, mysql, http(s) (OData).
fn scheme(dropbox: &Dropbox) -> String {
    dropbox
        .connection
        .1
        .get("url")
        .and_then(|u| u.as_str())
        .and_then(|u| u.split_once("://"))
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default()
}

pub fn is_odata(dropbox: &Dropbox) -> bool {
    matches!(scheme(dropbox).as_str(), "http" | "https")
}

/// The pipeline that migrates `entity` from its staging table, for the file `file` (content
/// `hash`, named in the first line, so that another file's run is another run).
pub fn pipeline_text(
    dropbox: &Dropbox,
    entity: &str,
    file: &str,
    hash: &str,
    options: &FileOptions,
    rows: u64,
) -> Result<String, String> {
    let (connection, keys) = &dropbox.connection;
    let mut keys = keys.clone();
    // A relative SQLite path is the dropbox folder's, not the generated file's.
    if let Some(url) = keys.get("url").and_then(|u| u.as_str()).map(str::to_string)
        && let Some(path) = url.strip_prefix("sqlite://")
        && !path.starts_with('/')
    {
        let absolute = dropbox.dir.join(path);
        keys.insert(
            "url".into(),
            toml::Value::String(format!("sqlite://{}", absolute.display())),
        );
    }
    let mut doc = toml::Table::new();
    doc.insert("name".into(), format!("{}-{entity}", dropbox.name).into());
    // In an environment, the connection is the catalogue's and the runs are kept in its state dir.
    if dropbox.environment.is_none() {
        doc.insert(
            "state_dir".into(),
            dropbox.state_dir.display().to_string().into(),
        );
        let mut connections = toml::Table::new();
        connections.insert(connection.clone(), toml::Value::Table(keys));
        doc.insert("connections".into(), connections.into());
    }
    let mut staged = toml::Table::new();
    staged.insert(
        "path".into(),
        staging_path(&dropbox.work(), entity)
            .display()
            .to_string()
            .into(),
    );
    staged.insert("format".into(), "delta".into());
    let mut sources = toml::Table::new();
    sources.insert("staged".into(), staged.into());
    doc.insert("sources".into(), sources.into());
    let mut target = toml::Table::new();
    target.insert("connection".into(), connection.clone().into());
    target.insert("table".into(), entity.into());
    let key = options.key.clone().unwrap_or_default();
    let mode = options
        .mode
        .clone()
        .or_else(|| dropbox.options.mode.clone())
        .unwrap_or_else(|| if key.is_empty() { "insert" } else { "upsert" }.into());
    target.insert("mode".into(), mode.into());
    if !key.is_empty() {
        target.insert(
            "key".into(),
            toml::Value::Array(key.into_iter().map(Into::into).collect()),
        );
    }
    if !is_odata(dropbox) {
        target.insert("create".into(), dropbox.options.create.into());
    }
    if let Some(size) = dropbox.options.batch_size {
        target.insert("batch_size".into(), (size as i64).into());
    }
    if let Some(workers) = dropbox.options.workers {
        target.insert("workers".into(), (workers as i64).into());
    }
    if let Some(company) = options.legal_entity.as_deref().filter(|c| !c.is_empty()) {
        if !is_odata(dropbox) {
            return Err(
                "legal_entity applies to Finance & Operations targets (kind = \"fno\")".into(),
            );
        }
        target.insert("legal_entity".into(), company.into());
    }
    if options.atomic {
        // OData: one changeset of at most 1,000 records. SQL: the entity as one batch, one
        // transaction, refused whole when the database refuses a row of it.
        let limit = if is_odata(dropbox) {
            ATOMIC_LIMIT
        } else {
            SQL_ATOMIC_LIMIT
        };
        if rows > limit {
            return Err(if is_odata(dropbox) {
                format!(
                    "atomic = true: {rows} records do not fit one changeset (at most {ATOMIC_LIMIT}); split the file or remove atomic"
                )
            } else {
                format!(
                    "atomic = true: {rows} rows are more than one transaction of this dropbox takes (at most {SQL_ATOMIC_LIMIT}); split the file or remove atomic"
                )
            });
        }
        target.insert("atomic".into(), true.into());
        target.insert("batch_size".into(), (rows.clamp(1, limit) as i64).into());
        target.insert("workers".into(), 1i64.into());
    }
    doc.insert("target".into(), target.into());
    let body = toml::to_string(&doc).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Written by `ferry dropbox run` for {file} (sha256 {hash}); written again for each file.\n{body}"
    ))
}

/// Writes the entity's pipeline and reads it back as Ferry reads any pipeline file (in the
/// dropbox's environment, when it has one).
pub fn write_pipeline(dropbox: &Dropbox, path: &Path, text: &str) -> Result<Pipeline, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    load_pipeline(dropbox, path)
}

/// An entity's generated pipeline, read in the dropbox's environment when it has one.
pub fn load_pipeline(dropbox: &Dropbox, path: &Path) -> Result<Pipeline, String> {
    Pipeline::load_in(path, dropbox.environment.as_ref()).map_err(|e| e.to_string())
}

/// Runs an entity's pipeline: resumed when an earlier run of the same file did not finish, from
/// the beginning with `overwrite`.
/// The error is the exit code `ferry run` would give (2: the entity or its file is wrong, so running
/// it again cannot help) and the message.
pub async fn run_entity(pipeline: &Pipeline, overwrite: bool) -> Result<RunReport, (u8, String)> {
    let settings = RunSettings {
        progress: true,
        fresh: overwrite,
        confirmed: true,
    };
    crate::run::run(pipeline, &settings)
        .await
        .map_err(|e| (e.exit_code(), e.to_string()))
}

/// The entities in the order they are migrated: `order` (lower first), then the order given, with
/// each entity after those its `after` names. A cycle is an error naming it.
/// An entity given neither `order` nor `after` comes after the entities of the delivery its rows
/// point to: the target's lookups in `$metadata` (OData), its foreign keys (SQL), so that binds and
/// references find them. When the target cannot say, the order stays the files' (the run then
/// says why a row was refused, row by row).
pub async fn order_by_lookups(
    dropbox: &Dropbox,
    entities: &mut [(String, FileOptions)],
    staged: &[super::manifest::Entry],
) {
    let names: Vec<String> = entities.iter().map(|(e, _)| e.clone()).collect();
    for (entity, options) in entities.iter_mut() {
        if options.order.is_some() || !options.after.is_empty() {
            continue;
        }
        let Some(entry) = staged.iter().find(|e| &e.entity == entity) else {
            continue;
        };
        let rows = entry.rows_staged.unwrap_or(0) as u64;
        let parents = async {
            let text =
                pipeline_text(dropbox, entity, &entry.file, &entry.hash, options, rows).ok()?;
            let path = pipeline_path(dropbox, entity);
            let pipeline = write_pipeline(dropbox, &path, &text).ok()?;
            let sink = pipeline
                .target
                .destination
                .sink(pipeline.target.options.clone())
                .ok()?;
            sink.references().await.ok()
        };
        let parents: Vec<String> = parents
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|p| names.contains(p) && p != entity)
            .collect();
        if !parents.is_empty() {
            super::say(&format!(
                "{entity}: after {} ({})",
                parents.join(", "),
                if is_odata(dropbox) {
                    "its lookups in the target's $metadata"
                } else {
                    "its foreign keys in the target"
                }
            ));
            options.after = parents;
        }
    }
}

pub fn in_order(
    entities: Vec<(String, FileOptions)>,
) -> Result<Vec<(String, FileOptions)>, String> {
    let mut left = entities;
    left.sort_by_key(|(_, o)| o.order.unwrap_or(i64::MAX));
    let names: Vec<String> = left.iter().map(|(e, _)| e.clone()).collect();
    let mut done: Vec<(String, FileOptions)> = Vec::new();
    while !left.is_empty() {
        let ready = left.iter().position(|(_, o)| {
            o.after
                .iter()
                .all(|a| !names.contains(a) || done.iter().any(|(d, _)| d == a))
        });
        match ready {
            Some(i) => done.push(left.remove(i)),
            None => {
                let stuck: Vec<String> = left.iter().map(|(e, _)| e.clone()).collect();
                return Err(format!(
                    "the entities {} wait for each other (after): no order lands them",
                    stuck.join(", ")
                ));
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(name: &str, order: Option<i64>, after: &[&str]) -> (String, FileOptions) {
        (
            name.to_string(),
            FileOptions {
                order,
                after: after.iter().map(|a| a.to_string()).collect(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn parents_land_before_the_entities_that_point_to_them() {
        let order = in_order(vec![
            entity("contact", None, &["account"]),
            entity("order", Some(5), &["contact"]),
            entity("account", None, &[]),
            entity("currency", Some(1), &[]),
        ])
        .unwrap();
        let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["currency", "account", "contact", "order"]);
        let cycle = in_order(vec![entity("a", None, &["b"]), entity("b", None, &["a"])]);
        assert!(cycle.unwrap_err().contains("a, b wait for each other"));
    }
}
