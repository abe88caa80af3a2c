//! Cron expressions in a time zone: when a job fires next, and its schedule in words.
//!
//! Expressions are parsed by croner (5 fields, or 6 with seconds first; ranges, steps, lists, `L`,
//! `#`, `W`, names of days and months, `@daily` and the like; a day-of-month and a day-of-week
//! both given fire on either, as Vixie cron does). Fire times are found on the zone's wall clock
//! and then placed in time:
//!
//! ```text
//! a wall time that happens once           fires then
//! a wall time in a spring-forward gap     fires once, at the first instant after the gap
//! a wall time that happens twice          fires once, at its first occurrence
//! ```
//!
//! `tests/fixtures/cron/` holds the reference fire times (from Python's croniter, the script beside
//! them) these rules are tested against.

use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A cron expression on a time zone's wall clock.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    zone: Tz,
    cron: Cron,
}

impl CronSchedule {
    /// Parses `expression` for the IANA zone `zone` (`UTC`, `Europe/Paris`); the error says what is
    /// wrong, or that the expression never fires.
    pub fn parse(expression: &str, zone: &str) -> Result<Self, String> {
        let zone = Tz::from_str(zone).map_err(|_| {
            format!("\"{zone}\" is not an IANA time zone name (such as UTC or Europe/Paris)")
        })?;
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expression)
            .map_err(|e| format!("\"{expression}\" is not a cron expression: {e}"))?;
        let schedule = Self {
            expression: expression.trim().to_string(),
            zone,
            cron,
        };
        let epoch = Utc
            .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
            .single()
            .expect("a date");
        if schedule.next_after(epoch).is_none() {
            return Err(format!(
                "\"{expression}\" never fires (no date matches it, such as the 31st of February)"
            ));
        }
        Ok(schedule)
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first fire strictly after `after`, or `None` when the expression never fires again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut wall = after.with_timezone(&self.zone).naive_local();
        // A handful of rounds: each skips a wall time that already fired (the second pass of a
        // repeated hour).
        for _ in 0..10_000 {
            wall = self.cron.find_next_occurrence(&wall, false).ok()?;
            match self.zone.from_local_datetime(&wall) {
                LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
                LocalResult::Ambiguous(first, _) => {
                    let first = first.with_timezone(&Utc);
                    if first > after {
                        return Some(first);
                    }
                }
                LocalResult::None => return Some(self.end_of_gap(wall)),
            }
        }
        None
    }

    /// The first instant after the spring-forward gap `wall` falls in.
    fn end_of_gap(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        let mut probe = wall;
        loop {
            probe += TimeDelta::minutes(1);
            let probe_whole_minute = probe
                .with_second(0)
                .and_then(|p| p.with_nanosecond(0))
                .unwrap_or(probe);
            if let Some(t) = self
                .zone
                .from_local_datetime(&probe_whole_minute)
                .earliest()
            {
                return t.with_timezone(&Utc);
            }
        }
    }

    /// The schedule in words, with its zone: "At 02:00 (Europe/Paris)".
    pub fn describe(&self) -> String {
        format!("{} ({})", self.cron.describe(), self.zone.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .with_timezone(&Utc)
    }

    /// Reads a reference CSV (quoted fields hold commas) under tests/fixtures/cron.
    fn reference(file: &str) -> Vec<Vec<String>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/cron")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        text.lines()
            .skip(1)
            .map(|line| {
                let mut fields = Vec::new();
                let mut field = String::new();
                let mut quoted = false;
                for c in line.chars() {
                    match c {
                        '"' => quoted = !quoted,
                        ',' if !quoted => fields.push(std::mem::take(&mut field)),
                        c => field.push(c),
                    }
                }
                fields.push(field);
                fields
            })
            .collect()
    }

    fn fires(schedule: &CronSchedule, after: &str, count: usize) -> Vec<String> {
        let mut t = utc(after);
        (0..count)
            .map(|_| {
                t = schedule.next_after(t).expect("fires");
                t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            })
            .collect()
    }

    #[test]
    fn next_fires_match_the_reference() {
        let cases = reference("next_fires.csv");
        assert!(cases.len() >= 90, "{} cases", cases.len());
        for case in cases {
            let schedule = CronSchedule::parse(&case[0], "UTC").unwrap();
            assert_eq!(fires(&schedule, &case[1], 3), case[2..5], "{}", case[0]);
        }
    }

    #[test]
    fn fires_across_daylight_saving_changes_match_the_reference() {
        let cases = reference("dst_fires.csv");
        assert_eq!(cases.len(), 24);
        for case in cases {
            let schedule = CronSchedule::parse(&case[0], &case[1]).unwrap();
            assert_eq!(
                fires(&schedule, &case[2], 6),
                case[3..9],
                "{} in {} after {}",
                case[0],
                case[1],
                case[2]
            );
        }
    }

    #[test]
    fn an_expression_that_never_fires_says_so() {
        let e = CronSchedule::parse("0 0 31 2 *", "UTC").unwrap_err();
        assert!(e.contains("never fires"), "{e}");
        let e = CronSchedule::parse("0 0 * * *", "Mars/Olympus").unwrap_err();
        assert!(e.contains("IANA time zone"), "{e}");
        let e = CronSchedule::parse("61 * * * *", "UTC").unwrap_err();
        assert!(e.contains("is not a cron expression"), "{e}");
    }

    #[test]
    fn a_schedule_reads_in_words_with_its_zone() {
        let s = CronSchedule::parse("0 2 * * *", "Europe/Paris").unwrap();
        assert!(s.describe().ends_with("(Europe/Paris)"), "{}", s.describe());
    }
}
