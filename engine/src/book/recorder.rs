//! The log and quarantine writer: workers hand it rows, it commits them in groups (every couple of
//! seconds, or sooner when many are waiting), so that bookkeeping costs one Delta commit per group, not
//! per batch. Quarantined rows are committed before the log rows that account for them.
//!
//! A crash loses at most the last group: those batches are written again on resume, which keyed
//! writes make harmless.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use ferry_connectors::ConnectorError;
use ferry_connectors::failpoint::pause_point;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::tables::{LogRow, log_batch};
use super::{Book, LOG};

const FLUSH_EVERY: Duration = Duration::from_secs(2);
const FLUSH_ROWS: usize = 4096;

enum Record {
    Batch(LogRow),
    Rejected { table: String, rows: RecordBatch },
}

/// A handle the workers clone; `close` flushes what is left.
#[derive(Clone)]
pub struct Recorder {
    sender: mpsc::Sender<Record>,
}

pub struct RecorderTask {
    handle: JoinHandle<Result<(), ConnectorError>>,
}

impl Recorder {
    pub fn start(book: Book) -> (Recorder, RecorderTask) {
        let (sender, receiver) = mpsc::channel(1024);
        let handle = tokio::spawn(run(book, receiver));
        (Recorder { sender }, RecorderTask { handle })
    }

    /// Records one batch's log row.
    pub async fn batch(&self, row: LogRow) -> Result<(), ConnectorError> {
        self.send(Record::Batch(row)).await
    }

    /// Records rejected rows (data columns plus Ferry's `_ferry_*` columns) for `quarantine/<table>`.
    pub async fn rejected(&self, table: &str, rows: RecordBatch) -> Result<(), ConnectorError> {
        self.send(Record::Rejected {
            table: table.to_string(),
            rows,
        })
        .await
    }

    async fn send(&self, record: Record) -> Result<(), ConnectorError> {
        self.sender
            .send(record)
            .await
            .map_err(|_| ConnectorError::fatal("the bookkeeping writer stopped; its error follows"))
    }
}

impl RecorderTask {
    /// Waits for every record handed over so far to be committed. Call after dropping all `Recorder`s.
    pub async fn close(self) -> Result<(), ConnectorError> {
        self.handle
            .await
            .map_err(|e| ConnectorError::fatal(format!("the bookkeeping writer stopped: {e}")))?
    }
}

async fn run(book: Book, mut receiver: mpsc::Receiver<Record>) -> Result<(), ConnectorError> {
    let mut log: Vec<LogRow> = Vec::new();
    let mut rejected: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.tick().await;
    loop {
        let (open, ticked) = tokio::select! {
            record = receiver.recv() => match record {
                Some(Record::Batch(row)) => { log.push(row); (true, false) }
                Some(Record::Rejected { table, rows }) => { rejected.entry(table).or_default().push(rows); (true, false) }
                None => (false, false),
            },
            _ = tick.tick() => (true, true),
        };
        let due = !open || ticked || log.len() >= FLUSH_ROWS;
        if due && (!log.is_empty() || !rejected.is_empty()) {
            flush(&book, &mut log, &mut rejected).await?;
        }
        if !open {
            return Ok(());
        }
    }
}

async fn flush(
    book: &Book,
    log: &mut Vec<LogRow>,
    rejected: &mut BTreeMap<String, Vec<RecordBatch>>,
) -> Result<(), ConnectorError> {
    for (table, batches) in std::mem::take(rejected) {
        book.append(&format!("quarantine/{table}"), batches).await?;
        pause_point("quarantine_flushed");
    }
    if !log.is_empty() {
        book.append(LOG, vec![log_batch(log)]).await?;
        log.clear();
    }
    pause_point("log_flushed");
    Ok(())
}
