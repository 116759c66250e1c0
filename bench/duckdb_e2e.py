#!/usr/bin/env python3
"""DuckDB's batch form of trawl's job on the same files, for the e2e bench:
gzip'd VPC flow logs (space-delimited, header line, `-` for null) -> each
side's owner at the flow's start by an ASOF join on the metadata events
(assign, release, and snapshot entries as assigns) -> the 1-minute rollup
over trawl's dimensions (both sides' app, cluster, account, region, AZ and
kind; protocol, service port, action, direction), summing bytes, packets
and flows. Prints one JSON line: seconds end to end, flows read, rollup rows.

What it leaves out (each would only slow it): releases implied by a snapshot
that does not list an IP, interface histories, CIDR and AWS-range fallbacks.

usage: duckdb_e2e.py FLOWS_GLOB METADATA_JSONL THREADS
"""
import json
import sys
import time

import duckdb

flows_glob, metadata, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
started = time.perf_counter()
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
con.execute(
    f"""
    CREATE TABLE flows AS
    SELECT * FROM read_csv('{flows_glob}', delim = ' ', header = true,
                           nullstr = '-', union_by_name = true)
    """
)
loaded = time.perf_counter()
con.execute(
    f"""
    CREATE TABLE events AS
    WITH raw AS (
        SELECT * FROM read_json('{metadata}', format = 'newline_delimited',
            columns = {{'type': 'VARCHAR', 'ip': 'VARCHAR', 'at': 'BIGINT',
                        'workload': 'STRUCT(app VARCHAR, cluster VARCHAR, account VARCHAR,
                                          region VARCHAR, az VARCHAR, kind VARCHAR)',
                        'owners': 'STRUCT(ip VARCHAR, workload STRUCT(app VARCHAR,
                                 cluster VARCHAR, account VARCHAR, region VARCHAR,
                                 az VARCHAR, kind VARCHAR))[]'}})
    )
    SELECT ip, "at", workload AS w FROM raw WHERE type = 'assign'
    UNION ALL
    SELECT ip, "at", NULL AS w FROM raw WHERE type = 'release'
    UNION ALL
    SELECT o.ip, "at", o.workload AS w
    FROM (SELECT "at", unnest(owners) AS o FROM raw WHERE type = 'snapshot')
    """
)
rows = con.execute(
    """
    SELECT count(*) FROM (
        SELECT f.start - f.start % 60 AS minute,
               s.w.app, s.w.cluster, s.w.account, s.w.region, s.w.az, s.w.kind,
               d.w.app, d.w.cluster, d.w.account, d.w.region, d.w.az, d.w.kind,
               f.protocol,
               CASE WHEN least(f.srcport, f.dstport) < 32768
                    THEN least(f.srcport, f.dstport) END AS service_port,
               f.action, f."flow-direction",
               sum(f.bytes) AS bytes, sum(f.packets) AS packets, count(*) AS flows
        FROM flows f
        ASOF LEFT JOIN events s ON f.srcaddr = s.ip AND f.start >= s."at"
        ASOF LEFT JOIN events d ON f.dstaddr = d.ip AND f.start >= d."at"
        GROUP BY ALL
    )
    """
).fetchone()[0]
flows = con.execute("SELECT count(*) FROM flows").fetchone()[0]
done = time.perf_counter()
print(
    json.dumps(
        {
            "secs": done - started,
            "load_secs": loaded - started,
            "flows": flows,
            "rollup_rows": rows,
        }
    )
)
