# dhcp: a container on host2 gets its address from a DHCP server on host1,
# across the trunk on VLAN 60 (issue 18). The server is busybox udhcpd (the
# VMs have no dnsmasq; the DHCP tests of make test run dnsmasq) in a
# container of host1's VLAN 60 network, which has -o allow_dhcp_server=true
# (else the guard drops its answers, see ebpf). host2's VLAN 60 network is
# --ipam-driver dhcp without --subnet: its container gets an address of
# udhcpd's range, udhcpd's router and DNS server (resolv.conf), the network
# learns the subnet, the container reaches the server; rm sends a
# DHCPRELEASE that udhcpd takes (dumpleases: expired).
LEASES=/tmp/udhcpd60.leases
step "network create dhcp60"
if [ "$ME" = 1 ]; then
	mvlan network create -d macvlan --subnet=192.168.60.0/24 --gateway=192.168.60.1 \
		-o parent="$TRUNK.60" -o allow_dhcp_server=true dhcp60
	mvlan run -d --name dhcpd60 --net dhcp60 --ip 192.168.60.2
	printf 'interface eth0\nstart 192.168.60.100\nend 192.168.60.110\nlease_file %s\nopt subnet 255.255.255.0\nopt router 192.168.60.2\nopt dns 192.168.60.2\nopt domain lab.example\nopt lease 120\n' \
		"$LEASES" >/tmp/udhcpd60.conf
	: >"$LEASES"
	# nsenter execs udhcpd: $! is udhcpd's pid (in_ns is a function, and a
	# function in the background is a subshell of its own)
	nsenter --net=/run/netns/dhcpd60 busybox udhcpd -f /tmp/udhcpd60.conf >/tmp/udhcpd60.log 2>&1 &
	dhcpd=$!
	sleep 1
	kill -0 $dhcpd 2>/dev/null || fail "udhcpd did not start: $(cat /tmp/udhcpd60.log)"
	signal dhcp60-server
	await dhcp60-leased
	kill -USR1 $dhcpd # writes the lease file
	sleep 1
	leases=$(busybox dumpleases -f "$LEASES" | tail -n +2)
	log "udhcpd leases: $leases"
	echo "$leases" | grep -q "192.168.60.1[01][0-9]* *d60 " || fail "udhcpd has no lease for d60: $leases"
	signal dhcp60-checked
	await dhcp60-released
	kill -USR1 $dhcpd
	sleep 1
	leases=$(busybox dumpleases -f "$LEASES" | tail -n +2)
	echo "$leases" | grep " d60 " | grep -q expired || fail "udhcpd still leases to d60 after its rm (no DHCPRELEASE): $leases"
	kill $dhcpd 2>/dev/null || true
	mvlan rm -f dhcpd60
else
	await dhcp60-server
	mvlan network create --ipam-driver dhcp -o parent="$TRUNK.60" dhcp60
	mvlan run -d --name d60 --net dhcp60
	addr=$(in_ns d60 ip -o -4 addr show dev eth0 | awk '{ print $4 }')
	case $addr in
	192.168.60.10[0-9]/24 | 192.168.60.110/24) log "d60 leased $addr" ;;
	*) fail "d60 has '$addr' on eth0, want an address of host1's udhcpd range 192.168.60.100-110/24" ;;
	esac
	in_ns d60 ip route | grep -q "default via 192.168.60.2" || fail "d60 has no default route via udhcpd's router: $(in_ns d60 ip route | tr '\n' ' ')"
	grep -q "^nameserver 192.168.60.2" /etc/netns/d60/resolv.conf || fail "d60's resolv.conf lacks udhcpd's DNS server: $(cat /etc/netns/d60/resolv.conf 2>&1)"
	mvlan ps | grep " d60 " | grep -q "(dhcp bound)" || fail "ps does not show d60's lease bound: $(mvlan ps)"
	got=$(mvlan network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}' dhcp60)
	[ "$got" = "192.168.60.0/24 192.168.60.2" ] || fail "dhcp60 learned '$got', want 192.168.60.0/24 192.168.60.2"
	ping_ok d60 192.168.60.2
	signal dhcp60-leased
	await dhcp60-checked
	mvlan rm -f d60
	signal dhcp60-released
fi
barrier dhcp60-done
mvlan network rm dhcp60
link_exists "$TRUNK.60" && fail "$TRUNK.60 still exists after network rm"
true
