-- The SQL schema of events: the file columns, then the partition columns.
SELECT column_name, data_type, is_nullable
FROM information_schema.columns
WHERE table_name = 'events'
ORDER BY ordinal_position
