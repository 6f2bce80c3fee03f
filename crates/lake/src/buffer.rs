//! In-memory buffers of one partition's rows, built column by column as events arrive, and
//! sorted by (tenant, time) when they are written out.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder,
    MapBuilder, MapFieldNames, RecordBatch, StringBuilder, StructArray, StructBuilder,
    TimestampMicrosecondBuilder, UInt32Array, UInt32Builder, UInt64Builder,
};
use arrow::buffer::NullBuffer;
use arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, Field, Int64Type, SchemaRef, TimestampMicrosecondType};
use serde_json::Value;
use tributary_model::{Campaign, Event, PageContext};

use crate::error::LakeError;
use crate::raw_buffer::RawRow;
use crate::schema::{
    PromotedProperty, PromotedType, campaign_fields, context_fields, enriched_fields, page_fields,
    reason_fields,
};

/// What the catalog records about a file's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowStats {
    /// Rows.
    pub rows: u64,
    /// Smallest value of the table's time column (µs).
    pub min_ts: i64,
    /// Largest value of the table's time column (µs).
    pub max_ts: i64,
    /// Smallest tenant id.
    pub min_tenant: String,
    /// Largest tenant id.
    pub max_tenant: String,
}

impl RowStats {
    pub(crate) fn empty() -> RowStats {
        RowStats {
            rows: 0,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            min_tenant: String::new(),
            max_tenant: String::new(),
        }
    }

    pub(crate) fn add(&mut self, ts: i64, tenant: &str) {
        if self.rows == 0 || tenant < self.min_tenant.as_str() {
            self.min_tenant = tenant.to_string();
        }
        if self.rows == 0 || tenant > self.max_tenant.as_str() {
            self.max_tenant = tenant.to_string();
        }
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        self.rows += 1;
    }
}

fn utc_timestamps() -> TimestampMicrosecondBuilder {
    utc_timestamps_with_capacity(0)
}

pub(crate) fn utc_timestamps_with_capacity(rows: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC")
}

/// Sorts a batch by its tenant column, then its time column: rows of one tenant and one time
/// range sit together, so Parquet's min/max statistics prune both.
///
/// A buffer holds a handful of tenants: each row's tenant becomes its rank among them, and the
/// rows are ordered by (rank, time) as plain integers, several times faster than the general
/// two-column sort (which stays the fallback for other column types). A batch already in order
/// is not copied.
pub fn sort_by_tenant_and_time(
    batch: &RecordBatch,
    tenant_column: &str,
    time_column: &str,
) -> Result<RecordBatch, LakeError> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .cloned()
            .ok_or_else(|| LakeError::Config(format!("sort column {name} is missing")))
    };
    let tenants = column(tenant_column)?;
    let times = column(time_column)?;
    let indices = match order_by_rank_and_time(&tenants, &times) {
        Some(indices) => indices,
        None => {
            let sort = [
                SortColumn {
                    values: tenants,
                    options: None,
                },
                SortColumn {
                    values: times,
                    options: None,
                },
            ];
            lexsort_to_indices(&sort, None)?
        }
    };
    let in_order = indices
        .values()
        .iter()
        .enumerate()
        .all(|(position, &index)| index as usize == position);
    if in_order {
        return Ok(batch.clone());
    }
    Ok(take_record_batch(batch, &indices)?)
}

/// The row order by (tenant, time) for a string tenant column and a microsecond time column
/// without nulls; `None` for anything else.
fn order_by_rank_and_time(tenants: &ArrayRef, times: &ArrayRef) -> Option<UInt32Array> {
    let tenants = tenants.as_string_opt::<i32>()?;
    let times = times
        .as_primitive_opt::<TimestampMicrosecondType>()
        .map(|array| array.values().clone())
        .or_else(|| {
            times
                .as_primitive_opt::<Int64Type>()
                .map(|array| array.values().clone())
        })?;
    if tenants.null_count() > 0 || times.len() != tenants.len() {
        return None;
    }
    let rows = u32::try_from(tenants.len()).ok()?;
    // Each row's tenant numbered in order of first appearance, then renumbered by name.
    let mut first_seen: HashMap<&str, u32> = HashMap::new();
    let seen_ids: Vec<u32> = tenants
        .iter()
        .map(|tenant| {
            let next = first_seen.len() as u32;
            *first_seen.entry(tenant.unwrap_or_default()).or_insert(next)
        })
        .collect();
    let mut by_name: Vec<(&str, u32)> = first_seen.into_iter().collect();
    by_name.sort_unstable();
    let mut rank_of_id = vec![0u32; by_name.len()];
    for (rank, (_, id)) in by_name.iter().enumerate() {
        rank_of_id[*id as usize] = rank as u32;
    }
    let mut keys: Vec<(u32, i64, u32)> = (0..rows)
        .zip(seen_ids)
        .zip(times.iter())
        .map(|((row, id), &ts)| (rank_of_id[id as usize], ts, row))
        .collect();
    keys.sort_unstable();
    Some(UInt32Array::from_iter_values(
        keys.into_iter().map(|(_, _, row)| row),
    ))
}

/// One promoted column being built.
enum PromotedColumn {
    String(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
}

impl PromotedColumn {
    fn new(kind: PromotedType) -> PromotedColumn {
        match kind {
            PromotedType::String => PromotedColumn::String(StringBuilder::new()),
            PromotedType::Int64 => PromotedColumn::Int64(Int64Builder::new()),
            PromotedType::Float64 => PromotedColumn::Float64(Float64Builder::new()),
            PromotedType::Bool => PromotedColumn::Bool(BooleanBuilder::new()),
        }
    }

    /// Appends the value if it converts, and says whether it did; appends null otherwise.
    fn append(&mut self, value: Option<&Value>) -> bool {
        let Some(value) = value else {
            self.append_null();
            return false;
        };
        match (&mut *self, value) {
            (PromotedColumn::String(b), Value::String(text)) => {
                b.append_value(text);
                true
            }
            (PromotedColumn::String(b), Value::Null) => {
                b.append_null();
                false
            }
            (PromotedColumn::String(b), other) => {
                b.append_value(other.to_string());
                true
            }
            (PromotedColumn::Int64(b), value) => {
                let number = match value {
                    Value::Number(n) => n.as_i64(),
                    Value::String(text) => text.trim().parse().ok(),
                    _ => None,
                };
                b.append_option(number);
                number.is_some()
            }
            (PromotedColumn::Float64(b), value) => {
                let number = match value {
                    Value::Number(n) => n.as_f64(),
                    Value::String(text) => {
                        text.trim().parse::<f64>().ok().filter(|f| f.is_finite())
                    }
                    _ => None,
                };
                b.append_option(number);
                number.is_some()
            }
            (PromotedColumn::Bool(b), value) => {
                let flag = match value {
                    Value::Bool(flag) => Some(*flag),
                    Value::String(text) if text == "true" => Some(true),
                    Value::String(text) if text == "false" => Some(false),
                    _ => None,
                };
                b.append_option(flag);
                flag.is_some()
            }
        }
    }

    fn append_null(&mut self) {
        match self {
            PromotedColumn::String(b) => b.append_null(),
            PromotedColumn::Int64(b) => b.append_null(),
            PromotedColumn::Float64(b) => b.append_null(),
            PromotedColumn::Bool(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            PromotedColumn::String(b) => Arc::new(b.finish()),
            PromotedColumn::Int64(b) => Arc::new(b.finish()),
            PromotedColumn::Float64(b) => Arc::new(b.finish()),
            PromotedColumn::Bool(b) => Arc::new(b.finish()),
        }
    }
}

/// Leaf columns of `context`, assembled into the struct when the buffer is finished (cheaper
/// than Arrow's nested struct builders).
#[derive(Default)]
struct ContextColumns {
    page_url: StringBuilder,
    page_path: StringBuilder,
    page_title: StringBuilder,
    page_referrer: StringBuilder,
    user_agent: StringBuilder,
    ip: StringBuilder,
    locale: StringBuilder,
    campaign_source: StringBuilder,
    campaign_medium: StringBuilder,
    campaign_name: StringBuilder,
    campaign_term: StringBuilder,
    campaign_content: StringBuilder,
    extra: StringBuilder,
}

impl ContextColumns {
    fn append(&mut self, context: &tributary_model::EventContext) {
        let page = context.page.as_ref();
        let page_field =
            |get: fn(&PageContext) -> &Option<String>| page.and_then(|p| get(p).as_deref());
        self.page_url.append_option(page_field(|p| &p.url));
        self.page_path.append_option(page_field(|p| &p.path));
        self.page_title.append_option(page_field(|p| &p.title));
        self.page_referrer
            .append_option(page_field(|p| &p.referrer));
        self.user_agent.append_option(context.user_agent.as_deref());
        self.ip.append_option(context.ip.as_deref());
        self.locale.append_option(context.locale.as_deref());
        let campaign = context.campaign.as_ref();
        let campaign_field =
            |get: fn(&Campaign) -> &Option<String>| campaign.and_then(|c| get(c).as_deref());
        self.campaign_source
            .append_option(campaign_field(|c| &c.source));
        self.campaign_medium
            .append_option(campaign_field(|c| &c.medium));
        self.campaign_name
            .append_option(campaign_field(|c| &c.name));
        self.campaign_term
            .append_option(campaign_field(|c| &c.term));
        self.campaign_content
            .append_option(campaign_field(|c| &c.content));
        self.extra.append_option(context_extra(context));
    }

    fn finish(&mut self) -> Result<ArrayRef, LakeError> {
        let page = StructArray::try_new(
            page_fields(),
            vec![
                Arc::new(self.page_url.finish()) as ArrayRef,
                Arc::new(self.page_path.finish()),
                Arc::new(self.page_title.finish()),
                Arc::new(self.page_referrer.finish()),
            ],
            None,
        )?;
        let campaign = StructArray::try_new(
            campaign_fields(),
            vec![
                Arc::new(self.campaign_source.finish()) as ArrayRef,
                Arc::new(self.campaign_medium.finish()),
                Arc::new(self.campaign_name.finish()),
                Arc::new(self.campaign_term.finish()),
                Arc::new(self.campaign_content.finish()),
            ],
            None,
        )?;
        let context = StructArray::try_new(
            context_fields(),
            vec![
                Arc::new(page) as ArrayRef,
                Arc::new(self.user_agent.finish()),
                Arc::new(self.ip.finish()),
                Arc::new(self.locale.finish()),
                Arc::new(campaign),
                Arc::new(self.extra.finish()),
            ],
            None,
        )?;
        Ok(Arc::new(context))
    }
}

/// Leaf columns of `enriched`, assembled into the struct when the buffer is finished; the
/// struct is null for an event the pipeline did not enrich.
#[derive(Default)]
struct EnrichedColumns {
    present: Vec<bool>,
    browser: StringBuilder,
    browser_version: StringBuilder,
    os: StringBuilder,
    os_version: StringBuilder,
    device_type: StringBuilder,
    is_bot: BooleanBuilder,
    referrer_class: StringBuilder,
    referrer_host: StringBuilder,
    page_host: StringBuilder,
    country: StringBuilder,
    region: StringBuilder,
    city: StringBuilder,
}

impl EnrichedColumns {
    fn append(&mut self, enriched: Option<&tributary_model::Enrichment>) {
        self.present.push(enriched.is_some());
        let text = |get: fn(&tributary_model::Enrichment) -> &Option<String>| {
            enriched.and_then(|e| get(e).as_deref())
        };
        self.browser.append_option(text(|e| &e.browser));
        self.browser_version
            .append_option(text(|e| &e.browser_version));
        self.os.append_option(text(|e| &e.os));
        self.os_version.append_option(text(|e| &e.os_version));
        self.device_type.append_option(text(|e| &e.device_type));
        self.is_bot.append_option(enriched.map(|e| e.is_bot));
        self.referrer_class
            .append_option(text(|e| &e.referrer_class));
        self.referrer_host.append_option(text(|e| &e.referrer_host));
        self.page_host.append_option(text(|e| &e.page_host));
        self.country.append_option(text(|e| &e.country));
        self.region.append_option(text(|e| &e.region));
        self.city.append_option(text(|e| &e.city));
    }

    fn finish(&mut self) -> Result<ArrayRef, LakeError> {
        let nulls = NullBuffer::from(std::mem::take(&mut self.present));
        let enriched = StructArray::try_new(
            enriched_fields(),
            vec![
                Arc::new(self.browser.finish()) as ArrayRef,
                Arc::new(self.browser_version.finish()),
                Arc::new(self.os.finish()),
                Arc::new(self.os_version.finish()),
                Arc::new(self.device_type.finish()),
                Arc::new(self.is_bot.finish()),
                Arc::new(self.referrer_class.finish()),
                Arc::new(self.referrer_host.finish()),
                Arc::new(self.page_host.finish()),
                Arc::new(self.country.finish()),
                Arc::new(self.region.finish()),
                Arc::new(self.city.finish()),
            ],
            Some(nulls),
        )?;
        Ok(Arc::new(enriched))
    }
}

/// Every context member without a column of its own, as one JSON object text (`None` when
/// there are none): the top level's other members, and the page's and campaign's under
/// `page` and `campaign`.
fn context_extra(context: &tributary_model::EventContext) -> Option<String> {
    let page_extra = context
        .page
        .as_ref()
        .map(|p| &p.extra)
        .filter(|m| !m.is_empty());
    let campaign_extra = context
        .campaign
        .as_ref()
        .map(|c| &c.extra)
        .filter(|m| !m.is_empty());
    if context.extra.is_empty() && page_extra.is_none() && campaign_extra.is_none() {
        return None;
    }
    let mut all = context.extra.clone();
    if let Some(extra) = page_extra {
        all.insert("page".into(), Value::Object(extra.clone()));
    }
    if let Some(extra) = campaign_extra {
        all.insert("campaign".into(), Value::Object(extra.clone()));
    }
    Some(Value::Object(all).to_string())
}

/// Rows of one curated partition (`dt`, `event_family`).
pub struct CuratedBuffer {
    schema: SchemaRef,
    promoted_names: Vec<String>,
    event_id: StringBuilder,
    tenant_id: StringBuilder,
    anonymous_id: StringBuilder,
    user_id: StringBuilder,
    session_id: StringBuilder,
    event_type: StringBuilder,
    ts: TimestampMicrosecondBuilder,
    received_at: TimestampMicrosecondBuilder,
    context: ContextColumns,
    properties: MapBuilder<StringBuilder, StringBuilder>,
    enriched: EnrichedColumns,
    promoted: Vec<PromotedColumn>,
    stats: RowStats,
    bytes: u64,
    /// Indexes into `promoted_names` of the properties the current event moved out of the map.
    moved: Vec<usize>,
}

impl CuratedBuffer {
    /// An empty buffer for files of `schema` (from [`crate::schema::curated_file_schema`] with
    /// the same `promoted` list).
    pub fn new(schema: SchemaRef, promoted: &[PromotedProperty]) -> CuratedBuffer {
        let names = MapFieldNames {
            entry: "key_value".into(),
            key: "key".into(),
            value: "value".into(),
        };
        CuratedBuffer {
            schema,
            promoted_names: promoted.iter().map(|p| p.name.clone()).collect(),
            event_id: StringBuilder::new(),
            tenant_id: StringBuilder::new(),
            anonymous_id: StringBuilder::new(),
            user_id: StringBuilder::new(),
            session_id: StringBuilder::new(),
            event_type: StringBuilder::new(),
            ts: utc_timestamps(),
            received_at: utc_timestamps(),
            context: ContextColumns::default(),
            properties: MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new()),
            enriched: EnrichedColumns::default(),
            promoted: promoted
                .iter()
                .map(|p| PromotedColumn::new(p.kind))
                .collect(),
            stats: RowStats::empty(),
            bytes: 0,
            moved: Vec::with_capacity(promoted.len()),
        }
    }

    /// Adds one event; `size` is its size as received (for the flush threshold).
    pub fn push(&mut self, event: &Event, size: usize) -> Result<(), LakeError> {
        self.event_id.append_value(&event.event_id);
        self.tenant_id.append_value(&event.tenant_id);
        self.anonymous_id.append_value(&event.anonymous_id);
        self.user_id.append_option(event.user_id.as_deref());
        self.session_id.append_value(&event.session_id);
        self.event_type.append_value(&event.event_type);
        self.ts.append_value(event.ts);
        self.received_at.append_value(event.received_at);
        self.context.append(&event.context);

        // Promoted properties that convert leave the map; the others stay in it as sent.
        // (`moved` is the buffer's own, reused: a fresh list per event was an allocation.)
        self.moved.clear();
        for (index, name) in self.promoted_names.iter().enumerate() {
            let value = event.properties.get(name);
            if self.promoted[index].append(value) {
                self.moved.push(index);
            }
        }
        for (key, value) in &event.properties {
            let promoted_names = &self.promoted_names;
            if self
                .moved
                .iter()
                .any(|&index| promoted_names.get(index) == Some(key))
            {
                continue;
            }
            self.properties.keys().append_value(key);
            match value {
                Value::String(text) => self.properties.values().append_value(text),
                Value::Null => self.properties.values().append_null(),
                other => self.properties.values().append_value(other.to_string()),
            }
        }
        self.properties.append(true)?;
        self.enriched.append(event.enriched.as_ref());

        self.stats.add(event.ts, &event.tenant_id);
        self.bytes += size as u64;
        Ok(())
    }

    /// Bytes of events buffered (as received).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Rows buffered.
    pub fn rows(&self) -> u64 {
        self.stats.rows
    }

    /// The rows, sorted by (tenant_id, ts), and their statistics.
    pub fn finish(mut self) -> Result<(RecordBatch, RowStats), LakeError> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.tenant_id.finish()),
            Arc::new(self.anonymous_id.finish()),
            Arc::new(self.user_id.finish()),
            Arc::new(self.session_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.received_at.finish()),
            self.context.finish()?,
            Arc::new(self.properties.finish()),
            self.enriched.finish()?,
        ];
        columns.extend(self.promoted.iter_mut().map(PromotedColumn::finish));
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        Ok((
            sort_by_tenant_and_time(&batch, "tenant_id", "ts")?,
            self.stats,
        ))
    }
}

/// Rows of one quarantine partition (`dt`).
pub struct QuarantineBuffer {
    schema: SchemaRef,
    tenant_id: StringBuilder,
    event_id: StringBuilder,
    event_type: StringBuilder,
    ts: TimestampMicrosecondBuilder,
    received_at: TimestampMicrosecondBuilder,
    shard: UInt32Builder,
    seq: UInt64Builder,
    schema_version: UInt32Builder,
    reasons: ListBuilder<StructBuilder>,
    payload: StringBuilder,
    stats: RowStats,
    bytes: u64,
}

/// One quarantined event as the quarantine table keeps it.
#[derive(Debug, Clone, Copy)]
pub struct QuarantineRow<'a> {
    /// Where it came from and what it was.
    pub raw: RawRow<'a>,
    /// Its event type.
    pub event_type: &'a str,
    /// The schema version that rejected it (`None`: its type has no schema).
    pub schema_version: Option<u32>,
    /// Every reason: (JSON pointer, rule, message).
    pub reasons: &'a [(String, String, String)],
}

impl QuarantineBuffer {
    /// An empty buffer for files of [`crate::schema::quarantine_file_schema`].
    pub fn new(schema: SchemaRef) -> QuarantineBuffer {
        let reason = StructBuilder::from_fields(reason_fields(), 0);
        QuarantineBuffer {
            schema,
            tenant_id: StringBuilder::new(),
            event_id: StringBuilder::new(),
            event_type: StringBuilder::new(),
            ts: utc_timestamps(),
            received_at: utc_timestamps(),
            shard: UInt32Builder::new(),
            seq: UInt64Builder::new(),
            schema_version: UInt32Builder::new(),
            reasons: ListBuilder::new(reason).with_field(Arc::new(Field::new(
                "item",
                DataType::Struct(reason_fields()),
                true,
            ))),
            payload: StringBuilder::new(),
            stats: RowStats::empty(),
            bytes: 0,
        }
    }

    /// Adds one quarantined event.
    pub fn push(&mut self, row: QuarantineRow<'_>) -> Result<(), LakeError> {
        self.tenant_id.append_value(row.raw.tenant_id);
        self.event_id.append_value(row.raw.event_id);
        self.event_type.append_value(row.event_type);
        self.ts.append_value(row.raw.ts);
        self.received_at.append_value(row.raw.received_at);
        self.shard.append_value(row.raw.shard);
        self.seq.append_value(row.raw.seq);
        self.schema_version.append_option(row.schema_version);
        let reasons = self.reasons.values();
        for (pointer, rule, message) in row.reasons {
            for (index, text) in [pointer, rule, message].into_iter().enumerate() {
                reasons
                    .field_builder::<StringBuilder>(index)
                    .ok_or_else(|| {
                        LakeError::Config("quarantine reason builder has the wrong shape".into())
                    })?
                    .append_value(text);
            }
            reasons.append(true);
        }
        self.reasons.append(true);
        self.payload.append_value(row.raw.payload);
        self.stats.add(row.raw.received_at, row.raw.tenant_id);
        self.bytes += row.raw.payload.len() as u64;
        Ok(())
    }

    /// Bytes buffered.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The rows, sorted by (tenant_id, received_at), and their statistics.
    pub fn finish(mut self) -> Result<(RecordBatch, RowStats), LakeError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.tenant_id.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.received_at.finish()),
            Arc::new(self.shard.finish()),
            Arc::new(self.seq.finish()),
            Arc::new(self.schema_version.finish()),
            Arc::new(self.reasons.finish()),
            Arc::new(self.payload.finish()),
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        Ok((
            sort_by_tenant_and_time(&batch, "tenant_id", "received_at")?,
            self.stats,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::curated_file_schema;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Float64Type, Schema};
    use proptest::prelude::*;
    use serde_json::Map;

    fn sorted_rows(tenants: &[String], times: &[i64]) -> Vec<(String, i64)> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("tenant_id", DataType::Utf8, false),
            Field::new("ts", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(tenants.to_vec())),
                Arc::new(Int64Array::from(times.to_vec())),
            ],
        )
        .unwrap();
        let sorted = sort_by_tenant_and_time(&batch, "tenant_id", "ts").unwrap();
        let tenants = sorted.column(0).as_string::<i32>();
        let times = sorted
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>();
        (0..sorted.num_rows())
            .map(|row| (tenants.value(row).to_string(), times.value(row)))
            .collect()
    }

    proptest! {
        #[test]
        fn batches_sort_by_tenant_then_time(
            rows in prop::collection::vec((prop::sample::select(vec!["acme", "globex", "initech"]), 0i64..50), 0..60),
            one_tenant in any::<bool>(),
        ) {
            let tenants: Vec<String> = rows
                .iter()
                .map(|(tenant, _)| if one_tenant { "acme".to_string() } else { tenant.to_string() })
                .collect();
            let times: Vec<i64> = rows.iter().map(|(_, ts)| *ts).collect();
            let mut expected: Vec<(String, i64)> = tenants.iter().cloned().zip(times.iter().copied()).collect();
            expected.sort();
            prop_assert_eq!(sorted_rows(&tenants, &times), expected);
        }
    }

    fn event(tenant: &str, ts: i64, revenue: Value) -> Event {
        let mut properties = Map::new();
        properties.insert("revenue".into(), revenue);
        properties.insert("items".into(), serde_json::json!([1, 2]));
        Event {
            event_id: format!("e-{tenant}-{ts}"),
            tenant_id: tenant.into(),
            anonymous_id: "a".into(),
            user_id: None,
            session_id: "s".into(),
            event_type: "track:Order Completed".into(),
            event_family: "track".into(),
            ts,
            received_at: ts + 1,
            context: tributary_model::EventContext {
                page: Some(PageContext {
                    path: Some("/checkout".into()),
                    ..PageContext::default()
                }),
                ..Default::default()
            },
            properties,
            enriched: None,
        }
    }

    #[test]
    fn curated_files_keep_statistics_except_for_free_text() {
        use crate::parquet_io::{ParquetOptions, encode, writer_properties};
        use parquet::file::reader::{FileReader, SerializedFileReader};

        let schema = curated_file_schema(&[]);
        let mut buffer = CuratedBuffer::new(schema.clone(), &[]);
        let mut event = event("acme", 10, serde_json::json!(1));
        if let Some(page) = event.context.page.as_mut() {
            page.url = Some("https://acme.example.com/checkout".into());
        }
        buffer.push(&event, 100).unwrap();
        let (batch, _) = buffer.finish().unwrap();
        let options = ParquetOptions {
            zstd_level: 1,
            row_group_rows: 1000,
        };
        let properties = writer_properties(options, &schema, &["tenant_id", "ts"]).unwrap();
        let file = encode(&schema, &[batch], properties).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        let group = reader.metadata().row_group(0);
        let has_statistics = |path: &str| {
            group
                .columns()
                .iter()
                .find(|column| column.column_path().string() == path)
                .map(|column| column.statistics().is_some())
        };
        assert_eq!(has_statistics("tenant_id"), Some(true));
        assert_eq!(has_statistics("context.page.path"), Some(true));
        assert_eq!(has_statistics("context.page.url"), Some(false));
        assert_eq!(has_statistics("properties.key_value.value"), Some(false));
        assert_eq!(has_statistics("properties.key_value.key"), Some(true));
    }

    #[test]
    fn curated_rows_are_sorted_and_promoted() {
        let promoted = vec![PromotedProperty {
            name: "revenue".into(),
            kind: PromotedType::Float64,
        }];
        let mut buffer = CuratedBuffer::new(curated_file_schema(&promoted), &promoted);
        buffer
            .push(&event("globex", 30, serde_json::json!(12.5)), 100)
            .unwrap();
        buffer
            .push(&event("acme", 20, serde_json::json!("oops")), 100)
            .unwrap();
        buffer
            .push(&event("acme", 10, serde_json::json!("7.25")), 100)
            .unwrap();
        assert_eq!(buffer.bytes(), 300);
        let (batch, stats) = buffer.finish().unwrap();
        assert_eq!(stats.rows, 3);
        assert_eq!((stats.min_ts, stats.max_ts), (10, 30));
        assert_eq!(
            (stats.min_tenant.as_str(), stats.max_tenant.as_str()),
            ("acme", "globex")
        );

        let tenants = batch
            .column_by_name("tenant_id")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(
            tenants.iter().flatten().collect::<Vec<_>>(),
            ["acme", "acme", "globex"]
        );
        let revenue = batch
            .column_by_name("revenue")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert_eq!(revenue.value(0), 7.25);
        assert!(revenue.is_null(1), "a value that does not convert is null");
        assert_eq!(revenue.value(2), 12.5);
        // The value that did not convert stays in the map; the others left it.
        let properties = batch.column_by_name("properties").unwrap().as_map();
        let keys_of = |row: usize| {
            let entries = properties.value(row);
            let keys = entries.column(0).as_string::<i32>();
            keys.iter().flatten().map(str::to_owned).collect::<Vec<_>>()
        };
        assert_eq!(keys_of(0), ["items"]);
        assert_eq!(keys_of(1), ["items", "revenue"]);
    }
}
