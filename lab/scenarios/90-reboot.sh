# reboot: state on the virtio disk survives a power cycle. host2 creates
# macvlan50 (eth0.50 made by mvlan) and macvlan40 on eth0.40 (made by hand),
# powers off and is booted again: the agent recreates eth0.50 (not eth0.40,
# which it did not create), both networks are there with the same ids, the
# container that died with the old boot is released, and a new one reaches
# host1's container, which kept running, across the trunk.
if [ "$LAB_RESUMED" != 1 ]; then
	step "networks and containers"
	mvlan network create -d macvlan --subnet=192.168.50.0/24 --gateway=192.168.50.1 -o parent="$TRUNK.50" macvlan50
	mvlan run -d --name b50 --net macvlan50 --ip "192.168.50.$HOSTPART"
	if [ "$ME" = 2 ]; then
		ip link add link "$TRUNK" name "$TRUNK.40" type vlan id 40
		ip link set "$TRUNK.40" up
		mvlan network create -d macvlan --subnet=192.168.40.0/24 --gateway=192.168.40.1 -o parent="$TRUNK.40" macvlan40
		mvlan network ls -q >"$LAB_STATE/reboot-ids"
	fi
	barrier reboot-ready
	ping_ok b50 "192.168.50.$PEER_HOSTPART"
	barrier reboot-pinged
	if [ "$ME" = 2 ]; then
		step "power off"
		lab_powercycle
	fi
	step "wait for host2's reboot"
	await reboot-back "${LAB_REBOOT_TIMEOUT:-240}"
	step "reach host2's new container"
	ping_ok b50 "192.168.50.$PEER_HOSTPART"
	barrier reboot-done
	exit 0
fi

# host2, after the boot.
step "networks after the reboot"
mvlan network ls
ids=$(mvlan network ls -q)
[ "$ids" = "$(cat "$LAB_STATE/reboot-ids")" ] || fail "networks before the reboot [$(cat "$LAB_STATE/reboot-ids" | tr '\n' ' ')] are now [$(echo "$ids" | tr '\n' ' ')]"
mvlan network inspect macvlan50 >/dev/null || fail "macvlan50 is gone"
mvlan network inspect macvlan40 >/dev/null || fail "macvlan40 is gone"
step "eth0.50 recreated, eth0.40 not"
assert_vlan "$TRUNK.50" 50
case $(ifalias "$TRUNK.50") in mvlan/*) ;; *) fail "$TRUNK.50 is not marked as mvlan's" ;; esac
link_exists "$TRUNK.40" && fail "the agent created $TRUNK.40, which the operator had made"
status40=$(mvlan network inspect macvlan40 | jget '[0].Status')
[ "$status40" != ok ] || fail "macvlan40's parent is gone but its status is ok"
log "macvlan40: $status40"
step "the old container is released"
[ -z "$(mvlan ps -q)" ] || fail "containers of the previous boot are still listed: $(mvlan ps | tr '\n' ' ')"
step "a new container"
mvlan run -d --name b50 --net macvlan50 --ip "192.168.50.$HOSTPART"
signal reboot-back || fail "cannot reach host1 after the reboot"
ping_ok b50 "192.168.50.$PEER_HOSTPART"
step "doctor: only the expected drift"
d=$(drift | grep -v "network macvlan40: parent $TRUNK.40 is missing" || true)
[ -z "$d" ] || fail "drift after the reboot: $d"
barrier reboot-done
