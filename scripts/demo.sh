#!/usr/bin/env bash
# make demo: the reference document's pub_net example, end to end, in a
# sandbox of network namespaces. The host's own interfaces are not touched;
# no traffic leaves the sandbox. Needs root.
#
#   host namespace  ${P}-host : eth0 (parent of pub_net), the agent
#   wire namespace  ${P}-wire : wire0, the other end of eth0 (the "switch")
#   containers      ${P}-c1, ${P}-c2 : named namespaces made by mvlan
set -euo pipefail

P=${DEMO_PREFIX:-mvdemo}
MVLAN_BIN=${MVLAN_BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin/mvlan}
WORK=$(mktemp -d /tmp/mvlan-demo.XXXXXX)
SOCK=$WORK/mvlan.sock
HOST=/run/netns/$P-host
AGENT_PID=

if [[ $(id -u) != 0 ]]; then
  echo "make demo needs root (it creates network namespaces); try: sudo make demo" >&2
  exit 1
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
mvlan() { "$MVLAN_BIN" --socket "$SOCK" "$@"; }

cleanup() {
  set +e
  say "cleaning up"
  mvlan rm -f "$P-c1" "$P-c2" >/dev/null 2>&1
  mvlan network rm pub_net >/dev/null 2>&1
  [[ -n $AGENT_PID ]] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
  ip netns del "$P-host" 2>/dev/null
  ip netns del "$P-wire" 2>/dev/null
  umount "$WORK/bpf" 2>/dev/null
  rm -rf "$WORK"
  echo "sandbox removed"
}
trap cleanup EXIT

say "sandbox: namespaces $P-host (with eth0) and $P-wire (its wire)"
ip netns add "$P-host"
ip netns add "$P-wire"
ip -n "$P-host" link set lo up
ip -n "$P-host" link add eth0 type veth peer name wire0 netns "$P-wire"
ip -n "$P-host" link set eth0 up
ip -n "$P-wire" link set wire0 up

say "starting the agent in $P-host (state in $WORK)"
nsenter --net="$HOST" -- "$MVLAN_BIN" --socket "$SOCK" agent --state-dir "$WORK/state" \
  --metrics-addr 127.0.0.1:9469 --bpffs "$WORK/bpf" --plugin-socket "" >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 100); do mvlan network ls -q >/dev/null 2>&1 && break; sleep 0.05; done
mvlan network ls -q >/dev/null || { cat "$WORK/agent.log"; exit 1; }
echo "agent ready (pid $AGENT_PID)"

say "create the macvlan network of the reference document"
show mvlan network create -d macvlan --subnet=172.16.86.0/24 --gateway=172.16.86.1 -o parent=eth0 pub_net

say "run a container at 172.16.86.10 and a second one with the next free address"
show mvlan run -d --name "$P-c1" --net=pub_net --ip=172.16.86.10
show mvlan run -d --name "$P-c2" --net=pub_net

say "inside $P-c1: address and routes"
show ip netns exec "$P-c1" ip -br addr show eth0
show ip netns exec "$P-c1" ip route

say "ping $P-c1 from $P-c2"
show ip netns exec "$P-c2" ping -c 4 -i 0.2 172.16.86.10

say "a transient container pings too, then is removed (--rm)"
show mvlan run --rm --net=pub_net -- ping -c 2 -i 0.2 172.16.86.10

say "a container that sends from an address not its own gets nothing through"
show ip netns exec "$P-c2" ip addr add 172.16.86.99/24 dev eth0
show ip netns exec "$P-c2" ping -c 2 -i 0.2 -W 1 -I 172.16.86.99 172.16.86.10 || echo "(no answer: the datapath dropped the spoofed frames)"
ip netns exec "$P-c2" ip addr del 172.16.86.99/24 dev eth0

say "the counters those pings moved: per VLAN of the parent, per network"
show mvlan stats

say "what mvlan knows"
show mvlan ps
show mvlan network ls
show mvlan network inspect pub_net

say "metrics (http://127.0.0.1:9469/metrics inside $P-host; mvlan_ samples that are not 0)"
nsenter --net="$HOST" -- bash -c 'exec 3<>/dev/tcp/127.0.0.1/9469; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; cat <&3' |
  grep '^mvlan_' | grep -v ' 0$' || true

say "remove the containers and the network"
show mvlan rm -f "$P-c1" "$P-c2"
show mvlan network rm pub_net
echo
echo "demo finished: all steps passed"
