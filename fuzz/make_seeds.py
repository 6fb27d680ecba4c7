#!/usr/bin/env python3
"""Makes the fuzz targets' seed corpora: real OpenFlow and OVSDB traffic, the example
states, and the CNI inputs and answers the tests and the CNI spec use.

Starts a private ovsdb-server + ovs-vswitchd (userspace datapath, in a temporary directory;
the system's OVS is not touched), puts a recording proxy in front of br-int's management
socket and of the database socket, and drives both through them with the real clients:
ovs-ofctl installs `kovs-agent compile`'s flows for examples/cluster.yaml (one by one and as
a bundle), dumps flows, ports, groups, meters and the TLV map, monitors flows, and sends
requests OVS rejects; ovsdb-client fetches the schema, runs a `monitor-cond` of the Interface
table while ovs-vsctl adds, changes and removes ports, and transacts. Each message either
side sent is a seed:

  fuzz/corpus/openflow/      one OpenFlow message per file (both directions)
  fuzz/corpus/ovsdb_stream/  a read-size byte, then a JSON-RPC message or a whole short stream
  fuzz/corpus/ovsdb_rows/    rows and column values from those messages

and, without OVS, the seeds of the other targets (derived from examples/ and the CNI spec):

  fuzz/corpus/state_loader/       examples/*.yaml, each document alone, as JSON too
  fuzz/corpus/cni_invocation/     environment + netconf of every verb and version
  fuzz/corpus/cni_json/           agent protocol bodies, results in every CNI version
  fuzz/corpus/cni_http_response/  the agent's answers (hyper's shape, Go's chunked shape)

Run as root from the repository root after `cargo build -p kovs-agent`:
    python3 fuzz/make_seeds.py
The seeds are committed; run this again only to refresh them. Files are named by a hash of
their content, so a rerun adds what changed and rewrites the rest in place.
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
# The largest seed kept: libFuzzer mutates small inputs far faster.
MAX_SEED = 4096


class Recorder:
    """A unix-socket proxy that records every byte each side sends, per connection."""

    def __init__(self, listen, upstream):
        self.listen, self.upstream = listen, upstream
        self.streams = []  # (direction, bytearray): "up" = client to server
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(listen)
        self.sock.listen(16)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self.upstream)
            up, down = bytearray(), bytearray()
            with self.lock:
                self.streams += [("up", up), ("down", down)]
            threading.Thread(target=self.pipe, args=(client, server, up), daemon=True).start()
            threading.Thread(target=self.pipe, args=(server, client, down), daemon=True).start()

    def pipe(self, src, dst, record):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    record += data
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def run(*args, check=True, timeout=30, env=None):
    return subprocess.run(args, check=check, timeout=timeout, env=env, capture_output=True, text=True)


def wait_for(path, what):
    for _ in range(200):
        if os.path.exists(path):
            return
        time.sleep(0.05)
    sys.exit(f"make_seeds: {what} did not appear at {path}")


def openflow_messages(stream):
    """Splits an OpenFlow byte stream at its header lengths."""
    out, pos = [], 0
    while pos + 8 <= len(stream):
        length = int.from_bytes(stream[pos + 2:pos + 4], "big")
        if length < 8 or pos + length > len(stream):
            break
        out.append(bytes(stream[pos:pos + length]))
        pos += length
    return out


def json_messages(stream):
    """Splits concatenated JSON-RPC messages."""
    decoder, text, pos, out = json.JSONDecoder(), stream.decode("utf-8", "replace"), 0, []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        try:
            value, end = decoder.raw_decode(text, pos)
        except ValueError:
            return out
        out.append((value, text[pos:end].encode()))
        pos = end


SEEN = set()


def write(target, data, key=None, limit=MAX_SEED):
    """Writes a seed unless it is too large or one with the same key was written."""
    key = (target, key if key is not None else data)
    if len(data) > limit or key in SEEN:
        return False
    SEEN.add(key)
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    return True


def rows_and_values(value, out):
    """Row objects (with a `_uuid`) and the column values inside them."""
    if isinstance(value, dict):
        if "_uuid" in value:
            out.append(value)
            out.extend(v for k, v in value.items() if k != "_uuid")
        for k, v in value.items():
            if isinstance(v, dict) and len(k) == 36 and k.count("-") == 4:
                # <table-updates2>: uuid -> {"initial"|"insert"|"modify": row}
                for row in v.values():
                    if isinstance(row, dict):
                        out.append(dict(row, _uuid=["uuid", k]))
                        out.extend(row.values())
            rows_and_values(v, out)
    elif isinstance(value, list):
        for v in value:
            rows_and_values(v, out)


def state_seeds():
    import yaml  # Debian's python3-yaml; only the JSON forms need it

    n = 0
    for name in ("cluster.yaml", "invalid.yaml"):
        with open(os.path.join(ROOT, "examples", name)) as f:
            text = f.read()
        n += write("state_loader", text.encode(), limit=1 << 16)
        docs = [d for d in text.split("\n---\n") if d.strip()]
        for d in docs:
            n += write("state_loader", d.encode())
        objects = [o for o in yaml.safe_load_all(text) if o]
        listed = {"apiVersion": "v1", "kind": "List", "items": objects}
        n += write("state_loader", json.dumps(listed).encode(), limit=1 << 16)
        n += write("state_loader", json.dumps(objects[:6], indent=1).encode())
    return n


NETCONF_ADD = {
    "cniVersion": "1.0.0", "name": "kube-ovn", "type": "kovs-cni",
    "server_socket": "/nonexistent/kovs-fuzz.sock", "provider": "ovn",
    "routes": [{"dst": "10.0.0.0/8", "gw": "10.16.0.1"}, {"gw": "10.16.0.1"}],
    "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]},
    "capabilities": {"portMappings": True}, "runtimeConfig": {"x": 1},
}
RESULT = {
    "interfaces": [{"name": "eth0", "mac": "00:00:00:aa:bb:cc", "mtu": 1400,
                    "sandbox": "/var/run/netns/cni-1"}],
    "ips": [{"address": "10.16.0.5/16", "gateway": "10.16.0.1", "interface": 0},
            {"address": "fd00:10:16::5/64", "gateway": "fd00:10:16::1", "interface": 0}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.16.0.1"}, {"dst": "::/0", "gw": "fd00:10:16::1"},
               {"dst": "10.96.0.0/12", "gw": "10.16.0.1", "mtu": 1300, "advmss": 1260,
                "priority": 10, "table": 100, "scope": 0}],
    "dns": {"nameservers": ["10.96.0.10"], "domain": "cluster.local",
            "search": ["default.svc.cluster.local"], "options": ["ndots:5"]},
}


def prev_result(version):
    r = json.loads(json.dumps(RESULT), object_hook=dict)
    r["cniVersion"] = version
    if version < "1.0.0":
        for ip in r["ips"]:
            ip["version"] = "6" if ":" in ip["address"] else "4"
    if version < "1.1.0":
        r["interfaces"][0].pop("mtu")
        r["routes"] = [{"dst": x["dst"], "gw": x["gw"]} for x in r["routes"]]
    else:
        r["interfaces"].append({"name": "vhost0", "socketPath": "/run/vhost0.sock",
                                "pciID": "0000:00:1f.0"})
    return r


def cni_seeds():
    n = 0
    versions = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    env = {"CNI_CONTAINERID": "0123abcd", "CNI_NETNS": "/var/run/netns/cni-1",
           "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
           "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-a;"
                       "K8S_POD_INFRA_CONTAINER_ID=0123abcd;K8S_POD_UID=7d2e"}

    def invocation(command, conf, **extra):
        e = dict(env, CNI_COMMAND=command, **extra)
        text = "".join(f"{k}={v}\n" for k, v in e.items()) + "\n" + json.dumps(conf)
        return write("cni_invocation", text.encode())

    for v in versions:
        conf = dict(NETCONF_ADD, cniVersion=v)
        n += invocation("ADD", conf)
        n += invocation("DEL", dict(conf, prevResult=prev_result(v)))
        n += invocation("CHECK", dict(conf, prevResult=prev_result(v)))
        n += invocation("VERSION", {"cniVersion": v})
        n += invocation("GC", dict(conf, **{"cni.dev/valid-attachments": [
            {"containerID": "0123abcd", "ifname": "eth0"}]}))
        n += invocation("STATUS", conf)
        n += write("cni_json", json.dumps(prev_result(v)).encode())
    n += invocation("ADD", NETCONF_ADD, CNI_ARGS="K8S_POD_NAME=a;K8S_POD_NAME=b")
    n += invocation("ADD", dict(NETCONF_ADD, prevResult=prev_result("1.0.0")))
    n += invocation("GC", dict(NETCONF_ADD, cniVersion="1.1.0", **{"cni.dev/attachments": None}))

    request = {"cni_type": "kube-ovn", "pod_name": "p", "pod_namespace": "ns",
               "container_id": "0123abcd", "net_ns": "/var/run/netns/cni-1", "if_name": "eth0",
               "provider": "ovn", "routes": [{"dst": "10.0.0.0/8", "gw": "10.16.0.1"}],
               "dns": {"nameservers": [], "domain": "", "search": [], "options": []},
               "vf_driver": "", "deviceID": "", "vhost_user_socket_volume_name": "",
               "vhost_user_socket_name": "", "vhost_user_socket_consumption": ""}
    response = {"ips": [{"protocol": "IPv4", "ip": "10.16.0.5", "cidr": "10.16.0.0/16",
                         "gateway": "10.16.0.1"},
                        {"protocol": "IPv6", "ip": "fd00:10:16::5",
                         "cidr": "10.16.0.0/16,fd00:10:16::/64", "gateway": "fd00:10:16::1"}],
                "mac_address": "00:00:00:aa:bb:cc",
                "routes": [{"gw": "10.16.0.1"}, {"dst": "10.16.0.0/16"}], "mtu": 1400,
                "nicname": "eth0", "dns": {}, "error": ""}
    bodies = [
        request, response,
        dict(response, routes=None, ips=None, dns=None),
        {"ips": None, "error": "no address allocated to pod ns/p"},
        dict(request, prev_result=RESULT),
        {"cni_type": "kovs-cni", "provider": "ovn",
         "valid_attachments": [{"container_id": "0123abcd", "if_name": "eth0"}]},
        {"ready": False, "error": "first sync pending"}, {"ready": True},
        # A response and a chained plugin's result at once: the target tries both roles.
        dict(response, **{k: v for k, v in RESULT.items() if k != "ips"}),
    ]
    for b in bodies:
        n += write("cni_json", json.dumps(b).encode())

    body = json.dumps(response).encode()
    answers = [
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: no-store\r\n"
        b"content-length: %d\r\ndate: Tue, 08 Dec 2026 00:00:00 GMT\r\n\r\n%s" % (len(body), body),
        b"HTTP/1.1 204 No Content\r\ndate: Tue, 08 Dec 2026 00:00:00 GMT\r\n\r\n",
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        b"content-length: 53\r\n\r\n{\"error\":\"the first full sync has not finished yet\"}\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Internal Server Error\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5;x=y\r\n{\"err\r\n9\r\nor\":\"no\"}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        b"%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (len(body), body),
        b"HTTP/1.0 503 Service Unavailable\r\n\r\nnot yet",
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 37\r\n\r\nprovider x is not bound to any subnet",
    ]
    for a in answers:
        for step in (b"\x00", b"\x02"):
            n += write("cni_http_response", step + a)
    return n


def ovsdb_rows_seeds():
    pairs = [
        [["set", [["uuid", "a"], ["uuid", "b"]]], ["set", [["uuid", "b"], ["uuid", "c"]]]],
        [["uuid", "a"], ["uuid", "a"]],
        [["map", [["a", "1"], ["b", "2"], ["c", "3"]]], ["map", [["d", "4"], ["b", "2"], ["c", "9"]]]],
        [1, 42], [["set", []], 3], [5, ["set", []]],
    ]
    return sum(write("ovsdb_rows", json.dumps(p).encode()) for p in pairs)


def main():
    n = state_seeds() + cni_seeds() + ovsdb_rows_seeds()
    print(f"make_seeds: {n} seeds from examples/, the CNI spec and the tests")
    if os.geteuid() != 0:
        sys.exit("make_seeds: run as root (it starts a private ovs-vswitchd)")
    agent = os.environ.get("KOVS_AGENT", os.path.join(ROOT, "target", "debug", "kovs-agent"))
    if not os.access(agent, os.X_OK):
        sys.exit(f"make_seeds: {agent} missing: cargo build -p kovs-agent first")
    flows = run(agent, "compile", "--node", "node1", "--state",
                os.path.join(ROOT, "examples", "cluster.yaml"),
                "--port", "pod-a.default=10", "--port", "pod-b.default=11").stdout
    br_int = [l for l in flows.split("# bridge ")[1].splitlines()[1:] if l.strip()]

    tmp = tempfile.mkdtemp(prefix="kovs-seeds-")
    env = dict(os.environ, OVS_RUNDIR=tmp, OVS_LOGDIR=tmp, OVS_DBDIR=tmp)
    procs = []
    try:
        db = os.path.join(tmp, "conf.db")
        dbsock = os.path.join(tmp, "db.sock")
        run("ovsdb-tool", "create", db, SCHEMA)
        procs.append(subprocess.Popen(
            ["ovsdb-server", db, "--remote=punix:" + dbsock,
             "--unixctl=" + os.path.join(tmp, "ovsdb-server.ctl"),
             "--log-file=" + os.path.join(tmp, "ovsdb-server.log")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(dbsock, "ovsdb-server's socket")
        vsctl = ["ovs-vsctl", "--db=unix:" + dbsock, "--timeout=10"]
        run(*vsctl, "--no-wait", "init", env=env)
        procs.append(subprocess.Popen(
            ["ovs-vswitchd", "unix:" + dbsock, "--disable-system",
             "--unixctl=" + os.path.join(tmp, "ovs-vswitchd.ctl"),
             "--log-file=" + os.path.join(tmp, "ovs-vswitchd.log")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(os.path.join(tmp, "ovs-vswitchd.ctl"), "ovs-vswitchd's control socket")

        ovsdb = Recorder(os.path.join(tmp, "ovsdb-proxy.sock"), dbsock)
        proxied_db = "unix:" + ovsdb.listen
        # A monitor of the Interface table, as the agent's watch does, during the port changes.
        monitor = subprocess.Popen(
            ["ovsdb-client", "monitor-cond", proxied_db, "Open_vSwitch", "[true]",
             "Interface", "name,type,ofport,external_ids,error"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(monitor)
        run("ovsdb-client", "get-schema", proxied_db, "Open_vSwitch", env=env)
        pvsctl = ["ovs-vsctl", "--db=" + proxied_db, "--timeout=10"]
        run(*pvsctl, "add-br", "br-int", "--", "set", "bridge", "br-int",
            "datapath_type=netdev", "protocols=OpenFlow13", "fail_mode=secure",
            "external_ids:kovs-owner=kovs", env=env)
        for i, pod in enumerate(["pod-a.default", "pod-b.default"]):
            run(*pvsctl, "add-port", "br-int", f"p{i}", "--", "set", "interface", f"p{i}",
                "type=internal", f"ofport_request={10 + i}", f"external_ids:iface-id={pod}",
                env=env)
        run(*pvsctl, "add-port", "br-int", "tun0", "--", "set", "interface", "tun0",
            "type=geneve", "options:remote_ip=flow", "options:key=flow", "ofport_request=1",
            env=env)
        run(*pvsctl, "set", "interface", "p1", "external_ids:iface-id=moved.default", env=env)
        run(*pvsctl, "add-port", "br-int", "bad0", env=env, check=False)  # no such device
        run(*pvsctl, "del-port", "br-int", "p1", env=env)
        run("ovsdb-client", "transact", proxied_db,
            '["Open_vSwitch",{"op":"select","table":"Bridge","where":[],'
            '"columns":["_uuid","name","ports","datapath_id","external_ids","other_config"]},'
            '{"op":"select","table":"Port","where":[],"columns":["_uuid","name","interfaces"]},'
            '{"op":"select","table":"Interface","where":[],'
            '"columns":["_uuid","name","type","options","ofport","ofport_request","external_ids","error"]}]',
            env=env)
        run("ovsdb-client", "transact", proxied_db,
            '["Open_vSwitch",{"op":"wait","table":"Bridge","where":[["name","==","br-int"]],'
            '"columns":["name"],"until":"!=","rows":[{"name":"br-int"}],"timeout":0}]',
            env=env, check=False)
        # A second monitor, whose snapshot has rows, while one more port comes and goes.
        snapshot = subprocess.Popen(
            ["ovsdb-client", "monitor-cond", proxied_db, "Open_vSwitch", "[true]",
             "Interface", "name,type,ofport,external_ids,error"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(snapshot)
        time.sleep(0.3)
        run(*pvsctl, "add-port", "br-int", "p2", "--", "set", "interface", "p2",
            "type=internal", "external_ids:iface-id=pod-c.default", env=env)
        run(*pvsctl, "set", "interface", "p2", "ofport_request=12", env=env)
        run(*pvsctl, "del-port", "br-int", "p2", env=env)
        time.sleep(0.5)
        monitor.terminate()
        snapshot.terminate()

        mgmt = os.path.join(tmp, "br-int.mgmt")
        wait_for(mgmt, "br-int's management socket")
        of = Recorder(os.path.join(tmp, "of-proxy.sock"), mgmt)
        target = "unix:" + of.listen
        ofctl = ["ovs-ofctl", "-O", "OpenFlow13"]
        flow_file = os.path.join(tmp, "flows.txt")
        with open(flow_file, "w") as f:
            f.write("\n".join(br_int) + "\n")
        watcher = subprocess.Popen(ofctl + ["monitor", target, "watch:"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(watcher)
        time.sleep(0.3)
        run(*ofctl, "add-tlv-map", target, "{class=0x0102,type=0x80,len=4}->tun_metadata0")
        run(*ofctl, "dump-tlv-map", target)
        run(*ofctl, "--bundle", "add-flows", target, flow_file)
        run(*ofctl, "del-flows", target)
        run(*ofctl, "add-flows", target, flow_file)
        run(*ofctl, "show", target)
        run(*ofctl, "dump-flows", target)
        run(*ofctl, "dump-ports-desc", target)
        run(*ofctl, "add-group", target,
            "group_id=7,type=select,bucket=weight:5,output:10,bucket=weight:5,output:11")
        run(*ofctl, "dump-groups", target)
        run(*ofctl, "add-meter", target, "meter=3,kbps,band=type=drop,rate=1000")
        run(*ofctl, "dump-meters", target, check=False)
        run(*ofctl, "probe", target)
        # Requests OVS rejects: errors, bundle errors.
        run(*ofctl, "add-flow", target, "table=30,actions=goto_table:10", check=False)
        run(*ofctl, "--bundle", "add-flow", target, "table=30,actions=goto_table:10", check=False)
        run(*ofctl, "add-flow", target, "table=0,tun_metadata5=1,actions=drop", check=False)
        run(*ofctl, "packet-out", target,
            "in_port=controller packet=ffffffffffff0000000000010806000108000604000100000000000"
            "10a1000010000000000000a100002 actions=output:10", check=False)
        run(*ofctl, "del-flows", target, "cookie=0x6b10000000000000/-1")
        time.sleep(0.3)
        watcher.terminate()

        n_of = 0
        for _, stream in of.streams:
            for msg in openflow_messages(stream):
                # One of each message that differs only in its xid.
                n_of += write("openflow", msg, key=msg[:4] + msg[8:])
        n_stream = n_rows = 0
        for direction, stream in ovsdb.streams:
            if direction != "down":
                continue
            values, session = [], b""
            for value, raw in json_messages(bytes(stream)):
                n_stream += write("ovsdb_stream", b"\x3f" + raw)
                rows_and_values(value, values)
                # A monitor session less its schema: the snapshot, then its update2s.
                if "Interface" in json.dumps(value) and len(raw) < MAX_SEED:
                    session += raw
            # The session cut into reads of 7 bytes.
            n_stream += write("ovsdb_stream", b"\x06" + session[:MAX_SEED - 1])
            for v in values:
                n_rows += write("ovsdb_rows", json.dumps(v, separators=(",", ":")).encode())
        print(f"make_seeds: {n_of} openflow, {n_stream} ovsdb_stream, {n_rows} ovsdb_rows seeds")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
