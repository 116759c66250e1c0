#!/usr/bin/env python3
"""A fake Kubernetes API server for trawl's pod watcher test (issue 17).

Standard library only. It speaks enough of the real protocol for
kube-client's `Api::list` and `Api::watch` (and kube-runtime's watcher):

    python3 fake_kube.py --port 0 --scenario SCENARIO.json --log REQUESTS.jsonl

prints `{"port": N}` as its first stdout line once it is listening on
127.0.0.1:N, then serves until killed (SIGTERM/SIGINT), until its standard
input closes (`--exit-on-stdin-eof`) or after `--max-lifetime-secs`.

    python3 fake_kube.py --scenario SCENARIO.json --print-expected

prints the ownership of every pod IP after every step instead (the cluster's
state replayed, owners by the rules of crates/trawl-cloud/src/pod.rs), and
where a naive replay of pod.rs's events would end elsewhere.

Endpoints (GET):
  /api/v1/{pods,nodes,namespaces}              cluster-wide list / watch
  /apis/apps/v1/{replicasets,deployments,statefulsets,daemonsets}
  /apis/batch/v1/{jobs,cronjobs}
  /api/v1/namespaces/NS/pods, /apis/apps/v1/namespaces/NS/replicasets, ...
  .../NAME                                     get one object
  /version /api /api/v1 /apis /apis/G /apis/G/V /healthz /readyz /livez
  /_fake/state                                 (not Kubernetes) current rv, step, watchers
  /_fake/advance                               (not Kubernetes) release a "manual" step

List (no `watch`): {"kind":"PodList","apiVersion":"v1","metadata":
{"resourceVersion":RV[,"continue":T,"remainingItemCount":N]},"items":[...]},
items in etcd key order (namespace/name). Items carry no kind/apiVersion, as
a real API server sends them (scenario "list_items_typed": true adds them).
`limit` + `continue` paginate over one consistent snapshot (the continue
token is base64url JSON {"v","rv","start"} like the real one; it expires with
410 Gone when its rv is compacted). `resourceVersion` + `resourceVersionMatch`
(NotOlderThan / Exact; unset or "0" = current) are honoured: Exact replays
the history (410 when compacted, 504 when in the future).
`labelSelector` (=, ==, !=, in, notin, key, !key) and `fieldSelector` (=, ==,
!= on dotted paths such as spec.nodeName, status.phase, metadata.name) are
honoured for lists and watches.

Watch (`watch=true|1`): HTTP 200, Transfer-Encoding: chunked, one JSON event
per line {"type":"ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR","object":{...}}.
  resourceVersion=RV   events after RV (older than the compacted version: a
                       single ERROR event with a 410 Expired Status, then end)
  unset or "0"         synthetic ADDED for every current object, then changes
  sendInitialEvents=true&resourceVersionMatch=NotOlderThan
                       synthetic ADDED, then a BOOKMARK annotated
                       k8s.io/initial-events-end=true, then changes
  allowWatchBookmarks  BOOKMARK every scenario "bookmark_secs" while idle
  timeoutSeconds       the stream ends cleanly after it (capped by the
                       scenario's "watch_timeout_cap_secs" when set)
A watch whose selector stops (starts) matching an object sees DELETED (ADDED),
as from a real server.

Scenario: {"steps": [step, ...], ...settings}. A step:
  {"at_secs": 2,                      seconds from the timeline's start (the
                                      timeline pauses while a step waits)
   "name": "...", "note": "...",
   "wait_for": {"watching": ["Pod"], "listed_since_previous_step": ["Pod"]},
                                      fire only once a watch on each kind is
                                      streaming / a complete list of each kind
                                      was served since the previous step fired
                                      (gives up after "wait_timeout_secs",
                                      logging wait_timed_out)
   "manual": true,                    fire only after a /_fake/advance
   "close_watches": true | "abort",   end every open watch (cleanly, or by
                                      dropping the connection) BEFORE the
                                      step's changes: clients resume from their
                                      last resourceVersion and get the changes
                                      through the resumed watch
   "compact": true,                   as close_watches, then after the step's
                                      changes the global resourceVersion moves
                                      on and every earlier one expires: a
                                      resumed watch gets 410, the client must
                                      re-list, and the step's changes are only
                                      visible through that list
   "apply": [object, ...],            create (ADDED) or replace (MODIFIED)
   "patch": [{"kind","namespace","name","patch": merge-patch}, ...]  (MODIFIED)
   "delete": [{"kind","namespace","name"}, ...]                      (DELETED)
   "ops": [{"apply": obj} | {"patch": ref} | {"delete": ref}, ...]
                                      explicit order (else apply, patch, delete)
   "done": true}                      marks the end of the scenario
Steps at at_secs <= 0 without wait_for/manual are applied before the port is
printed. Every change bumps the global resourceVersion (with small gaps, as
other kinds move it on a real cluster) and stamps the object's
metadata.resourceVersion; uid and creationTimestamp are filled in if absent.
Scenario settings (defaults): initial_resource_version (1000),
compacted_resource_version (= initial), rv_gaps (true), bookmark_secs (0: no
periodic bookmarks), watch_timeout_cap_secs (null), default_watch_timeout_secs
(1800), list_items_typed (false), wait_timeout_secs (30),
server_version ({...}), cluster (free-form).

Log (--log, JSON lines, flushed each line):
  {"type":"request","id","t","elapsed","method","path","query":{..},"verb":
   "list"|"watch"|"get"|"discovery"|"control"|"unknown","kind","namespace",
   "status", list: "resource_version","items","continue","page";
   watch: "rv_requested","outcome":"streaming"|"expired"|"invalid",
   "initial_events","user_agent","accept"}     written when the response starts
  {"type":"watch_end","id","kind","reason":"timeout"|"closed"|"aborted"|
   "client_gone"|"expired","events":{"ADDED":n,..},"last_rv"}
  {"type":"step","index","name","rv","compacted_rv","waited_secs",
   "wait_timed_out","done"}
"""

import argparse
import base64
import copy
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# kind -> (group, version, plural, namespaced, singular, short names)
RESOURCES = {
    "Pod": ("", "v1", "pods", True, "pod", ["po"]),
    "Node": ("", "v1", "nodes", False, "node", ["no"]),
    "Namespace": ("", "v1", "namespaces", False, "namespace", ["ns"]),
    "ReplicaSet": ("apps", "v1", "replicasets", True, "replicaset", ["rs"]),
    "Deployment": ("apps", "v1", "deployments", True, "deployment", ["deploy"]),
    "StatefulSet": ("apps", "v1", "statefulsets", True, "statefulset", ["sts"]),
    "DaemonSet": ("apps", "v1", "daemonsets", True, "daemonset", ["ds"]),
    "Job": ("batch", "v1", "jobs", True, "job", []),
    "CronJob": ("batch", "v1", "cronjobs", True, "cronjob", ["cj"]),
}
BY_PATH = {(g, v, p): k for k, (g, v, p, _, _, _) in RESOURCES.items()}


def api_version(kind):
    group, version = RESOURCES[kind][0], RESOURCES[kind][1]
    return f"{group}/{version}" if group else version


def namespaced(kind):
    return RESOURCES[kind][3]


def parse_bool(value):
    # Go's strconv.ParseBool, which the API server uses.
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False", ""):
        return False
    raise ValueError(f"invalid boolean {value!r}")


def utc_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def status_obj(code, reason, message, details=None):
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


class BadRequest(Exception):
    pass


# ---------------------------------------------------------------- selectors


def split_top(text):
    """Splits on commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(text):
    reqs = []
    for part in split_top(text or ""):
        words = part.split()
        if len(words) >= 2 and words[1] in ("in", "notin"):
            values = " ".join(words[2:]).strip()
            if not (values.startswith("(") and values.endswith(")")):
                raise BadRequest(f"unable to parse requirement: {part!r}")
            vals = {v.strip() for v in values[1:-1].split(",") if v.strip()}
            reqs.append((words[0], words[1], vals))
        elif "!=" in part:
            key, val = part.split("!=", 1)
            reqs.append((key.strip(), "!=", {val.strip()}))
        elif "==" in part:
            key, val = part.split("==", 1)
            reqs.append((key.strip(), "in", {val.strip()}))
        elif "=" in part:
            key, val = part.split("=", 1)
            reqs.append((key.strip(), "in", {val.strip()}))
        elif part.startswith("!"):
            reqs.append((part[1:].strip(), "!exists", set()))
        else:
            reqs.append((part, "exists", set()))
    return reqs


def labels_match(reqs, obj):
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for key, op, vals in reqs:
        has = key in labels
        if op == "in" and not (has and labels[key] in vals):
            return False
        if op == "notin" and has and labels[key] in vals:
            return False
        if op == "!=" and has and labels[key] in vals:
            return False
        if op == "exists" and not has:
            return False
        if op == "!exists" and has:
            return False
    return True


def parse_field_selector(text):
    reqs = []
    for part in split_top(text or ""):
        if "!=" in part:
            path, val = part.split("!=", 1)
            reqs.append((path.strip(), False, val.strip()))
        elif "==" in part:
            path, val = part.split("==", 1)
            reqs.append((path.strip(), True, val.strip()))
        elif "=" in part:
            path, val = part.split("=", 1)
            reqs.append((path.strip(), True, val.strip()))
        else:
            raise BadRequest(f"invalid selector: {part!r}; can't understand {part!r}")
    return reqs


def field_value(obj, path):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def fields_match(reqs, obj):
    for path, equal, val in reqs:
        if (field_value(obj, path) == val) != equal:
            return False
    return True


class Filter:
    def __init__(self, kind, namespace, params):
        self.kind = kind
        self.namespace = namespace
        self.labels = parse_label_selector(params.get("labelSelector"))
        self.fields = parse_field_selector(params.get("fieldSelector"))

    def selective(self):
        return bool(self.labels or self.fields)

    def matches(self, obj):
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return labels_match(self.labels, obj) and fields_match(self.fields, obj)


# -------------------------------------------------------------------- store


def obj_key(kind, namespace, name):
    return (kind, namespace or "", name)


def sort_key(key):
    _, namespace, name = key
    return f"{namespace}/{name}" if namespace else name


class Event:
    __slots__ = ("rv", "type", "kind", "key", "obj", "prev", "step")

    def __init__(self, rv, etype, kind, key, obj, prev, step):
        self.rv, self.type, self.kind, self.key = rv, etype, kind, key
        self.obj, self.prev, self.step = obj, prev, step


class Watcher:
    def __init__(self, kind):
        self.kind = kind
        self.closed = False
        self.abort = False
        self.limit = None  # log length at close: nothing past it is sent


class ScenarioError(Exception):
    pass


class Store:
    """Objects, the event log (every change since the start), watchers."""

    def __init__(self, scenario, log=None):
        self.scenario = scenario
        self.cond = threading.Condition()
        self.rv = int(scenario.get("initial_resource_version", 1000))
        self.compacted_rv = int(scenario.get("compacted_resource_version", self.rv))
        self.rv_gaps = bool(scenario.get("rv_gaps", True))
        self.bumps = 0
        self.objects = {}
        self.log = []
        self.watchers = set()
        self.list_served = {}  # kind -> monotonic time of the last complete list
        self.fired = -1  # index of the last step fired
        self.fired_at = None
        self.done = False
        self.advances = 0
        self.request_log = log
        self.current_step = 0

    # -- changes (callers hold self.cond)

    def bump(self):
        self.bumps += 1
        self.rv += 1 + ((self.bumps * 7) % 4 if self.rv_gaps else 0)
        return self.rv

    def _record(self, etype, kind, key, obj, prev):
        rv = self.bump()
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(rv)
        if etype == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        self.log.append(Event(rv, etype, kind, key, obj, prev, self.current_step))
        self.cond.notify_all()

    def apply(self, obj):
        obj = copy.deepcopy(obj)
        kind = obj.get("kind")
        if kind not in RESOURCES:
            raise ScenarioError(f"unknown kind {kind!r} (known: {sorted(RESOURCES)})")
        obj["apiVersion"] = obj.get("apiVersion") or api_version(kind)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            raise ScenarioError(f"{kind} without metadata.name")
        if namespaced(kind):
            meta["namespace"] = meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        key = obj_key(kind, meta.get("namespace"), meta["name"])
        prev = self.objects.get(key)
        if prev is not None:
            meta.setdefault("uid", prev["metadata"].get("uid"))
            meta.setdefault("creationTimestamp", prev["metadata"].get("creationTimestamp"))
        meta.setdefault(
            "uid", str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-kube/{kind}/{key[1]}/{key[2]}/{self.rv}"))
        )
        meta.setdefault("creationTimestamp", utc_now())
        self._record("MODIFIED" if prev is not None else "ADDED", kind, key, obj, prev)

    def _ref(self, ref, what):
        kind = ref.get("kind")
        if kind not in RESOURCES:
            raise ScenarioError(f"{what}: unknown kind {kind!r}")
        ns = ref.get("namespace") if namespaced(kind) else None
        if namespaced(kind) and not ns:
            ns = "default"
        key = obj_key(kind, ns, ref.get("name"))
        if key not in self.objects:
            raise ScenarioError(f"{what}: no {kind} {ns + '/' if ns else ''}{ref.get('name')}")
        return kind, key

    def patch(self, ref):
        kind, key = self._ref(ref, "patch")
        prev = self.objects[key]
        obj = merge_patch(prev, ref.get("patch") or {})
        obj["metadata"]["uid"] = prev["metadata"]["uid"]
        self._record("MODIFIED", kind, key, obj, prev)

    def delete(self, ref):
        kind, key = self._ref(ref, "delete")
        prev = self.objects[key]
        self._record("DELETED", kind, key, prev, prev)

    def fire(self, index, step):
        """Applies one step (caller holds self.cond)."""
        self.current_step = index
        close = step.get("close_watches") or step.get("compact")
        if close:
            for w in list(self.watchers):
                if not w.closed:
                    w.closed = True
                    w.abort = step.get("close_watches") == "abort"
                    w.limit = len(self.log)
        ops = step.get("ops")
        if ops is None:
            ops = (
                [{"apply": o} for o in step.get("apply", [])]
                + [{"patch": o} for o in step.get("patch", [])]
                + [{"delete": o} for o in step.get("delete", [])]
            )
        for op in ops:
            if "apply" in op:
                self.apply(op["apply"])
            elif "patch" in op:
                self.patch(op["patch"])
            elif "delete" in op:
                self.delete(op["delete"])
            else:
                raise ScenarioError(f"step {index}: unknown op {sorted(op)}")
        if step.get("compact"):
            # Other kinds (leases, events) move a real cluster's revision on:
            # every version a client holds from before now has expired.
            self.compacted_rv = self.bump()
        self.fired = index
        self.fired_at = time.monotonic()
        if step.get("done"):
            self.done = True
        self.cond.notify_all()

    # -- reads (callers hold self.cond)

    def state_at(self, rv):
        if rv >= self.rv:
            return self.objects
        state = {}
        for ev in self.log:
            if ev.rv > rv:
                break
            if ev.type == "DELETED":
                state.pop(ev.key, None)
            else:
                state[ev.key] = ev.obj
        return state

    def watching(self, kind):
        return any(w.kind == kind and not w.closed for w in self.watchers)


# ------------------------------------------------------------------ helpers


def list_kind(kind):
    return f"{kind}List"


def typed(obj):
    return obj


def untyped(obj):
    out = dict(obj)
    out.pop("kind", None)
    out.pop("apiVersion", None)
    return out


def encode_continue(rv, start):
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token):
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        return int(data["rv"]), str(data["start"])
    except Exception as err:  # noqa: BLE001
        raise BadRequest(f"continue key is not valid: {err}") from err


def discovery(path, version_info):
    groups = {}
    for kind, (group, version, plural, ns, singular, short) in RESOURCES.items():
        groups.setdefault((group, version), []).append(
            {
                "name": plural,
                "singularName": singular,
                "namespaced": ns,
                "kind": kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                **({"shortNames": short} if short else {}),
            }
        )
    named = sorted({g for g, _ in groups if g})

    def group_obj(g):
        gv = {"groupVersion": f"{g}/v1", "version": "v1"}
        return {"name": g, "versions": [gv], "preferredVersion": gv}

    parts = [p for p in path.split("/") if p]
    if path == "/version":
        return version_info
    if parts == ["api"]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:443"}],
        }
    if parts == ["api", "v1"]:
        return {"kind": "APIResourceList", "groupVersion": "v1", "resources": groups[("", "v1")]}
    if parts == ["apis"]:
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group_obj(g) for g in named]}
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in named:
        return {"kind": "APIGroup", "apiVersion": "v1", **group_obj(parts[1])}
    if len(parts) == 3 and parts[0] == "apis" and (parts[1], parts[2]) in groups:
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{parts[1]}/{parts[2]}",
            "resources": groups[(parts[1], parts[2])],
        }
    return None


DEFAULT_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.1-eks-7308294",
    "gitCommit": "9e4b6c1a3f5e0e4d2a7b2e8a4b1c9d0e5f6a7b8c",
    "gitTreeState": "clean",
    "buildDate": "2025-05-22T17:21:41Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def route(path):
    """-> (kind, namespace, name) for a resource path, or None."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 2:
        return None
    kind = BY_PATH.get((group, version, rest[0]))
    if kind is None:
        return None
    if namespace is not None and not namespaced(kind):
        return None
    return kind, namespace, rest[1] if len(rest) == 2 else None


# ------------------------------------------------------------------- server


class JsonLog:
    def __init__(self, path, start):
        self.file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        self.lock = threading.Lock()
        self.start = start

    def write(self, entry):
        if self.file is None:
            return
        now = time.time()
        entry = {"type": entry.pop("type"), "t": round(now, 6), "elapsed": round(now - self.start, 6), **entry}
        line = json.dumps(entry, separators=(",", ":"), sort_keys=False)
        with self.lock:
            self.file.write(line + "\n")
            self.file.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube"
    sys_version = ""
    store: Store = None
    log: JsonLog = None
    verbose = False
    next_id = 0
    id_lock = threading.Lock()

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002
        if self.verbose:
            sys.stderr.write("fake_kube: " + (format % args) + "\n")

    # -- plumbing

    def new_id(self):
        with Handler.id_lock:
            Handler.next_id += 1
            return Handler.next_id

    def send_json(self, code, body, extra=None):
        data = json.dumps(body, separators=(",", ":")).encode() + b"\n"
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def request_entry(self, rid, verb, kind=None, namespace=None, **more):
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        entry = {
            "type": "request",
            "id": rid,
            "method": self.command,
            "path": split.path,
            "query": query,
            "verb": verb,
            "kind": kind,
            "namespace": namespace,
            "user_agent": self.headers.get("User-Agent"),
            "accept": self.headers.get("Accept"),
            "authorization": bool(self.headers.get("Authorization")),
        }
        entry.update(more)
        return entry

    def drain_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    # -- methods

    def do_GET(self):  # noqa: N802
        rid = self.new_id()
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        try:
            params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        except ValueError:
            params = {}
        try:
            if path.startswith("/_fake/"):
                return self.control(rid, path)
            if path in ("/healthz", "/readyz", "/livez"):
                self.log.write(self.request_entry(rid, "discovery", status=200))
                data = b"ok"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
            body = discovery(path, self.store.scenario.get("server_version", DEFAULT_VERSION))
            if body is not None:
                self.log.write(self.request_entry(rid, "discovery", status=200))
                return self.send_json(200, body)
            target = route(path)
            if target is None:
                self.log.write(self.request_entry(rid, "unknown", status=404))
                return self.send_json(
                    404, status_obj(404, "NotFound", "the server could not find the requested resource", {})
                )
            kind, namespace, name = target
            if name is not None:
                return self.get_one(rid, kind, namespace, name)
            watch = parse_bool(params.get("watch", "false"))
            if watch:
                return self.watch(rid, kind, namespace, params)
            return self.list(rid, kind, namespace, params)
        except BadRequest as err:
            self.log.write(self.request_entry(rid, "unknown", status=400, error=str(err)))
            return self.send_json(400, status_obj(400, "BadRequest", str(err)))
        except ValueError as err:
            self.log.write(self.request_entry(rid, "unknown", status=400, error=str(err)))
            return self.send_json(400, status_obj(400, "BadRequest", str(err)))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return None

    def not_allowed(self):
        rid = self.new_id()
        self.drain_body()
        if urlsplit(self.path).path.startswith("/_fake/"):
            return self.control(rid, urlsplit(self.path).path.rstrip("/"))
        self.log.write(self.request_entry(rid, "unknown", status=405))
        return self.send_json(
            405, status_obj(405, "MethodNotAllowed", f"the fake API server serves GET only, not {self.command}")
        )

    do_POST = do_PUT = do_PATCH = do_DELETE = not_allowed  # noqa: N815

    # -- control (not Kubernetes)

    def control(self, rid, path):
        store = self.store
        with store.cond:
            if path == "/_fake/advance":
                store.advances += 1
                store.cond.notify_all()
            state = {
                "rv": str(store.rv),
                "compacted_rv": str(store.compacted_rv),
                "step": store.fired,
                "steps": len(store.scenario.get("steps", [])),
                "done": store.done,
                "watchers": {
                    k: sum(1 for w in store.watchers if w.kind == k and not w.closed) for k in RESOURCES
                },
            }
        if path not in ("/_fake/state", "/_fake/advance"):
            self.log.write(self.request_entry(rid, "control", status=404))
            return self.send_json(404, status_obj(404, "NotFound", f"no control endpoint {path}"))
        self.log.write(self.request_entry(rid, "control", status=200))
        return self.send_json(200, state)

    # -- get / list

    def get_one(self, rid, kind, namespace, name):
        store = self.store
        if namespaced(kind) and namespace is None:
            self.log.write(self.request_entry(rid, "unknown", kind, namespace, status=404))
            return self.send_json(
                404, status_obj(404, "NotFound", "the server could not find the requested resource", {})
            )
        with store.cond:
            obj = store.objects.get(obj_key(kind, namespace, name))
            obj = copy.deepcopy(obj) if obj is not None else None
        plural = RESOURCES[kind][2]
        if obj is None:
            self.log.write(self.request_entry(rid, "get", kind, namespace, status=404, name=name))
            return self.send_json(
                404,
                status_obj(404, "NotFound", f'{plural} "{name}" not found', {"name": name, "kind": plural}),
            )
        self.log.write(self.request_entry(rid, "get", kind, namespace, status=200, name=name))
        return self.send_json(200, obj)

    def list(self, rid, kind, namespace, params):
        store = self.store
        flt = Filter(kind, namespace, params)
        limit = int(params.get("limit") or 0)
        token = params.get("continue")
        rv_param = params.get("resourceVersion")
        match = params.get("resourceVersionMatch")
        with store.cond:
            current = store.rv
            if token:
                rv, start = decode_continue(token)
                if rv < store.compacted_rv:
                    self.log.write(
                        self.request_entry(rid, "list", kind, namespace, status=410, outcome="expired")
                    )
                    return self.send_json(
                        410,
                        status_obj(
                            410,
                            "Expired",
                            "The provided continue parameter is too old to display a consistent list result. "
                            "You can start a new list without the continue parameter, or use the continue "
                            "token in this response to retrieve the remainder of the results. Continuing "
                            "with the provided token results in an inconsistent list - objects that were "
                            "created, modified, or deleted between the time the first chunk was returned "
                            "and now may show up in the list.",
                        ),
                    )
            else:
                start = ""
                if rv_param in (None, "", "0"):
                    rv = current
                else:
                    try:
                        want = int(rv_param)
                    except ValueError as err:
                        raise BadRequest(f"invalid resource version: {rv_param!r}") from err
                    exact = match == "Exact" or (match is None and limit > 0)
                    if want > current:
                        self.log.write(
                            self.request_entry(rid, "list", kind, namespace, status=504, outcome="too_large")
                        )
                        return self.send_json(
                            504,
                            status_obj(
                                504,
                                "Timeout",
                                f"Too large resource version: {want}, current: {current}",
                                {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1},
                            ),
                        )
                    if exact:
                        if want < store.compacted_rv:
                            self.log.write(
                                self.request_entry(rid, "list", kind, namespace, status=410, outcome="expired")
                            )
                            return self.send_json(
                                410,
                                status_obj(410, "Expired", "The resourceVersion for the provided list is too old."),
                            )
                        rv = want
                    else:
                        rv = current
            state = store.state_at(rv)
            keys = sorted((k for k in state if k[0] == kind), key=sort_key)
            matching = [state[k] for k in keys if flt.matches(state[k]) and sort_key(k) >= start]
            page = matching[:limit] if limit > 0 else matching
            rest = matching[len(page):]
            items = [copy.deepcopy(o) for o in page]
            meta = {"resourceVersion": str(rv)}
            if rest:
                last = obj_key(kind, page[-1]["metadata"].get("namespace"), page[-1]["metadata"]["name"])
                meta["continue"] = encode_continue(rv, sort_key(last) + "\x00")
                if not flt.selective():
                    meta["remainingItemCount"] = len(rest)
            else:
                store.list_served[kind] = time.monotonic()
                store.cond.notify_all()
        shape = typed if store.scenario.get("list_items_typed") else untyped
        body = {
            "kind": list_kind(kind),
            "apiVersion": api_version(kind),
            "metadata": meta,
            "items": [shape(o) for o in items],
        }
        self.log.write(
            self.request_entry(
                rid,
                "list",
                kind,
                namespace,
                status=200,
                resource_version=str(rv),
                items=len(items),
                names=[o["metadata"]["name"] for o in items],
                page=bool(token),
                **{"continue": "continue" in meta},
            )
        )
        return self.send_json(200, body)

    # -- watch

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def client_gone(self):
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
        return False

    def watch(self, rid, kind, namespace, params):
        store = self.store
        scenario = store.scenario
        flt = Filter(kind, namespace, params)
        rv_param = params.get("resourceVersion")
        bookmarks = parse_bool(params.get("allowWatchBookmarks", "false"))
        initial_events = parse_bool(params.get("sendInitialEvents", "false"))
        match = params.get("resourceVersionMatch")
        timeout = float(params.get("timeoutSeconds") or scenario.get("default_watch_timeout_secs", 1800))
        cap = scenario.get("watch_timeout_cap_secs")
        if cap:
            timeout = min(timeout, float(cap))
        if initial_events and (match != "NotOlderThan" or not bookmarks):
            self.log.write(self.request_entry(rid, "watch", kind, namespace, status=422, outcome="invalid"))
            return self.send_json(
                422,
                status_obj(
                    422,
                    "Invalid",
                    "sendInitialEvents requires resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true",
                ),
            )
        watcher = Watcher(kind)
        expired = None
        initial = []
        with store.cond:
            if initial_events or rv_param in (None, "", "0"):
                start_rv = store.rv
                cursor = len(store.log)
                keys = sorted((k for k in store.objects if k[0] == kind), key=sort_key)
                initial = [copy.deepcopy(store.objects[k]) for k in keys if flt.matches(store.objects[k])]
            else:
                try:
                    start_rv = int(rv_param)
                except ValueError as err:
                    raise BadRequest(f"invalid resource version: {rv_param!r}") from err
                if start_rv < store.compacted_rv:
                    expired = (start_rv, store.compacted_rv)
                    cursor = len(store.log)
                else:
                    cursor = len(store.log)
                    while cursor > 0 and store.log[cursor - 1].rv > start_rv:
                        cursor -= 1
            if expired is None:
                store.watchers.add(watcher)
                store.cond.notify_all()
        self.log.write(
            self.request_entry(
                rid,
                "watch",
                kind,
                namespace,
                status=200,
                rv_requested=rv_param,
                outcome="expired" if expired else "streaming",
                initial_events=len(initial),
            )
        )
        counts = {}
        last_rv = start_rv
        reason = "timeout"
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-cache, private")
            self.send_header("Audit-Id", str(uuid.uuid4()))
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if expired:
                reason = "expired"
                err = status_obj(410, "Expired", f"too old resource version: {expired[0]} ({expired[1]})")
                self.write_chunk(self.event_line("ERROR", err))
                counts["ERROR"] = 1
                self.write_chunk(b"")
                return None
            for obj in initial:
                self.write_chunk(self.event_line("ADDED", obj))
                counts["ADDED"] = counts.get("ADDED", 0) + 1
            if initial_events:
                self.write_chunk(self.bookmark(kind, start_rv, initial_end=True))
                counts["BOOKMARK"] = counts.get("BOOKMARK", 0) + 1
            deadline = time.monotonic() + timeout
            every = float(scenario.get("bookmark_secs") or 0)
            next_bookmark = time.monotonic() + every if (bookmarks and every > 0) else None
            while True:
                lines = []
                bookmark_rv = None
                with store.cond:
                    while True:
                        end = watcher.limit if watcher.closed else len(store.log)
                        now = time.monotonic()
                        if cursor < end or watcher.closed or now >= deadline:
                            break
                        if next_bookmark is not None and now >= next_bookmark:
                            break
                        if self.client_gone():
                            reason = "client_gone"
                            break
                        wake = min(deadline, next_bookmark or deadline, now + 0.2)
                        store.cond.wait(max(0.0, wake - now))
                    if reason == "client_gone":
                        break
                    end = watcher.limit if watcher.closed else len(store.log)
                    for ev in store.log[cursor:end]:
                        if ev.kind != kind:
                            continue
                        line = self.filtered(flt, ev)
                        if line is not None:
                            lines.append(line)
                            last_rv = ev.rv
                    cursor = end
                    closed, abort = watcher.closed, watcher.abort
                    if not closed and cursor == len(store.log):
                        bookmark_rv = store.rv
                for etype, line in lines:
                    self.write_chunk(line)
                    counts[etype] = counts.get(etype, 0) + 1
                now = time.monotonic()
                if closed:
                    reason = "aborted" if abort else "closed"
                    break
                if now >= deadline:
                    break
                if next_bookmark is not None and now >= next_bookmark:
                    if not lines and bookmark_rv is not None:
                        self.write_chunk(self.bookmark(kind, bookmark_rv))
                        counts["BOOKMARK"] = counts.get("BOOKMARK", 0) + 1
                        last_rv = bookmark_rv
                    next_bookmark = now + every
            if reason == "aborted":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            elif reason == "client_gone":
                self.close_connection = True
            else:
                self.write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError, OSError):
            reason = "client_gone"
            self.close_connection = True
        finally:
            with store.cond:
                store.watchers.discard(watcher)
                store.cond.notify_all()
            self.log.write(
                {
                    "type": "watch_end",
                    "id": rid,
                    "kind": kind,
                    "namespace": namespace,
                    "reason": reason,
                    "events": counts,
                    "last_rv": str(last_rv),
                }
            )
        return None

    @staticmethod
    def event_line(etype, obj):
        return json.dumps({"type": etype, "object": obj}, separators=(",", ":")).encode() + b"\n"

    @staticmethod
    def bookmark(kind, rv, initial_end=False):
        meta = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return Handler.event_line("BOOKMARK", {"kind": kind, "apiVersion": api_version(kind), "metadata": meta})

    @staticmethod
    def filtered(flt, ev):
        now_in = ev.type != "DELETED" and flt.matches(ev.obj)
        was_in = flt.matches(ev.prev) if ev.prev is not None else False
        if ev.type == "DELETED":
            return ("DELETED", Handler.event_line("DELETED", ev.obj)) if was_in else None
        if now_in and was_in:
            return (ev.type, Handler.event_line(ev.type, ev.obj))
        if now_in:
            return ("ADDED", Handler.event_line("ADDED", ev.obj))
        if was_in:
            return ("DELETED", Handler.event_line("DELETED", ev.obj))
        return None


# ----------------------------------------------------------------- timeline


def ready_now(step):
    return float(step.get("at_secs", 0)) <= 0 and not step.get("wait_for") and not step.get("manual")


def condition_met(store, step, prev_fired_at):
    wait = step.get("wait_for") or {}
    for kind in wait.get("watching", []):
        if not store.watching(kind):
            return False
    for kind in wait.get("listed_since_previous_step", []):
        served = store.list_served.get(kind)
        if served is None or (prev_fired_at is not None and served <= prev_fired_at):
            return False
    if step.get("manual") and store.advances <= 0:
        return False
    return True


def fire_logged(store, log, index, step, waited=0.0, timed_out=False):
    store.fire(index, step)
    log.write(
        {
            "type": "step",
            "index": index,
            "name": step.get("name"),
            "rv": str(store.rv),
            "compacted_rv": str(store.compacted_rv),
            "waited_secs": round(waited, 3),
            "wait_timed_out": timed_out,
            "done": bool(step.get("done")),
        }
    )
    if timed_out:
        sys.stderr.write(f"fake_kube: step {index} ({step.get('name')}) fired after its wait_for timed out\n")


def run_timeline(store, log, steps, first, start):
    wait_limit = float(store.scenario.get("wait_timeout_secs", 30))
    shift = 0.0
    for index in range(first, len(steps)):
        step = steps[index]
        due = start + float(step.get("at_secs", 0)) + shift
        with store.cond:
            prev_fired_at = store.fired_at
            while time.monotonic() < due:
                store.cond.wait(max(0.0, due - time.monotonic()))
            waited_from = time.monotonic()
            timed_out = False
            while not condition_met(store, step, prev_fired_at):
                left = waited_from + wait_limit - time.monotonic()
                if left <= 0 and not step.get("manual"):
                    timed_out = True
                    break
                store.cond.wait(min(0.2, left) if left > 0 else 0.2)
            if step.get("manual"):
                store.advances = max(0, store.advances - 1)
            waited = time.monotonic() - waited_from
            shift += waited
            fire_logged(store, log, index, step, waited, timed_out)


# ----------------------------------------------------------------- expected


def controller_of(obj):
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref["kind"], ref["name"]
    return None


def holds_ips(pod):
    """crates/trawl-cloud/src/pod.rs: Pod::holds_ips."""
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod["metadata"]
    return (
        not spec.get("hostNetwork", False)
        and not meta.get("deletionTimestamp")
        and status.get("phase") in ("Running", "Pending")
        and bool(pod_ips(pod))
    )


def pod_ips(pod):
    status = pod.get("status") or {}
    ips = [p["ip"] for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return ips


def top_owner(pod, controllers):
    """crates/trawl-cloud/src/pod.rs: Pod::top_owner."""
    meta = pod["metadata"]
    owner = controller_of(pod)
    if owner is None:
        return "Pod", meta["name"]
    for _ in range(2):
        up = controllers.get((meta.get("namespace", ""), owner[0], owner[1]))
        if up is None:
            break
        owner = up
    if owner[0] == "ReplicaSet":
        h = (meta.get("labels") or {}).get("pod-template-hash")
        if h and owner[1].endswith(f"-{h}"):
            owner = ("Deployment", owner[1][: -len(h) - 1])
    return owner


def controllers_of(objects):
    out = {}
    for (kind, ns, name), obj in objects.items():
        if kind in ("ReplicaSet", "Job"):
            c = controller_of(obj)
            if c is not None:
                out[(ns, kind, name)] = c
    return out


def owner_entry(pod, controllers, cluster):
    kind, name = top_owner(pod, controllers)
    ns = pod["metadata"].get("namespace", "")
    return {
        "app": name,
        "workload_kind": kind,
        "namespace": ns,
        "pod": pod["metadata"]["name"],
        "cluster": f"{cluster}/{ns}",
        "kind": "pod",
    }


def truth(objects, cluster):
    controllers = controllers_of(objects)
    owners = {}
    for key in sorted((k for k in objects if k[0] == "Pod"), key=sort_key):
        pod = objects[key]
        if not holds_ips(pod):
            continue
        for ip in pod_ips(pod):
            if ip in owners:
                raise ScenarioError(
                    f"{ip} held by both {owners[ip]['pod']} and {pod['metadata']['name']} at once"
                )
            owners[ip] = owner_entry(pod, controllers, cluster)
    return owners


def naive_pod_events(pod, gone, controllers, cluster):
    """crates/trawl-cloud/src/pod.rs: pod_events, as (ip, owner-or-None)."""
    if (pod.get("spec") or {}).get("hostNetwork", False):
        return []
    if not gone and holds_ips(pod):
        entry = owner_entry(pod, controllers, cluster)
        return [(ip, entry) for ip in pod_ips(pod)]
    return [(ip, None) for ip in pod_ips(pod)]


def expected(scenario):
    cluster = (scenario.get("cluster") or {}).get("name", "cluster")
    store = Store(scenario)
    steps = scenario.get("steps", [])
    history = {}
    ever_seen = set()
    step_rows = []
    previous = {}
    # A naive replay of pod.rs: every pod event applied in order, last wins;
    # the step after a compaction learnt through pod.rs's relist.
    naive = {}
    known = {}
    naive_controllers = {}
    divergences = []
    for index, step in enumerate(steps):
        before = len(store.log)
        with store.cond:
            store.fire(index, step)
        now = truth(store.objects, cluster)
        for key, pod in store.objects.items():
            if key[0] == "Pod":
                ever_seen.update(pod_ips(pod))
        changes = []
        for ip in sorted(set(previous) | set(now)):
            a, b = previous.get(ip), now.get(ip)
            if (a and a["app"], a and a["pod"]) != (b and b["app"], b and b["pod"]):
                row = {"step": index, **(b or {"app": None})}
                history.setdefault(ip, []).append(row)
                changes.append({"ip": ip, "app": b["app"] if b else None, "pod": b["pod"] if b else None})
        previous = now
        if index == 0:
            via = "initial list"
        elif step.get("compact"):
            via = "relist after 410 Gone (the changes are never watch events)"
        elif step.get("close_watches"):
            via = "resumed watch (changes made while no watch was open)"
        else:
            via = "watch"
        # naive replay
        sources = []
        if step.get("compact") or index == 0:
            listed = sorted((k for k in store.objects if k[0] == "Pod"), key=sort_key)
            naive_controllers = controllers_of(store.objects)
            events = []
            for k in listed:
                events += naive_pod_events(store.objects[k], False, naive_controllers, cluster)
                sources.append(("list", store.objects[k]["metadata"]["name"]))
            listed_uids = {store.objects[k]["metadata"]["uid"] for k in listed}
            for uid, pod in known.items():
                if uid not in listed_uids:
                    events += naive_pod_events(pod, True, naive_controllers, cluster)
            known = {store.objects[k]["metadata"]["uid"]: store.objects[k] for k in listed}
            for ip, owner in events:
                naive[ip] = owner
        else:
            for ev in store.log[before:]:
                if ev.kind in ("ReplicaSet", "Job"):
                    k = (ev.key[1], ev.kind, ev.key[2])
                    c = controller_of(ev.obj)
                    if ev.type == "DELETED" or c is None:
                        naive_controllers.pop(k, None)
                    else:
                        naive_controllers[k] = c
                if ev.kind != "Pod":
                    continue
                gone = ev.type == "DELETED"
                for ip, owner in naive_pod_events(ev.obj, gone, naive_controllers, cluster):
                    naive[ip] = owner
                if gone:
                    known.pop(ev.obj["metadata"]["uid"], None)
                else:
                    known[ev.obj["metadata"]["uid"]] = ev.obj
        for ip in sorted(set(naive) | set(now)):
            a, b = naive.get(ip), now.get(ip)
            if (a and (a["app"], a["pod"])) != (b and (b["app"], b["pod"])):
                divergences.append(
                    {
                        "step": index,
                        "ip": ip,
                        "expected": b and b["app"],
                        "naive_pod_rs": a and a["app"],
                        "why": "pod.rs's pod_events releases every IP in the status of a pod that does not "
                        "hold it (ended, deleting, deleted), even when another pod holds that IP now",
                    }
                )
        step_rows.append(
            {
                "index": index,
                "name": step.get("name"),
                "seen_via": via,
                "wait_for": step.get("wait_for"),
                "close_watches": step.get("close_watches", False),
                "compact": bool(step.get("compact")),
                "done": bool(step.get("done")),
                "ownership_changes": changes,
            }
        )
    never = sorted(ever_seen - set(history), key=lambda s: tuple(int(x) for x in s.split(".")))
    return {
        "description": "Owner of every pod IP after each step of kube_scenario.json, by the rules of "
        "crates/trawl-cloud/src/pod.rs (workload_of_pod / pod_events). Generated by "
        "`python3 fake_kube.py --scenario kube_scenario.json --print-expected`.",
        "rules": {
            "app": "top owner's name: the Deployment of a ReplicaSet (its controller, or the pod-template-hash "
            "suffix), the CronJob of a Job, else the StatefulSet/DaemonSet/Job/ReplicaSet; a pod without a "
            "controller is its own workload (app = pod name)",
            "workload_kind": "labels[workload_kind] = the top owner's kind: Deployment, CronJob, StatefulSet, "
            "DaemonSet, Job, ReplicaSet or Pod (Workload.kind is always \"pod\"; no k8s_ prefix)",
            "cluster": "Workload.cluster = \"<cluster>/<namespace>\"",
            "holds": "an IP is owned while its pod is Running or Pending with status.podIPs, has no "
            "deletionTimestamp and is not on the host network; released when it ends, starts deleting, is "
            "deleted or vanishes between two lists",
        },
        "cluster": cluster,
        "steps": step_rows,
        "ips": {ip: history[ip] for ip in sorted(history, key=lambda s: tuple(int(x) for x in s.split(".")))},
        "final": {ip: (previous[ip]["app"] if ip in previous else None) for ip in sorted(history, key=lambda s: tuple(int(x) for x in s.split(".")))},
        "never_owned": never,
        "naive_pod_rs_divergences": divergences,
    }


# --------------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description="A fake Kubernetes API server driven by a scenario.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--log")
    parser.add_argument("--print-expected", action="store_true", help="print expected ownership and exit")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    parser.add_argument("--max-lifetime-secs", type=float, default=0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    with open(args.scenario, encoding="utf-8") as f:
        scenario = json.load(f)
    steps = scenario.get("steps", [])
    # Validates the whole scenario before serving (a bad reference fails now).
    try:
        exp = expected(scenario)
    except ScenarioError as err:
        sys.stderr.write(f"fake_kube: bad scenario: {err}\n")
        return 2
    if args.print_expected:
        json.dump(exp, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0

    start_wall = time.time()
    log = JsonLog(args.log, start_wall)
    store = Store(scenario, log)
    Handler.store, Handler.log, Handler.verbose = store, log, args.verbose

    first = 0
    with store.cond:
        while first < len(steps) and ready_now(steps[first]):
            fire_logged(store, log, first, steps[first])
            first += 1

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True

    def stop(*_):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    if args.exit_on_stdin_eof:

        def watch_stdin():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            finally:
                os._exit(0)

        threading.Thread(target=watch_stdin, daemon=True).start()
    if args.max_lifetime_secs > 0:
        timer = threading.Timer(args.max_lifetime_secs, lambda: os._exit(0))
        timer.daemon = True
        timer.start()

    start = time.monotonic()
    threading.Thread(target=run_timeline, args=(store, log, steps, first, start), daemon=True).start()
    sys.stdout.write(json.dumps({"port": server.server_address[1]}) + "\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except (SystemExit, KeyboardInterrupt):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
