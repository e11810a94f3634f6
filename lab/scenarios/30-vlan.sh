# vlan: the reference's VLAN 50 and VLAN 60 networks on both hosts, parents
# eth0.50 / eth0.60 created by mvlan. Containers of the same VLAN on host1 and
# host2 reach each other across the trunk; a VLAN 50 container cannot reach a
# VLAN 60 one, not even with an on-link route to its subnet (the ARP request
# goes out tagged 50 and no VLAN 60 port hears it).
step "network create macvlan50, macvlan60"
mvlan network create -d macvlan --subnet=192.168.50.0/24 --gateway=192.168.50.1 \
	-o parent="$TRUNK.50" macvlan50
mvlan network create -d macvlan --subnet=192.168.60.0/24 --gateway=192.168.60.1 \
	-o parent="$TRUNK.60" -o macvlan_mode=bridge macvlan60
assert_vlan "$TRUNK.50" 50
assert_vlan "$TRUNK.60" 60
case $(ifalias "$TRUNK.50") in mvlan/*) ;; *) fail "$TRUNK.50 is not marked as created by mvlan" ;; esac

step "containers"
mvlan run -d --name v50 --net macvlan50 --ip "192.168.50.$HOSTPART"
mvlan run -d --name v60 --net macvlan60 --ip "192.168.60.$HOSTPART"
in_ns v50 ip route | grep -q "default via 192.168.50.1" || fail "v50 has no default route via 192.168.50.1"

barrier vlan-ready
step "same VLAN across hosts"
ping_ok v50 "192.168.50.$PEER_HOSTPART"
ping_ok v60 "192.168.60.$PEER_HOSTPART"
mvlan run --rm --net macvlan50 --ip "192.168.50.2$ME" -- ping -c 2 -W 2 "192.168.50.$PEER_HOSTPART" ||
	fail "a transient container (mvlan run --rm) cannot reach 192.168.50.$PEER_HOSTPART"

step "VLAN 50 cannot reach VLAN 60"
in_ns v50 ip route add 192.168.60.0/24 dev eth0
in_ns v60 ip route add 192.168.50.0/24 dev eth0
ping_fails v50 "192.168.60.$PEER_HOSTPART"
ping_fails v60 "192.168.50.$PEER_HOSTPART"
ping_fails v50 "192.168.60.$HOSTPART"

barrier vlan-pinged
step "network rm removes $TRUNK.60"
mvlan rm -f v50 v60
mvlan network rm macvlan60
link_exists "$TRUNK.60" && fail "$TRUNK.60 still exists after network rm"

step "$TRUNK missing when the agent starts, back later: $TRUNK.50 made again"
# As a NIC named late at boot: the agent starts without it (no index to
# watch), and makes its sub-interface once its link event comes. No other
# network is on $TRUNK, whose links' events would have the parents
# checked anyway.
agent_stop
ip link set "$TRUNK" down
ip link set "$TRUNK" name trunkaway
ip link del "$TRUNK.50"
agent_start || fail "the agent does not start without $TRUNK"
st50=$(mvlan network ls --format '{{.Name}} {{.Status}}' | grep '^macvlan50 ')
case $st50 in *" ok") fail "macvlan50 is ok without $TRUNK: $st50" ;; esac
ip link set trunkaway name "$TRUNK"
ip link set "$TRUNK" up
_t=0
until [ "$(vlan_id "$TRUNK.50")" = 50 ] && mvlan network ls --format '{{.Name}} {{.Status}}' | grep -q '^macvlan50 ok$'; do
	_t=$((_t + 1))
	[ $_t -lt 50 ] || fail "$TRUNK came back, but not $TRUNK.50 or macvlan50: $(mvlan network ls --format '{{.Name}} {{.Status}}' | tr '\n' ' ')"
	sleep 0.2
done
assert_vlan "$TRUNK.50" 50
mvlan run --rm --net macvlan50 --ip "192.168.50.3$ME" -- true || fail "cannot attach to macvlan50 after $TRUNK came back"

step "network rm of $TRUNK.50 refused while $TRUNK.50.70 (another network's) sits on it"
mvlan network create -d macvlan --subnet=192.168.70.0/24 -o parent="$TRUNK.50.70" macvlan5070
[ "$(vlan_lower "$TRUNK.50.70")" = "$TRUNK.50" ] || fail "$TRUNK.50.70 is not on $TRUNK.50: $(vlan_lower "$TRUNK.50.70")"
out=$(mvlan network rm macvlan50 2>&1) && fail "network rm macvlan50 deleted $TRUNK.50 under macvlan5070's $TRUNK.50.70"
case $out in *macvlan5070*"remove network macvlan5070 first"*) ;; *) fail "network rm macvlan50: $out; want it to name macvlan5070" ;; esac
link_exists "$TRUNK.50.70" || fail "$TRUNK.50.70 gone after a refused network rm"
mvlan network rm macvlan5070

step "network rm removes $TRUNK.50"
mvlan network rm macvlan50
link_exists "$TRUNK.50" && fail "$TRUNK.50 still exists after network rm"

step "VLAN 50 made by hand as vlan50: -o parent=$TRUNK.50 is told to use it"
ip link add link "$TRUNK" name vlan50 type vlan id 50
out=$(mvlan network create -d macvlan --subnet=192.168.50.0/24 -o parent="$TRUNK.50" dup50 2>&1) &&
	fail "network create on $TRUNK.50 with VLAN 50 there as vlan50 succeeded"
case $out in *"is link vlan50 already"*"use -o parent=vlan50"*) ;; *) fail "network create on $TRUNK.50 with vlan50 there: $out" ;; esac
ip link del vlan50

step "$TRUNK down: network create -o parent=$TRUNK.50 makes it, up with $TRUNK"
ip link set "$TRUNK" down
mvlan network create -d macvlan --subnet=192.168.50.0/24 -o parent="$TRUNK.50" down50 ||
	{ ip link set "$TRUNK" up; fail "network create on $TRUNK.50 with $TRUNK down failed"; }
ip link set "$TRUNK" up
_t=0
until oper_up "$TRUNK.50"; do
	_t=$((_t + 1))
	[ $_t -lt 50 ] || fail "$TRUNK.50 not up 10 s after $TRUNK came up"
	sleep 0.2
done
mvlan network ls --format '{{.Name}} {{.Status}}' | grep -q '^down50 ok$' ||
	fail "down50 after $TRUNK came up: $(mvlan network ls --format '{{.Name}} {{.Status}}' | tr '\n' ' ')"
mvlan network rm down50
true
