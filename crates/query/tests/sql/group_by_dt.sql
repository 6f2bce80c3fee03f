-- Partition columns are ordinary columns.
SELECT dt, count(*) AS events, count(DISTINCT tenant_id) AS tenants, min(ts) AS first, max(ts) AS last
FROM events
GROUP BY dt
ORDER BY dt
