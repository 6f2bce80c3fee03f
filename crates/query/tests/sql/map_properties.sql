-- Map access: properties['key'] is the value, NULL when the key is absent.
SELECT event_id, event_type, properties['item_id'] AS item_id, properties['order_id'] AS order_id
FROM events
WHERE event_family = 'track'
ORDER BY event_id
