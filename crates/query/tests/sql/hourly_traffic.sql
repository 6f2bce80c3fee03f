-- Page views per hour of one day.
SELECT date_trunc('hour', ts) AS hour, count(*) AS page_views
FROM events
WHERE dt = '2026-11-23' AND event_family = 'page'
GROUP BY 1
ORDER BY 1
