//! `ferry schedule DIR`: runs the folder's jobs (pipeline files with `[schedule]`) when their cron
//! expressions fire, each run a `ferry run` child process with its own bookkeeping, and records
//! every fire in the folder's journal.
//!
//! ```text
//! jobs.rs      the folder's pipeline files with [schedule]; re-read when they change
//! cron.rs      next fire times on a time zone's wall clock (croner), DST rules
//! clock.rs     the system clock, or an accelerated one for tests (--clock)
//! journal.rs   .ferry/schedule/fires (Delta): one row per fire, as it ended or was skipped
//! board.rs     the live table of jobs on a terminal
//! alert.rs     on_failure / on_partial: a webhook POST or a command, bounded, never blocking
//! runner.rs    the loop: due fires -> overlap (skip | queue) -> start (max concurrent runs)
//!              -> timeout (SIGTERM: the run stops at a batch boundary, resumable)
//!              -> exit code -> status -> retries with backoff; catch-up of missed fires;
//!              jobs with `after` queued when their predecessors completed
//! ```

pub mod alert;
pub mod board;
pub mod clock;
pub mod cron;
pub mod jobs;
pub mod journal;
pub mod runner;
