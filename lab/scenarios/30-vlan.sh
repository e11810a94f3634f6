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
step "network rm removes eth0.50 and eth0.60"
mvlan rm -f v50 v60
mvlan network rm macvlan50 macvlan60
link_exists "$TRUNK.50" && fail "$TRUNK.50 still exists after network rm"
link_exists "$TRUNK.60" && fail "$TRUNK.60 still exists after network rm"
true
