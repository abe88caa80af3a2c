//! `ferry serve`: a read-only dashboard of a state dir's bookkeeping, in the same binary, as
//! server-rendered HTML with charts drawn as SVG (nothing fetched from elsewhere; the tables and
//! charts need no JavaScript, a running run's page updates itself by server-sent events): the
//! overview of pipelines with the failing ones first, a pipeline's runs, a run's figures, charts,
//! errors grouped by cause and batches (failing first), a quarantine table's rows with the workbook
//! to download, the jobs, the dropbox and the promotions. It reads the Delta tables with DataFusion
//! (projection and predicates pushed down), binds 127.0.0.1 by default, and any other address needs
//! a token.
//!
//! ```text
//! /                           pipelines: latest run, status, progress, rows, throughput; quarantine
//! /pipelines/{name}           its runs, newest first
//! /runs/{name}/{run}          the run: figures, charts, errors by cause, batches     /live: its events
//! /quarantine/{table}         unresolved rows with their errors      .xlsx: the workbook
//! /jobs                       schedules in words, next fires, last runs (with --jobs or --env)
//! /dropbox                    the manifest of dropped files (a dropbox's state dir)
//! /promotions                 the project's promotions (with a project)   /promotions/{id}: one
//! ```

mod charts;
mod html;
mod run_page;
mod schedule_page;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use datafusion::prelude::{SessionContext, col, lit};

use self::html::{Table, escape, page};
use crate::book::{Book, HISTORY, LOG};

/// What the server reads and who may.
#[derive(Debug, Clone)]
pub struct App {
    pub state_dir: String,
    /// Required of every request (`Authorization: Bearer` or `?token=`) when set.
    pub token: Option<String>,
    /// The project folder, whose promotions are shown, when there is one.
    pub project: Option<std::path::PathBuf>,
    /// The jobs folder whose schedule and journal the jobs page shows.
    pub jobs: Option<std::path::PathBuf>,
}

/// Serves `app` on `addr` until Ctrl-C; prints the address it listens on first.
pub async fn serve(app: App, addr: SocketAddr) -> Result<(), String> {
    if !addr.ip().is_loopback() && app.token.is_none() {
        return Err(format!(
            "{addr} is reachable from other machines: give a token (--token, or FERRY_SERVE_TOKEN) that every request must carry"
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "serving {} on http://{bound}/ (Ctrl-C stops)",
        app.state_dir
    );
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

/// The dashboard's routes.
pub fn router(app: App) -> Router {
    let app = Arc::new(app);
    Router::new()
        .route("/", get(overview))
        .route("/pipelines/{name}", get(pipeline))
        .route("/runs/{name}/{run}", get(run_page::run))
        .route("/runs/{name}/{run}/live", get(run_page::live))
        .route("/jobs", get(schedule_page::jobs))
        .route("/dropbox", get(schedule_page::dropbox))
        .route("/quarantine/{table}", get(quarantine))
        .route("/promotions", get(promotions))
        .route("/promotions/{id}", get(promotion))
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Refuses a request without the token, when there is one.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Some(token) = &app.token {
        let bearer = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let query = request.uri().query().unwrap_or("");
        let in_query = query
            .split('&')
            .any(|pair| pair.strip_prefix("token=") == Some(token.as_str()));
        if bearer != Some(token.as_str()) && !in_query {
            return (StatusCode::UNAUTHORIZED, "a token is required").into_response();
        }
    }
    next.run(request).await
}

/// The state dir's tables `names` that exist, registered under their names (each one opened is its
/// Delta log read: a page opens only what it shows).
async fn tables(app: &App, names: &[&str]) -> Result<SessionContext, String> {
    let ctx = SessionContext::new();
    let book = Book::reader(&app.state_dir);
    for &name in names {
        if let Some(df) = book
            .frame(name, "pipeline")
            .await
            .map_err(|e| e.to_string())?
        {
            ctx.register_table(name, df.into_view())
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(ctx)
}

fn failed(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(page("error", &format!("<p>{}</p>", escape(&e.to_string())))),
    )
        .into_response()
}

async fn overview(State(app): State<Arc<App>>) -> Response {
    let ctx = match tables(&app, &[HISTORY]).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let mut body = nav(&app);
    if ctx.table_exist(HISTORY).unwrap_or(false) {
        // The latest run of each pipeline, failing first; a running one's rows so far from its log.
        let sql = "SELECT pipeline, status, run_id AS run, CAST(start AS VARCHAR) AS started, rows_read AS expected, \
                   rows_written AS written, rows_rejected AS quarantined, \
                   CAST(round(rows_per_second) AS BIGINT) AS rows_per_second, error FROM \
                   (SELECT *, row_number() OVER (PARTITION BY pipeline ORDER BY start DESC) AS latest FROM history) \
                   WHERE latest = 1 ORDER BY CASE status WHEN 'Failed' THEN 0 WHEN 'Partial Success' THEN 1 \
                   WHEN 'Stopped' THEN 2 WHEN 'Running' THEN 3 ELSE 4 END, pipeline";
        let mut t = match Table::query(&ctx, sql).await {
            Ok(t) => t,
            Err(e) => return failed(e),
        };
        if let Err(e) = written_so_far(&app, &mut t).await {
            return failed(e);
        }
        progress_column(&mut t);
        body.push_str(&t.html_with(
            |column, value, row| match column {
                "pipeline" => Some(format!("/pipelines/{}", html::path(value))),
                "run" => Some(format!(
                    "/runs/{}/{}",
                    html::path(&row[0]),
                    html::path(value)
                )),
                _ => None,
            },
            |column| column == "progress",
        ));
    } else {
        body.push_str("<p>No run yet.</p>");
    }
    let quarantined = Book::reader(&app.state_dir).quarantine_tables();
    if !quarantined.is_empty() {
        body.push_str("<h2>Quarantine</h2><ul>");
        for table in quarantined {
            body.push_str(&format!(
                "<li><a href=\"/quarantine/{}\">{}</a></li>",
                html::path(&table),
                escape(&table)
            ));
        }
        body.push_str("</ul>");
    }
    Html(page(&format!("Ferry: {}", app.state_dir), &body)).into_response()
}

/// Links to the pages this dashboard has beyond the overview.
fn nav(app: &App) -> String {
    let mut links = Vec::new();
    if app.jobs.is_some() {
        links.push("<a href=\"/jobs\">Jobs</a>");
    }
    if std::path::Path::new(&app.state_dir)
        .join("dropbox/manifest")
        .exists()
    {
        links.push("<a href=\"/dropbox\">Dropbox</a>");
    }
    if app.project.is_some() {
        links.push("<a href=\"/promotions\">Promotions</a>");
    }
    if links.is_empty() {
        String::new()
    } else {
        format!("<nav>{}</nav>", links.join(" · "))
    }
}

/// A running run's history row has no figures until it ends: its rows so far are its log's.
async fn written_so_far(app: &App, t: &mut Table) -> Result<(), String> {
    if !t
        .rows
        .iter()
        .any(|r| r.get(1).is_some_and(|s| s == "Running"))
    {
        return Ok(());
    }
    let ctx = tables(app, &[LOG]).await?;
    log_sums(&ctx, t).await.map_err(|e| e.to_string())
}

async fn log_sums(ctx: &SessionContext, t: &mut Table) -> datafusion::error::Result<()> {
    if !ctx.table_exist(LOG)? {
        return Ok(());
    }
    let at = |name: &str| {
        t.columns
            .iter()
            .position(|c| c == name)
            .expect("a column of the query")
    };
    let (pipeline, status, run, written, rejected) = (
        at("pipeline"),
        at("status"),
        at("run"),
        at("written"),
        at("quarantined"),
    );
    for row in t.rows.iter_mut().filter(|r| r[status] == "Running") {
        let sums = ctx
            .table(LOG)
            .await?
            .filter(col("pipeline").eq(lit(row[pipeline].clone())))?
            .filter(col("run_id").eq(lit(row[run].clone())))?
            .aggregate(
                vec![],
                vec![
                    datafusion::functions_aggregate::sum::sum(col("rows_written")).alias("w"),
                    datafusion::functions_aggregate::sum::sum(col("rows_rejected")).alias("r"),
                ],
            )?
            .collect()
            .await?;
        if let Some(b) = sums.first().filter(|b| b.num_rows() == 1) {
            for (i, target) in [(0, written), (1, rejected)] {
                row[target] = arrow::util::display::array_value_to_string(b.column(i), 0)?;
                if row[target].is_empty() {
                    row[target] = "0".into();
                }
            }
        }
    }
    Ok(())
}

/// Adds a progress bar of written (and quarantined) rows against the rows the run read.
fn progress_column(t: &mut Table) {
    let at = |name: &str| t.columns.iter().position(|c| c == name);
    let (Some(expected), Some(written), Some(rejected), Some(status)) = (
        at("expected"),
        at("written"),
        at("quarantined"),
        at("status"),
    ) else {
        return;
    };
    t.columns.insert(written + 1, "progress".into());
    for row in &mut t.rows {
        let number = |i: usize| row[i].parse::<u64>().unwrap_or(0);
        let (e, w, r) = (number(expected), number(written), number(rejected));
        let bar = if row[status] == "Running" || e == 0 {
            // Not known until the sources are read to their end.
            "<progress></progress>".to_string()
        } else {
            let done = (w + r).min(e);
            format!(
                "<progress value=\"{done}\" max=\"{e}\" title=\"{:.0}%\"></progress> {:.0}%",
                done as f64 * 100.0 / e as f64,
                done as f64 * 100.0 / e as f64
            )
        };
        row.insert(written + 1, bar);
    }
}

async fn pipeline(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    let ctx = match tables(&app, &[HISTORY]).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let runs = async {
        let df = ctx
            .table(HISTORY)
            .await?
            .filter(col("pipeline").eq(lit(name.clone())))?
            .sort(vec![col("start").sort(false, false)])?
            .limit(0, Some(200))?;
        ctx.register_table("runs", df.into_view())?;
        Table::query(
            &ctx,
            "SELECT run_id, status, attempt, CAST(start AS VARCHAR) AS started, duration, rows_read, \
             rows_written, rows_rejected, CAST(round(rows_per_second) AS BIGINT) AS rows_per_second, error FROM runs",
        )
        .await
    };
    match runs.await {
        Ok(t) => {
            let body = t.html(|column, value, _| {
                (column == "run_id")
                    .then(|| format!("/runs/{}/{}", html::path(&name), html::path(value)))
            });
            Html(page(&format!("Pipeline {name}"), &body)).into_response()
        }
        Err(e) => failed(e),
    }
}

/// `?cause=TEXT` on a quarantine page: only the rows of that cause.
#[derive(serde::Deserialize)]
struct CauseFilter {
    cause: Option<String>,
}

async fn quarantine(
    State(app): State<Arc<App>>,
    Path(table): Path<String>,
    Query(filter): Query<CauseFilter>,
) -> Response {
    let book = Book::reader(&app.state_dir);
    if let Some(table) = table.strip_suffix(".xlsx") {
        return workbook(&book, table).await;
    }
    let rejected = match book.rejected(&table).await {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let mut columns = vec!["error".to_string(), "cause".to_string()];
    columns.extend(rejected.schema.fields().iter().map(|f| f.name().clone()));
    // Each cause with its rows, as links that filter the table.
    let mut causes: Vec<(String, usize)> = Vec::new();
    for cause in &rejected.causes {
        match causes.iter_mut().find(|(c, _)| c == cause) {
            Some((_, n)) => *n += 1,
            None => causes.push((cause.clone(), 1)),
        }
    }
    causes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let rows: Vec<Vec<String>> =
        (0..rejected.rows.num_rows())
            .filter(|&i| {
                filter
                    .cause
                    .as_ref()
                    .is_none_or(|c| *c == rejected.causes[i])
            })
            .map(|i| {
                let mut row = vec![rejected.errors[i].clone(), rejected.causes[i].clone()];
                row.extend(rejected.rows.columns().iter().map(|c| {
                    arrow::util::display::array_value_to_string(c, i).unwrap_or_default()
                }));
                row
            })
            .collect();
    let here = format!("/quarantine/{}", html::path(&table));
    let mut by_cause = format!("<p class=\"causes\">By cause: <a href=\"{here}\">all</a>");
    for (cause, n) in &causes {
        by_cause.push_str(&format!(
            " · <a href=\"{here}?cause={}\">{}</a> ({n})",
            html::path(cause),
            escape(cause)
        ));
    }
    by_cause.push_str("</p>");
    let body = format!(
        "<p>{} unresolved rows{}. <a href=\"/quarantine/{}.xlsx\">Download the workbook</a> (correct it, then \
         <code>ferry quarantine retry PIPELINE {} --from it.xlsx</code>).</p>{by_cause}{}",
        rows.len(),
        filter.cause.as_ref().map_or(String::new(), |c| format!(
            " whose cause is \"{}\"",
            escape(c)
        )),
        html::path(&table),
        escape(&table),
        Table { columns, rows }.html(|_, _, _| None)
    );
    Html(page(&format!("Quarantine {table}"), &body)).into_response()
}

async fn promotions(State(app): State<Arc<App>>) -> Response {
    let Some(project) = &app.project else {
        return Html(page(
            "Promotions",
            "<p>No project here (environments.toml): no promotions.</p>",
        ))
        .into_response();
    };
    let all = match crate::promote::record::Store::new(project).all().await {
        Ok(all) => all,
        Err(e) => return failed(e),
    };
    let table = Table {
        columns: [
            "id", "status", "created", "from", "to", "who", "title", "assets",
        ]
        .map(String::from)
        .to_vec(),
        rows: all
            .iter()
            .rev()
            .map(|p| {
                vec![
                    p.id.to_string(),
                    p.status.to_string(),
                    p.created.format("%Y-%m-%d %H:%M").to_string(),
                    p.from.clone(),
                    p.to.clone(),
                    p.who.clone(),
                    p.title.clone(),
                    p.assets(),
                ]
            })
            .collect(),
    };
    let body = if table.rows.is_empty() {
        "<p>No promotion yet.</p>".to_string()
    } else {
        table.html(|column, value, _| (column == "id").then(|| format!("/promotions/{value}")))
    };
    Html(page("Promotions", &body)).into_response()
}

async fn promotion(State(app): State<Arc<App>>, Path(id): Path<i64>) -> Response {
    let Some(project) = &app.project else {
        return (StatusCode::NOT_FOUND, "no project here").into_response();
    };
    match crate::promote::record::Store::new(project).get(id).await {
        Ok(p) => {
            let body = format!(
                "<p><a href=\"/promotions\">Promotions</a></p><pre>{}</pre>",
                escape(&crate::promote::report::show(&p))
            );
            Html(page(&format!("Promotion {id}: {}", p.title), &body)).into_response()
        }
        Err(e) => (
            StatusCode::NOT_FOUND,
            Html(page(
                "Promotion",
                &format!("<p>{}</p>", escape(&e.to_string())),
            )),
        )
            .into_response(),
    }
}

/// The quarantine workbook, as `ferry quarantine export` writes it.
async fn workbook(book: &Book, table: &str) -> Response {
    let rejected = match book.rejected(table).await {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let file = std::env::temp_dir().join(format!(
        "ferry-serve-{}-{}.xlsx",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let bytes = crate::book::quarantine::export_xlsx(&rejected, &file)
        .map_err(|e| e.to_string())
        .and_then(|()| std::fs::read(&file).map_err(|e| e.to_string()));
    let _ = std::fs::remove_file(&file);
    match bytes {
        Ok(bytes) => (
            [
                (
                    header::CONTENT_TYPE,
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{table}.quarantine.xlsx\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => failed(e),
    }
}
