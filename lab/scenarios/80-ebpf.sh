# ebpf: the datapath on a 6.1 kernel (no TCX): every program attaches through
# clsact (mvlan_attach_info mode="tc"); the per-VLAN counters on each host's
# trunk match the pings sent between the hosts, VLAN by VLAN; spoofed
# traffic is dropped and counted; a container's DHCP server (busybox
# udhcpd on host1) gives no lease across the trunk (the DHCP server guard,
# counted under dhcp_guard); a container of a network on the trunk itself
# that makes a VLAN 60 link of its own cannot reach VLAN 60 on host2
# (vlan_tag), while the sub-interfaces' tagged frames cross that trunk as
# before; once that network is removed, the trunk's untagged frames count
# for no network (not for the next one given its number), and the trunk's
# VLAN 0 counters keep what that network's frames added. An agent whose
# /metrics cannot be fetched fails the scenario, as does any metric read
# (lib.sh's metric).
N_PINGS=20
SLACK=6 # ARP, and IPv6 router solicitations of the host's eth0.50/eth0.60
step "network create macvlan50, macvlan60"
mvlan network create -d macvlan --subnet=192.168.50.0/24 --gateway=192.168.50.1 -o parent="$TRUNK.50" macvlan50
mvlan network create -d macvlan --subnet=192.168.60.0/24 --gateway=192.168.60.1 -o parent="$TRUNK.60" macvlan60
mvlan run -d --name e50 --net macvlan50 --ip "192.168.50.$HOSTPART"
mvlan run -d --name e60 --net macvlan60 --ip "192.168.60.$HOSTPART"

step "datapath metrics"
m=$(metrics) || fail "cannot fetch http://${MVLAN_METRICS_ADDR:-127.0.0.1:9469}/metrics: the agent serves no metrics"
echo "$m" | grep '^mvlan_attach_info' || fail "the datapath attached no program (no mvlan_attach_info)"
bad=$(echo "$m" | grep '^mvlan_attach_info' | grep -v 'mode="tc"' || true)
[ -z "$bad" ] || fail "programs not attached through clsact on $(uname -r): $bad"
[ "$(doctor_check kernel clsact)" = ok ] || fail "doctor: clsact is not ok"

# vlan_count DIR VID: packets on the trunk for VLAN VID (counted on the trunk
# link; on the VLAN link if the trunk has no series).
vlan_count() {
	if metrics | grep -q "^mvlan_vlan_$1_packets_total{.*parent=\"$TRUNK\""; then
		metric "mvlan_vlan_$1_packets_total" "parent=\"$TRUNK\"" "vlan=\"$2\""
	else
		metric "mvlan_vlan_$1_packets_total" "parent=\"$TRUNK.$2\"" "vlan=\"$2\""
	fi
}
in_range() { [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }

barrier ebpf-ready
step "warm up (ARP)"
ping_ok e50 "192.168.50.$PEER_HOSTPART" 1
ping_ok e60 "192.168.60.$PEER_HOSTPART" 1
barrier ebpf-warm
tx50=$(vlan_count tx 50)
rx50=$(vlan_count rx 50)
tx60=$(vlan_count tx 60)
rx60=$(vlan_count rx 60)
barrier ebpf-counting
# host1 pings over VLAN 50, then host2 over VLAN 60.
step "counted pings"
if [ "$ME" = 1 ]; then
	in_ns e50 ping -c $N_PINGS -i 0.1 -W 2 "192.168.50.$PEER_HOSTPART" >/dev/null || fail "VLAN 50 pings lost"
	signal ebpf-turn1
	await ebpf-turn2
else
	await ebpf-turn1
	in_ns e60 ping -c $N_PINGS -i 0.1 -W 2 "192.168.60.$PEER_HOSTPART" >/dev/null || fail "VLAN 60 pings lost"
	signal ebpf-turn2
fi
sleep 1
n=$(vlan_count tx 50)
d_tx50=$((n - tx50))
n=$(vlan_count rx 50)
d_rx50=$((n - rx50))
n=$(vlan_count tx 60)
d_tx60=$((n - tx60))
n=$(vlan_count rx 60)
d_rx60=$((n - rx60))
log "trunk counters: VLAN 50 tx +$d_tx50 rx +$d_rx50, VLAN 60 tx +$d_tx60 rx +$d_rx60 ($N_PINGS pings each way per VLAN)"
hi=$((N_PINGS + SLACK))
for c in "VLAN 50 tx:$d_tx50" "VLAN 50 rx:$d_rx50" "VLAN 60 tx:$d_tx60" "VLAN 60 rx:$d_rx60"; do
	in_range "${c##*:}" $N_PINGS $hi || fail "${c%%:*} counted ${c##*:} frames, want $N_PINGS..$hi"
done

step "spoofed source address"
# 3 echo requests from an address e50 was not given, to the peer whose MAC
# it has (the pings above): 3 frames, 3 ip_spoof drops. busybox's ping on
# both platforms: it sends each request once, where iputils' (Vagrant's
# ping) sends one its send refused (ENOBUFS) again, as often as its timing
# allows.
drops0=$(metric mvlan_policy_drops_total 'network="macvlan50"' 'reason="ip_spoof"')
in_ns e50 ip addr add "192.168.50.9$ME/24" dev eth0
if in_ns e50 busybox ping -c 3 -i 0.2 -W 2 -I "192.168.50.9$ME" "192.168.50.$PEER_HOSTPART" >/dev/null 2>&1; then
	fail "pings from a spoofed source (192.168.50.9$ME) got through"
fi
drops1=$(metric mvlan_policy_drops_total 'network="macvlan50"' 'reason="ip_spoof"')
log "ip_spoof drops of macvlan50: $drops0 -> $drops1"
[ "$drops1" -eq $((drops0 + 3)) ] || fail "3 spoofed echo requests moved mvlan_policy_drops_total{network=\"macvlan50\",reason=\"ip_spoof\"} $drops0 -> $drops1; want +3"

step "DHCP server guard across the trunk"
barrier ebpf-dhcp
if [ "$ME" = 1 ]; then
	guard0=$(metric mvlan_policy_drops_total 'network="macvlan60"' 'reason="dhcp_guard"')
	printf 'interface eth0\nstart 192.168.60.100\nend 192.168.60.110\nlease_file /tmp/udhcpd.leases\n' >/tmp/udhcpd.conf
	: >/tmp/udhcpd.leases
	in_ns e60 busybox udhcpd -f /tmp/udhcpd.conf >/tmp/udhcpd.log 2>&1 &
	dhcpd=$!
	sleep 1
	signal ebpf-dhcpd-up
	await ebpf-dhcpc-done
	kill $dhcpd 2>/dev/null || true
	guard1=$(metric mvlan_policy_drops_total 'network="macvlan60"' 'reason="dhcp_guard"')
	log "dhcp_guard drops of macvlan60: $guard0 -> $guard1"
	# One OFFER for each DISCOVER udhcpd read: udhcpc sends 3 (-t 3), and
	# udhcpd (which first ARP-checks the address it offers, 2 s) answers
	# those it has read when it is killed: 1..3, each dropped once.
	in_range $((guard1 - guard0)) 1 3 || fail "udhcpd's offers (one per DISCOVER, at most 3) moved dhcp_guard drops $guard0 -> $guard1; want +1..3: $(cat /tmp/udhcpd.log)"
else
	await ebpf-dhcpd-up
	if in_ns e60 busybox udhcpc -i eth0 -n -q -t 3 -T 1 -s /bin/true >/dev/null 2>&1; then
		signal ebpf-dhcpc-done
		fail "udhcpc got a lease from a container's DHCP server on host1"
	fi
	signal ebpf-dhcpc-done
fi
step "VLAN hop from the trunk's own network"
# host1's container on the trunk itself (untagged) tags its frames with
# VLAN 60, with its own MAC and address (no spoofing): they would leave the
# trunk into host2's VLAN 60. Its egress drops them (vlan_tag), and host2's
# e60 never hears its ARP: the VLAN link's only frames are ARP requests for
# host2's e60, mcast_solicit (3) of them a second apart (IPv6 is off on it,
# as the namespace's default), each dropped once.
barrier ebpf-hop
if [ "$ME" = 1 ]; then
	mvlan network create -d macvlan --subnet=192.168.70.0/24 -o parent="$TRUNK" native
	mvlan run -d --name hop --net native --ip "192.168.70.$HOSTPART"
	hop0=$(metric mvlan_policy_drops_total 'network="native"' 'reason="vlan_tag"')
	in_ns hop sh -c '[ ! -d /proc/sys/net/ipv6 ] || echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6'
	in_ns hop ip link add link eth0 name eth0.60 type vlan id 60 || fail "cannot make a VLAN link in the container"
	solicit=$(in_ns hop cat /proc/sys/net/ipv4/neigh/eth0.60/mcast_solicit)
	in_ns hop ip addr add "192.168.70.$HOSTPART/32" dev eth0.60
	in_ns hop ip link set eth0.60 up
	in_ns hop ip route add "192.168.60.$PEER_HOSTPART/32" dev eth0.60
	ping_fails hop "192.168.60.$PEER_HOSTPART"
	sleep 1 # ping_fails took 2.6 s at least; the last ARP request went at 2 s, the entry fails at 3 s
	signal ebpf-hop-sent
	hop1=$(metric mvlan_policy_drops_total 'network="native"' 'reason="vlan_tag"')
	log "vlan_tag drops of native: $hop0 -> $hop1 ($solicit ARP requests)"
	[ "$hop1" -eq $((hop0 + solicit)) ] || fail "the VLAN 60 link's $solicit ARP requests moved vlan_tag drops $hop0 -> $hop1; want +$solicit"
else
	await ebpf-hop-sent
	n=$(in_ns e60 ip neigh show "192.168.70.$PEER_HOSTPART" 2>&1)
	case $n in *lladdr*) fail "e60 heard host1's VLAN-hop ARP: $n" ;; esac
	log "ok: e60 has no neighbour entry for 192.168.70.$PEER_HOSTPART"
fi
barrier ebpf-hopped
# The sub-interfaces' frames still cross the trunk, tagged, with the
# trunk's own network's checks on its egress.
ping_ok e50 "192.168.50.$PEER_HOSTPART"
ping_ok e60 "192.168.60.$PEER_HOSTPART"

step "the trunk's own network removed"
# host1 removes native (on the trunk itself) while macvlan50/60 stay on its
# sub-interfaces; the network made next takes native's number in the BPF
# maps (the lowest free: 3). The trunk's untagged frames (host2's 20 ARP
# broadcasts for an unused management address, the coordination's own
# HTTP) are counted on the trunk under VLAN 0 and for no network: not
# received by the new one in native's place (whose own IPv6 start-up
# multicast on $TRUNK.71 is its tx flood, rightly).
barrier ebpf-native
if [ "$ME" = 1 ]; then
	# native's untagged frames, counted for it while it lived, stay in the
	# trunk's VLAN 0 series: it must not go down (a reset to Prometheus).
	kept_rx=$(metric mvlan_vlan_rx_packets_total "parent=\"$TRUNK\"" 'vlan="0"')
	kept_tx=$(metric mvlan_vlan_tx_packets_total "parent=\"$TRUNK\"" 'vlan="0"')
	mvlan rm -f hop
	mvlan network rm native
	now_rx=$(metric mvlan_vlan_rx_packets_total "parent=\"$TRUNK\"" 'vlan="0"')
	now_tx=$(metric mvlan_vlan_tx_packets_total "parent=\"$TRUNK\"" 'vlan="0"')
	log "native removed: $TRUNK VLAN 0 rx $kept_rx -> $now_rx, tx $kept_tx -> $now_tx"
	[ "$now_rx" -ge "$kept_rx" ] && [ "$now_tx" -ge "$kept_tx" ] ||
		fail "$TRUNK's VLAN 0 counters went down when native went (rx $kept_rx -> $now_rx, tx $kept_tx -> $now_tx)"
	mvlan network create -d macvlan --subnet=192.168.71.0/24 -o parent="$TRUNK.71" after
	metrics | grep -q '^mvlan_network_rx_packets_total{network="after"}' || fail "no counters of the new network after"
	untagged0=$(metric mvlan_vlan_rx_packets_total "parent=\"$TRUNK\"" 'vlan="0"')
	flood0=$(metric mvlan_flood_packets_total 'network="after"' 'direction="rx"')
	rx0=$(metric mvlan_network_rx_packets_total 'network="after"')
	signal ebpf-native-gone
	await ebpf-arped
	untagged1=$(metric mvlan_vlan_rx_packets_total "parent=\"$TRUNK\"" 'vlan="0"')
	flood1=$(metric mvlan_flood_packets_total 'network="after"' 'direction="rx"')
	rx1=$(metric mvlan_network_rx_packets_total 'network="after"')
	log "after native's removal: untagged rx on $TRUNK $untagged0 -> $untagged1, network after: rx flood $flood0 -> $flood1, rx $rx0 -> $rx1"
	[ "$flood1" -eq "$flood0" ] && [ "$rx1" -eq "$rx0" ] ||
		fail "the trunk's untagged frames count for the network in native's place (rx flood $flood0 -> $flood1, rx $rx0 -> $rx1)"
	[ $((untagged1 - untagged0)) -ge 20 ] ||
		fail "host2's ARP broadcasts were not counted on $TRUNK under VLAN 0 ($untagged0 -> $untagged1): counted for a network instead?"
else
	await ebpf-native-gone
	pids=
	for a in 250 251 252 253; do # no such hosts: 4 x 5 broadcasts (one a second each)
		busybox arping -c 5 -I "$TRUNK" "10.99.0.$a" >/dev/null 2>&1 &
		pids="$pids $!"
	done
	# shellcheck disable=SC2086
	wait $pids || true # (arping fails: no answer)
	signal ebpf-arped
fi
ping_ok e50 "192.168.50.$PEER_HOSTPART"
ping_ok e60 "192.168.60.$PEER_HOSTPART"
barrier ebpf-done
