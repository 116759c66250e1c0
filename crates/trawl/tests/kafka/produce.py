"""Test input for trawl's Kafka source, written by an independent client
(confluent-kafka), with the totals a correct consumer must find.

Usage:
  produce.py create BROKERS TOPIC PARTITIONS
  produce.py delete BROKERS TOPIC
  produce.py flows BROKERS TOPIC --messages N --lines L --seed S [--seconds T] [--kinds K,..]
      Messages of L flow records each (AWS's default format), cycling
      through the containers trawl reads (plain lines, gzip'd files with a
      header, CloudWatch Logs subscription payloads, Firehose requests;
      --kinds picks some), spread over T seconds. Prints
      {"records":..,"bytes":..,"packets":..}.
  produce.py burst BROKERS TOPIC --lines L --rate R --steady S --burst B
      R messages a second of L records each (gzip'd files and CloudWatch
      payloads, from a pool made first) for S seconds, then 10 R a second
      for B seconds, then R again for S seconds; prints the totals and the
      second the burst began and ended (time.time()).
  produce.py txn BROKERS TOPIC --seed S
      A committed transaction, an aborted one, a committed one. Prints the
      committed totals only.
  produce.py owned BROKERS TOPIC --metadata-topic M --base T --phase 1|2 --seed S
      Ownership events to M (JSON lines, many a message, over its
      partitions) and flows from the owned IPs to TOPIC. Phase 1: 40 IPs
      assigned at T-3600 to apps a0..a4, flows in [T-3000, T-1200).
      Phase 2: at T-1200 half of them reassigned to b0..b2 (the rest
      released by a snapshot that lists only the reassigned and the kept),
      flows in [T-1200, T-600). Prints the totals, the bytes by source app
      and the metadata messages produced.
  produce.py learned BROKERS TOPIC_A --topic-b B --metadata-topic M --base T
      An interface event to M (eni-shared00 belongs to app "learned-app"
      from T-3600; its address 10.9.9.9 is declared to nobody), egress
      flows from 10.9.9.9 at that interface to TOPIC_A (format: the
      default fields and flow-direction) every 10 s over [T-1800, T-1200],
      and flows to 10.9.9.9 seen at another interface to B within that
      span. Prints the records and bytes sent to B.
  produce.py read BROKERS TOPIC
      Reads TOPIC whole with read_committed (the sink's output) and prints
      its rows, bytes, packets, distinct trawl-seal headers, and the first
      row's column names.
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


def cmd_delete(a):
    admin = AdminClient({"bootstrap.servers": a.brokers})
    for f in admin.delete_topics([a.topic]).values():
        f.result(timeout=30)
    # Deleted when the brokers no longer list it.
    deadline = time.time() + 30
    while a.topic in admin.list_topics(timeout=10).topics:
        if time.time() > deadline:
            sys.exit("the topic was not deleted")
        time.sleep(0.2)


def cmd_create(a):
    admin = AdminClient({"bootstrap.servers": a.brokers})
    futures = admin.create_topics([NewTopic(a.topic, num_partitions=a.partitions, replication_factor=1)])
    for f in futures.values():
        f.result(timeout=30)


def cmd_flows(a):
    rng = random.Random(a.seed)
    totals = Totals()
    p = producer(a.brokers)
    kinds = a.kinds.split(",")
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


def cmd_burst(a):
    rng = random.Random(a.seed)
    now = int(time.time())
    pool = []
    for i in range(64):
        t = Totals()
        lines = flow_lines(rng, a.lines, t, now)
        pool.append((encode("gzip" if i % 2 else "cloudwatch", lines), t))
    totals = Totals()
    p = producer(a.brokers, **{"linger.ms": 20, "queue.buffering.max.messages": 1000000})
    marks = {}
    sent = 0
    for phase, rate, seconds in [("steady", a.rate, a.steady), ("burst", 10 * a.rate, a.burst),
                                 ("after", a.rate, a.steady)]:
        marks[phase] = time.time()
        start = time.time()
        n = int(rate * seconds)
        for i in range(n):
            payload, t = pool[sent % len(pool)]
            sent += 1
            while True:
                try:
                    p.produce(a.topic, payload, on_delivery=delivered)
                    break
                except BufferError:
                    p.poll(0.05)
            totals.records += t.records
            totals.bytes += t.bytes
            totals.packets += t.packets
            p.poll(0)
            ahead = start + (i + 1) / rate - time.time()
            if ahead > 0:
                time.sleep(ahead)
    marks["end"] = time.time()
    if p.flush(120) != 0:
        sys.exit("messages left unsent")
    out = totals.as_dict()
    out["marks"] = marks
    print(json.dumps(out))


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


def owned_ips():
    return ["10.9.0.%d" % i for i in range(1, 41)]


def workload(app):
    return {"app": app, "cluster": app + "-prod", "account": "123456789012",
            "region": "eu-west-1", "az": "euw1-az1", "kind": "instance"}


def cmd_owned(a):
    rng = random.Random(a.seed)
    totals = Totals()
    by_app = {}
    ips = owned_ips()
    t0, t1 = a.base - 3600, a.base - 1200
    if a.phase == 1:
        events = [{"type": "assign", "ip": ip, "at": t0, "workload": workload("a%d" % (i % 5))}
                  for i, ip in enumerate(ips)]
        owner = {ip: "a%d" % (i % 5) for i, ip in enumerate(ips)}
        window = (a.base - 3000, t1 - 120)
    else:
        moved = {ip: "b%d" % (i % 3) for i, ip in enumerate(ips) if i % 2 == 0}
        kept = {ip: "a%d" % (i % 5) for i, ip in enumerate(ips) if i % 4 == 1}
        events = [{"type": "assign", "ip": ip, "at": t1, "workload": workload(app)}
                  for ip, app in moved.items()]
        listed = dict(moved, **kept)
        events.append({"type": "snapshot", "at": t1 + 1,
                       "owners": [{"ip": ip, "workload": workload(app)} for ip, app in listed.items()]})
        owner = {ip: listed.get(ip, "unknown") for ip in ips}
        window = (t1 + 60, a.base - 600 - 120)
    p = producer(a.brokers)
    messages = 0
    for i in range(0, len(events), 7):
        body = "\n".join(json.dumps(e) for e in events[i:i + 7]) + "\n"
        p.produce(a.metadata_topic, body.encode(), partition=messages % 2, on_delivery=delivered)
        messages += 1
    # A line that is no event: counted as a metadata error, the rest applied.
    p.produce(a.metadata_topic, b'{"type":"assign","ip":"nonsense"}\n', partition=1, on_delivery=delivered)
    messages += 1
    if p.flush(30) != 0:
        sys.exit("metadata left unsent")
    for m in range(20):
        lines = []
        for _ in range(25):
            ip = rng.choice(ips)
            start = rng.randint(*window)
            packets = rng.randint(1, 100)
            size = packets * rng.randint(40, 1500)
            totals.records += 1
            totals.bytes += size
            totals.packets += packets
            app = owner[ip]
            by_app[app] = by_app.get(app, 0) + size
            lines.append("2 123456789012 eni-0a1b2c3d %s 10.200.0.%d %d 443 6 %d %d %d %d ACCEPT OK"
                         % (ip, rng.randint(1, 254), rng.randint(1024, 65535), packets, size, start, start + 60))
        p.produce(a.topic, encode("gzip" if m % 2 else "lines", lines), on_delivery=delivered)
    if p.flush(30) != 0:
        sys.exit("flows left unsent")
    out = totals.as_dict()
    out["by_app"] = by_app
    out["metadata_messages"] = messages
    print(json.dumps(out))


def cmd_learned(a):
    rng = random.Random(a.seed)
    p = producer(a.brokers)
    event = {"type": "interface", "interface_id": "eni-shared00", "at": a.base - 3600,
             "workload": workload("learned-app")}
    p.produce(a.metadata_topic, (json.dumps(event) + "\n").encode(), on_delivery=delivered)
    lines = []
    for start in range(a.base - 1800, a.base - 1200, 10):
        lines.append("2 123456789012 eni-shared00 10.9.9.9 10.200.0.%d %d 443 6 5 500 %d %d ACCEPT OK egress"
                     % (rng.randint(1, 254), rng.randint(1024, 65535), start, start + 30))
    p.produce(a.topic, "\n".join(lines).encode(), on_delivery=delivered)
    totals = Totals()
    b_lines = []
    for _ in range(50):
        start = rng.randint(a.base - 1700, a.base - 1300)
        packets = rng.randint(1, 50)
        size = packets * 100
        totals.records += 1
        totals.bytes += size
        totals.packets += packets
        b_lines.append("2 123456789012 eni-other 10.200.1.%d 10.9.9.9 %d 443 6 %d %d %d %d ACCEPT OK"
                       % (rng.randint(1, 254), rng.randint(1024, 65535), packets, size, start, start + 30))
    p.produce(a.topic_b, "\n".join(b_lines).encode(), on_delivery=delivered)
    if p.flush(30) != 0:
        sys.exit("messages left unsent")
    print(json.dumps(totals.as_dict()))


def cmd_read(a):
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": a.brokers, "group.id": "trawl-test-reader",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    partitions = consumer.list_topics(a.topic, timeout=30).topics[a.topic].partitions
    consumer.assign([TopicPartition(a.topic, p, 0) for p in partitions])
    ended = set()
    out = {"rows": 0, "bytes": 0, "packets": 0, "seals": set(), "columns": None}
    deadline = time.time() + 120
    while len(ended) < len(partitions):
        if time.time() > deadline:
            sys.exit("the topic was not read to its end in 120 s")
        m = consumer.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                ended.add(m.partition())
                continue
            sys.exit("reading: %s" % m.error())
        row = json.loads(m.value())
        out["rows"] += 1
        out["bytes"] += row["bytes"]
        out["packets"] += row["packets"]
        out["columns"] = out["columns"] or sorted(row)
        for key, value in m.headers() or []:
            if key == "trawl-seal":
                out["seals"].add(value.decode())
    consumer.close()
    out["seals"] = len(out["seals"])
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("delete")
    d.add_argument("brokers"); d.add_argument("topic")
    c = sub.add_parser("create")
    c.add_argument("brokers"); c.add_argument("topic"); c.add_argument("partitions", type=int)
    for name in ["flows", "txn", "bad"]:
        s = sub.add_parser(name)
        s.add_argument("brokers"); s.add_argument("topic")
        s.add_argument("--seed", type=int, default=1)
        s.add_argument("--messages", type=int, default=100)
        s.add_argument("--lines", type=int, default=50)
        s.add_argument("--seconds", type=float, default=0)
        s.add_argument("--kinds", default="lines,gzip,cloudwatch,firehose")
    o = sub.add_parser("owned")
    o.add_argument("brokers"); o.add_argument("topic")
    o.add_argument("--metadata-topic", required=True)
    o.add_argument("--base", type=int, required=True)
    o.add_argument("--phase", type=int, choices=[1, 2], required=True)
    o.add_argument("--seed", type=int, default=1)
    b = sub.add_parser("burst")
    b.add_argument("brokers"); b.add_argument("topic")
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--lines", type=int, default=200)
    b.add_argument("--rate", type=float, default=50)
    b.add_argument("--steady", type=float, default=10)
    b.add_argument("--burst", type=float, default=3)
    l = sub.add_parser("learned")
    l.add_argument("brokers"); l.add_argument("topic")
    l.add_argument("--topic-b", required=True)
    l.add_argument("--metadata-topic", required=True)
    l.add_argument("--base", type=int, required=True)
    l.add_argument("--seed", type=int, default=1)
    r = sub.add_parser("read")
    r.add_argument("brokers"); r.add_argument("topic")
    a = parser.parse_args()
    {"learned": cmd_learned, "burst": cmd_burst, "read": cmd_read, "create": cmd_create, "delete": cmd_delete, "flows": cmd_flows, "txn": cmd_txn, "bad": cmd_bad,
     "owned": cmd_owned}[a.cmd](a)


if __name__ == "__main__":
    main()
