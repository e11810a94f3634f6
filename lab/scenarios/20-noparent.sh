# noparent: a network without -o parent is host-only: mvlan puts it on a link
# of its own (a dummy), containers on one host reach each other, and nothing
# leaves the host: the trunk's counters do not move while they talk, and the
# same subnet on the other host is not reachable.
#   host N: np-a 192.168.70.N1, np-b 192.168.70.N2 (host1 .11/.12, host2 .21/.22)
A=192.168.70.${ME}1 B=192.168.70.${ME}2 PEER_A=192.168.70.${PEER_N}1

step "network create (no parent)"
mvlan network create -d macvlan --subnet=192.168.70.0/24 local70
parent=$(mvlan network inspect local70 | jget '[0].Parent')
kind=$(mvlan network inspect local70 | jget '[0].ParentKind')
log "parent $parent ($kind)"
link_exists "$parent" || fail "parent link $parent of local70 does not exist"
case $(ifalias "$parent") in mvlan/*) ;; *) fail "parent $parent does not carry mvlan's alias" ;; esac
grep -q DEVTYPE "/sys/class/net/$parent/uevent" && fail "parent $parent is a $(grep DEVTYPE "/sys/class/net/$parent/uevent"), want a dummy"
[ -z "$(vlan_id "$parent")" ] || fail "parent $parent is a VLAN link"
case $(readlink "/sys/class/net/$parent") in */virtual/net/*) ;; *) fail "parent $parent is not a virtual link" ;; esac

step "containers"
mvlan run -d --name np-a --net local70 --ip "$A"
mvlan run -d --name np-b --net local70 --ip "$B"

# Turns: host1 talks while host2 waits (waiting sends nothing), then host2.
barrier noparent-ready
[ "$ME" = 1 ] || await noparent-turn1
sleep 1 # the last segments of the HTTP exchange behind the barrier
tx0=$(counter "$TRUNK" tx_packets) rx0=$(counter "$TRUNK" rx_packets)
step "local pings"
ping_ok np-a "$B" 5
ping_ok np-b "$A" 5
step "transient container"
mvlan run --rm --net local70 --ip "192.168.70.${ME}3" -- ping -c 2 -W 2 "$A" || fail "mvlan run --rm ... ping $A failed"
step "the other host's subnet twin"
ping_fails np-a "$PEER_A"
tx1=$(counter "$TRUNK" tx_packets) rx1=$(counter "$TRUNK" rx_packets)
log "$TRUNK tx_packets $tx0 -> $tx1, rx_packets $rx0 -> $rx1"
[ "$ME" = 1 ] && signal noparent-turn1
[ "$tx1" -eq "$tx0" ] || fail "$((tx1 - tx0)) packets left through $TRUNK while containers of a host-only network talked"
[ "$rx1" -eq "$rx0" ] || fail "$((rx1 - rx0)) packets arrived on $TRUNK during the quiet window"
[ "$ME" = 2 ] && signal noparent-turn2
[ "$ME" = 1 ] && await noparent-turn2

step "network rm"
mvlan rm -f np-a np-b
mvlan network rm local70
link_exists "$parent" && fail "$parent still exists after network rm"
true
