-- Events per family, all tenants (admin scope).
SELECT event_family, count(*) AS events
FROM events
GROUP BY event_family
ORDER BY event_family
