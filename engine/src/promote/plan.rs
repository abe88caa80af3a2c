//! What a promotion would do: each asset compared with the target's (create, update field by
//! field, or leave), the dependencies the target lacks (refused with the command that promotes them
//! first, or added in order with `--with-dependencies`), and no secret anywhere: a catalogue file
//! holding a secret's value instead of a reference is refused before anything is shown.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::environment::{AssetKind, Environment, literal_secrets};

/// What the promotion does to one asset of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Create,
    Update,
    /// The target has it already, the same.
    Unchanged,
}

/// One asset of a promotion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub kind: AssetKind,
    pub name: String,
    pub action: Action,
    /// The target's file before the promotion (`None`: it had none): what a revert restores.
    pub before: Option<String>,
    /// What the promotion writes.
    pub after: String,
    /// The source's file as it was previewed (a job's differs from `after` by `enabled`).
    pub source: String,
    /// Key by key, for an update.
    pub fields: Vec<FieldChange>,
    /// For the person completing it (a job promoted disabled).
    pub notes: Vec<String>,
}

impl Change {
    /// `pipelines/accounts`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.kind.folder(), self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub key: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// What to promote.
#[derive(Debug, Clone)]
pub struct Selection {
    pub kind: AssetKind,
    /// Empty: every asset of the kind in the source.
    pub names: Vec<String>,
    pub with_dependencies: bool,
    /// Jobs arrive enabled (otherwise a new job arrives disabled, an updated one keeps the
    /// target's setting).
    pub enable: bool,
}

/// Compares the selection in `from` with `to`.
pub fn plan(
    from: &Environment,
    to: &Environment,
    selection: &Selection,
) -> Result<Vec<Change>, String> {
    let mut names = selection.names.clone();
    if names.is_empty() {
        names = from.assets(selection.kind);
        if names.is_empty() {
            return Err(format!(
                "environment \"{}\" has no {} ({})",
                from.name,
                selection.kind.folder(),
                from.dir().join(selection.kind.folder()).display()
            ));
        }
    }
    let mut wanted: BTreeSet<(AssetKind, String)> = BTreeSet::new();
    for name in &names {
        if from.asset_text(selection.kind, name)?.is_none() {
            let have = from.assets(selection.kind);
            let hint = crate::spec::did_you_mean(name, have.iter().map(String::as_str))
                .map(|m| format!(": did you mean {m}?"))
                .unwrap_or_else(|| format!(" (it has: {})", have.join(", ")));
            return Err(format!(
                "environment \"{}\" has no {} \"{name}\"{hint}",
                from.name,
                selection.kind.one()
            ));
        }
        wanted.insert((selection.kind, name.clone()));
    }
    // Dependencies the target lacks, followed to the end.
    let mut missing: BTreeMap<(AssetKind, String), String> = BTreeMap::new();
    let mut queue: Vec<(AssetKind, String)> = wanted.iter().cloned().collect();
    while let Some((kind, name)) = queue.pop() {
        let text = from.asset_text(kind, &name)?.unwrap_or_default();
        for (dep_kind, dep) in dependencies(kind, &text) {
            let key = (dep_kind, dep.clone());
            if wanted.contains(&key) || missing.contains_key(&key) {
                continue;
            }
            if to.asset_text(dep_kind, &dep)?.is_some() {
                continue;
            }
            if from.asset_text(dep_kind, &dep)?.is_none() {
                return Err(format!(
                    "{} \"{name}\" needs {} \"{dep}\", which neither \"{}\" nor \"{}\" has",
                    kind.one(),
                    dep_kind.one(),
                    from.name,
                    to.name
                ));
            }
            missing.insert(key.clone(), format!("{} {name}", kind.one()));
            queue.push(key);
        }
    }
    if !missing.is_empty() && !selection.with_dependencies {
        let mut lines = vec![format!(
            "\"{}\" lacks what this needs; promote it first, or add --with-dependencies:",
            to.name
        )];
        let mut by_kind: BTreeMap<AssetKind, Vec<&str>> = BTreeMap::new();
        for ((kind, name), needed_by) in &missing {
            lines.push(format!("  {} {name} (needed by {needed_by})", kind.one()));
            by_kind.entry(*kind).or_default().push(name);
        }
        for (kind, names) in by_kind {
            lines.push(format!(
                "  ferry promote --from {} --to {} {} {}",
                from.name,
                to.name,
                kind.folder(),
                names.join(" ")
            ));
        }
        return Err(lines.join("\n"));
    }
    wanted.extend(missing.into_keys());
    // BTreeSet order: connections, pipelines, jobs, dropbox, then by name.
    let mut changes = Vec::new();
    for (kind, name) in wanted {
        let source = from.asset_text(kind, &name)?.unwrap_or_default();
        let literal = literal_secrets(&source);
        if !literal.is_empty() {
            return Err(format!(
                "{} {name} of \"{}\" has a secret written in it ({}): nothing is promoted. Write a \
                 reference instead (password = \"${{secret.NAME}}\") and keep the value in the \
                 environment's secrets_file or secrets_command",
                kind.one(),
                from.name,
                literal.join("; ")
            ));
        }
        let before = to.asset_text(kind, &name)?;
        let mut notes = Vec::new();
        let after = if kind == AssetKind::Jobs {
            let target_enabled = before.as_deref().map(job_enabled).unwrap_or(false);
            let enabled = selection.enable || target_enabled;
            if !enabled {
                notes.push(format!(
                    "arrives disabled: `ferry jobs {} enable {name}` when it should fire, or promote with --enable",
                    to.dir().join("jobs").display()
                ));
            }
            crate::schedule::jobs::with_enabled(&source, enabled)
        } else {
            source.clone()
        };
        let action = match &before {
            None => Action::Create,
            Some(b) if *b == after => Action::Unchanged,
            Some(_) => Action::Update,
        };
        let fields = match &before {
            Some(b) if action == Action::Update => field_changes(b, &after),
            _ => Vec::new(),
        };
        changes.push(Change {
            kind,
            name,
            action,
            before,
            after,
            source,
            fields,
            notes,
        });
    }
    Ok(changes)
}

/// What an asset needs in the same environment: a pipeline its connections, a job its pipeline
/// and the jobs it runs after, a dropbox its connection.
pub fn dependencies(kind: AssetKind, text: &str) -> Vec<(AssetKind, String)> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let string = |v: Option<&toml::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    let mut out = Vec::new();
    match kind {
        AssetKind::Connections => {}
        AssetKind::Pipelines => {
            let sources = table.get("sources").and_then(|s| s.as_table());
            for source in sources.into_iter().flat_map(|s| s.values()) {
                out.extend(string(source.get("connection")));
            }
            let steps = table.get("steps").and_then(|s| s.as_array());
            for step in steps.into_iter().flatten() {
                out.extend(string(step.get("connection")));
            }
            out.extend(string(
                table.get("target").and_then(|t| t.get("connection")),
            ));
            return dedup(out.into_iter().map(|c| (AssetKind::Connections, c)));
        }
        AssetKind::Jobs => {
            let pipeline = string(table.get("pipeline"));
            let after = table
                .get("schedule")
                .and_then(|s| s.get("after"))
                .and_then(|a| a.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_else(Vec::new);
            return dedup(
                pipeline
                    .map(|p| (AssetKind::Pipelines, p))
                    .into_iter()
                    .chain(after.into_iter().map(|j| (AssetKind::Jobs, j))),
            );
        }
        AssetKind::Dropbox => {
            out.extend(string(
                table.get("dropbox").and_then(|d| d.get("connection")),
            ));
            return dedup(out.into_iter().map(|c| (AssetKind::Connections, c)));
        }
    }
    Vec::new()
}

fn dedup(items: impl Iterator<Item = (AssetKind, String)>) -> Vec<(AssetKind, String)> {
    let set: BTreeSet<_> = items.collect();
    set.into_iter().collect()
}

/// A job file's `[schedule] enabled` (true when not written, as the scheduler reads it).
fn job_enabled(text: &str) -> bool {
    text.parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("schedule")?.get("enabled")?.as_bool())
        .unwrap_or(true)
}

/// The keys whose values differ, as dotted paths (`target.mode`, `steps.1.sql`).
pub fn field_changes(before: &str, after: &str) -> Vec<FieldChange> {
    let flat = |text: &str| {
        let mut out = BTreeMap::new();
        if let Ok(table) = text.parse::<toml::Table>() {
            flatten("", &toml::Value::Table(table), &mut out);
        }
        out
    };
    let (old, new) = (flat(before), flat(after));
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| FieldChange {
            key: k.clone(),
            before: old.get(k).cloned(),
            after: new.get(k).cloned(),
        })
        .collect()
}

fn flatten(path: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                flatten(&join(k), v, out);
            }
        }
        toml::Value::Array(items) if items.iter().any(|i| i.is_table()) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&join(&(i + 1).to_string()), v, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(path.to_string(), s.clone());
        }
        other => {
            out.insert(path.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_of_each_kind() {
        let pipeline = "name = \"a\"\n[sources.s]\nconnection = \"src\"\ntable = \"t\"\n[[steps]]\nname = \"x\"\nsql = \"select 1\"\nconnection = \"src\"\n[target]\nconnection = \"crm\"\ntable = \"t\"\n";
        assert_eq!(
            dependencies(AssetKind::Pipelines, pipeline),
            vec![
                (AssetKind::Connections, "crm".to_string()),
                (AssetKind::Connections, "src".to_string())
            ]
        );
        let job = "pipeline = \"a\"\n[schedule]\nafter = [\"b\"]\n";
        assert_eq!(
            dependencies(AssetKind::Jobs, job),
            vec![
                (AssetKind::Pipelines, "a".to_string()),
                (AssetKind::Jobs, "b".to_string())
            ]
        );
    }

    #[test]
    fn fields_are_compared_key_by_key() {
        let before = "name = \"a\"\n[target]\nmode = \"insert\"\ntable = \"t\"\n[[steps]]\nsql = \"select 1\"\n";
        let after = "name = \"a\"\n[target]\nmode = \"upsert\"\nkey = \"id\"\ntable = \"t\"\n[[steps]]\nsql = \"select 2\"\n";
        let changes = field_changes(before, after);
        let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["steps.1.sql", "target.key", "target.mode"]);
        assert_eq!(changes[2].before.as_deref(), Some("insert"));
        assert_eq!(changes[1].before, None);
    }
}
