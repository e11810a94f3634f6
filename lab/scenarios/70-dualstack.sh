# dualstack: the reference's macvlan216 on eth0.218: two IPv4 subnets and an
# IPv6 one (gateway 2001:db8:abc8::10). ping and ping6 across hosts.
#   host N: ds216 192.168.216.1N + 2001:db8:abc8::2N, ds218 192.168.218.1N + ::3N
step "network create macvlan216"
mvlan network create -d macvlan \
	--subnet=192.168.216.0/24 --subnet=192.168.218.0/24 \
	--gateway=192.168.216.1 --gateway=192.168.218.1 \
	--ipv6 --subnet=2001:db8:abc8::/64 --gateway=2001:db8:abc8::10 \
	-o parent="$TRUNK.218" -o macvlan_mode=bridge macvlan216
assert_vlan "$TRUNK.218" 218
mvlan run -d --name ds216 --net macvlan216 --ip "192.168.216.$HOSTPART" --ip6 "2001:db8:abc8::2$ME"
mvlan run -d --name ds218 --net macvlan216 --ip "192.168.218.$HOSTPART" --ip6 "2001:db8:abc8::3$ME"
step "addresses and routes"
in_ns ds216 ip addr show eth0 | grep -q "inet 192.168.216.$HOSTPART/24" || fail "ds216 lacks 192.168.216.$HOSTPART/24"
in_ns ds216 ip addr show eth0 | grep -q "inet6 2001:db8:abc8::2$ME/64" || fail "ds216 lacks 2001:db8:abc8::2$ME/64"
in_ns ds216 ip route | grep -q "default via 192.168.216.1" || fail "ds216: no default via 192.168.216.1"
in_ns ds218 ip route | grep -q "default via 192.168.218.1" || fail "ds218: no default via 192.168.218.1"
in_ns ds216 ip -6 route | grep -q "default via 2001:db8:abc8::10" || fail "ds216: no IPv6 default via 2001:db8:abc8::10: $(in_ns ds216 ip -6 route | tr '\n' ' ')"
barrier dualstack-ready
step "ping across hosts"
ping_ok ds216 "192.168.216.$PEER_HOSTPART"
ping_ok ds218 "192.168.218.$PEER_HOSTPART"
step "ping6 across hosts"
ping_ok ds216 "2001:db8:abc8::2$PEER_N"
ping_ok ds218 "2001:db8:abc8::2$PEER_N"
mvlan run --rm --net macvlan216 --ip "192.168.216.5$ME" --ip6 "2001:db8:abc8::5$ME" -- \
	ping -6 -c 2 -W 2 "2001:db8:abc8::3$PEER_N" || fail "a transient container cannot ping6 2001:db8:abc8::3$PEER_N"
barrier dualstack-pinged
step "network rm"
mvlan rm -f ds216 ds218
mvlan network rm macvlan216
link_exists "$TRUNK.218" && fail "$TRUNK.218 still exists after network rm"
true
