#!/usr/bin/env python3
"""Runs the store bench's queries with DuckDB over the same Parquet segments
trawl wrote (flows_1m, and flows_1d: the rows trawl's rollup routing reads
for the whole-day query), and prints one JSON line of p50 latencies (ms).

usage: duckdb_queries.py DATA_DIR HOUR_START_EPOCH RUNS THREADS
"""
import json
import statistics
import sys
import time

import duckdb

data_dir, hour, runs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
for table in ("flows_1m", "flows_1d"):
    con.execute(
        f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{data_dir}/{table}/*.parquet')"
    )
queries = {
    "top20_app_pairs_day": (
        "SELECT src_app, dst_app, sum(bytes) AS bytes FROM flows_1m "
        "GROUP BY src_app, dst_app ORDER BY bytes DESC LIMIT 20"
    ),
    "top20_app_pairs_day_from_flows_1d": (
        "SELECT src_app, dst_app, sum(bytes) AS bytes FROM flows_1d "
        "GROUP BY src_app, dst_app ORDER BY bytes DESC LIMIT 20"
    ),
    "region_series_1h": (
        "SELECT time, src_region, sum(bytes) AS bytes FROM flows_1m "
        # trawl writes `time` as Arrow Timestamp(Second); Parquet has no
        # seconds unit, so other readers see the epoch seconds as BIGINT.
        f"WHERE time >= {hour} AND time < {hour + 3600} "
        "GROUP BY time, src_region ORDER BY time, src_region"
    ),
}
out = {}
for name, sql in queries.items():
    con.execute(sql).fetchall()  # warm-up
    times = []
    rows = 0
    for _ in range(runs):
        t = time.perf_counter()
        rows = len(con.execute(sql).fetchall())
        times.append((time.perf_counter() - t) * 1000)
    out[name] = {"p50_ms": statistics.median(times), "rows": rows}
print(json.dumps(out))
