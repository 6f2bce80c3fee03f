//! What commands print: aligned tables, sizes and RFC 3339 times for people; one JSON line for
//! scripts.
//!
//! Every command that prints a table also has `--json`; the table is free to change its layout,
//! the JSON is what scripts parse.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use tributary_model::TimestampMicros;

/// Prints `value` as one line of JSON on stdout.
pub fn json_line(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string(value)?;
    text.push('\n');
    print(&text)
}

/// Writes `text` to stdout. A closed pipe (`tributary stream read | head`) ends the output
/// quietly instead of panicking as `print!` would.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// A plain-text table: a header row and rows of cells; numeric-looking cells align right.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells print empty, extra cells are dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines of text, columns separated by two spaces.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().take(columns).enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let empty = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).unwrap_or(&empty);
                if i > 0 {
                    line.push_str("  ");
                }
                // Numbers read best right-aligned; the header follows its column's alignment.
                let numeric = self
                    .rows
                    .iter()
                    .any(|r| r.get(i).is_some_and(|c| is_numeric(c)));
                let pad = width - cell.chars().count();
                if numeric {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Counts, sizes and durations (`1,000`, `4.0 KiB`, `850 ms`) but not times or names.
fn is_numeric(cell: &str) -> bool {
    cell.chars().next().is_some_and(|c| c.is_ascii_digit()) && !cell.contains(['-', ':', '/'])
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count with a binary unit: `0 B`, `4.0 KiB`, `128.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A stream timestamp (µs since the epoch) as RFC 3339 UTC with microseconds.
pub fn timestamp(micros: TimestampMicros) -> String {
    match u64::try_from(micros) {
        Ok(after) => {
            humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(after)).to_string()
        }
        // Before 1970: a broken producer clock; print the raw number rather than lie.
        Err(_) => format!("{micros}µs"),
    }
}

/// An optional timestamp, `-` when absent.
pub fn maybe_timestamp(micros: Option<TimestampMicros>) -> String {
    micros.map_or_else(|| "-".into(), timestamp)
}

/// Parses an RFC 3339 UTC time (`2025-01-31T12:00:00Z`, fractional seconds allowed) into µs
/// since the epoch.
pub fn parse_timestamp(text: &str) -> Result<TimestampMicros, String> {
    let time = humantime::parse_rfc3339_weak(text).map_err(|e| {
        format!("{text:?} is not an RFC 3339 UTC time like 2025-01-31T12:00:00Z: {e}")
    })?;
    let since = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| format!("{text:?} is before 1970"))?;
    i64::try_from(since.as_micros()).map_err(|_| format!("{text:?} is too far in the future"))
}

/// Milliseconds as a short duration: `0 ms`, `850 ms`, `12.3 s`, `4.0 min`, `2.5 h`.
pub fn millis(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1e3),
        60_000..3_600_000 => format!("{:.1} min", ms as f64 / 6e4),
        _ => format!("{:.1} h", ms as f64 / 3.6e6),
    }
}

/// A payload as text for a terminal: lossy UTF-8, control characters escaped, cut at `max`
/// characters with `…`.
pub fn payload(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_numbers_right() {
        let mut table = Table::new(&["shard", "name"]);
        table.row(vec!["1".into(), "a".into()]);
        table.row(vec!["1,000".into(), "bbb".into()]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "shard  name");
        assert_eq!(lines[1], "    1  a");
        assert_eq!(lines[2], "1,000  bbb");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn byte_units() {
        assert_eq!(bytes(10), "10 B");
        assert_eq!(bytes(4096), "4.0 KiB");
        assert_eq!(bytes(128 << 20), "128.0 MiB");
    }

    #[test]
    fn timestamps_round_trip() {
        let micros = 1_735_732_800_123_456;
        let text = timestamp(micros);
        assert_eq!(text, "2025-01-01T12:00:00.123456Z");
        assert_eq!(parse_timestamp(&text).unwrap(), micros);
        assert_eq!(
            parse_timestamp("2025-01-01T12:00:00Z").unwrap(),
            1_735_732_800_000_000
        );
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn payload_is_cut_and_escaped() {
        assert_eq!(payload(b"a\nb", 10), "a\\nb");
        assert_eq!(payload(b"abcdef", 3), "abc…");
        assert_eq!(payload(&[0xff, b'x'], 10), "\u{fffd}x");
    }
}
