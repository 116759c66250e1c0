"""Test input for trawl's Kinesis source, written by an independent client
(boto3), with the totals a correct consumer must find.

The endpoint is an emulator on this machine (moto_server, kinesalite);
credentials and region come from the environment when set, else dummy
ones (test/test, us-east-1).

Usage:
  produce.py create ENDPOINT STREAM SHARDS
      Creates the stream and waits until it is ACTIVE.
  produce.py flows ENDPOINT STREAM --records N --lines L --seed S
                   [--shards K] [--kinds lines,cloudwatch] [--seconds T]
                   [--reshard split|merge|count:M] [--reshard-at F] [--control]
      N Kinesis records of L flow records each (AWS's default format),
      cycling through the containers in --kinds (lines: plain record lines;
      gzip: a gzip'd file with a header; cloudwatch: a CloudWatch Logs
      subscription payload), spread over T seconds. --shards K creates the
      stream first. --reshard splits the widest open shard at its middle,
      merges the two lowest adjacent open shards, or sets the open shard
      count to M (UpdateShardCount), after the fraction F (default 0.5) of
      the records is in, and waits for the stream to be ACTIVE again.
      --control puts a CloudWatch CONTROL_MESSAGE first (no flows).
      Prints {"records":..,"bytes":..,"packets":..}; where the records went
      (per shard) and the reshard go to stderr.
  produce.py read ENDPOINT STREAM
      An independent reader: every shard from TRIM_HORIZON, parents before
      children, each to its end (closed: NextShardIterator gone, or nothing
      left before EndingSequenceNumber; open: nothing more). Prints the
      totals it found in the same format, with "kinesis_records" and
      "per_shard" added: a check of the emulator, not of trawl.

Emulator notes (moto 5.2.6): records put after a reshard still land in
the closed parents, a merge copies the parents' records into the child
(a reader of every shard counts them twice), GetRecords never ends a
closed shard (no NextShardIterator = None). kinesalite 3.3.3 reshards
as AWS does but has no UpdateShardCount and takes stream names only.
"""
import argparse
import gzip
import json
import os
import random
import sys
import time

import boto3
from botocore.config import Config

HEADER = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
PUT_RECORDS_MAX = 500
PUT_BYTES_MAX = 5 * 1024 * 1024
RECORD_BYTES_MAX = 1024 * 1024


class Totals:
    def __init__(self):
        self.records = 0
        self.bytes = 0
        self.packets = 0

    def as_dict(self):
        return {"records": self.records, "bytes": self.bytes, "packets": self.packets}


def flow_lines(rng, n, totals, now):
    lines = []
    for _ in range(n):
        start = now - rng.randint(60, 600)
        packets = rng.randint(1, 500)
        size = packets * rng.randint(40, 1500)
        totals.records += 1
        totals.bytes += size
        totals.packets += packets
        lines.append(
            "2 123456789012 eni-%08x 10.%d.%d.%d 10.%d.%d.%d %d %d 6 %d %d %d %d ACCEPT OK"
            % (
                rng.getrandbits(32),
                rng.randint(0, 3), rng.randint(0, 255), rng.randint(1, 254),
                rng.randint(0, 3), rng.randint(0, 255), rng.randint(1, 254),
                rng.randint(1024, 65535), rng.choice([443, 80, 5432, 6379]),
                packets, size, start, start + 60,
            )
        )
    return lines


def cloudwatch(lines, message_type="DATA_MESSAGE"):
    events = [{"id": str(i), "timestamp": 0, "message": line} for i, line in enumerate(lines)]
    body = {"messageType": message_type, "owner": "123456789012", "logGroup": "vpc-flow-logs",
            "logStream": "eni-1", "subscriptionFilters": ["f"], "logEvents": events}
    return gzip.compress(json.dumps(body).encode())


def encode(kind, lines):
    if kind == "lines":
        return "\n".join(lines).encode()  # no final newline: as a writer of single lines sends them
    if kind == "gzip":
        return gzip.compress((HEADER + "\n" + "\n".join(lines) + "\n").encode())
    if kind == "cloudwatch":
        return cloudwatch(lines)
    sys.exit("unknown kind %r (lines, gzip, cloudwatch)" % kind)


def client(endpoint):
    env = os.environ.get
    return boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or "us-east-1",
        aws_access_key_id=env("AWS_ACCESS_KEY_ID") or "test",
        aws_secret_access_key=env("AWS_SECRET_ACCESS_KEY") or "test",
        config=Config(retries={"mode": "standard", "max_attempts": 10}, connect_timeout=5, read_timeout=30),
    )


def wait_active(k, stream, timeout=60):
    deadline = time.time() + timeout
    while True:
        try:
            status = k.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"]
            if status == "ACTIVE":
                return
        except k.exceptions.ResourceNotFoundException:
            pass
        if time.time() > deadline:
            sys.exit("stream %s not ACTIVE after %d s" % (stream, timeout))
        time.sleep(0.1)


def list_shards(k, stream):
    """Every shard, open and closed. AWS and kinesalite refuse StreamName
    beside NextToken; moto needs it: try without, then with."""
    page = k.list_shards(StreamName=stream, MaxResults=10000)
    shards = list(page["Shards"])
    while page.get("NextToken"):
        try:
            page = k.list_shards(NextToken=page["NextToken"], MaxResults=10000)
        except k.exceptions.ResourceNotFoundException:
            page = k.list_shards(StreamName=stream, NextToken=page["NextToken"], MaxResults=10000)
        shards.extend(page["Shards"])
    return shards


def is_open(shard):
    return "EndingSequenceNumber" not in shard["SequenceNumberRange"]


def hash_range(shard):
    r = shard["HashKeyRange"]
    return int(r["StartingHashKey"]), int(r["EndingHashKey"])


def cmd_create(a):
    k = client(a.endpoint)
    k.create_stream(StreamName=a.stream, ShardCount=a.shards)
    wait_active(k, a.stream)


def reshard(k, stream, how):
    opened = sorted((s for s in list_shards(k, stream) if is_open(s)), key=lambda s: hash_range(s)[0])
    if how == "split":
        widest = max(opened, key=lambda s: hash_range(s)[1] - hash_range(s)[0])
        lo, hi = hash_range(widest)
        k.split_shard(StreamName=stream, ShardToSplit=widest["ShardId"], NewStartingHashKey=str((lo + hi + 1) // 2))
        done = "split %s" % widest["ShardId"]
    elif how == "merge":
        pair = next(((x, y) for x, y in zip(opened, opened[1:]) if hash_range(x)[1] + 1 == hash_range(y)[0]), None)
        if pair is None:
            sys.exit("merge: no two adjacent open shards")
        k.merge_shards(StreamName=stream, ShardToMerge=pair[0]["ShardId"], AdjacentShardToMerge=pair[1]["ShardId"])
        done = "merged %s and %s" % (pair[0]["ShardId"], pair[1]["ShardId"])
    elif how.startswith("count:"):
        target = int(how.split(":", 1)[1])
        k.update_shard_count(StreamName=stream, TargetShardCount=target, ScalingType="UNIFORM_SCALING")
        done = "open shards %d -> %d" % (len(opened), target)
    else:
        sys.exit("--reshard: split, merge or count:N")
    wait_active(k, stream)
    now_open = [s["ShardId"] for s in list_shards(k, stream) if is_open(s)]
    print("reshard: %s; open now: %s" % (done, " ".join(now_open)), file=sys.stderr)


def put_batch(k, stream, batch, per_shard):
    """PutRecords, the entries refused (throttled, internal failure) put again."""
    pending = batch
    for attempt in range(20):
        out = k.put_records(StreamName=stream, Records=pending)
        retry = []
        for entry, result in zip(pending, out["Records"]):
            if "ErrorCode" in result:
                retry.append(entry)
            else:
                per_shard[result["ShardId"]] = per_shard.get(result["ShardId"], 0) + 1
        if not retry:
            return
        pending = retry
        time.sleep(min(0.05 * 2 ** attempt, 2))
    sys.exit("records still refused after 20 attempts: %s" % out["Records"][0].get("ErrorMessage"))


def cmd_flows(a):
    rng = random.Random(a.seed)
    totals = Totals()
    k = client(a.endpoint)
    if a.shards:
        k.create_stream(StreamName=a.stream, ShardCount=a.shards)
        wait_active(k, a.stream)
    kinds = a.kinds.split(",")
    now = int(time.time())
    reshard_at = int(a.records * a.reshard_at) if a.reshard else None
    pause = a.seconds / max(a.records, 1)
    per_shard = {}
    batch, batch_bytes = [], 0

    def flush():
        nonlocal batch, batch_bytes
        if batch:
            put_batch(k, a.stream, batch, per_shard)
        batch, batch_bytes = [], 0

    if a.control:
        batch.append({"Data": cloudwatch(["CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."],
                                         "CONTROL_MESSAGE"), "PartitionKey": "control"})
        flush()
    for i in range(a.records):
        if i == reshard_at:
            flush()
            reshard(k, a.stream, a.reshard)
        data = encode(kinds[i % len(kinds)], flow_lines(rng, a.lines, totals, now))
        key = "pk-%d" % i
        if len(data) + len(key) > RECORD_BYTES_MAX:
            sys.exit("record %d is %d bytes, over Kinesis's 1 MiB: fewer --lines" % (i, len(data)))
        if len(batch) == PUT_RECORDS_MAX or batch_bytes + len(data) + len(key) > PUT_BYTES_MAX:
            flush()
        batch.append({"Data": data, "PartitionKey": key})
        batch_bytes += len(data) + len(key)
        if pause:
            flush()
            time.sleep(pause)
    flush()
    print("records per shard: %s" % json.dumps(dict(sorted(per_shard.items()))), file=sys.stderr)
    print(json.dumps(totals.as_dict()))


def record_lines(data):
    """The flow lines of one Kinesis record, whatever its container."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data[:1] == b"{":
        body = json.loads(data)
        if body.get("messageType") != "DATA_MESSAGE":
            return []
        return [e["message"] for e in body["logEvents"]]
    return [line for line in data.decode().split("\n") if line and not line.startswith("version ")]


def seq_key(sequence_number):
    # Sequence numbers are decimal strings without leading zeros, wider
    # than u64/u128 on AWS (56 digits) and narrow on moto ("1", "2", ...):
    # compared as integers, never as strings.
    return int(sequence_number)


def cmd_read(a):
    k = client(a.endpoint)
    shards = list_shards(k, a.stream)
    by_id = {s["ShardId"]: s for s in shards}
    done, order = set(), []
    while len(order) < len(shards):  # parents (present ones) before children
        ready = [s for s in shards if s["ShardId"] not in done
                 and all(p not in by_id or p in done for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p)]
        if not ready:
            sys.exit("shards whose parents never end: a cycle")
        for s in ready:
            done.add(s["ShardId"])
            order.append(s)
    totals, per_shard, kinesis_records = Totals(), {}, 0
    for s in order:
        end = s["SequenceNumberRange"].get("EndingSequenceNumber")
        it = k.get_shard_iterator(StreamName=a.stream, ShardId=s["ShardId"],
                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        count, last = 0, None
        while it:
            out = k.get_records(ShardIterator=it, Limit=10000)
            for r in out["Records"]:
                count += 1
                last = r["SequenceNumber"]
                for line in record_lines(r["Data"]):
                    fields = line.split()
                    totals.records += 1
                    totals.packets += int(fields[8])
                    totals.bytes += int(fields[9])
            it = out.get("NextShardIterator")
            # An empty page on AWS may only mean a gap: an open shard is read
            # up when MillisBehindLatest is 0, a closed one at its end.
            if not out["Records"] and (
                    out.get("MillisBehindLatest", 0) == 0 if end is None
                    else seq_key(last or s["SequenceNumberRange"]["StartingSequenceNumber"]) >= seq_key(end)):
                break
        per_shard[s["ShardId"]] = count
        kinesis_records += count
    out = totals.as_dict()
    out["kinesis_records"] = kinesis_records
    out["per_shard"] = per_shard
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("endpoint"); c.add_argument("stream"); c.add_argument("shards", type=int)
    f = sub.add_parser("flows")
    f.add_argument("endpoint"); f.add_argument("stream")
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--records", type=int, default=100)
    f.add_argument("--lines", type=int, default=50)
    f.add_argument("--seconds", type=float, default=0)
    f.add_argument("--shards", type=int, default=0)
    f.add_argument("--kinds", default="lines,cloudwatch")
    f.add_argument("--reshard", default="")
    f.add_argument("--reshard-at", type=float, default=0.5)
    f.add_argument("--control", action="store_true")
    r = sub.add_parser("read")
    r.add_argument("endpoint"); r.add_argument("stream")
    a = parser.parse_args()
    {"create": cmd_create, "flows": cmd_flows, "read": cmd_read}[a.cmd](a)


if __name__ == "__main__":
    main()
