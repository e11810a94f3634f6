#!/bin/sh
# lab/vm/runner.sh: runs the lab's scenarios on one host, in step with the
# other host, and reports each result as a marker line:
#
#   @@LAB <host> boot <n>
#   @@LAB <host> start <scenario>
#   @@LAB <host> result <scenario> pass|fail|skip <seconds> <detail>
#   @@LAB <host> powercycle            (the host is about to power off; boot it again)
#   @@LAB <host> done <passed> <failed> <skipped>
#
# Scenarios are lab/scenarios/NN-name.sh, run in name order, each sourced in
# a subshell with lib.sh's helpers; the same files run in the qemu lab and in
# the Vagrant lab. Between scenarios both hosts meet at barriers, and each
# removes what a scenario left behind. Progress is kept in $LAB_STATE so a
# scenario that powers the host off (reboot) resumes after the boot.
# LAB_ONLY="vlan dualstack" runs a subset.
. "${LAB_DIR:-/lab}/vm/lib.sh"

# A finished run (Vagrant: the service starts again at every boot) is over.
[ -e "$LAB_STATE/finished" ] && exit 0
PROGRESS=$LAB_STATE/progress
CURRENT=$LAB_STATE/current
touch "$PROGRESS"
if [ -z "${LAB_BOOT:-}" ]; then
	# Vagrant: count the boots here (qemu's init is told by lab.sh).
	LAB_BOOT=$(($(cat "$LAB_STATE/boots" 2>/dev/null || echo 0) + 1))
	echo "$LAB_BOOT" >"$LAB_STATE/boots"
fi

# lab_powercycle: power this host off and have it booted again (the qemu
# lab's host side restarts the VM; under Vagrant it is a reboot). Never
# returns.
lab_powercycle() {
	set +e
	echo "$(since "$T0")" >"$LAB_STATE/elapsed-$SCENARIO"
	log "powering off (agent stopped first, as a shutdown would)"
	agent_stop
	marker powercycle
	sync
	case $LAB_PLATFORM in
	qemu)
		umount "$LAB_STATE_MOUNT" 2>/dev/null
		poweroff -f
		;;
	*) systemctl reboot ;;
	esac
	sleep 600
	exit 1
}

# cleanup_all: remove every container and network, and the links a scenario
# made by hand (listed in $LAB_RUN/manual-links).
cleanup_all() {
	for c in $(mvlan ps -q 2>/dev/null); do mvlan rm -f "$c" >/dev/null 2>&1 || log "cleanup: cannot remove container $c"; done
	for n in $(mvlan network ls -q 2>/dev/null); do mvlan network rm "$n" >/dev/null 2>&1 || log "cleanup: cannot remove network $n"; done
	if [ -f "$LAB_RUN/manual-links" ]; then
		while read -r l; do
			[ -n "$l" ] && link_exists "$l" && ip link del "$l"
		done <"$LAB_RUN/manual-links"
		rm -f "$LAB_RUN/manual-links"
	fi
}

wanted() {
	[ -z "${LAB_ONLY:-}" ] && return 0
	for w in $(echo "$LAB_ONLY" | tr ',' ' '); do [ "$w" = "$1" ] && return 0; done
	return 1
}

mgmt_serve || log "cannot start the management httpd"
marker boot "$LAB_BOOT"
if ! agent_start; then
	log "the agent does not start; every scenario fails"
	AGENT_BROKEN=1
fi

# First boot: wait for the other host (its VM may still be booting, or under
# Vagrant still being provisioned).
if [ ! -s "$PROGRESS" ] && [ ! -e "$CURRENT" ]; then
	(SCENARIO= barrier hello "${LAB_HELLO_TIMEOUT:-180}") || log "the other host did not say hello"
fi

for file in "$LAB_DIR"/scenarios/[0-9]*.sh; do
	name=$(basename "$file" .sh)
	name=${name#[0-9][0-9]-}
	wanted "$name" || continue
	grep -q "^$name " "$PROGRESS" && continue
	SCENARIO=$name
	export SCENARIO
	rm -f "$LAB_RUN/why" "$LAB_RUN/step"
	LAB_RESUMED=0
	if [ "$(cat "$CURRENT" 2>/dev/null)" = "$name" ]; then
		LAB_RESUMED=1
		T0=$(awk -v n="$(now)" -v e="$(cat "$LAB_STATE/elapsed-$name" 2>/dev/null || echo 0)" 'BEGIN { print n - e }')
		log "resuming scenario $name after boot $LAB_BOOT"
	else
		echo "$name" >"$CURRENT"
		marker start "$name"
		T0=$(now)
	fi
	export LAB_RESUMED T0
	echo "==== scenario $name ($LAB_HOST)"
	if [ -n "${AGENT_BROKEN:-}" ]; then
		echo "the agent did not start" >"$LAB_RUN/why"
		rc=1
	else
		(
			set -e
			[ "$LAB_RESUMED" = 1 ] || barrier "start-$name"
			# shellcheck disable=SC1090
			. "$file"
		)
		rc=$?
	fi
	secs=$(since "$T0")
	case $rc in
	0) status=pass why= ;;
	77) status=skip why=$(cat "$LAB_RUN/why" 2>/dev/null) ;;
	*)
		status=fail
		why=$(cat "$LAB_RUN/why" 2>/dev/null)
		[ -n "$why" ] || why="a command failed at step: $(cat "$LAB_RUN/step" 2>/dev/null || echo '(first)')"
		signal "abort-$name" 10 || true
		log "agent log (last 30 lines):"
		tail -n 30 "$LAB_RUN/agent.log"
		log "links:"
		ip -o link 2>&1 | cut -c1-160
		;;
	esac
	marker result "$name" "$status" "$secs" "$why"
	echo "$name $status $secs $why" >>"$PROGRESS"
	rm -f "$CURRENT"
	(barrier "end-$name") || log "the other host did not reach the end of $name"
	agent_alive || agent_start || AGENT_BROKEN=1
	cleanup_all
done

touch "$LAB_STATE/finished"
marker "done" "$(grep -c ' pass ' "$PROGRESS")" "$(grep -c ' fail ' "$PROGRESS")" "$(grep -c ' skip ' "$PROGRESS")"
if grep -q ' fail ' "$PROGRESS"; then
	log "agent log:"
	cat "$LAB_RUN/agent.log"
fi
agent_stop
