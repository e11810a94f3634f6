#!/bin/sh
# lab/vagrant/provision.sh N: provisions Vagrant lab host N (1 or 2), as root.
# The Vagrantfile has copied bin/mvlan, bin/mvlan-agent, lab/vm and lab/scenarios to
# /tmp/mvlan-lab. Installs mvlan and the lab, removes what an earlier run
# left, writes /etc/mvlan-lab.env and starts the runner (the systemd unit
# mvlan-lab, enabled so the reboot scenario resumes after the boot). Results:
# /var/lib/mvlan-lab/results (@@LAB lines), logs: journalctl -u mvlan-lab.
set -eu
N=${1:?usage: provision.sh 1|2}
SRC=/tmp/mvlan-lab
SELF_IP=10.99.0.1$N
PEER_IP=10.99.0.1$((3 - N))

export DEBIAN_FRONTEND=noninteractive
need=
command -v busybox >/dev/null || need="$need busybox"
command -v ip >/dev/null || need="$need iproute2"
command -v nsenter >/dev/null || need="$need util-linux"
command -v ping >/dev/null || need="$need iputils-ping"
if [ -n "$need" ]; then
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq $need >/dev/null
fi
modprobe -a 8021q macvlan dummy sch_ingress cls_bpf 2>/dev/null || true

# The trunk is the link holding the management address Vagrant configured.
TRUNK=$(ip -o -4 addr show | awk -v a="$SELF_IP/" 'index($4, a) == 1 { print $2; exit }')
[ -n "$TRUNK" ] || { echo "provision: no link has $SELF_IP (the private network)" >&2; exit 1; }
# Nothing periodic of the host's own on the trunk (the noparent scenario
# counts its packets): no IPv6 on the untagged management "VLAN".
sysctl -qw "net.ipv6.conf.$TRUNK.disable_ipv6=1"

# An earlier run: stop it, remove its containers, links and state.
# (stopping the unit ends the runner and the agent it started: same cgroup)
systemctl stop mvlan-lab 2>/dev/null || true
for l in /sys/class/net/*; do
	case $(cat "$l/ifalias" 2>/dev/null) in mvlan/*) ip link del "$(basename "$l")" 2>/dev/null || true ;; esac
done
for l in "$TRUNK.40" foo; do ip link del "$l" 2>/dev/null || true; done
ip -all netns delete 2>/dev/null || true
rm -rf /var/lib/mvlan /var/lib/mvlan-lab /opt/mvlan-lab

install -m 755 "$SRC/mvlan" "$SRC/mvlan-agent" /usr/local/bin/
mkdir -p /opt/mvlan-lab /var/lib/mvlan-lab
cp -r "$SRC/vm" "$SRC/scenarios" /opt/mvlan-lab/

cat >/etc/mvlan-lab.env <<EOF
LAB_HOST=host$N
LAB_N=$N
LAB_PEER=host$((3 - N))
LAB_SELF_IP=$SELF_IP
LAB_PEER_IP=$PEER_IP
TRUNK=$TRUNK
LAB_DIR=/opt/mvlan-lab
LAB_RUN=/run/mvlan-lab
LAB_STATE=/var/lib/mvlan-lab
LAB_PLATFORM=vagrant
LAB_RESULTS=/var/lib/mvlan-lab/results
MVLAN=/usr/local/bin/mvlan
LAB_HELLO_TIMEOUT=1200
LAB_REBOOT_TIMEOUT=600
EOF

cat >/etc/systemd/system/mvlan-lab.service <<'EOF'
[Unit]
Description=mvlan lab scenario runner (lab/vm/runner.sh)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
Environment=LAB_ENV=/etc/mvlan-lab.env
ExecStartPre=-/bin/sh -c '. /etc/mvlan-lab.env; sysctl -qw net.ipv6.conf.$${TRUNK}.disable_ipv6=1; modprobe -a 8021q macvlan dummy sch_ingress cls_bpf'
ExecStart=/bin/sh /opt/mvlan-lab/vm/runner.sh
# The runner starts the agent itself (and kills it, as the restart scenario does).
KillMode=mixed
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
EOF
systemctl daemon-reload
systemctl enable mvlan-lab.service
systemctl start --no-block mvlan-lab.service
echo "host$N: mvlan $(/usr/local/bin/mvlan --version 2>/dev/null || echo installed), trunk $TRUNK, runner started (journalctl -u mvlan-lab -f)"
