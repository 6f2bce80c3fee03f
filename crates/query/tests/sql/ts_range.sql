-- A 45-minute window of event time (timestamps print as RFC 3339 UTC).
SELECT event_id, tenant_id, ts
FROM events
WHERE ts >= TIMESTAMP '2026-11-23T10:15:00Z' AND ts < TIMESTAMP '2026-11-23T11:00:00Z'
ORDER BY ts
