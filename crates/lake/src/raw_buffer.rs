//! The raw archive's rows of one partition (`dt`, `hour`), kept per tenant as they arrive.
//!
//! Raw files are sorted by (tenant_id, received_at), like every lake file (compaction merges
//! them on that order). Sorting one buffer of all tenants meant gathering every stored event's
//! JSON into a new column in tenant order: a copy of the whole payload per flush, into fresh
//! pages, that was a tenth of the writer's CPU. Rows of one tenant arrive nearly in
//! `received_at` order (the stream is appended in arrival order), so each tenant gets its own
//! columns: at flush they are already in order and go to the Parquet writer as they are, one
//! batch per tenant. A tenant whose rows did arrive out of order (concurrent requests stamped
//! a moment apart) has only its own rows sorted.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondBuilder, UInt32Array,
    UInt32Builder, UInt64Builder,
};
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;

use crate::buffer::{RowStats, utc_timestamps_with_capacity};
use crate::error::LakeError;

/// One stream record as the raw archive keeps it.
#[derive(Debug, Clone, Copy)]
pub struct RawRow<'a> {
    /// The event's tenant (empty for a record that is not an event).
    pub tenant_id: &'a str,
    /// The event's id (empty for a record that is not an event).
    pub event_id: &'a str,
    /// Event time (the stream's timestamp for a record that is not an event).
    pub ts: i64,
    /// Arrival time at the collector.
    pub received_at: i64,
    /// Stream shard.
    pub shard: u32,
    /// Sequence number in the shard.
    pub seq: u64,
    /// The record's value, as stored.
    pub payload: &'a str,
}

/// How big one tenant's raw rows are expected to get: what they reached in the last flush.
/// Building the columns at that size up front spares their doublings, each of which copied
/// everything appended so far (for the payload, every stored event's JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawSizeHint {
    /// Rows.
    pub rows: usize,
    /// Payload bytes.
    pub payload_bytes: usize,
}

/// [`RawSizeHint`]s by tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawSizeHints(HashMap<String, RawSizeHint>);

impl RawSizeHints {
    /// The hint for `tenant` (none: an empty hint).
    pub fn get(&self, tenant: &str) -> RawSizeHint {
        self.0.get(tenant).copied().unwrap_or_default()
    }

    /// Keeps, per tenant, the larger of this hint and `other`'s.
    pub fn merge_max(&mut self, other: RawSizeHints) {
        for (tenant, hint) in other.0 {
            let entry = self.0.entry(tenant).or_default();
            if hint.payload_bytes > entry.payload_bytes {
                *entry = hint;
            }
        }
    }
}

/// Rows of one raw archive partition.
pub struct RawBuffer {
    schema: SchemaRef,
    tenants: Vec<TenantRows>,
    /// Position in `tenants` by tenant id.
    positions: HashMap<String, usize>,
    /// Position of the last row's tenant: one tenant's rows come in runs (a request's batch).
    last: usize,
    hints: RawSizeHints,
    stats: RowStats,
    bytes: u64,
}

impl RawBuffer {
    /// An empty buffer for files of [`crate::schema::raw_file_schema`].
    pub fn new(schema: SchemaRef) -> RawBuffer {
        RawBuffer::with_capacity(schema, RawSizeHints::default())
    }

    /// An empty buffer whose tenants' columns start with room for `hints` (plus an eighth).
    pub fn with_capacity(schema: SchemaRef, hints: RawSizeHints) -> RawBuffer {
        RawBuffer {
            schema,
            tenants: Vec::new(),
            positions: HashMap::new(),
            last: 0,
            hints,
            stats: RowStats::empty(),
            bytes: 0,
        }
    }

    /// How big each tenant's rows got, as hints for the next buffer.
    pub fn size_hints(&self) -> RawSizeHints {
        RawSizeHints(
            self.tenants
                .iter()
                .map(|rows| (rows.tenant.clone(), rows.size()))
                .collect(),
        )
    }

    /// Adds one record.
    pub fn push(&mut self, row: RawRow<'_>) {
        let position = match self.tenants.get(self.last) {
            Some(rows) if rows.tenant == row.tenant_id => self.last,
            _ => match self.positions.get(row.tenant_id) {
                Some(&position) => position,
                None => {
                    let hint = self.hints.get(row.tenant_id);
                    self.tenants.push(TenantRows::new(row.tenant_id, hint));
                    self.positions
                        .insert(row.tenant_id.to_string(), self.tenants.len() - 1);
                    self.tenants.len() - 1
                }
            },
        };
        self.last = position;
        if let Some(rows) = self.tenants.get_mut(position) {
            rows.push(&row);
        }
        self.stats.add(row.received_at, row.tenant_id);
        self.bytes += row.payload.len() as u64;
    }

    /// Payload bytes buffered.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The rows as batches to be written in order — one per tenant, tenants by id, each sorted
    /// by received_at — and their statistics.
    pub fn finish(mut self) -> Result<(Vec<RecordBatch>, RowStats), LakeError> {
        self.tenants
            .sort_unstable_by(|left, right| left.tenant.cmp(&right.tenant));
        let batches = self
            .tenants
            .into_iter()
            .map(|rows| rows.finish(&self.schema))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((batches, self.stats))
    }
}

/// One tenant's columns (the tenant id column is made at the end: it is one value repeated).
struct TenantRows {
    tenant: String,
    event_id: StringBuilder,
    ts: TimestampMicrosecondBuilder,
    received_at: TimestampMicrosecondBuilder,
    shard: UInt32Builder,
    seq: UInt64Builder,
    payload: StringBuilder,
    rows: usize,
    payload_bytes: usize,
    /// Whether every row so far came no earlier than the one before it.
    in_order: bool,
    latest_received: i64,
}

impl TenantRows {
    fn new(tenant: &str, hint: RawSizeHint) -> TenantRows {
        let rows = hint.rows + hint.rows / 8;
        let payload_bytes = hint.payload_bytes + hint.payload_bytes / 8;
        TenantRows {
            tenant: tenant.to_string(),
            event_id: StringBuilder::with_capacity(rows, rows * 36),
            ts: utc_timestamps_with_capacity(rows),
            received_at: utc_timestamps_with_capacity(rows),
            shard: UInt32Builder::with_capacity(rows),
            seq: UInt64Builder::with_capacity(rows),
            payload: StringBuilder::with_capacity(rows, payload_bytes),
            rows: 0,
            payload_bytes: 0,
            in_order: true,
            latest_received: i64::MIN,
        }
    }

    fn push(&mut self, row: &RawRow<'_>) {
        self.event_id.append_value(row.event_id);
        self.ts.append_value(row.ts);
        self.received_at.append_value(row.received_at);
        self.shard.append_value(row.shard);
        self.seq.append_value(row.seq);
        self.payload.append_value(row.payload);
        self.rows += 1;
        self.payload_bytes += row.payload.len();
        self.in_order &= row.received_at >= self.latest_received;
        self.latest_received = self.latest_received.max(row.received_at);
    }

    fn size(&self) -> RawSizeHint {
        RawSizeHint {
            rows: self.rows,
            payload_bytes: self.payload_bytes,
        }
    }

    fn finish(mut self, schema: &SchemaRef) -> Result<RecordBatch, LakeError> {
        let received_at = self.received_at.finish();
        // Arrival order where received_at never goes back; otherwise sorted by it, ties in
        // arrival order.
        let order = (!self.in_order).then(|| {
            let mut keys: Vec<(i64, u32)> = received_at
                .values()
                .iter()
                .zip(0u32..)
                .map(|(&at, row)| (at, row))
                .collect();
            keys.sort_unstable();
            UInt32Array::from_iter_values(keys.into_iter().map(|(_, row)| row))
        });
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                &self.tenant,
                self.rows,
            ))),
            Arc::new(self.event_id.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(received_at),
            Arc::new(self.shard.finish()),
            Arc::new(self.seq.finish()),
            Arc::new(self.payload.finish()),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        match order {
            Some(order) => Ok(take_record_batch(&batch, &order)?),
            None => Ok(batch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::raw_file_schema;
    use arrow::array::AsArray;
    use arrow::datatypes::TimestampMicrosecondType;
    use proptest::prelude::*;

    fn row<'a>(tenant: &'a str, received_at: i64, seq: u64, payload: &'a str) -> RawRow<'a> {
        RawRow {
            tenant_id: tenant,
            event_id: "e",
            ts: 5,
            received_at,
            shard: 0,
            seq,
            payload,
        }
    }

    /// (tenant, received_at, seq) of every row, in the order the batches hold them.
    fn rows_of(batches: &[RecordBatch]) -> Vec<(String, i64, u64)> {
        let mut rows = Vec::new();
        for batch in batches {
            let tenants = batch.column(0).as_string::<i32>();
            let received = batch.column(3).as_primitive::<TimestampMicrosecondType>();
            let seqs = batch
                .column(5)
                .as_primitive::<arrow::datatypes::UInt64Type>();
            for index in 0..batch.num_rows() {
                rows.push((
                    tenants.value(index).to_string(),
                    received.value(index),
                    seqs.value(index),
                ));
            }
        }
        rows
    }

    #[test]
    fn raw_rows_keep_the_payload() {
        let mut buffer = RawBuffer::new(raw_file_schema());
        buffer.push(RawRow {
            tenant_id: "acme",
            event_id: "e1",
            ts: 5,
            received_at: 6,
            shard: 1,
            seq: 9,
            payload: "{\"x\":1}",
        });
        let (batches, stats) = buffer.finish().unwrap();
        assert_eq!(stats.rows, 1);
        assert_eq!(
            stats.min_ts, 6,
            "the raw archive's time column is received_at"
        );
        let payload = batches[0]
            .column_by_name("payload")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(payload.value(0), "{\"x\":1}");
    }

    #[test]
    fn a_presized_buffer_reports_its_size_and_holds_the_same_rows() {
        let fill = |buffer: &mut RawBuffer| {
            for seq in 0..3u64 {
                let tenant = if seq == 1 { "globex" } else { "acme" };
                buffer.push(row(tenant, 10 - seq as i64, seq, "{\"abc\":1}"));
            }
        };
        let mut plain = RawBuffer::new(raw_file_schema());
        fill(&mut plain);
        let hints = plain.size_hints();
        assert_eq!(
            hints.get("acme"),
            RawSizeHint {
                rows: 2,
                payload_bytes: 18
            }
        );
        assert_eq!(hints.get("initech"), RawSizeHint::default());
        let mut presized = RawBuffer::with_capacity(raw_file_schema(), hints);
        fill(&mut presized);
        assert_eq!(plain.finish().unwrap().0, presized.finish().unwrap().0);
    }

    #[test]
    fn merged_hints_keep_the_larger_per_tenant() {
        let hint = |rows, payload_bytes| RawSizeHint {
            rows,
            payload_bytes,
        };
        let mut hints = RawSizeHints(HashMap::from([
            ("acme".to_string(), hint(10, 100)),
            ("globex".to_string(), hint(1, 10)),
        ]));
        hints.merge_max(RawSizeHints(HashMap::from([
            ("acme".to_string(), hint(5, 50)),
            ("globex".to_string(), hint(2, 20)),
            ("initech".to_string(), hint(3, 30)),
        ])));
        assert_eq!(hints.get("acme"), hint(10, 100));
        assert_eq!(hints.get("globex"), hint(2, 20));
        assert_eq!(hints.get("initech"), hint(3, 30));
    }

    proptest! {
        /// Whatever order rows arrive in, the batches hold them by (tenant, received_at), rows
        /// with the same received_at in arrival order.
        #[test]
        fn batches_hold_rows_by_tenant_then_arrival_time(
            arrivals in prop::collection::vec(
                (prop::sample::select(vec!["acme", "globex", "initech"]), 0i64..20),
                0..80,
            ),
        ) {
            let mut buffer = RawBuffer::new(raw_file_schema());
            let mut expected = Vec::new();
            for (seq, (tenant, received_at)) in arrivals.iter().enumerate() {
                buffer.push(row(tenant, *received_at, seq as u64, "{}"));
                expected.push((tenant.to_string(), *received_at, seq as u64));
            }
            expected.sort();
            let (batches, stats) = buffer.finish().unwrap();
            prop_assert_eq!(stats.rows, arrivals.len() as u64);
            prop_assert!(batches.iter().all(|batch| batch.num_rows() > 0));
            prop_assert_eq!(rows_of(&batches), expected);
        }
    }
}
