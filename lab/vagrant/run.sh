#!/usr/bin/env bash
# lab/vagrant/run.sh [vagrant up options, e.g. --provider=libvirt]: the lab on
# Vagrant. Brings host1 and host2 up and provisions them (which starts the
# scenario runner on each), follows their @@LAB result lines, prints the same
# table as make lab and exits non-zero on any failure. The VMs stay up for a
# look (vagrant ssh host1); `vagrant destroy -f` removes them. Logs:
# lab/out/vagrant/. Needs bin/mvlan and bin/mvlan-agent (make build).
#   LAB_TIMEOUT  seconds to wait for the runners after `vagrant up` (default 1800)
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ -x bin/mvlan && -x bin/mvlan-agent ]] || { echo "lab: no bin/mvlan or bin/mvlan-agent: run make build first" >&2; exit 1; }
command -v vagrant >/dev/null || { echo "lab: needs vagrant" >&2; exit 1; }
OUT=lab/out/vagrant
mkdir -p "$OUT"
T0=$(date +%s)
say() { printf '[%5ss] %s\n' "$(($(date +%s) - T0))" "$*"; }

say "vagrant up --provision $*"
vagrant up --provision "$@"

EVENTS=$OUT/events
: >"$EVENTS"
declare -A SEEN=() FINISHED=()
deadline=$(($(date +%s) + ${LAB_TIMEOUT:-1800}))
while :; do
	for h in host1 host2; do
		# A host may be rebooting (the reboot scenario): try again later.
		vagrant ssh "$h" -c 'sudo cat /var/lib/mvlan-lab/results 2>/dev/null' 2>/dev/null | tr -d '\r' >"$OUT/$h.results.log.new" || continue
		mv "$OUT/$h.results.log.new" "$OUT/$h.results.log"
		n=0
		while IFS= read -r line; do
			n=$((n + 1))
			((n > ${SEEN[$h]:-0})) || continue
			SEEN[$h]=$n
			[[ $line == "@@LAB $h "* ]] || continue
			line=${line#"@@LAB $h "}
			echo "$(($(date +%s) - T0)) $h $line" >>"$EVENTS"
			say "$h: $line"
			[[ $line == done* ]] && FINISHED[$h]=1
		done <"$OUT/$h.results.log"
	done
	[[ -n ${FINISHED[host1]:-} && -n ${FINISHED[host2]:-} ]] && break
	if (($(date +%s) > deadline)); then
		say "timed out"
		break
	fi
	sleep 10
done
for h in host1 host2; do
	vagrant ssh "$h" -c 'sudo journalctl -u mvlan-lab --no-pager' >"$OUT/$h.log" 2>&1 || true
done
echo
if awk -f lab/table.awk "$EVENTS" && [[ -n ${FINISHED[host1]:-} && -n ${FINISHED[host2]:-} ]]; then
	echo "lab (vagrant): passed; logs in $OUT/; vagrant destroy -f removes the VMs"
else
	echo "lab (vagrant): FAILED; logs in $OUT/ (host1.log, host2.log: the runners' journals)"
	exit 1
fi
