-- Curated events joined with their raw archive rows.
SELECT e.event_id, e.event_type, r.dt AS raw_dt, r.hour AS raw_hour, r.received_at - e.ts AS delay
FROM events e
JOIN raw_events r ON r.event_id = e.event_id AND r.tenant_id = e.tenant_id
ORDER BY e.event_id
