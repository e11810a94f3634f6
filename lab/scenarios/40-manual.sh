# manual: parents the operator made (ip link add link eth0 name eth0.40 type
# vlan id 40, and one named foo, VLAN 41) are used as they are and survive
# network rm; eth0.50, which mvlan created, is removed by network rm.
step "ip link add eth0.40 and foo"
ip link add link "$TRUNK" name "$TRUNK.40" type vlan id 40
echo "$TRUNK.40" >>"$LAB_RUN/manual-links"
ip link set "$TRUNK.40" up
ip link add link "$TRUNK" name foo type vlan id 41
echo foo >>"$LAB_RUN/manual-links"
ip link set foo up
idx40=$(ifindex "$TRUNK.40") idxfoo=$(ifindex foo)

step "network create on eth0.40, foo, eth0.50"
mvlan network create -d macvlan --subnet=192.168.40.0/24 --gateway=192.168.40.1 -o parent="$TRUNK.40" macvlan40
mvlan network create -d macvlan --subnet=192.168.41.0/24 --gateway=192.168.41.1 -o parent=foo macvlan41
mvlan network create -d macvlan --subnet=192.168.50.0/24 --gateway=192.168.50.1 -o parent="$TRUNK.50" macvlan50
[ -z "$(ifalias "$TRUNK.40")" ] || fail "mvlan marked $TRUNK.40, which it did not create: $(ifalias "$TRUNK.40")"
[ -z "$(ifalias foo)" ] || fail "mvlan marked foo, which it did not create"
assert_vlan "$TRUNK.50" 50

step "containers"
mvlan run -d --name m40 --net macvlan40 --ip "192.168.40.$HOSTPART"
mvlan run -d --name m41 --net macvlan41 --ip "192.168.41.$HOSTPART"
mvlan run -d --name m50 --net macvlan50 --ip "192.168.50.$HOSTPART"
barrier manual-ready
ping_ok m40 "192.168.40.$PEER_HOSTPART"
ping_ok m41 "192.168.41.$PEER_HOSTPART"
ping_ok m50 "192.168.50.$PEER_HOSTPART"
barrier manual-pinged

step "network rm"
mvlan rm -f m40 m41 m50
mvlan network rm macvlan40 macvlan41 macvlan50
link_exists "$TRUNK.40" || fail "$TRUNK.40 (made by hand) was deleted by network rm"
link_exists foo || fail "foo (made by hand) was deleted by network rm"
[ "$(ifindex "$TRUNK.40")" = "$idx40" ] || fail "$TRUNK.40 was replaced"
[ "$(ifindex foo)" = "$idxfoo" ] || fail "foo was replaced"
assert_vlan "$TRUNK.40" 40
assert_vlan foo 41
link_exists "$TRUNK.50" && fail "$TRUNK.50 (made by mvlan) still exists after network rm"
ip link del "$TRUNK.40"
ip link del foo
