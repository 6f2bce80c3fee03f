"""DuckDB's side of `tributary bench query` (embedded in the binary, written to the scratch
directory and run with the Python that has the `duckdb` package).

Reads one JSON object on stdin:

    {"glob": "<lake>/curated/events/**/*.parquet", "threads": 2, "warmup": 1, "runs": 3,
     "queries": [{"name": "q01", "sql": "SELECT ..."}, ...]}

and writes one JSON object on stdout:

    {"version": "2.0.0", "queries": [{"name": "q01", "times_ms": [...], "rows": 60,
                                      "result": [[...], ...]}, ...]}

or {"error": "..."} when DuckDB cannot be used at all; a query that fails has "error" instead
of its figures. Times are measured here, around execute + fetchall, so the interpreter's start
and the view's creation are not in them.

Result values are normalised so that the Rust side can compare them with Arrow's: timestamps
become µs since the epoch (converted inside DuckDB, so no time zone package is needed), dates
ISO text, decimals floats.
"""

import datetime
import decimal
import json
import sys
import time


def quote(name):
    return '"' + name.replace('"', '""') + '"'


def normalise(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return (value - datetime.datetime(1970, 1, 1)) // datetime.timedelta(microseconds=1)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def comparable(con, sql):
    """The query, with timestamp columns turned into µs since the epoch for fetching."""
    relation = con.sql(sql)
    columns = relation.columns
    types = [str(t) for t in relation.types]
    if not any(t.startswith("TIMESTAMP") for t in types):
        return sql
    projection = ", ".join(
        f"epoch_us({quote(c)}) AS {quote(c)}" if t.startswith("TIMESTAMP") else quote(c)
        for c, t in zip(columns, types)
    )
    return f"SELECT {projection} FROM ({sql}) AS q"


def run(con, duckdb, query, warmup, runs):
    name = query["name"]
    try:
        sql = comparable(con, query["sql"])
        for _ in range(warmup):
            con.execute(sql).fetchall()
        times = []
        rows = []
        for _ in range(runs):
            started = time.perf_counter()
            rows = con.execute(sql).fetchall()
            times.append((time.perf_counter() - started) * 1000.0)
        return {
            "name": name,
            "times_ms": times,
            "rows": len(rows),
            "result": [[normalise(v) for v in row] for row in rows],
        }
    except duckdb.Error as error:
        return {"name": name, "error": str(error)}


def main():
    spec = json.load(sys.stdin)
    try:
        import duckdb
    except ImportError as error:
        json.dump({"error": f"cannot import duckdb: {error}"}, sys.stdout)
        return 0
    con = duckdb.connect()
    con.execute(f"SET threads = {int(spec['threads'])}")
    # Literals and date_trunc in UTC, as Tributary's.
    con.execute("SET TimeZone = 'UTC'")
    # Parquet footers cached between queries, as Tributary's engine caches them.
    for setting in (
        "SET enable_progress_bar = false",
        "SET enable_object_cache = true",
        "SET parquet_metadata_cache = true",
    ):
        try:
            con.execute(setting)
        except duckdb.Error:
            pass
    glob = spec["glob"].replace("'", "''")
    # Partition values stay text (dt, event_family), as Tributary's catalog gives them.
    con.execute(
        "CREATE VIEW events AS SELECT * FROM read_parquet("
        f"'{glob}', hive_partitioning = true, hive_types_autocast = false)"
    )
    results = [
        run(con, duckdb, query, int(spec["warmup"]), int(spec["runs"]))
        for query in spec["queries"]
    ]
    json.dump({"version": duckdb.__version__, "queries": results}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
