-- The query suite of `tributary bench query`: typical web-analytics questions over `events`,
-- run by Tributary (DataFusion over the catalog) and by DuckDB over the same Parquet files.
--
-- Each query starts with a header line `-- <name>: <what it answers>`; a header
-- `-- <name> [duckdb]: …` right after a query gives DuckDB's variant of it, where the dialects
-- differ (none does at the moment: `context['page']['path']`, `TIMESTAMP '…Z'`, `date_trunc`
-- and `count(DISTINCT …)` read the same in both). Placeholders in braces are filled in from the
-- generated data: {last_hour_from} and {end} bound its last hour, {hour_from} and {hour_until}
-- one hour in the middle of the month.
--
-- Every query orders its whole answer (ties broken on every output column), so the two
-- engines' rows can be compared one by one.

-- q01_pageviews_per_minute: page views per minute over the last hour of data
SELECT date_trunc('minute', ts) AS minute, count(*) AS views
FROM events
WHERE event_family = 'page'
  AND ts >= TIMESTAMP '{last_hour_from}' AND ts < TIMESTAMP '{end}'
GROUP BY date_trunc('minute', ts)
ORDER BY minute;

-- q02_top_pages: the 10 most viewed pages
SELECT context['page']['path'] AS path, count(*) AS views
FROM events
WHERE event_family = 'page'
GROUP BY context['page']['path']
ORDER BY views DESC, path
LIMIT 10;

-- q03_unique_visitors_per_day: distinct visitors (cookies) per day
SELECT dt, count(DISTINCT anonymous_id) AS visitors
FROM events
GROUP BY dt
ORDER BY dt;

-- q04_top_referrers: the 10 external referrers that brought the most page views
SELECT context['page']['referrer'] AS referrer, count(*) AS views
FROM events
WHERE event_family = 'page'
  AND context['page']['referrer'] IS NOT NULL
  AND context['page']['referrer'] NOT LIKE '%.example.com/%'
GROUP BY context['page']['referrer']
ORDER BY views DESC, referrer
LIMIT 10;

-- q05_events_by_type: events per type
SELECT event_type, count(*) AS events
FROM events
GROUP BY event_type
ORDER BY events DESC, event_type;

-- q06_funnel: visitors who viewed a page, then a product, then completed an order
WITH steps AS (
  SELECT anonymous_id,
         min(CASE WHEN event_type = 'page' THEN ts END) AS landed,
         min(CASE WHEN event_type = 'track:Product Viewed' THEN ts END) AS viewed,
         max(CASE WHEN event_type = 'track:Order Completed' THEN ts END) AS ordered
  FROM events
  WHERE event_type IN ('page', 'track:Product Viewed', 'track:Order Completed')
  GROUP BY anonymous_id
)
SELECT count(landed) AS visited,
       count(CASE WHEN viewed >= landed THEN 1 END) AS viewed_product,
       count(CASE WHEN viewed >= landed AND ordered >= viewed THEN 1 END) AS ordered
FROM steps;

-- q07_revenue_by_campaign: orders and revenue by the utm source/campaign of the session's landing page
WITH landing AS (
  SELECT session_id,
         max(context['campaign']['source']) AS source,
         max(context['campaign']['name']) AS campaign
  FROM events
  WHERE event_family = 'page' AND context['campaign']['source'] IS NOT NULL
  GROUP BY session_id
),
orders AS (
  SELECT session_id, count(*) AS orders, sum(revenue) AS revenue
  FROM events
  WHERE event_family = 'track' AND event_type = 'track:Order Completed'
  GROUP BY session_id
)
SELECT coalesce(landing.source, '(direct)') AS source,
       coalesce(landing.campaign, '(none)') AS campaign,
       sum(orders.orders) AS orders,
       round(sum(orders.revenue), 2) AS revenue
FROM orders LEFT JOIN landing ON orders.session_id = landing.session_id
GROUP BY coalesce(landing.source, '(direct)'), coalesce(landing.campaign, '(none)')
ORDER BY revenue DESC, source, campaign;

-- q08_top_products_viewed: the 10 most viewed products (item_id is a promoted column)
SELECT item_id, count(*) AS views
FROM events
WHERE event_family = 'track' AND event_type = 'track:Product Viewed'
GROUP BY item_id
ORDER BY views DESC, item_id
LIMIT 10;

-- q09_sessions_per_tenant: distinct sessions per tenant
SELECT tenant_id, count(DISTINCT session_id) AS sessions
FROM events
GROUP BY tenant_id
ORDER BY tenant_id;

-- q10_events_per_session: average events per session, per tenant
SELECT tenant_id, count(*) AS sessions, round(avg(events), 3) AS avg_events
FROM (
  SELECT tenant_id, session_id, count(*) AS events
  FROM events
  GROUP BY tenant_id, session_id
) AS sessions
GROUP BY tenant_id
ORDER BY tenant_id;

-- q11_daily_active_users: distinct people (user id, else cookie) per day and tenant
SELECT dt, tenant_id, count(DISTINCT coalesce(user_id, anonymous_id)) AS active
FROM events
GROUP BY dt, tenant_id
ORDER BY dt, tenant_id;

-- q12_new_vs_returning: per day, visitors seen for the first time and visitors seen before
WITH firsts AS (
  SELECT anonymous_id, min(dt) AS first_dt
  FROM events
  GROUP BY anonymous_id
),
daily AS (
  SELECT DISTINCT dt, anonymous_id
  FROM events
)
SELECT daily.dt,
       count(CASE WHEN firsts.first_dt = daily.dt THEN 1 END) AS new_visitors,
       count(CASE WHEN firsts.first_dt < daily.dt THEN 1 END) AS returning_visitors
FROM daily JOIN firsts ON daily.anonymous_id = firsts.anonymous_id
GROUP BY daily.dt
ORDER BY daily.dt;

-- q13_count_one_hour: events in one hour of the month
SELECT count(*) AS events
FROM events
WHERE ts >= TIMESTAMP '{hour_from}' AND ts < TIMESTAMP '{hour_until}';
