//! Named points where a test can freeze a run, to kill it there with SIGKILL.
//!
//! `FERRY_PAUSE_AT=batch_written:3` makes the third pass through `pause_point("batch_written")` print
//! `ferry: paused at batch_written` to stderr and sleep until the process is killed. Unset it costs
//! one atomic load. Only debug builds (`cargo test`, `cargo run`) have the points: in a release
//! binary, the one users get, `FERRY_PAUSE_AT` does nothing, so no environment variable can freeze a
//! production run.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Pause {
    point: String,
    nth: usize,
    seen: AtomicUsize,
}

fn configured() -> &'static Option<Pause> {
    static PAUSE: OnceLock<Option<Pause>> = OnceLock::new();
    PAUSE.get_or_init(|| {
        let spec = std::env::var("FERRY_PAUSE_AT").ok()?;
        let (point, nth) = match spec.split_once(':') {
            Some((p, n)) => (p.to_string(), n.parse().unwrap_or(1)),
            None => (spec, 1),
        };
        Some(Pause {
            point,
            nth,
            seen: AtomicUsize::new(0),
        })
    })
}

/// Freezes the process here if `FERRY_PAUSE_AT` names this point and this is the chosen pass.
pub fn pause_point(point: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    let Some(pause) = configured() else {
        return;
    };
    if pause.point != point || pause.seen.fetch_add(1, Ordering::SeqCst) + 1 != pause.nth {
        return;
    }
    eprintln!("ferry: paused at {point}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
