# restart: the agent is killed (SIGKILL) and started again. Containers keep
# working while it is down; eth0.50 (mvlan's) is deleted while it is down and
# the agent recreates it, and re-attaches the container that lost its link;
# eth0.40 (the operator's) is left alone; mvlan doctor reports no drift.
step "networks and containers"
ip link add link "$TRUNK" name "$TRUNK.40" type vlan id 40
echo "$TRUNK.40" >>"$LAB_RUN/manual-links"
ip link set "$TRUNK.40" up
mvlan network create -d macvlan --subnet=192.168.50.0/24 --gateway=192.168.50.1 -o parent="$TRUNK.50" macvlan50
mvlan network create -d macvlan --subnet=192.168.40.0/24 --gateway=192.168.40.1 -o parent="$TRUNK.40" macvlan40
mvlan run -d --name r50 --net macvlan50 --ip "192.168.50.$HOSTPART"
mvlan run -d --name r40 --net macvlan40 --ip "192.168.40.$HOSTPART"
barrier restart-ready
ping_ok r50 "192.168.50.$PEER_HOSTPART"
ping_ok r40 "192.168.40.$PEER_HOSTPART"
idx40=$(ifindex "$TRUNK.40") idx50=$(ifindex "$TRUNK.50")
links0=$(ls /sys/class/net | tr '\n' ' ')

step "kill -9 the agent"
agent_kill9
agent_alive && fail "the agent survived SIGKILL"
barrier restart-killed
step "containers work without the agent"
ping_ok r50 "192.168.50.$PEER_HOSTPART"
ping_ok r40 "192.168.40.$PEER_HOSTPART"
barrier restart-pinged

step "delete $TRUNK.50 while the agent is down"
ip link del "$TRUNK.50"
link_exists "$TRUNK.50" && fail "cannot delete $TRUNK.50"
in_ns r50 ip link show eth0 >/dev/null 2>&1 && fail "r50 kept its link although $TRUNK.50 is gone"

step "start the agent again"
agent_start || fail "the agent does not start again"
assert_vlan "$TRUNK.50" 50
case $(ifalias "$TRUNK.50") in mvlan/*) ;; *) fail "the recreated $TRUNK.50 is not marked as mvlan's" ;; esac
[ "$(ifindex "$TRUNK.50")" != "$idx50" ] || fail "$TRUNK.50 was not recreated"
[ "$(ifindex "$TRUNK.40")" = "$idx40" ] || fail "the agent replaced $TRUNK.40, which is not its own"
[ -z "$(ifalias "$TRUNK.40")" ] || fail "the agent marked $TRUNK.40 as its own"
links1=$(ls /sys/class/net | tr '\n' ' ')
[ "$links0" = "$links1" ] || fail "host links before the restart [$links0] differ from after [$links1]"
step "r50 re-attached"
_t=0
until in_ns r50 ip addr show eth0 2>/dev/null | grep -q "192.168.50.$HOSTPART/"; do
	_t=$((_t + 1))
	[ $_t -lt 50 ] || fail "r50 did not get its link and address back"
	sleep 0.2
done
barrier restart-back
step "containers work after the restart"
ping_ok r50 "192.168.50.$PEER_HOSTPART"
ping_ok r40 "192.168.40.$PEER_HOSTPART"
step "doctor: no drift"
d=$(drift)
[ -z "$d" ] || fail "drift after the restart: $d"
barrier restart-done
