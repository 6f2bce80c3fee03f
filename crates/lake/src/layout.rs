//! Where files go: partition values from timestamps, and object paths.
//!
//! ```text
//! <lake>/curated/events/dt=2026-11-23/event_family=page/part-<µs>-<uuid>.parquet
//! <lake>/raw/events/dt=2026-11-23/hour=14/part-<µs>-<uuid>.parquet
//! ```
//!
//! File names start with the writer's clock in µs so a listing sorts by age; the UUID makes
//! them unique across writers and retries.

use tributary_catalog::{Partition, partition_path};

const MICROS_PER_DAY: i64 = 86_400_000_000;
const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// The UTC day number (days since 1970-01-01) of a timestamp in µs.
pub fn day_of(ts: i64) -> i64 {
    ts.div_euclid(MICROS_PER_DAY)
}

/// The UTC hour of day (0–23) of a timestamp in µs.
pub fn hour_of(ts: i64) -> u8 {
    u8::try_from(ts.rem_euclid(MICROS_PER_DAY) / MICROS_PER_HOUR).unwrap_or(0)
}

/// `YYYY-MM-DD` of a UTC day number.
pub fn format_day(day: i64) -> String {
    chrono::DateTime::from_timestamp(day.saturating_mul(86_400), 0)
        .map(|at| at.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

/// The UTC day number of a `YYYY-MM-DD` partition value.
pub fn parse_day(text: &str) -> Option<i64> {
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((date - epoch).num_days())
}

/// Partition of a curated event.
pub fn curated_partition(day: i64, family: &str) -> Partition {
    vec![
        ("dt".into(), format_day(day)),
        ("event_family".into(), family.into()),
    ]
}

/// Partition of a raw archive record.
pub fn raw_partition(day: i64, hour: u8) -> Partition {
    vec![
        ("dt".into(), format_day(day)),
        ("hour".into(), format!("{hour:02}")),
    ]
}

/// Partition of a quarantined event: the day it arrived.
pub fn quarantine_partition(day: i64) -> Partition {
    vec![("dt".into(), format_day(day))]
}

/// A new, unique object path for a file of the table at `location` in `partition`.
pub fn new_file_path(location: &str, partition: &Partition, now_micros: i64) -> String {
    format!(
        "{location}/{}/part-{now_micros}-{}.parquet",
        partition_path(partition),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_hours_are_utc() {
        // 2026-11-23T14:05:00Z
        let ts = 1_795_442_700_000_000;
        assert_eq!(format_day(day_of(ts)), "2026-11-23");
        assert_eq!(hour_of(ts), 14);
        assert_eq!(parse_day("2026-11-23"), Some(day_of(ts)));
        // Before the epoch still floors to the right day.
        assert_eq!(format_day(day_of(-1)), "1969-12-31");
        assert_eq!(hour_of(-1), 23);
    }

    #[test]
    fn paths_are_hive_style() {
        let path = new_file_path("curated/events", &curated_partition(20_415, "page"), 42);
        assert!(
            path.starts_with("curated/events/dt=2025-11-23/event_family=page/part-42-"),
            "{path}"
        );
        assert!(path.ends_with(".parquet"));
        let raw = new_file_path("raw/events", &raw_partition(20_415, 7), 1);
        assert!(
            raw.starts_with("raw/events/dt=2025-11-23/hour=07/part-1-"),
            "{raw}"
        );
    }
}
