//! The progress line on a terminal: rows done so far and the rate, as a person reads them; a bar with
//! the total and the time left when the plan knows how many rows there are (parquet metadata, a
//! table's row count). Silent elsewhere, so logs and CI output stay clean.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A cheap handle every worker can clone.
#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A spinner on stderr when `wanted` and stderr is a terminal; otherwise nothing.
    pub fn new(wanted: bool, name: &str) -> Self {
        if !wanted || !std::io::stderr().is_terminal() {
            return Self { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(style(
            "{spinner} {prefix} {human_pos} rows  {rate}  {elapsed}",
        ));
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar: Some(bar) }
    }

    /// Shows a bar with the total and the time left, once the number of rows is known.
    pub fn expect(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_style(style(
                "{prefix} [{bar:30}] {human_pos}/{human_len} rows  {rate}  {elapsed} (about {eta} left)",
            ));
        }
    }

    pub fn add(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(rows);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A template with `{rate}`: rows per second as whole thousands-separated numbers ("384,417 rows/s").
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("valid template")
        .progress_chars("=> ")
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(
                    w,
                    "{} rows/s",
                    super::report::thousands(state.per_sec().round() as u64)
                );
            },
        )
}
