//! The jobs page (a jobs folder's schedule in words, its next fires and its last runs as retry
//! chains, from the scheduler's journal) and the dropbox page (the manifest: each dropped file's
//! latest status and figures).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;

use super::html::{Table, escape, page};
use super::{App, failed};
use crate::cli::job_history::chains;
use crate::schedule::journal::Journal;

/// How many of a job's latest retry chains the page shows.
const CHAINS_SHOWN: usize = 5;

pub async fn jobs(State(app): State<Arc<App>>) -> Response {
    let Some(folder) = &app.jobs else {
        return Html(page(
            "Jobs",
            "<p>No jobs folder: start the dashboard with <code>--jobs DIR</code> (or <code>--env NAME</code>).</p>",
        ))
        .into_response();
    };
    let found = match crate::schedule::jobs::read_folder(folder) {
        Ok(f) => f,
        Err(e) => return failed(e),
    };
    let fires = match Journal::new(folder).fires().await {
        Ok(f) => f,
        Err(e) => return failed(e),
    };
    let chains = chains(&fires);
    let now = Utc::now();
    let mut rows = Vec::new();
    for job in &found.jobs {
        let s = &job.schedule;
        let when = match &s.cron {
            Some(cron) => cron.describe(),
            None => String::new(),
        };
        let when = match (when.is_empty(), s.after.is_empty()) {
            (_, true) => when,
            (true, false) => format!("after {}", s.after.join(", ")),
            (false, false) => format!("{when}, after {}", s.after.join(", ")),
        };
        let mut next = Vec::new();
        if let Some(cron) = s.cron.as_ref().filter(|_| s.enabled) {
            let mut t = now;
            for _ in 0..3 {
                match cron.next_after(t) {
                    Some(n) => {
                        next.push(n.format("%Y-%m-%d %H:%M UTC").to_string());
                        t = n;
                    }
                    None => break,
                }
            }
        }
        let last: Vec<String> = chains
            .iter()
            .filter(|g| g[0].job == job.name)
            .take(CHAINS_SHOWN)
            .map(|g| {
                let runs: Vec<String> = g
                    .iter()
                    .map(|f| {
                        let figures = f.figures.as_ref().map_or(String::new(), |x| {
                            format!(
                                ", {} rows",
                                crate::run::report::thousands(x.rows_written.max(0) as u64)
                            )
                        });
                        format!("{} #{} {}{figures}", f.trigger, f.attempt, f.status)
                    })
                    .collect();
                format!(
                    "{}: {}",
                    g[0].scheduled.format("%Y-%m-%d %H:%M"),
                    runs.join(" → ")
                )
            })
            .collect();
        rows.push(vec![
            job.name.clone(),
            if s.enabled { "enabled" } else { "disabled" }.to_string(),
            when,
            next.join("\n"),
            last.join("\n"),
        ]);
    }
    let table = Table {
        columns: [
            "job",
            "state",
            "schedule",
            "next fires",
            "last runs (retry chains)",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    };
    let mut body = format!(
        "<p>Jobs of <code>{}</code>.</p>",
        escape(&folder.display().to_string())
    );
    body.push_str(&table.html(|_, _, _| None));
    if !found.broken.is_empty() {
        body.push_str("<h2>Files that could not be read</h2><ul>");
        for (file, why) in &found.broken {
            body.push_str(&format!(
                "<li><code>{}</code>: {}</li>",
                escape(&file.display().to_string()),
                escape(why)
            ));
        }
        body.push_str("</ul>");
    }
    Html(page("Jobs", &body)).into_response()
}

pub async fn dropbox(State(app): State<Arc<App>>) -> Response {
    let work = std::path::Path::new(&app.state_dir).join("dropbox");
    let entries = match crate::dropbox::manifest::Manifest::new(&work)
        .entries()
        .await
    {
        Ok(e) => e,
        Err(e) => return failed(e),
    };
    let current = crate::dropbox::manifest::latest(&entries);
    // A file's run is its entity pipeline's run (`<dropbox>-<entity>`): found by its id.
    let pipelines: std::collections::HashMap<String, String> =
        match super::tables(&app, &[crate::book::HISTORY]).await {
            Ok(ctx) if ctx.table_exist(crate::book::HISTORY).unwrap_or(false) => {
                crate::run::query_text(&ctx, "SELECT DISTINCT run_id, pipeline FROM history")
                    .await
                    .map(|(_, rows)| {
                        rows.into_iter()
                            .map(|r| (r[0].clone(), r[1].clone()))
                            .collect()
                    })
                    .unwrap_or_default()
            }
            _ => Default::default(),
        };
    let number = |n: Option<i64>| n.map_or(String::new(), |n| n.to_string());
    let table = Table {
        columns: [
            "file",
            "entity",
            "status",
            "at",
            "rows staged",
            "rows written",
            "rows quarantined",
            "run",
            "error",
        ]
        .map(String::from)
        .to_vec(),
        rows: current
            .iter()
            .rev()
            .map(|e| {
                vec![
                    e.file.clone(),
                    e.entity.clone(),
                    e.status.clone(),
                    e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    number(e.rows_staged),
                    number(e.rows_written),
                    number(e.rows_quarantined),
                    e.run_id.clone().unwrap_or_default(),
                    e.error.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    };
    let body = if table.rows.is_empty() {
        "<p>No file dropped yet.</p>".to_string()
    } else {
        table.html(|column, value, _| {
            let pipeline = pipelines.get(value).filter(|_| column == "run")?;
            Some(format!(
                "/runs/{}/{}",
                super::html::path(pipeline),
                super::html::path(value)
            ))
        })
    };
    Html(page("Dropbox", &body)).into_response()
}
