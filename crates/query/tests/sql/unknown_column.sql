-- Planning errors name the column.
SELECT revenu FROM events
