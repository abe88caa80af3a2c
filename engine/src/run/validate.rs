//! Validating a pipeline: plan every step and ask the target what would go wrong, writing nothing.

use std::sync::Arc;

use ferry_connectors::ConnectorError;

use crate::plan;
use crate::run::sink_for;
use crate::spec::Pipeline;

/// What validating found.
pub struct Checked {
    /// The target, for people.
    pub target: String,
    /// Columns of the last step's result.
    pub columns: usize,
    /// Every problem the target would have, found without writing.
    pub problems: Vec<ConnectorError>,
    /// With `create = true`: the statement that creates the target table when it is missing.
    pub ddl: Option<String>,
}

/// Plans every step and asks the target what would go wrong; writes nothing.
pub async fn check(pipeline: &Pipeline) -> Result<Checked, String> {
    let planned = plan::plan(pipeline).await.map_err(|e| e.to_string())?;
    let schema = Arc::new(planned.result().schema().as_arrow().clone());
    let sink = sink_for(pipeline).map_err(|e| e.to_string())?;
    let mut problems = match sink.check(&schema).await {
        Ok(p) => p,
        Err(e) => vec![e],
    };
    let ddl = match sink.planned_ddl(&schema).transpose() {
        Ok(ddl) => ddl,
        Err(e) => {
            problems.push(e);
            None
        }
    };
    Ok(Checked {
        target: sink.describe(),
        columns: schema.fields().len(),
        problems,
        ddl,
    })
}
