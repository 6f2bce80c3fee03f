-- The promoted property `revenue` is a typed Float64 column.
SELECT tenant_id, dt, sum(revenue) AS revenue, count(revenue) AS orders
FROM events
WHERE event_type = 'track:order_completed'
GROUP BY tenant_id, dt
ORDER BY tenant_id, dt
