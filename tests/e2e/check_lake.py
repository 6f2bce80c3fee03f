#!/usr/bin/env python3
"""Checks that the lake holds what the stream holds, and that DuckDB reads it as Tributary does.

Usage:
    check_lake.py --tributary BIN --data DIR --url URL --key ADMIN_KEY

While the server runs:

* waits (up to --timeout seconds) until Tributary's SQL (`POST /v1/query`) counts as many rows
  in `raw_events` and in `events` as the stream holds records (`tributary stream stats`): the
  lake writer caught up and lost nothing;
* runs DuckDB (PyPI `duckdb`) over the plain Hive-partitioned Parquet files,
  `<data>/lake/curated/events/**/*.parquet` and `<data>/lake/raw/events/**/*.parquet` with
  `hive_partitioning = true`, and compares its counts per (dt, event_family) and per (dt, hour)
  with Tributary's, its distinct event ids, and a nested-field query;
* checks that a read key of another tenant sees none of these rows.

Prints one line per check (`ok …` or `FAIL …`) and ends with `N passed, M failed`; exits 1 when
a check failed.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import duckdb

passed = 0
failed = 0


def check(ok, label, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {label}")
    else:
        failed += 1
        print(f"FAIL {label}: {detail}")


def stream_records(binary, data):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIBUTARY_")}
    result = subprocess.run(
        [binary, "stream", "stats", "--json", "--data", data],
        capture_output=True, text=True, timeout=120, env=env, check=True,
    )
    stats = json.loads(result.stdout)
    return sum(s["next_seq"] - s["first_seq"] for s in stats["shards"])


def query(url, key, sql):
    request = urllib.request.Request(
        f"{url}/v1/query",
        data=json.dumps({"sql": sql}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tributary", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True, help="an admin key")
    parser.add_argument("--other-tenant-key", help="a read key of a tenant that sent nothing")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()

    expected = stream_records(args.tributary, args.data)
    deadline = time.monotonic() + args.timeout
    raw = curated = -1
    while time.monotonic() < deadline:
        raw = query(args.url, args.key, "SELECT count(*) AS n FROM raw_events")[0]["n"]
        curated = query(args.url, args.key, "SELECT count(*) AS n FROM events")[0]["n"]
        if raw >= expected and curated >= expected:
            break
        time.sleep(0.5)
    check(raw == expected, f"raw_events holds every stream record ({raw} of {expected})",
          f"{raw} rows for {expected} records")
    check(curated == expected, f"events holds every stream record ({curated} of {expected})",
          f"{curated} rows for {expected} records")

    lake = os.path.join(args.data, "lake")
    db = duckdb.connect()
    def sql_literal(text):
        return "'" + text.replace("'", "''") + "'"

    # DuckDB cannot take a prepared parameter in CREATE VIEW, so the glob is
    # inlined as an escaped literal.
    for view, sub in (("events", ("curated", "events")), ("raw_events", ("raw", "events"))):
        glob = os.path.join(lake, *sub, "**", "*.parquet")
        db.execute(
            f"CREATE VIEW {view} AS SELECT * FROM "
            f"read_parquet({sql_literal(glob)}, hive_partitioning = true)"
        )

    def same(label, sql, duck_sql=None):
        ours = [tuple(row.values()) for row in query(args.url, args.key, sql)]
        theirs = [tuple(row) for row in db.execute(duck_sql or sql).fetchall()]
        # JSON answers carry dates and partitions as text; compare as text.
        normalize = lambda rows: [tuple(str(v) for v in row) for row in rows]
        check(normalize(ours) == normalize(theirs), f"DuckDB agrees: {label} ({len(ours)} rows)",
              f"tributary {ours[:5]} … duckdb {theirs[:5]} …")

    same("count(*) of events", "SELECT count(*) AS n FROM events")
    same("count(*) of raw_events", "SELECT count(*) AS n FROM raw_events")
    same(
        "rows per (dt, event_family)",
        "SELECT dt, event_family, count(*) AS n FROM events GROUP BY dt, event_family "
        "ORDER BY dt, event_family",
    )
    same(
        "rows per (dt, hour) of the raw archive",
        "SELECT dt, hour, count(*) AS n FROM raw_events GROUP BY dt, hour ORDER BY dt, hour",
    )
    same("distinct event ids", "SELECT count(DISTINCT event_id) AS n FROM events")
    same(
        "events per type and tenant",
        "SELECT tenant_id, event_type, count(*) AS n FROM events "
        "GROUP BY tenant_id, event_type ORDER BY tenant_id, event_type",
    )
    same(
        "a nested field: page paths",
        "SELECT count(*) AS n FROM events WHERE context['page']['path'] IS NOT NULL",
        "SELECT count(*) AS n FROM events WHERE context.page.path IS NOT NULL",
    )

    if args.other_tenant_key:
        try:
            rows = query(args.url, args.other_tenant_key,
                         "SELECT count(*) AS n FROM events UNION ALL SELECT count(*) FROM raw_events")
            check(all(r["n"] == 0 for r in rows),
                  "another tenant's read key sees none of these rows", str(rows))
        except urllib.error.HTTPError as e:
            check(False, "another tenant's read key can query", f"HTTP {e.code}: {e.read()[:300]!r}")

    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
