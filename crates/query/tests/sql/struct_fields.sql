-- Struct fields: bracket syntax and dotted syntax both work in DataFusion 55.
SELECT event_id,
       context['page']['path'] AS path,
       context.page.title AS title,
       context['user_agent'] AS user_agent
FROM events
WHERE tenant_id = 'acme' AND dt = '2026-11-23'
ORDER BY event_id
