//! A promotion as people read it: the change summary on the terminal and as Markdown, the same as
//! JSON for scripts, and the history list. Values shown are the catalogue's, which hold secrets
//! only as references.

use super::plan::{Action, Change};
use super::record::Promotion;

/// The change summary for a terminal.
pub fn text(p: &Promotion) -> String {
    let mut out = vec![format!(
        "promotion {} \"{}\": {} -> {} ({}), {}",
        p.id,
        p.title,
        p.from,
        p.to,
        p.kinds.join(", "),
        p.status
    )];
    let count = |a: Action| p.changes.iter().filter(|c| c.action == a).count();
    out.push(format!(
        "  {} to create, {} to update, {} unchanged",
        count(Action::Create),
        count(Action::Update),
        count(Action::Unchanged)
    ));
    for change in &p.changes {
        out.push(format!("  {:<9} {}", verb(change), change.label()));
        for field in &change.fields {
            out.push(format!(
                "              {}: {} -> {}",
                field.key,
                shown(field.before.as_deref()),
                shown(field.after.as_deref())
            ));
        }
        for note in &change.notes {
            out.push(format!("              note: {note}"));
        }
    }
    out.join("\n")
}

fn verb(change: &Change) -> &'static str {
    match change.action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Unchanged => "unchanged",
    }
}

/// A value in one line: long SQL is cut, a missing key says so.
fn shown(value: Option<&str>) -> String {
    match value {
        None => "(none)".into(),
        Some(v) => {
            let one_line = v.split_whitespace().collect::<Vec<_>>().join(" ");
            if one_line.chars().count() > 60 {
                format!("\"{}...\"", one_line.chars().take(57).collect::<String>())
            } else {
                format!("\"{one_line}\"")
            }
        }
    }
}

/// The change summary as a Markdown document (downloadable, attachable to a change ticket).
pub fn markdown(p: &Promotion) -> String {
    let mut out = vec![
        format!("# Promotion {}: {}", p.id, p.title),
        String::new(),
        format!("- From **{}** to **{}**", p.from, p.to),
        format!("- Asset types: {}", p.kinds.join(", ")),
        format!("- Status: {}", p.status),
        format!("- By: {} (OS user {})", p.who, p.os_user),
        format!("- Created: {}", p.created.to_rfc3339()),
        String::new(),
        "| action | asset | field | before | after |".into(),
        "|---|---|---|---|---|".into(),
    ];
    let cell = |v: Option<&str>| shown(v).replace('|', "\\|");
    for change in &p.changes {
        if change.fields.is_empty() {
            out.push(format!("| {} | {} | | | |", verb(change), change.label()));
        }
        for f in &change.fields {
            out.push(format!(
                "| {} | {} | {} | {} | {} |",
                verb(change),
                change.label(),
                f.key,
                cell(f.before.as_deref()),
                cell(f.after.as_deref())
            ));
        }
    }
    let notes: Vec<String> = p
        .changes
        .iter()
        .flat_map(|c| c.notes.iter().map(move |n| format!("- {}: {n}", c.label())))
        .chain(p.warnings.iter().map(|w| format!("- warning: {w}")))
        .chain(p.guidance.iter().map(|g| format!("- {g}")))
        .collect();
    if !notes.is_empty() {
        out.push(String::new());
        out.push("## Notes".into());
        out.extend(notes);
    }
    if !p.steps.is_empty() {
        out.push(String::new());
        out.push("## Steps".into());
        for (i, s) in p.steps.iter().enumerate() {
            out.push(format!(
                "{}. {} — {}{}",
                i + 1,
                s.name,
                s.status,
                s.detail
                    .as_ref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ));
        }
    }
    out.join("\n") + "\n"
}

/// The promotion for scripts: everything but the files' whole texts (which the history keeps).
pub fn json(p: &Promotion) -> serde_json::Value {
    serde_json::json!({
        "id": p.id,
        "title": p.title,
        "from": p.from,
        "to": p.to,
        "kinds": p.kinds,
        "status": p.status.to_string(),
        "who": p.who,
        "os_user": p.os_user,
        "created": p.created.to_rfc3339(),
        "ended": p.ended.map(|t| t.to_rfc3339()),
        "changes": p.changes.iter().map(|c| serde_json::json!({
            "asset": c.label(),
            "action": verb(c),
            "fields": c.fields,
            "notes": c.notes,
        })).collect::<Vec<_>>(),
        "steps": p.steps,
        "warnings": p.warnings,
        "guidance": p.guidance,
        "log_file": p.log_file,
        "comments": p.comments.iter().filter(|c| !c.deleted).collect::<Vec<_>>(),
        "reverted": p.revert.as_ref().map(|r| serde_json::json!({"who": r.who, "at": r.at.to_rfc3339(), "warnings": r.warnings, "log_file": r.log_file})),
    })
}

/// One line a promotion, newest first.
pub fn history(all: &[Promotion]) -> String {
    let mut out = vec![format!(
        "{:>4}  {:<11}  {:<16}  {:<12}  {:<10}  {}",
        "id", "status", "when", "from -> to", "who", "title / assets"
    )];
    for p in all.iter().rev() {
        out.push(format!(
            "{:>4}  {:<11}  {:<16}  {:<12}  {:<10}  {} ({})",
            p.id,
            p.status.to_string(),
            p.created.format("%Y-%m-%d %H:%M"),
            format!("{} -> {}", p.from, p.to),
            p.who,
            p.title,
            p.assets()
        ));
    }
    out.join("\n")
}

/// One promotion in full: the summary, steps, warnings, guidance, comments, files.
pub fn show(p: &Promotion) -> String {
    let mut out = vec![text(p)];
    out.push(format!(
        "  by {} (OS user {}), created {}{}",
        p.who,
        p.os_user,
        p.created.format("%Y-%m-%d %H:%M:%S UTC"),
        p.ended
            .map(|e| format!(", ended {}", e.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default()
    ));
    if !p.steps.is_empty() {
        out.push("  steps:".into());
        out.extend(p.steps.iter().map(step_line));
    }
    out.extend(p.warnings.iter().map(|w| format!("  warning: {w}")));
    out.extend(p.guidance.iter().map(|g| format!("  next: {g}")));
    if let Some(r) = &p.revert {
        out.push(format!(
            "  reverted by {} at {}:",
            r.who,
            r.at.format("%Y-%m-%d %H:%M:%S UTC")
        ));
        out.extend(r.steps.iter().map(step_line));
        out.extend(r.warnings.iter().map(|w| format!("  warning: {w}")));
    }
    for c in p.comments.iter().filter(|c| !c.deleted) {
        out.push(format!(
            "  comment {} by {} at {}: {}",
            c.number,
            c.who,
            c.at.format("%Y-%m-%d %H:%M"),
            c.text
        ));
    }
    if let Some(log) = &p.log_file {
        out.push(format!("  log: {}", log.display()));
    }
    out.join("\n")
}

/// `    Success  Create connection crm`.
pub fn step_line(s: &super::record::Step) -> String {
    format!(
        "    {:<8} {}{}",
        s.status.to_string(),
        s.name,
        s.detail
            .as_ref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default()
    )
}
