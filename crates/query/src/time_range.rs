//! The event-time range a query's filters allow, so the catalog lists only the files that can
//! hold it (its index is on the files' time range).

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

/// An inclusive range of µs since the epoch; `None` ends are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TimeRange {
    /// Earliest event time a matching row can have.
    pub(crate) from: Option<i64>,
    /// Latest event time a matching row can have.
    pub(crate) until: Option<i64>,
}

impl TimeRange {
    fn raise_from(&mut self, value: i64) {
        self.from = Some(self.from.map_or(value, |from| from.max(value)));
    }

    fn lower_until(&mut self, value: i64) {
        self.until = Some(self.until.map_or(value, |until| until.min(value)));
    }
}

/// The range that every row passing all of `filters` lies in, from comparisons of
/// `time_column` with timestamp literals (`ts >= …`, `ts < …`, `ts = …`, `ts BETWEEN … AND
/// …`, in either operand order). Anything else is ignored, which only widens the range, so the
/// answer is always safe to list files by.
pub(crate) fn time_range(filters: &[Expr], time_column: &str) -> TimeRange {
    let mut range = TimeRange::default();
    for filter in filters {
        for conjunct in split_conjunction(filter) {
            narrow(&mut range, conjunct, time_column);
        }
    }
    range
}

fn narrow(range: &mut TimeRange, expr: &Expr, time_column: &str) {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (slack, bound, op) = match (
                time_column_slack(left, time_column),
                time_column_slack(right, time_column),
            ) {
                (Some(slack), None) => (slack, right.as_ref(), *op),
                (None, Some(slack)) => match op.swap() {
                    Some(swapped) => (slack, left.as_ref(), swapped),
                    None => return,
                },
                _ => return,
            };
            let Some((floor, ceil)) = literal_micros(bound) else {
                return;
            };
            match op {
                Operator::Gt | Operator::GtEq => range.raise_from(floor.saturating_sub(slack)),
                Operator::Lt | Operator::LtEq => range.lower_until(ceil.saturating_add(slack)),
                Operator::Eq => {
                    range.raise_from(floor.saturating_sub(slack));
                    range.lower_until(ceil.saturating_add(slack));
                }
                _ => {}
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            let Some(slack) = time_column_slack(expr, time_column) else {
                return;
            };
            if let Some((floor, _)) = literal_micros(low) {
                range.raise_from(floor.saturating_sub(slack));
            }
            if let Some((_, ceil)) = literal_micros(high) {
                range.lower_until(ceil.saturating_add(slack));
            }
        }
        _ => {}
    }
}

/// If `expr` is the time column, possibly cast to another timestamp unit, how many µs the cast
/// may move a value (a cast to seconds truncates up to a second away).
fn time_column_slack(expr: &Expr, time_column: &str) -> Option<i64> {
    match expr {
        Expr::Column(column) if column.name == time_column => Some(0),
        Expr::Cast(cast) => {
            let DataType::Timestamp(unit, _) = cast.field.data_type() else {
                return None;
            };
            time_column_slack(&cast.expr, time_column).map(|inner| inner + unit_micros(*unit))
        }
        _ => None,
    }
}

fn unit_micros(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond | TimeUnit::Nanosecond => 0,
    }
}

/// A timestamp literal as µs, rounded down and up (they differ only for nanoseconds).
fn literal_micros(expr: &Expr) -> Option<(i64, i64)> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::TimestampSecond(Some(v), _) => {
            let micros = v.checked_mul(1_000_000)?;
            Some((micros, micros))
        }
        ScalarValue::TimestampMillisecond(Some(v), _) => {
            let micros = v.checked_mul(1_000)?;
            Some((micros, micros))
        }
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some((*v, *v)),
        ScalarValue::TimestampNanosecond(Some(v), _) => {
            // Rounded up without `v + 999`, which overflows for the latest nanosecond
            // timestamps (and wrapped, in a release build, to a range that matched nothing).
            let down = v.div_euclid(1_000);
            Some((down, down + i64::from(v.rem_euclid(1_000) != 0)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::logical_expr::{cast, col, lit};

    use super::*;

    fn micros(v: i64) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(
            Some(v),
            Some(Arc::from("UTC")),
        ))
    }

    #[test]
    fn comparisons_in_either_order_narrow_the_range() {
        let filters = vec![
            col("ts").gt_eq(micros(100)),
            micros(200).gt(col("ts")),
            col("tenant_id").eq(lit("acme")),
        ];
        let range = time_range(&filters, "ts");
        assert_eq!(range.from, Some(100));
        assert_eq!(range.until, Some(200));
    }

    #[test]
    fn conjunctions_between_and_casts_are_understood() {
        let filters = vec![
            col("ts")
                .between(micros(10), micros(5_000_000))
                .and(col("ts").lt_eq(micros(4_000_000))),
        ];
        let range = time_range(&filters, "ts");
        assert_eq!((range.from, range.until), (Some(10), Some(4_000_000)));
        let seconds = DataType::Timestamp(TimeUnit::Second, None);
        let filters =
            vec![cast(col("ts"), seconds).eq(lit(ScalarValue::TimestampSecond(Some(3), None)))];
        let range = time_range(&filters, "ts");
        assert_eq!(
            (range.from, range.until),
            (Some(2_000_000), Some(4_000_000))
        );
    }

    #[test]
    fn nanosecond_literals_round_outwards_without_overflowing() {
        let nanos = |v| lit(ScalarValue::TimestampNanosecond(Some(v), None));
        assert_eq!(literal_micros(&nanos(1_500)), Some((1, 2)));
        assert_eq!(literal_micros(&nanos(-1_500)), Some((-2, -1)));
        assert_eq!(literal_micros(&nanos(2_000)), Some((2, 2)));
        // `v + 999` overflowed here.
        let latest = i64::MAX / 1_000;
        assert_eq!(literal_micros(&nanos(i64::MAX)), Some((latest, latest + 1)));
    }

    #[test]
    fn disjunctions_and_other_columns_leave_the_range_open() {
        let filters = vec![
            col("ts").gt(micros(1)).or(col("ts").lt(micros(0))),
            col("received_at").gt(micros(5)),
        ];
        assert_eq!(time_range(&filters, "ts"), TimeRange::default());
    }
}
