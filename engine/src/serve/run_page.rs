//! The run page: the run's figures, rows/s over time, a timeline of its batches per partition,
//! batch latency percentiles, retries and 429s over time, its errors grouped by cause and its
//! batches, failing first (the drill-down to quarantine). While the run is `Running` the page
//! subscribes to `/runs/{name}/{run}/live`, server-sent events carrying the same section rendered
//! again every two seconds, until the run ends; without JavaScript the page is complete as loaded.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionContext, col, lit};
use futures::Stream;

use super::charts::{self, Series, Span};
use super::html::{self, Table, escape, page};
use super::{App, failed, tables};
use crate::book::{HISTORY, LOG};

/// How often a live page is sent the run again.
const LIVE_EVERY: Duration = Duration::from_secs(2);

pub async fn run(
    State(app): State<Arc<App>>,
    Path((name, run_id)): Path<(String, String)>,
) -> Response {
    match section(&app, &name, &run_id).await {
        Ok((body, running)) => {
            let live = if running {
                // Replaces the section with each event; reloads once the run has ended.
                "<script>(function(){var s=new EventSource(location.pathname+'/live'+location.search);\
                 s.onmessage=function(e){document.getElementById('run').innerHTML=e.data;};\
                 s.addEventListener('ended',function(){s.close();location.reload();});})();</script>"
                    .to_string()
            } else {
                String::new()
            };
            let body = format!(
                "<p><a href=\"/pipelines/{}\">{}</a></p><div id=\"run\">{body}</div>{live}",
                html::path(&name),
                escape(&name),
            );
            Html(page(&format!("Run {run_id} of {name}"), &body)).into_response()
        }
        Err(e) => failed(e),
    }
}

/// Server-sent events: the run's section every two seconds while it runs, then `ended`.
pub async fn live(
    State(app): State<Arc<App>>,
    Path((name, run_id)): Path<(String, String)>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold(true, move |going| {
        let (app, name, run_id) = (app.clone(), name.clone(), run_id.clone());
        async move {
            if !going {
                return None;
            }
            tokio::time::sleep(LIVE_EVERY).await;
            Some(match section(&app, &name, &run_id).await {
                Ok((body, true)) => (Ok(Event::default().data(body)), true),
                // (An event without data is never dispatched by a browser.)
                Ok((_, false)) => (Ok(Event::default().event("ended").data("ended")), false),
                Err(e) => (Ok(Event::default().event("ended").data(&e)), false),
            })
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// One batch of the run, as the charts need it.
struct Batch {
    partition: i32,
    batch: i32,
    /// Seconds since the run started.
    end: f64,
    write_time: f64,
    rows: f64,
    severity: i32,
    retries: f64,
    throttled: f64,
}

/// The run's section, and whether it is still running.
async fn section(app: &App, name: &str, run_id: &str) -> Result<(String, bool), String> {
    let ctx = tables(app, &[HISTORY, LOG]).await?;
    render(&ctx, name, run_id).await.map_err(|e| e.to_string())
}

async fn render(
    ctx: &SessionContext,
    name: &str,
    run_id: &str,
) -> Result<(String, bool), DataFusionError> {
    if !ctx.table_exist(HISTORY)? {
        return Ok(("<p>No run yet.</p>".into(), false));
    }
    let history = ctx
        .table(HISTORY)
        .await?
        .filter(col("pipeline").eq(lit(name)))?
        .filter(col("run_id").eq(lit(run_id)))?;
    ctx.register_table("this_run", history.into_view())?;
    let summary = Table::query(
        ctx,
        "SELECT status, attempt, CAST(start AS VARCHAR) AS started, CAST(\"end\" AS VARCHAR) AS ended, \
         rows_read, rows_written, rows_rejected, CAST(round(rows_per_second) AS BIGINT) AS rows_per_second, \
         CAST(CAST(start AS BIGINT) AS VARCHAR) AS start_us, error FROM this_run",
    )
    .await?;
    let Some(first) = summary.rows.first() else {
        return Ok((format!("<p>No run {} here.</p>", escape(run_id)), false));
    };
    let status = first[0].clone();
    let start_us: f64 = first[8].parse().unwrap_or(0.0);
    let running = status == "Running";
    if !ctx.table_exist(LOG)? {
        let shown = shown_summary(&summary);
        return Ok((
            format!(
                "{}<p>No batch recorded yet.</p>",
                shown.html(|_, _, _| None)
            ),
            running,
        ));
    }
    let log = ctx.table(LOG).await?;
    // Logs written before the retries and throttled columns existed have neither.
    let has = |c: &str| log.schema().has_column_with_unqualified_name(c);
    let (retries, throttled) = (
        if has("retries") {
            "coalesce(retries, 0)"
        } else {
            "0"
        },
        if has("throttled") {
            "coalesce(throttled, 0)"
        } else {
            "0"
        },
    );
    // The run's log rows read once (one scan of the log), then queried three times in memory.
    let log = log
        .filter(col("pipeline").eq(lit(name)))?
        .filter(col("run_id").eq(lit(run_id)))?;
    let schema = std::sync::Arc::new(log.schema().as_arrow().clone());
    let rows = log.collect().await?;
    ctx.register_table(
        "batches",
        std::sync::Arc::new(datafusion::datasource::MemTable::try_new(
            schema,
            vec![rows],
        )?),
    )?;
    let (_, rows) = crate::run::query_text(
        ctx,
        &format!(
            "SELECT partition_id, batch_id, CAST(time AS BIGINT), write_time, rows_written, severity, \
             {retries}, {throttled} FROM batches"
        ),
    )
    .await?;
    let number = |v: &String| v.parse::<f64>().unwrap_or(0.0);
    let batches: Vec<Batch> = rows
        .iter()
        .map(|r| Batch {
            partition: number(&r[0]) as i32,
            batch: number(&r[1]) as i32,
            end: (number(&r[2]) - start_us) / 1e6,
            write_time: number(&r[3]),
            rows: number(&r[4]),
            severity: number(&r[5]) as i32,
            retries: number(&r[6]),
            throttled: number(&r[7]),
        })
        .collect();
    let causes = Table::query(
        ctx,
        "SELECT coalesce(cause, 'other') AS cause, count(*) AS batches, sum(rows_rejected) AS rows_rejected, \
         min(error) AS example FROM batches WHERE severity > 0 GROUP BY coalesce(cause, 'other') ORDER BY batches DESC",
    )
    .await?;
    let listed = Table::query(
        ctx,
        &format!(
            "SELECT partition_id, batch_id, attempt, batch_size, rows_written, rows_skipped, rows_rejected, \
             write_time, {retries} AS retries, {throttled} AS throttled, quarantine_table, error FROM batches \
             ORDER BY severity DESC, time, partition_id, batch_id LIMIT 1000"
        ),
    )
    .await?;
    let quarantine_link = |column: &str, value: &str, _: &[String]| {
        // The log names it by its folder: quarantine/<table>.
        let table = value.strip_prefix("quarantine/").unwrap_or(value);
        (column == "quarantine_table" && !table.is_empty())
            .then(|| format!("/quarantine/{}", html::path(table)))
    };
    let partial = if status == "Partial Success" {
        let rejected: f64 = first[6].parse().unwrap_or(0.0);
        let written: f64 = first[5].parse().unwrap_or(0.0);
        format!(
            "<p class=\"partial\">Partial Success: {} rows written, {} rejected and kept in quarantine \
             (below, by cause; each batch links to its rows). Correct them in the workbook and retry them.</p>",
            charts::figure(written),
            charts::figure(rejected)
        )
    } else {
        String::new()
    };
    let body = format!(
        "{}{partial}{}<h2>Errors by cause</h2>{}<h2>Batches (failing first)</h2>{}",
        shown_summary(&summary).html(|_, _, _| None),
        figures(&batches, running),
        if causes.rows.is_empty() {
            "<p>None.</p>".to_string()
        } else {
            causes.html(|_, _, _| None)
        },
        listed.html(quarantine_link)
    );
    Ok((body, running))
}

/// The summary without the column the charts use.
fn shown_summary(summary: &Table) -> Table {
    let keep: Vec<usize> = (0..summary.columns.len())
        .filter(|&i| summary.columns[i] != "start_us")
        .collect();
    Table {
        columns: keep.iter().map(|&i| summary.columns[i].clone()).collect(),
        rows: summary
            .rows
            .iter()
            .map(|r| keep.iter().map(|&i| r[i].clone()).collect())
            .collect(),
    }
}

/// The run's figures and charts from its batches.
fn figures(batches: &[Batch], running: bool) -> String {
    if batches.is_empty() {
        return "<p>No batch recorded yet.</p>".into();
    }
    let span = batches.iter().map(|b| b.end).fold(0.0, f64::max).max(0.001);
    let count = 60.min(batches.len().max(10));
    let width = span / count as f64;
    let written: f64 = batches.iter().map(|b| b.rows).sum();
    let retries: f64 = batches.iter().map(|b| b.retries).sum();
    let throttled: f64 = batches.iter().map(|b| b.throttled).sum();
    let mut latencies: Vec<f64> = batches.iter().map(|b| b.write_time).collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let rows_per_second = charts::buckets(
        &batches.iter().map(|b| (b.end, b.rows)).collect::<Vec<_>>(),
        span,
        count,
    )
    .into_iter()
    .map(|rows| rows / width)
    .collect();
    let over_time = |f: fn(&Batch) -> f64| {
        charts::buckets(
            &batches.iter().map(|b| (b.end, f(b))).collect::<Vec<_>>(),
            span,
            count,
        )
    };
    let spans: Vec<Span> = batches
        .iter()
        .map(|b| Span {
            partition: b.partition,
            batch: b.batch,
            start: b.end - b.write_time,
            end: b.end,
            severity: b.severity,
        })
        .collect();
    format!(
        "<p id=\"figures\"><span id=\"batches\">{}</span> batches, <span id=\"written\">{}</span> rows written{}; \
         batch latency p50 <span id=\"p50\">{}</span> s, p90 {} s, p99 {} s, max {} s; \
         <span id=\"retries\">{}</span> retries, <span id=\"throttled\">{}</span> throttled (429).</p>{}{}{}",
        charts::figure(batches.len() as f64),
        charts::figure(written),
        if running { " so far" } else { "" },
        charts::figure(at(0.5)),
        charts::figure(at(0.9)),
        charts::figure(at(0.99)),
        charts::figure(at(1.0)),
        charts::figure(retries),
        charts::figure(throttled),
        charts::bars(
            "Rows written per second",
            "rows/s",
            span,
            &[Series {
                name: "rows/s",
                colour: "#36c",
                values: rows_per_second
            }],
        ),
        charts::gantt("Batches per partition over time", &spans, span),
        charts::bars(
            "Retries and throttled requests (429) over time",
            "count",
            span,
            &[
                Series {
                    name: "retries",
                    colour: "#e80",
                    values: over_time(|b| b.retries)
                },
                Series {
                    name: "429",
                    colour: "#c33",
                    values: over_time(|b| b.throttled)
                },
            ],
        ),
    )
}
