//! `ferry connectors`: what each connector is, how its connections begin, and what its targets can
//! do, straight from the registry (so it can never disagree with the checker).

use std::process::ExitCode;

use ferry_connectors::registry;

pub fn list() -> ExitCode {
    let yes = |b: bool| if b { "yes" } else { "no" };
    say!(
        "{:<20} {:<28} {:<6} {:<7} {:<9} {:<6} {:<12} {}",
        "CONNECTOR",
        "MODES",
        "KEYED",
        "ATOMIC",
        "TRUNCATE",
        "READS",
        "DEFAULTS",
        "CONNECTION"
    );
    for c in registry::connectors() {
        let can = c.capabilities();
        let modes: Vec<&str> = can.modes.iter().map(|m| m.as_str()).collect();
        let schemes: Vec<String> = c.schemes().iter().map(|s| format!("{s}://")).collect();
        let connection = if schemes.is_empty() {
            c.example().to_string()
        } else {
            schemes.join(" ")
        };
        let tuning = c.about().tuning;
        say!(
            "{:<20} {:<28} {:<6} {:<7} {:<9} {:<6} {:<12} {}",
            c.name(),
            modes.join(","),
            yes(can.keyed),
            yes(can.atomic_writes),
            if can.atomic_truncate {
                "swapped"
            } else {
                "emptied"
            },
            yes(can.reads),
            format!("{}x{}", tuning.batch_size, tuning.workers),
            connection
        );
    }
    say!("");
    say!(
        "ATOMIC: each batch lands whole or not at all. TRUNCATE: swapped in one transaction, or the"
    );
    say!(
        "target emptied before the load (asks --yes). READS: usable as a source, in steps and --dry-run."
    );
    say!(
        "DEFAULTS: batch_size x workers of a target that sets neither (the fastest the benchmarks found);"
    );
    say!(
        "a Dataverse target writing by bulk messages (batch_mode = \"auto\", its default) gets 500x8."
    );
    ExitCode::SUCCESS
}
