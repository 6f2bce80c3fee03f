-- scope: acme
-- A read key sees its tenant only, whatever the query asks for.
SELECT tenant_id, count(*) AS events, sum(revenue) AS revenue
FROM events
WHERE tenant_id IN ('acme', 'globex', 'initech') OR true
GROUP BY tenant_id
ORDER BY tenant_id
