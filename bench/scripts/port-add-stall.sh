#!/usr/bin/env bash
# How long ovs-vswitchd's OpenFlow channel stalls after an internal port is added to a
# userspace-datapath bridge holding N ports; no kovs involved. This is the floor under
# `kovs-bench pod-latency`, whose pods are internal ports too.
#   bench/scripts/port-add-stall.sh [N...]      (default: 50 400)
set -euo pipefail
# The internal ports become tap devices: keep them out of the host's namespace.
if [ -z "${KOVS_STALL_NETNS:-}" ]; then
    KOVS_STALL_NETNS=1 exec unshare --net -- "$0" "$@"
fi
D=$(mktemp -d /tmp/kovs-stall-XXXX)
cleanup() {
    for p in "$D"/vs.pid "$D"/db.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
    sleep 0.3
    rm -rf "$D"
}
trap cleanup EXIT
export OVS_RUNDIR=$D OVS_DBDIR=$D OVS_LOGDIR=$D
DB=unix:$D/db.sock
ovsdb-tool create "$D/conf.db" /usr/share/openvswitch/vswitch.ovsschema
ovsdb-server --remote=punix:"$D/db.sock" --pidfile="$D/db.pid" --unixctl="$D/db.ctl" --detach \
    --log-file="$D/db.log" "$D/conf.db"
ovs-vsctl --db="$DB" --no-wait init
ovs-vswitchd "$DB" --disable-system --pidfile="$D/vs.pid" --unixctl="$D/vs.ctl" --detach \
    --log-file="$D/vs.log"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(50 400)
for n in "${sizes[@]}"; do
    ovs-vsctl --db="$DB" -- --if-exists del-br br0 -- add-br br0 \
        -- set bridge br0 datapath_type=netdev protocols=OpenFlow13
    for i in $(seq 1 "$n"); do echo "-- add-port br0 lp$i -- set interface lp$i type=internal"; done |
        xargs ovs-vsctl --db="$DB" >/dev/null
    sleep 1
    python3 - "$D" "$n" <<'PY'
import socket, struct, subprocess, sys, time
d, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX)
s.connect(f"{d}/br0.mgmt")
def send(t, xid): s.sendall(struct.pack("!BBHI", 4, t, 8, xid))
def recv():
    h = b""
    while len(h) < 8: h += s.recv(8 - len(h))
    _, t, l, _ = struct.unpack("!BBHI", h)
    b = b""
    while len(b) < l - 8: b += s.recv(l - 8 - len(b))
    return t
send(0, 1); recv()  # hello
def barrier_ms():
    t = time.perf_counter(); send(20, 7)  # OFPT_BARRIER_REQUEST
    while recv() != 21: pass
    return (time.perf_counter() - t) * 1e3
idle = sorted(barrier_ms() for _ in range(50))[25]
worst = []
for k in range(10):
    subprocess.Popen(["ovs-vsctl", f"--db=unix:{d}/db.sock", "--no-wait", "add-port", "br0", f"x{k}",
                      "--", "set", "interface", f"x{k}", "type=internal"])
    t0, w = time.perf_counter(), 0.0
    while time.perf_counter() - t0 < 0.08:
        w = max(w, barrier_ms()); time.sleep(0.0005)
    worst.append(w); time.sleep(0.05)
worst.sort()
print('{"bench":"port-add-stall","ports":%d,"idle_barrier_ms":%.3f,"stall_p50_ms":%.1f,"stall_max_ms":%.1f}'
      % (n, idle, worst[5], worst[-1]))
PY
done
