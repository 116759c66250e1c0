"""Test input for trawl's Kafka source, written by an independent client
(confluent-kafka), with the totals a correct consumer must find.

Usage:
  produce.py create BROKERS TOPIC PARTITIONS
  produce.py flows BROKERS TOPIC --messages N --lines L --seed S [--seconds T]
      Messages of L flow records each (AWS's default format), cycling
      through the containers trawl reads (plain lines, gzip'd files with a
      header, CloudWatch Logs subscription payloads, Firehose requests),
      spread over T seconds. Prints {"records":..,"bytes":..,"packets":..}.
  produce.py txn BROKERS TOPIC --seed S
      A committed transaction, an aborted one, a committed one. Prints the
      committed totals only.
  produce.py bad BROKERS TOPIC --seed S
      Bad messages (broken gzip, JSON that is no envelope, binary garbage,
      empty, a gzip of garbage) between good ones. Prints the good totals
      and the offsets of the bad messages.
"""
import argparse
import base64
import gzip
import json
import random
import sys
import time
import zlib

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

HEADER = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"


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


def cloudwatch(lines):
    events = [{"id": str(i), "timestamp": 0, "message": line} for i, line in enumerate(lines)]
    body = {"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "vpc-flow-logs",
            "logStream": "eni-1", "subscriptionFilters": ["f"], "logEvents": events}
    return gzip.compress(json.dumps(body).encode())


def firehose(lines):
    record = base64.b64encode(("\n".join(lines) + "\n").encode()).decode()
    return json.dumps({"requestId": "r-1", "timestamp": 0, "records": [{"data": record}]}).encode()


def encode(kind, lines):
    if kind == "lines":
        return "\n".join(lines).encode()  # no final newline: one line per message is common
    if kind == "gzip":
        return gzip.compress((HEADER + "\n" + "\n".join(lines) + "\n").encode())
    if kind == "cloudwatch":
        return cloudwatch(lines)
    return firehose(lines)


def producer(brokers, **extra):
    config = {"bootstrap.servers": brokers, "enable.idempotence": True, "linger.ms": 5}
    config.update(extra)
    return Producer(config)


def delivered(err, _msg):
    if err is not None:
        sys.exit("delivery failed: %s" % err)


def cmd_create(a):
    admin = AdminClient({"bootstrap.servers": a.brokers})
    futures = admin.create_topics([NewTopic(a.topic, num_partitions=a.partitions, replication_factor=1)])
    for f in futures.values():
        f.result(timeout=30)


def cmd_flows(a):
    rng = random.Random(a.seed)
    totals = Totals()
    p = producer(a.brokers)
    kinds = ["lines", "gzip", "cloudwatch", "firehose"]
    now = int(time.time())
    pause = a.seconds / max(a.messages, 1)
    for i in range(a.messages):
        lines = flow_lines(rng, a.lines, totals, now)
        p.produce(a.topic, encode(kinds[i % len(kinds)], lines), key=str(i).encode(), on_delivery=delivered)
        p.poll(0)
        if pause:
            time.sleep(pause)
    if p.flush(60) != 0:
        sys.exit("messages left unsent")
    print(json.dumps(totals.as_dict()))


def cmd_txn(a):
    rng = random.Random(a.seed)
    committed = Totals()
    thrown = Totals()
    now = int(time.time())
    p = producer(a.brokers, **{"transactional.id": "trawl-test-%d" % a.seed})
    p.init_transactions(30)
    for outcome in ["commit", "abort", "commit"]:
        p.begin_transaction()
        for _ in range(10):
            lines = flow_lines(rng, 5, committed if outcome == "commit" else thrown, now)
            p.produce(a.topic, encode("lines", lines), partition=0, on_delivery=delivered)
        p.flush(30)
        if outcome == "commit":
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    print(json.dumps(committed.as_dict()))


def cmd_bad(a):
    rng = random.Random(a.seed)
    totals = Totals()
    now = int(time.time())
    p = producer(a.brokers)
    good = lambda: encode("gzip", flow_lines(rng, 20, totals, now))
    # A gzip cut short: its whole lines before the cut are flows (as a
    # truncated S3 object's would be), counted by what zlib inflates of it.
    broken_lines = flow_lines(rng, 50, Totals(), now)
    broken = gzip.compress(("\n".join(broken_lines) + "\n").encode())[:-200]
    inflated = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(broken)
    whole = inflated.count(b"\n")
    kept = Totals()
    for line in broken_lines[:whole]:
        fields = line.split()
        kept.records += 1
        kept.packets += int(fields[8])
        kept.bytes += int(fields[9])
    bad = [
        broken,
        b'{"not json',                                     # JSON that breaks
        bytes(range(256)) * 4,                             # binary garbage
        gzip.compress(b"\x00\x01 not a flow log at all\n\xff\xfe\n"),
    ]
    offsets = []
    offset = 0
    for payload in bad:
        for message in (good(), payload):
            p.produce(a.topic, message, partition=0, on_delivery=delivered)
            if message is payload:
                offsets.append(offset)
            offset += 1
    p.produce(a.topic, b"", partition=0, on_delivery=delivered)  # empty: nothing, not bad
    p.produce(a.topic, good(), partition=0, on_delivery=delivered)
    if p.flush(30) != 0:
        sys.exit("messages left unsent")
    totals.records += kept.records
    totals.bytes += kept.bytes
    totals.packets += kept.packets
    out = totals.as_dict()
    out["bad_offsets"] = offsets
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("brokers"); c.add_argument("topic"); c.add_argument("partitions", type=int)
    for name in ["flows", "txn", "bad"]:
        s = sub.add_parser(name)
        s.add_argument("brokers"); s.add_argument("topic")
        s.add_argument("--seed", type=int, default=1)
        s.add_argument("--messages", type=int, default=100)
        s.add_argument("--lines", type=int, default=50)
        s.add_argument("--seconds", type=float, default=0)
    a = parser.parse_args()
    {"create": cmd_create, "flows": cmd_flows, "txn": cmd_txn, "bad": cmd_bad}[a.cmd](a)


if __name__ == "__main__":
    main()
