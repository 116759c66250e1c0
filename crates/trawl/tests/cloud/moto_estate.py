"""An EC2/ECS estate in moto_server, changed in phases, with VPC flow logs
written between the changes and the owners a correct poller must find.

Usage:
  moto_estate.py --endpoint URL --region us-east-1 --out DIR
                 [--settle-secs 3] [--records 300] [--seed 17] [--wait-file PATH]

Prints {"vpc_id":..,"cidr":..} on stdout as soon as the VPC exists (then,
with --wait-file, waits for PATH to exist before building the rest). Each
phase changes the estate, checks DescribeNetworkInterfaces against the
model, sleeps --settle-secs (a poller polling every second sees the change
at least twice), then writes DIR/flows/phase-N.log (AWS's default version 2
format with its header; .tmp then rename) whose start/end lie in
[change + settle/2, now]: after the change was polled, before the next one.
Egress records are logged at the source's ENI; records from outside
(internet 52.95.1.1, the unowned 10.20.9.99) are ingress at the
destination's. DIR/truth.json holds every record with its true apps
("records") and sums per (src_app, dst_app) ("pairs"); DIR/done ends a run.

Phases: 1 builds web x2, api x2 (app + Name + ASG tags; api-1 with an
Elastic IP), bastion (Name only), an untagged instance, batch (ASG tag
only), web-1's secondary 10.20.1.11, a NAT gateway, checkout-alb's two ENIs
and two Fargate tasks (service payments; report-td alone). 2: api-2
terminated and a worker launched on its address, one ALB ENI deleted, a
search instance added. 3: 10.20.1.11 moved to bastion, web-2 retagged
web-canary, the untagged instance terminated, the report task stopped.

Apps follow crates/trawl-cloud/src/eni.rs: an instance by its first tag of
app, Name, aws:autoscaling:groupName, eks:nodegroup-name,
aws:ecs:serviceName, else its id; "ELB app/NAME/ID" -> NAME; a NAT gateway
-> its nat- id. An ECS task -> its service (DescribeTasks group
"service:NAME"), else its task definition family: the poller's join
(eni.rs alone reads the ENI's aws:ecs:serviceName tag, which moto never
sets, else says "ecs"). Outside addresses have no app (null) and the kind
trawl gives them: "internet" (public) or "unknown" (private, unowned).

moto 5.2.5 makes no ELB ENIs (made here with the ELB description), leaves
the NAT's and ECS tasks' ENI descriptions empty / "moto ECS" (rewritten here
to AWS's shapes), puts those ENIs on random 10.x addresses (often outside
the VPC), and advances an ECS task's lastStatus on each read (made static
here through /moto-api). See MOTO_NOTES.md.
"""
import argparse, json, math, os, random, sys, time, urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

CIDR = "10.20.0.0/16"
SUBNETS = {"a": ("10.20.1.0/24", "a"), "b": ("10.20.2.0/24", "b")}
TAG_KEYS = ["app", "Name", "aws:autoscaling:groupName", "eks:nodegroup-name", "aws:ecs:serviceName"]
INTERNET, UNOWNED, EIP_API = "52.95.1.1", "10.20.9.99", "54.240.1.10"
HEADER = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
PORTS = [443, 8080, 5432, 6379, 9092, 53]


class EstateError(Exception):
    pass


class Estate:
    """The model: each role's addresses, ENI and app, as the truth."""

    def __init__(self, args):
        cfg = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)
        kw = dict(endpoint_url=args.endpoint, region_name=args.region, config=cfg,
                  aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or "test",
                  aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or "test")
        self.ec2, self.ecs, self.elb = (boto3.client(s, **kw) for s in ("ec2", "ecs", "elbv2"))
        self.account = boto3.client("sts", **kw).get_caller_identity()["Account"]
        self.args = args
        self.roles = {}      # role -> {"eni", "ips", "app", "kind", "instance"}
        self.unowned = [UNOWNED]
        self.subnet, self.ami = {}, "ami-12345678"

    def put(self, role, eni, ips, app, kind, instance=None):
        self.roles[role] = {"eni": eni, "ips": list(ips), "app": app, "kind": kind, "instance": instance}


def app_of_tags(tags, instance_id):
    return next((tags[k] for k in TAG_KEYS if tags.get(k, "").strip()), instance_id)


def log(msg):
    print("moto_estate: " + msg, file=sys.stderr, flush=True)


def moto_api(args, path, body):
    req = urllib.request.Request(args.endpoint.rstrip("/") + path, data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(req, timeout=10).read()


# --- changes to the estate -------------------------------------------------

def launch(es, role, subnet, ip, tags):
    """An instance whose primary ENI (and address) goes when it terminates."""
    spec = {"DeviceIndex": 0, "SubnetId": es.subnet[subnet], "PrivateIpAddress": ip, "DeleteOnTermination": True}
    extra = {"TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]} if tags else {}
    inst = es.ec2.run_instances(ImageId=es.ami, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                NetworkInterfaces=[spec], **extra)["Instances"][0]
    eni = inst["NetworkInterfaces"][0]["NetworkInterfaceId"]
    es.put(role, eni, [ip], app_of_tags(tags, inst["InstanceId"]), "instance", inst["InstanceId"])
    return inst["InstanceId"], eni


def create_vpc(es):
    vpc = es.ec2.create_vpc(CidrBlock=CIDR)["Vpc"]["VpcId"]
    # ECS awsvpc tasks fail in moto (500) unless the VPC has DNS hostnames.
    es.ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    for name, (cidr, zone) in SUBNETS.items():
        es.subnet[name] = es.ec2.create_subnet(VpcId=vpc, CidrBlock=cidr,
                                               AvailabilityZone=es.args.region + zone)["Subnet"]["SubnetId"]
    es.vpc = vpc
    return vpc


def phase1_build(es):
    asg = lambda app, n: {"app": app, "Name": f"{app}-{n}", "aws:autoscaling:groupName": f"{app}-asg"}
    launch(es, "web-1", "a", "10.20.1.10", asg("web", 1))
    launch(es, "web-2", "b", "10.20.2.10", asg("web", 2))
    launch(es, "api-1", "a", "10.20.1.20", asg("api", 1))
    launch(es, "api-2", "b", "10.20.2.20", asg("api", 2))
    launch(es, "bastion", "a", "10.20.1.30", {"Name": "bastion"})
    launch(es, "untagged", "b", "10.20.2.30", {})
    launch(es, "batch", "a", "10.20.1.40", {"aws:autoscaling:groupName": "batch-asg"})
    # A secondary private address on web-1's ENI, an Elastic IP on api-1's.
    web1 = es.roles["web-1"]
    es.ec2.assign_private_ip_addresses(NetworkInterfaceId=web1["eni"], PrivateIpAddresses=["10.20.1.11"])
    web1["ips"].append("10.20.1.11")
    eip = es.ec2.allocate_address(Domain="vpc", Address=EIP_API)
    es.ec2.associate_address(AllocationId=eip["AllocationId"], NetworkInterfaceId=es.roles["api-1"]["eni"])
    es.roles["api-1"]["public"] = EIP_API
    # NAT gateway: moto's ENI has no description; AWS writes this one.
    nat_eip = es.ec2.allocate_address(Domain="vpc", Address="54.240.1.20")
    nat = es.ec2.create_nat_gateway(SubnetId=es.subnet["a"], AllocationId=nat_eip["AllocationId"])["NatGateway"]
    addr = nat["NatGatewayAddresses"][0]
    es.ec2.modify_network_interface_attribute(NetworkInterfaceId=addr["NetworkInterfaceId"],
                                              Description={"Value": f"Interface for NAT Gateway {nat['NatGatewayId']}"})
    es.put("nat", addr["NetworkInterfaceId"], [addr["PrivateIp"]], nat["NatGatewayId"], "nat_gateway")
    es.roles["nat"]["public"] = addr["PublicIp"]
    # ALB: moto makes the load balancer but no ENIs; these stand in for them.
    arn = es.elb.create_load_balancer(Name="checkout-alb", Type="application", Scheme="internal",
                                      Subnets=[es.subnet["a"], es.subnet["b"]])["LoadBalancers"][0]["LoadBalancerArn"]
    description = "ELB " + arn.split(":loadbalancer/", 1)[1]
    for role, subnet, ip in (("alb-a", "a", "10.20.1.100"), ("alb-b", "b", "10.20.2.100")):
        eni = es.ec2.create_network_interface(SubnetId=es.subnet[subnet], PrivateIpAddress=ip,
                                              Description=description)["NetworkInterface"]["NetworkInterfaceId"]
        es.put(role, eni, [ip], "checkout-alb", "load_balancer")
    ecs_tasks(es)


def ecs_tasks(es):
    # moto's default moves a task's lastStatus one step per read (RUNNING,
    # DEACTIVATING, ... STOPPED): a poller would see it stop. Keep it still.
    moto_api(es.args, "/moto-api/state-manager/set-transition",
             {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**9}})
    es.ecs.create_cluster(clusterName="prod")
    sg = es.ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [es.vpc]}])["SecurityGroups"][0]["GroupId"]
    net = {"awsvpcConfiguration": {"subnets": [es.subnet["b"]], "securityGroups": [sg], "assignPublicIp": "DISABLED"}}
    for family in ("payments-td", "report-td"):
        es.ecs.register_task_definition(family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
                                        cpu="256", memory="512",
                                        containerDefinitions=[{"name": "app", "image": "nginx", "memory": 512}])
    es.ecs.create_service(cluster="prod", serviceName="payments", taskDefinition="payments-td", desiredCount=1,
                          launchType="FARGATE", networkConfiguration=net)
    # moto's service starts no task: run it as ECS would, in the service's group.
    runs = (("ecs-payments", "payments-td", {"group": "service:payments", "startedBy": "ecs-svc/0001"}),
            ("ecs-report", "report-td", {}))
    for role, family, extra in runs:
        task = es.ecs.run_task(cluster="prod", taskDefinition=family, count=1, launchType="FARGATE",
                               networkConfiguration=net, **extra)["tasks"][0]
        att = task["attachments"][0]
        details = {d["name"]: d["value"] for d in att["details"]}
        group = task["group"]
        app = group.split(":", 1)[1] if group.startswith("service:") else family
        es.ec2.modify_network_interface_attribute(
            NetworkInterfaceId=details["networkInterfaceId"],
            Description={"Value": f"arn:aws:ecs:{es.args.region}:{es.account}:attachment/{att['id']}"})
        es.put(role, details["networkInterfaceId"], [details["privateIPv4Address"]], app, "ecs_task")
        es.roles[role]["task"] = task["taskArn"]


def phase2_churn(es):
    """api-2 replaced by a worker on the same address, an ALB ENI gone, a new instance."""
    es.ec2.terminate_instances(InstanceIds=[es.roles.pop("api-2")["instance"]])
    launch(es, "worker", "b", "10.20.2.20", {"app": "worker", "Name": "worker-1"})
    es.ec2.delete_network_interface(NetworkInterfaceId=es.roles.pop("alb-b")["eni"])
    es.unowned.append("10.20.2.100")
    # At the very end of a second: the first poll to list search then
    # begins in a later second than its attach time, so its early records
    # (write_early) are right only if trawl dates search back to it.
    while time.time() % 1 < 0.96:
        time.sleep(0.005)
    launch(es, "search", "a", "10.20.1.50", {"app": "search"})


def phase3_churn(es):
    """web-1's secondary address moves to bastion, web-2 retagged, the untagged
    instance terminated, the report task stopped (its ENI deleted, as AWS does)."""
    web1, bastion = es.roles["web-1"], es.roles["bastion"]
    es.ec2.unassign_private_ip_addresses(NetworkInterfaceId=web1["eni"], PrivateIpAddresses=["10.20.1.11"])
    es.ec2.assign_private_ip_addresses(NetworkInterfaceId=bastion["eni"], PrivateIpAddresses=["10.20.1.11"])
    web1["ips"].remove("10.20.1.11")
    bastion["ips"].append("10.20.1.11")
    web2 = es.roles["web-2"]
    es.ec2.create_tags(Resources=[web2["instance"]], Tags=[{"Key": "app", "Value": "web-canary"}])
    web2["app"] = "web-canary"
    es.ec2.terminate_instances(InstanceIds=[es.roles.pop("untagged")["instance"]])
    es.unowned.append("10.20.2.30")
    report = es.roles.pop("ecs-report")
    es.ecs.stop_task(cluster="prod", task=report["task"], reason="phase 3")
    es.ec2.delete_network_interface(NetworkInterfaceId=report["eni"])


# --- checks and flows --------------------------------------------------------

def check(es):
    """DescribeNetworkInterfaces (and DescribeTasks) agree with the model."""
    enis = es.ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [es.vpc]}])["NetworkInterfaces"]
    seen = {}
    for n in enis:
        ips = [p["PrivateIpAddress"] for p in n["PrivateIpAddresses"]]
        ips += [n["Association"]["PublicIp"]] if n.get("Association", {}).get("PublicIp") else []
        for ip in ips:
            if ip in seen:
                raise EstateError(f"{ip} on both {seen[ip]} and {n['NetworkInterfaceId']}")
            seen[ip] = n["NetworkInterfaceId"]
    want = {ip: r["eni"] for _, ip, r in owned(es)}
    if seen != want or set(es.unowned) & set(seen):
        raise EstateError(f"DescribeNetworkInterfaces disagrees with the model: want {want}, seen {seen}")
    tasks = [r["task"] for r in es.roles.values() if "task" in r]
    for t in es.ecs.describe_tasks(cluster="prod", tasks=tasks)["tasks"]:
        if t["lastStatus"] != "RUNNING":
            raise EstateError(f"task {t['taskArn']} is {t['lastStatus']}")


def settle(es):
    """Sleeps after a change; returns the [lo, hi] whole seconds flows may use."""
    began = time.time()
    lo = math.ceil(began + es.args.settle_secs / 2)
    time.sleep(es.args.settle_secs)
    while math.floor(time.time()) < lo:
        time.sleep(0.1)
    return lo, math.floor(time.time())


def endpoint_list(es):
    """Every private address of the estate, in role order (not moto's ids)."""
    return [(role, ip, r) for role, r in sorted(es.roles.items()) for ip in r["ips"]]


def owned(es):
    """Every address an ENI holds: the private ones and the public ones."""
    return endpoint_list(es) + [(role, r["public"], r) for role, r in sorted(es.roles.items()) if "public" in r]


def write_flows(es, phase, lo, hi, rng, truth):
    eps = endpoint_list(es)
    outside = lambda ip: {"app": None, "kind": "internet" if ip in (INTERNET,) else "unknown"}
    lines = [HEADER]
    for _ in range(es.args.records):
        roll = rng.random()
        s = rng.choice(eps)
        if roll < 0.80:                       # estate -> estate, egress at the source
            d = rng.choice([e for e in eps if e[2]["eni"] != s[2]["eni"]])
            src, dst, eni, sa, da = s[1], d[1], s[2]["eni"], s[2], d[2]
        elif roll < 0.86:                     # estate -> internet
            src, dst, eni, sa, da = s[1], INTERNET, s[2]["eni"], s[2], outside(INTERNET)
        elif roll < 0.91:                     # estate -> unowned private (released ones too)
            dst = rng.choice(es.unowned)
            src, eni, sa, da = s[1], s[2]["eni"], s[2], outside(dst)
        elif roll < 0.96:                     # internet / unowned -> estate, ingress at the destination
            src = INTERNET if roll < 0.94 else UNOWNED
            dst, eni, sa, da = s[1], s[2]["eni"], outside(src), s[2]
        else:                                 # internet -> api-1's Elastic IP
            api = es.roles["api-1"]
            src, dst, eni, sa, da = INTERNET, api["public"], api["eni"], outside(INTERNET), api
        nbytes = rng.randint(60, 150_000)
        packets = max(1, nbytes // 900)
        start = rng.randint(lo, hi)
        end = min(hi, start + rng.randint(0, 2))
        sport, dport = rng.randint(32768, 60999), rng.choice(PORTS)
        proto = 17 if dport == 53 else 6
        lines.append(f"2 {es.account} {eni} {src} {dst} {sport} {dport} {proto} {packets} {nbytes} {start} {end} ACCEPT OK")
        truth.append({"phase": phase, "src_ip": src, "dst_ip": dst, "interface_id": eni,
                      "src_app": sa["app"], "dst_app": da["app"], "src_kind": sa["kind"], "dst_kind": da["kind"],
                      "start": start, "end": end, "flows": 1, "bytes": nbytes, "packets": packets})
    write_atomic(os.path.join(es.args.out, "flows", f"phase-{phase}.log"), "\n".join(lines) + "\n")


def write_early(es, roles, truth):
    """Records from just-launched instances on free addresses, stamped at
    their attach second and written before any poll can have listed them:
    trawl must hold them (their addresses are unknown past its last poll)
    and date the new owners back to the attach time the next poll reports.
    (Not worker's: its address was api-2's, a known owner, so its records
    read before the next poll go to api-2, as documented.)"""
    lines = [HEADER]
    for role in roles:
        r = es.roles[role]
        eni = es.ec2.describe_network_interfaces(NetworkInterfaceIds=[r["eni"]])["NetworkInterfaces"][0]
        at = int(eni["Attachment"]["AttachTime"].timestamp())
        for i in range(5):
            nbytes = 1000 + i
            lines.append(f"2 {es.account} {r['eni']} {r['ips'][0]} {INTERNET} {40000 + i} 443 6 1 {nbytes} {at} {at} ACCEPT OK")
            truth.append({"phase": 2, "src_ip": r["ips"][0], "dst_ip": INTERNET, "interface_id": r["eni"],
                          "src_app": r["app"], "dst_app": None, "src_kind": r["kind"], "dst_kind": "internet",
                          "start": at, "end": at, "flows": 1, "bytes": nbytes, "packets": 1})
    write_atomic(os.path.join(es.args.out, "flows", "phase-2-early.log"), "\n".join(lines) + "\n")


def write_atomic(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


def pairs_of(records):
    sums = {}
    for r in records:
        s = sums.setdefault((r["src_app"], r["dst_app"]), [0, 0, 0])
        s[0], s[1], s[2] = s[0] + 1, s[1] + r["bytes"], s[2] + r["packets"]
    key = lambda k: tuple((x is not None, x or "") for x in k)
    return [{"src_app": a, "dst_app": b, "flows": f, "bytes": n, "packets": p}
            for (a, b), (f, n, p) in sorted(sums.items(), key=lambda kv: key(kv[0]))]


def run(args):
    os.makedirs(os.path.join(args.out, "flows"), exist_ok=True)
    es = Estate(args)
    vpc = create_vpc(es)
    print(json.dumps({"vpc_id": vpc, "cidr": CIDR}), flush=True)
    if args.wait_file:
        deadline = time.time() + 120
        while not os.path.exists(args.wait_file):
            if time.time() > deadline:
                raise EstateError(f"{args.wait_file} did not appear within 120 s")
            time.sleep(0.1)
    records, estates = [], []
    for phase, change in enumerate((phase1_build, phase2_churn, phase3_churn), start=1):
        change(es)
        if phase == 2:
            write_early(es, ["search"], records)
        check(es)
        estates.append({"phase": phase, "owners": {ip: {"app": r["app"], "kind": r["kind"], "eni": r["eni"]}
                                                   for _, ip, r in owned(es)},
                        "unowned": list(es.unowned)})
        lo, hi = settle(es)
        write_flows(es, phase, lo, hi, random.Random(args.seed * 1000 + phase), records)
        # The next change must fall in a later second than every record
        # (a poll dates what it sees to the second).
        time.sleep(max(0.0, hi + 1.2 - time.time()))
        log(f"phase {phase}: {len(es.roles)} interfaces, {args.records} records in [{lo}, {hi}]")
    truth = {"vpc_id": vpc, "cidr": CIDR, "account": es.account, "estates": estates,
             "records": records, "pairs": pairs_of(records)}
    write_atomic(os.path.join(args.out, "truth.json"), json.dumps(truth, indent=1) + "\n")
    open(os.path.join(args.out, "done"), "w").close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--out", required=True)
    p.add_argument("--settle-secs", type=float, default=3.0)
    p.add_argument("--records", type=int, default=300)
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--wait-file")
    args = p.parse_args()
    if args.settle_secs < 2:
        p.error("--settle-secs must be at least 2 (two polls a second apart)")
    try:
        run(args)
    except (ClientError, BotoCoreError, EstateError, OSError) as e:
        sys.exit(f"moto_estate: error: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
