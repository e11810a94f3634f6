#!/usr/bin/env bash
# lab/lab.sh (make lab): the multi-VM lab. Two qemu VMs (software emulation,
# no KVM) boot Debian's kernel with an initramfs of busybox-static, the
# modules, mvlan and the scenario scripts; one `-netdev socket` pair on
# 127.0.0.1 joins their eth0s: the 802.1q trunk between host1 and host2. No
# user networking, no tap: nothing leaves the machine. Each VM runs the agent
# and lab/scenarios/*.sh in step with the other and reports over its second
# serial port; this script shows progress, prints the scenario table, exits
# non-zero on any failure and always kills its VMs. A failed run's logs stay
# in lab/out/run-*/.
#
#   MVLAN_BIN     the static mvlan to test, with mvlan-agent next to it
#                 (default bin/mvlan; make lab builds both)
#   LAB_ONLY      "vlan dualstack": only these scenarios (names without NN-)
#   LAB_TIMEOUT   seconds for the whole run (default 480)
#   LAB_MEM       MiB per VM (default 512)
#   LAB_KEEP=1    keep the logs of a passing run too
set -euo pipefail
cd "$(dirname "$0")/.."

MVLAN_BIN=${MVLAN_BIN:-bin/mvlan}
LAB_TIMEOUT=${LAB_TIMEOUT:-480}
LAB_MEM=${LAB_MEM:-512}
LAB_ONLY=${LAB_ONLY:-}
OUT=lab/out
CACHE=lab/cache
QEMU=${QEMU:-qemu-system-x86_64}

die() { echo "lab: $*" >&2; exit 1; }
command -v "$QEMU" >/dev/null || die "needs $QEMU (apt-get install qemu-system-x86)"
for bin in "$MVLAN_BIN" "$(dirname "$MVLAN_BIN")/mvlan-agent"; do
	[[ -x $bin ]] || die "no $bin (make build makes mvlan and mvlan-agent)"
	if command -v ldd >/dev/null && ldd "$bin" 2>&1 | grep -q '=>'; then
		die "$bin is not static (build it with CGO_ENABLED=0)"
	fi
done

mkdir -p "$OUT"
# Keep the logs of the last five failed runs.
{ ls -dt "$OUT"/run-* 2>/dev/null || true; } | tail -n +6 | xargs -r rm -rf
RUN=$(mktemp -d "$OUT/run-$(date +%Y%m%d-%H%M%S)-XXXX")
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%6.1f", b - a }'; }
say() { echo "[$(elapsed)s] $*"; }

declare -A PID=() BOOTS=() FINISHED=() CYCLE=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	for h in "${!PID[@]}"; do
		kill "${PID[$h]}" 2>/dev/null || true
	done
	for h in "${!PID[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "${PID[$h]}" 2>/dev/null || break; sleep 0.2; done
		kill -9 "${PID[$h]}" 2>/dev/null || true
		wait "${PID[$h]}" 2>/dev/null || true
	done
	PID=()
	exit "$rc"
}
trap cleanup EXIT
trap 'echo; say "interrupted"; exit 130' INT TERM HUP

say "kernel"
KDIR=$(bash lab/kernel.sh "$CACHE")
say "initramfs: $MVLAN_BIN, busybox-static, modules of $(cat "$KDIR/release"), lab/"
bash lab/initramfs.sh "$KDIR" "$MVLAN_BIN" "$RUN/initramfs.gz"
for n in 1 2; do
	rm -f "$RUN/host$n.img"
	truncate -s 64M "$RUN/host$n.img" # formatted by the VM (busybox mke2fs)
	: >"$RUN/host$n.console.log"
	: >"$RUN/host$n.results.log"
done

# A free TCP port on 127.0.0.1 for the trunk.
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
pick_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		command -v ss >/dev/null || { echo "$p"; return; }
		listening "$p" || { echo "$p"; return; }
	done
	die "no free port"
}

# start_vm N BOOT: host1 listens on the trunk socket, host2 connects to it.
start_vm() {
	local n=$1 boot=$2 net
	if [[ $n == 1 ]]; then net=listen; else net=connect; fi
	local cmdline="console=ttyS0 no_timer_check quiet loglevel=3 panic=-1 lab.n=$n lab.boot=$boot lab.deadline=$((LAB_TIMEOUT + 60))"
	[[ -n $LAB_ONLY ]] && cmdline+=" lab.only=${LAB_ONLY// /,}"
	echo "==== boot $boot ($(date -u +%H:%M:%S))" >>"$RUN/host$n.console.log"
	"$QEMU" -accel tcg -machine pc -cpu max -smp 1 -m "$LAB_MEM" \
		-nodefaults -no-user-config -display none -no-reboot \
		-kernel "$KDIR/vmlinuz" -initrd "$RUN/initramfs.gz" -append "$cmdline" \
		-chardev "file,id=con,path=$RUN/host$n.console.log,append=on" -serial chardev:con \
		-chardev "file,id=res,path=$RUN/host$n.results.log,append=on" -serial chardev:res \
		-netdev "socket,id=trunk,$net=127.0.0.1:$PORT" \
		-device "virtio-net-pci,netdev=trunk,mac=52:54:00:4c:00:0$n,romfile=" \
		-drive "file=$RUN/host$n.img,format=raw,if=virtio,cache=unsafe" \
		>>"$RUN/host$n.qemu.log" 2>&1 &
	PID[host$n]=$!
	BOOTS[host$n]=$boot
}

for try in 1 2 3; do
	PORT=$(pick_port)
	start_vm 1 1
	for _ in $(seq 50); do
		kill -0 "${PID[host1]}" 2>/dev/null || break
		if command -v ss >/dev/null; then listening "$PORT" && break; else sleep 1 && break; fi
		sleep 0.1
	done
	kill -0 "${PID[host1]}" 2>/dev/null && break
	wait "${PID[host1]}" 2>/dev/null || true
	unset 'PID[host1]'
	[[ $try == 3 ]] && { cat "$RUN/host1.qemu.log"; die "qemu does not start"; }
done
start_vm 2 1
say "VMs started: host1 (pid ${PID[host1]}, listen 127.0.0.1:$PORT) and host2 (pid ${PID[host2]}, connect); logs in $RUN"

# Follow the markers (@@LAB <host> ...) of both VMs until both are done.
declare -A LINES=()
EVENTS=$RUN/events # "<elapsed> <host> <marker words...>"
: >"$EVENTS"
failed=0
follow() {
	local h=$1 f="$RUN/$1.results.log" total line
	total=$(wc -l <"$f")
	((total > ${LINES[$h]:-0})) || return 0
	while IFS= read -r line; do
		line=${line%$'\r'}
		[[ $line == "@@LAB $h "* ]] || continue
		line=${line#"@@LAB $h "}
		echo "$(elapsed) $h $line" >>"$EVENTS"
		read -r kind rest <<<"$line"
		case $kind in
		boot) say "$h: booted (boot $rest)" ;;
		start) say "$h: $rest ..." ;;
		result)
			read -r sc st secs detail <<<"$rest"
			say "$h: $sc $st (${secs}s)${detail:+: $detail}"
			;;
		powercycle) say "$h: powering off for the reboot scenario"; CYCLE[$h]=1 ;;
		done) say "$h: done ($rest passed/failed/skipped)"; FINISHED[$h]=1 ;;
		esac
	done < <(sed -n "$((${LINES[$h]:-0} + 1)),${total}p" "$f")
	LINES[$h]=$total
}

deadline=$(($(date +%s) + LAB_TIMEOUT))
while :; do
	for h in host1 host2; do follow "$h"; done
	[[ -n ${FINISHED[host1]:-} && -n ${FINISHED[host2]:-} ]] && break
	for h in host1 host2; do
		[[ -n ${PID[$h]:-} ]] || continue
		kill -0 "${PID[$h]}" 2>/dev/null && continue
		wait "${PID[$h]}" 2>/dev/null || true
		unset "PID[$h]"
		follow "$h"
		[[ -n ${FINISHED[$h]:-} ]] && continue
		if [[ -n ${CYCLE[$h]:-} && $h == host2 ]]; then
			unset "CYCLE[$h]"
			start_vm 2 $((BOOTS[$h] + 1))
			say "$h: powered off; booting it again (boot ${BOOTS[$h]})"
			continue
		fi
		say "$h: the VM stopped before it was done (see $RUN/$h.console.log)"
		tail -n 30 "$RUN/$h.console.log" | sed "s/^/  $h | /"
		failed=1
		break 2
	done
	if (($(date +%s) > deadline)); then
		say "timed out after ${LAB_TIMEOUT}s"
		failed=1
		break
	fi
	sleep 0.5
done
for h in "${!PID[@]}"; do
	# Give a finished VM a moment to power off by itself.
	for _ in $(seq 20); do kill -0 "${PID[$h]}" 2>/dev/null || break; sleep 0.2; done
done

echo
awk -f lab/table.awk "$EVENTS" || failed=1
grep -q " result " "$EVENTS" || failed=1

total=$(elapsed | tr -d " ")
if ((failed)); then
	echo "lab: FAILED in ${total}s; logs of both VMs: $RUN/ (host{1,2}.console.log, host{1,2}.results.log)"
	exit 1
fi
echo "lab: passed in ${total}s"
if [[ -z ${LAB_KEEP:-} ]]; then rm -rf "$RUN"; else echo "lab: logs in $RUN"; fi
