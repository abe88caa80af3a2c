//! The live table `ferry schedule` keeps at the bottom of a terminal: a line per job with what it
//! does now (running for how long, waiting, idle), its next fire and how its last run ended; event
//! lines scroll above it. Off a terminal (a service, a log file) there is no table, only the lines.

use std::io::IsTerminal;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The table, when stdout is a terminal.
static BOARD: OnceLock<Option<MultiProgress>> = OnceLock::new();

fn board() -> Option<&'static MultiProgress> {
    BOARD
        .get_or_init(|| {
            std::io::stdout()
                .is_terminal()
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()))
        })
        .as_ref()
}

/// Prints an event line (above the table on a terminal).
pub fn line(text: &str) {
    match board() {
        Some(b) => {
            let _ = b.println(text);
        }
        None => println!("{text}"),
    }
}

/// One job's row of the table.
pub struct Row {
    bar: Option<ProgressBar>,
}

/// What a row shows.
pub struct JobView<'a> {
    pub name: &'a str,
    /// "running 3m 12s (fire of 02:00)", "waiting (retry in 1m)", "idle", "disabled".
    pub now: String,
    pub next: Option<DateTime<Utc>>,
    /// "Completed in 5m 2s".
    pub last: Option<String>,
}

impl Default for Row {
    fn default() -> Self {
        let bar = board().map(|b| {
            let bar = b.add(ProgressBar::new_spinner());
            bar.set_style(ProgressStyle::with_template("{msg}").expect("a template"));
            bar
        });
        Self { bar }
    }
}

impl Row {
    pub fn show(&self, view: &JobView<'_>) {
        let Some(bar) = &self.bar else {
            return;
        };
        let next = view
            .next
            .map_or("-".to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string());
        bar.set_message(format!(
            "{:<20} {:<34} next {:<17} last {}",
            view.name,
            view.now,
            next,
            view.last.as_deref().unwrap_or("-")
        ));
    }
}

impl Drop for Row {
    fn drop(&mut self) {
        if let (Some(bar), Some(board)) = (&self.bar, board()) {
            bar.finish_and_clear();
            board.remove(bar);
        }
    }
}
