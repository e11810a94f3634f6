# shim: the host reaches its own containers (issue 17). The VLAN 50 network
# on both hosts; host1's has -o host_shim=192.168.50.2. host1 pings its own
# container through the shim (a host route per container address); host2's
# container pings the shim across the trunk; with the subnet route an
# operator adds on a host that has no address of its own on VLAN 50,
# host1 also reaches host2's container. network rm leaves no shim, no route.
step "network create macvlan50 (host1: host_shim=192.168.50.2)"
shim=
[ "$ME" = 1 ] && shim="-o host_shim=192.168.50.2"
# shellcheck disable=SC2086
mvlan network create -d macvlan --subnet=192.168.50.0/24 --gateway=192.168.50.1 \
	-o parent="$TRUNK.50" $shim macvlan50
# Named per host: a MAC derived from the names alone would be the same on
# both hosts of one VLAN.
mvlan run -d --name "s50-$ME" --net macvlan50 --ip "192.168.50.$HOSTPART"
if [ "$ME" = 1 ]; then
	case $(ifalias mvh-macvlan50) in mvlan/*/shim/*) ;; *) fail "mvh-macvlan50 is not marked as mvlan's shim" ;; esac
	ip route | grep -q "^192.168.50.$HOSTPART dev mvh-macvlan50" || fail "no route to 192.168.50.$HOSTPART through the shim: $(ip route | tr '\n' ' ')"
fi

# The host has no address of its own on VLAN 50: the operator's subnet
# route through the shim is its way to the rest of the segment (and back).
on 1 ip route add 192.168.50.0/24 dev mvh-macvlan50 src 192.168.50.2

barrier shim-ready
step "host1 -> its container and host2's, host2's container -> host1's shim"
host_ping() {
	_t0=$(now)
	until ping -c 1 -W 1 "$1" >/dev/null 2>&1; do
		[ "$(since "$_t0" | cut -d. -f1)" -lt "$LAB_PING_TIMEOUT" ] || fail "the host cannot reach $1: routes: $(ip route | tr '\n' ' ') neigh: $(ip neigh | tr '\n' ' ') stats: $(mvlan stats | tr -s ' \n' ' ')"
		sleep 0.2
	done
}
on 1 host_ping "192.168.50.$HOSTPART"
on 1 host_ping "192.168.50.$PEER_HOSTPART"
on 2 ping_ok s50-2 192.168.50.2

barrier shim-pinged
step "network rm removes the shim and its routes"
mvlan rm -f "s50-$ME"
mvlan network rm macvlan50
link_exists mvh-macvlan50 && fail "mvh-macvlan50 still exists after network rm"
ip route | grep -q "192.168.50\." && fail "routes to 192.168.50.0/24 left: $(ip route | tr '\n' ' ')"
true
