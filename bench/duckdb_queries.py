#!/usr/bin/env python3
"""Runs the store bench's queries with DuckDB over the same Parquet segments
trawl wrote (flows_1m, and flows_1d: the rows trawl's rollup routing reads
for the whole-day query), and prints one JSON line of p50 latencies (ms).

With --memory (the HTTP query bench, issue 14 #5): flows_1m's rows are
first loaded into a DuckDB table, the queries are the three reference ones
(top-20 app pairs, a 1-hour series by region, AZ x AZ bytes within one
region), and each answer's rows are printed too, as CSV lines, for the
bench to compare with trawl's.

usage: duckdb_queries.py DATA_DIR HOUR_START_EPOCH RUNS THREADS [--memory]
"""
import json
import statistics
import sys
import time

import duckdb

data_dir, hour, runs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
memory = "--memory" in sys.argv[5:]
con = duckdb.connect()
con.execute(f"SET threads = {threads}")


def listed_files(table):
    """The table's segment files the manifest lists: a directory may also
    hold files a compaction replaced, deleted only after a delay."""
    with open(f"{data_dir}/MANIFEST") as manifest:
        manifest.readline()  # "trawl-manifest 1 crc32=..."
        segments = json.loads(manifest.read())["segments"]
    return [f"{data_dir}/{s['file']}" for s in segments if s["table"] == table]


for table in ("flows_1m",) if memory else ("flows_1m", "flows_1d"):
    kind = "TABLE" if memory else "VIEW"
    files = ", ".join(f"'{f}'" for f in listed_files(table))
    con.execute(f"CREATE {kind} {table} AS SELECT * FROM read_parquet([{files}])")
REGION = "us-east-1"
memory_queries = {
    "top20_app_pairs": (
        "SELECT src_app, dst_app, sum(bytes) AS bytes FROM flows_1m "
        "GROUP BY src_app, dst_app ORDER BY bytes DESC LIMIT 20"
    ),
    "region_series_1h": (
        "SELECT time, src_region, sum(bytes) AS bytes FROM flows_1m "
        f"WHERE time >= {hour} AND time < {hour + 3600} "
        "GROUP BY time, src_region ORDER BY time, src_region"
    ),
    "az_matrix_region": (
        "SELECT src_az, dst_az, sum(bytes) AS bytes FROM flows_1m "
        f"WHERE src_region = '{REGION}' AND dst_region = '{REGION}' "
        "GROUP BY src_az, dst_az ORDER BY src_az, dst_az"
    ),
}
queries = memory_queries if memory else {
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
    if memory:
        out[name]["rows_csv"] = [
            ",".join("" if v is None else str(v) for v in row)
            for row in con.execute(sql).fetchall()
        ]
print(json.dumps(out))
