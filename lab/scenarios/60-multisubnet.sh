# multisubnet: the reference's multi-subnet 802.1q trunk: mcv101 on eth0.101
# with 10.1.20.0/24 and 10.1.10.0/24. Containers of each subnet on host1 and
# host2 reach each other; a transient container pings across the trunk; a
# container cannot reach the other subnet without the (absent) router.
#   host1: 10.1.20.9, 10.1.10.10    host2: 10.1.20.10, 10.1.10.9
step "network create mcv101"
mvlan network create -d macvlan --subnet=10.1.20.0/24 --subnet=10.1.10.0/24 \
	--gateway=10.1.20.1 --gateway=10.1.10.1 -o parent="$TRUNK.101" mcv101
assert_vlan "$TRUNK.101" 101
if [ "$ME" = 1 ]; then my20=10.1.20.9 my10=10.1.10.10 peer20=10.1.20.10 peer10=10.1.10.9
else my20=10.1.20.10 my10=10.1.10.9 peer20=10.1.20.9 peer10=10.1.10.10; fi
mvlan run -d --name ms20 --net mcv101 --ip "$my20"
mvlan run -d --name ms10 --net mcv101 --ip "$my10"
in_ns ms10 ip route | grep -q "default via 10.1.10.1" || fail "ms10's default route is not via 10.1.10.1"
barrier multisubnet-ready
step "10.1.20.0/24 across hosts"
mvlan run --rm --net mcv101 --ip "10.1.20.1$((ME + 4))" -- ping -c 4 -W 2 "$peer20" ||
	fail "mvlan run --rm --net mcv101 -- ping -c 4 $peer20 failed"
ping_ok ms20 "$peer20"
step "10.1.10.0/24 across hosts"
ping_ok ms10 "$peer10"
step "no router between the subnets"
ping_fails ms20 "$peer10"
barrier multisubnet-pinged
step "network rm"
mvlan rm -f ms20 ms10
mvlan network rm mcv101
link_exists "$TRUNK.101" && fail "$TRUNK.101 still exists after network rm"
true
