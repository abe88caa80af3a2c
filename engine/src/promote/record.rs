//! The history of promotions: a Delta table `promotions` under the project's `.ferry/promotions`,
//! one row each time a promotion changes (previewed, started, ended, commented, discarded,
//! reverted), the whole record as JSON in the row; the latest row of an id is the promotion as it
//! stands. Each promotion's change summary is also written as Markdown and JSON beside it, and its
//! log file (`ferry_promote_YYYYMMDD_HHMMSS.log`) under `logs/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use ferry_connectors::ConnectorError;
use serde::{Deserialize, Serialize};

use super::plan::Change;
use crate::book::Book;

pub const PROMOTIONS: &str = "promotions";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Pending,
    #[serde(rename = "In Progress")]
    InProgress,
    Complete,
    Failed,
    Stopped,
    Discarded,
    Reverted,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pending => "Pending",
            Status::InProgress => "In Progress",
            Status::Complete => "Complete",
            Status::Failed => "Failed",
            Status::Stopped => "Stopped",
            Status::Discarded => "Discarded",
            Status::Reverted => "Reverted",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepStatus {
    Pending,
    Running,
    Success,
    Skipped,
    Error,
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub status: StepStatus,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    pub number: u32,
    pub who: String,
    pub at: DateTime<Utc>,
    pub text: String,
    pub deleted: bool,
}

/// One promotion, as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub id: i64,
    pub title: String,
    pub from: String,
    pub to: String,
    /// The asset types it moves (`pipelines`, or `connections, pipelines` with dependencies).
    pub kinds: Vec<String>,
    pub status: Status,
    /// Who asked for it (`--as`, or the OS user) and the OS user it ran as.
    pub who: String,
    pub os_user: String,
    pub created: DateTime<Utc>,
    pub ended: Option<DateTime<Utc>>,
    pub enable_jobs: bool,
    pub changes: Vec<Change>,
    /// The steps of its completion (then of its revert), in order.
    pub steps: Vec<Step>,
    pub warnings: Vec<String>,
    pub guidance: Vec<String>,
    pub log_file: Option<PathBuf>,
    pub comments: Vec<Comment>,
    /// The revert's own steps and log, once reverted.
    pub revert: Option<Revert>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revert {
    pub who: String,
    pub at: DateTime<Utc>,
    pub steps: Vec<Step>,
    pub warnings: Vec<String>,
    pub log_file: Option<PathBuf>,
}

impl Promotion {
    /// `pipelines/accounts, connections/crm`.
    pub fn assets(&self) -> String {
        self.changes
            .iter()
            .map(Change::label)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("status", DataType::Utf8, false),
        Field::new("from_env", DataType::Utf8, false),
        Field::new("to_env", DataType::Utf8, false),
        Field::new("who", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("record", DataType::Utf8, false),
    ]))
}

/// The project's promotions.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    book: Book,
}

impl Store {
    pub fn new(project: &Path) -> Store {
        let dir = project.join(".ferry").join("promotions");
        Store {
            book: Book::reader(&dir.to_string_lossy()),
            dir,
        }
    }

    /// Where its files go.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Held while a promotion is created, completed, commented or reverted: one change at a time.
    pub fn lock(&self) -> Result<crate::book::lock::RunLock, ConnectorError> {
        crate::book::lock::RunLock::acquire_file(&self.dir.to_string_lossy(), "promotions")
    }

    pub async fn save(&self, p: &Promotion) -> Result<(), ConnectorError> {
        let record = serde_json::to_string(p)
            .map_err(|e| ConnectorError::fatal(format!("a promotion record: {e}")))?;
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(vec![p.id])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Utc::now().timestamp_micros()])
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec![p.status.to_string()])),
                Arc::new(StringArray::from(vec![p.from.clone()])),
                Arc::new(StringArray::from(vec![p.to.clone()])),
                Arc::new(StringArray::from(vec![p.who.clone()])),
                Arc::new(StringArray::from(vec![p.title.clone()])),
                Arc::new(StringArray::from(vec![record])),
            ],
        )?;
        self.book.append(PROMOTIONS, vec![batch]).await
    }

    /// Every promotion as it stands, oldest first.
    pub async fn all(&self) -> Result<Vec<Promotion>, ConnectorError> {
        let Some(frame) = self.book.frame(PROMOTIONS, "id").await? else {
            return Ok(Vec::new());
        };
        let mut rows: Vec<(i64, i64, String)> = Vec::new();
        for b in frame.collect().await? {
            use arrow::array::AsArray;
            let ids = b
                .column_by_name("id")
                .expect("id")
                .as_primitive::<arrow::datatypes::Int64Type>()
                .clone();
            let at = b
                .column_by_name("at")
                .expect("at")
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .clone();
            let records = crate::book::strings(&b, "record");
            for i in 0..b.num_rows() {
                rows.push((ids.value(i), at.value(i), records.value(i).to_string()));
            }
        }
        rows.sort_by_key(|(id, at, _)| (*id, *at));
        let mut out: Vec<Promotion> = Vec::new();
        for (id, _, record) in rows {
            let p: Promotion = serde_json::from_str(&record).map_err(|e| {
                ConnectorError::fatal(format!("promotion {id}'s record cannot be read: {e}"))
            })?;
            match out.last_mut() {
                Some(last) if last.id == id => *last = p,
                _ => out.push(p),
            }
        }
        Ok(out)
    }

    pub async fn get(&self, id: i64) -> Result<Promotion, ConnectorError> {
        let all = self.all().await?;
        let ids: Vec<String> = all.iter().rev().take(5).map(|p| p.id.to_string()).collect();
        all.into_iter().find(|p| p.id == id).ok_or_else(|| {
            ConnectorError::fatal(format!("there is no promotion {id}")).with_hint(
                if ids.is_empty() {
                    "no promotion yet: ferry promote --from ENV --to ENV TYPE NAMES".to_string()
                } else {
                    format!("the latest: {} (ferry promote history)", ids.join(", "))
                },
            )
        })
    }

    /// Writes the change summary beside the history, as Markdown and JSON; returns their paths.
    pub fn write_summary(&self, p: &Promotion) -> std::io::Result<(PathBuf, PathBuf)> {
        let dir = self.dir.join(p.id.to_string());
        std::fs::create_dir_all(&dir)?;
        let md = dir.join("changes.md");
        let json = dir.join("changes.json");
        std::fs::write(&md, super::report::markdown(p))?;
        std::fs::write(&json, super::report::json(p).to_string() + "\n")?;
        Ok((md, json))
    }
}
