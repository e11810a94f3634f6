# cluster: etcd runs in host1's VM (on its untagged management address),
# both agents join it (MVLAN_CLUSTER, i.e. --cluster); one network of scope
# cluster on VLAN 50 spans both hosts: defined on host1, joined on host2
# with its own parent. Six containers per host take dynamic addresses that
# never collide across the hosts and ping across the trunk. network rm
# leaves the network on each host; the last host's rm removes its
# definition from etcd. It runs last: the agents keep --cluster (with etcd
# stopped) until the VMs power off, which spares two slow agent restarts
# under emulation; a scenario after it would run with a cluster agent.
command -v etcd >/dev/null 2>&1 || skip "no etcd in this VM (the initramfs has it when the build host does: make deps)"
if [ "$ME" = 1 ]; then ETCD_IP=$LAB_SELF_IP; else ETCD_IP=$LAB_PEER_IP; fi
if [ "$ME" = 1 ]; then
	step "etcd on $ETCD_IP:2379"
	rm -rf "$LAB_RUN/etcd"
	setsid etcd --data-dir "$LAB_RUN/etcd" --name lab \
		--listen-client-urls "http://$ETCD_IP:2379" --advertise-client-urls "http://$ETCD_IP:2379" \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster lab=http://127.0.0.1:2380 --log-level error >"$LAB_RUN/etcd.log" 2>&1 </dev/null &
	echo $! >"$LAB_RUN/etcd.pid"
fi
step "etcd answers at $ETCD_IP:2379"
t1=$(now)
until timeout 5 busybox wget -q -O /dev/null "http://$ETCD_IP:2379/version" 2>/dev/null; do
	[ "$(since "$t1" | cut -d. -f1)" -lt 120 ] || fail "etcd at $ETCD_IP:2379 does not answer after 120s: $(tail -n 5 "$LAB_RUN/etcd.log" 2>/dev/null)"
	sleep 0.5
done

step "agent restarted with --cluster"
agent_stop
MVLAN_CLUSTER="etcd://$ETCD_IP:2379" agent_start || fail "the agent does not start with --cluster etcd://$ETCD_IP:2379"
on 1 mvlan network create --scope cluster --subnet 192.168.150.0/24 -o parent="$TRUNK.50" cnet
barrier cluster-defined
on 2 mvlan network create --scope cluster -o parent="$TRUNK.50" cnet
mvlan network ls --format '{{.Name}} {{.Scope}} {{.Status}}' | grep -q '^cnet cluster ok$' ||
	fail "network ls: $(mvlan network ls --format '{{.Name}} {{.Scope}} {{.Status}}' | tr '\n' ' '); want cnet cluster ok"
assert_vlan "$TRUNK.50" 50

step "six containers with dynamic addresses"
mkdir -p "$LAB_RUN/www"
: >"$LAB_RUN/www/cluster-addrs"
for i in 1 2 3 4 5 6; do
	mvlan run -d --name "k$i" --net cnet
	in_ns "k$i" ip -4 -o addr show eth0 | awk '{ sub(/\/.*/, "", $4); print $4 }' >>"$LAB_RUN/www/cluster-addrs"
done
[ "$(sort -u "$LAB_RUN/www/cluster-addrs" | wc -l)" -eq 6 ] || fail "not six distinct addresses here: $(tr '\n' ' ' <"$LAB_RUN/www/cluster-addrs")"
barrier cluster-attached
peer=$(timeout 10 busybox wget -q -O - "http://$LAB_PEER_IP:$LAB_MGMT_PORT/cluster-addrs") || fail "cannot read $LAB_PEER's addresses"
[ "$(echo "$peer" | grep -c .)" -eq 6 ] || fail "$LAB_PEER lists $(echo "$peer" | tr '\n' ' ')"
for a in $peer; do
	grep -qx "$a" "$LAB_RUN/www/cluster-addrs" && fail "$a was given to a container on both hosts"
done
log "ok: here $(tr '\n' ' ' <"$LAB_RUN/www/cluster-addrs"); $LAB_PEER $(echo "$peer" | tr '\n' ' ')"
step "ping across the trunk"
ping_ok k1 "$(echo "$peer" | head -n 1)"
ping_ok k6 "$(echo "$peer" | tail -n 1)"
barrier cluster-pinged

step "network rm leaves; the last host's removes the definition"
for i in 1 2 3 4 5 6; do mvlan rm -f "k$i" >/dev/null; done
on 2 mvlan network rm cnet
barrier cluster-left
on 1 mvlan network rm cnet
barrier cluster-removed
if mvlan network ls --format '{{.Name}}' | grep -qx cnet; then fail "cnet is still listed after both hosts removed it"; fi

barrier cluster-checked
if [ "$ME" = 1 ]; then
	kill "$(cat "$LAB_RUN/etcd.pid")" 2>/dev/null || true
	rm -f "$LAB_RUN/etcd.pid"
fi
true
