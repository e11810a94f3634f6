# lab/vm/lib.sh: helpers for the lab's runner and scenario scripts, sourced by
# both. POSIX sh: runs under busybox ash (the qemu lab) and dash/bash (the
# Vagrant lab). The environment file (written by lab/vm/init in qemu, by
# lab/vagrant/provision.sh under Vagrant) says who this host is:
#
#   LAB_HOST    host1 | host2          LAB_N       1 | 2
#   LAB_PEER    the other host's name  TRUNK       the 802.1q trunk link (eth0 in qemu)
#   LAB_SELF_IP / LAB_PEER_IP          management addresses, untagged on the trunk
#   LAB_DIR     where lab/ is          LAB_STATE   persistent dir (survives reboot)
#   LAB_RUN     scratch dir (tmpfs)    LAB_PLATFORM qemu | vagrant
#   LAB_RESULTS where @@LAB markers go (a serial port in qemu, a file in Vagrant)
#
# Addressing plan: a container of host N has host part 1N (host1 .11, host2
# .12) unless a scenario says otherwise; PEER_HOSTPART is the other host's.

: "${LAB_ENV:=/etc/mvlan-lab.env}"
# shellcheck disable=SC1090
[ -r "$LAB_ENV" ] && . "$LAB_ENV"
: "${LAB_DIR:=/lab}" "${LAB_RUN:=/run/lab}" "${LAB_STATE:=/var/lib/mvlan-lab}"
: "${TRUNK:=eth0}" "${LAB_N:=1}" "${LAB_HOST:=host$LAB_N}" "${LAB_PLATFORM:=qemu}"
: "${LAB_RESULTS:=$LAB_STATE/results}" "${MVLAN:=/usr/local/bin/mvlan}" "${LAB_MGMT_PORT:=8099}"
: "${LAB_BARRIER_TIMEOUT:=120}" "${LAB_PING_TIMEOUT:=30}"
ME=$LAB_N
PEER_N=$((3 - LAB_N))
HOSTPART=1$ME
PEER_HOSTPART=1$PEER_N
MARKS=$LAB_RUN/marks
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
mkdir -p "$MARKS" "$LAB_STATE" 2>/dev/null

# ---- time and output --------------------------------------------------------

# now: seconds since boot, two decimals (busybox date has no %N).
now() { cut -d' ' -f1 /proc/uptime; }
# since T0: seconds elapsed since T0 (a value of now), one decimal.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

log() { echo "[$LAB_HOST $(now)] $*"; }
# marker WORDS: a @@LAB line for the host side (results channel and console).
marker() {
	echo "@@LAB $LAB_HOST $*" >>"$LAB_RESULTS"
	echo "@@LAB $LAB_HOST $*"
}

# step TEXT: what a scenario is doing now; a failure names the last step.
step() {
	log "step: $*"
	echo "$*" >"$LAB_RUN/step"
}
# fail TEXT: the scenario fails here (scenarios run in a subshell).
fail() {
	log "FAIL: $*"
	echo "$*" >"$LAB_RUN/why"
	exit 1
}
# skip TEXT: the scenario does not apply here (not a failure).
skip() {
	log "SKIP: $*"
	echo "$*" >"$LAB_RUN/why"
	exit 77
}

# ---- mvlan and the agent ----------------------------------------------------

# mvlan ARGS: the mvlan under test ($MVLAN), as the reference's commands read.
mvlan() { "$MVLAN" "$@"; }

agent_pid() { cat "$LAB_RUN/agent.pid" 2>/dev/null; }
agent_alive() { _p=$(agent_pid) && [ -n "$_p" ] && kill -0 "$_p" 2>/dev/null; }

# agent_start: start the agent in the background and wait until it answers.
agent_start() {
	agent_alive && return 0
	log "starting agent"
	echo "---- agent start $(now)" >>"$LAB_RUN/agent.log"
	setsid "$MVLAN" agent >>"$LAB_RUN/agent.log" 2>&1 </dev/null &
	echo $! >"$LAB_RUN/agent.pid"
	agent_wait_ready
}
agent_wait_ready() {
	_t0=$(now)
	while ! mvlan network ls -q >/dev/null 2>&1; do
		agent_alive || { log "agent exited:"; tail -n 20 "$LAB_RUN/agent.log"; return 1; }
		[ "$(since "$_t0" | cut -d. -f1)" -lt 60 ] || { log "agent not ready after 60s"; return 1; }
		sleep 0.2
	done
	log "agent ready after $(since "$_t0")s"
}
# agent_kill9: SIGKILL, as a crash would.
agent_kill9() {
	_p=$(agent_pid) || return 0
	kill -9 "$_p" 2>/dev/null || true
	while kill -0 "$_p" 2>/dev/null; do sleep 0.1; done
	rm -f "$LAB_RUN/agent.pid"
}
# agent_stop: SIGTERM and wait, as a shutdown would.
agent_stop() {
	_p=$(agent_pid) || return 0
	kill "$_p" 2>/dev/null
	_i=0
	while kill -0 "$_p" 2>/dev/null && [ $_i -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
	kill -9 "$_p" 2>/dev/null || true
	rm -f "$LAB_RUN/agent.pid"
}

# ---- links and containers ---------------------------------------------------

link_exists() { [ -e "/sys/class/net/$1" ]; }
ifindex() { cat "/sys/class/net/$1/ifindex"; }
ifalias() { cat "/sys/class/net/$1/ifalias" 2>/dev/null; }
# vlan_id LINK: the 802.1q id of a VLAN link (empty if it is none).
vlan_id() { awk -F'|' -v l="$1" '{ gsub(/ /, "") } $1 == l { print $2 }' /proc/net/vlan/config 2>/dev/null; }
# vlan_lower LINK: the link a VLAN link sits on.
vlan_lower() { awk -F'|' -v l="$1" '{ gsub(/ /, "") } $1 == l { print $3 }' /proc/net/vlan/config 2>/dev/null; }
oper_up() { grep -q '^up$\|^unknown$' "/sys/class/net/$1/operstate" 2>/dev/null; }
# counter LINK NAME: a statistics counter of LINK (tx_packets, rx_bytes, ...).
counter() { cat "/sys/class/net/$1/statistics/$2"; }

# assert_vlan LINK VID: LINK exists, is a VLAN link with id VID on $TRUNK, is up.
assert_vlan() {
	link_exists "$1" || fail "$1 does not exist"
	[ "$(vlan_id "$1")" = "$2" ] || fail "$1 is not VLAN $2 (/proc/net/vlan/config: $(vlan_id "$1"))"
	[ "$(vlan_lower "$1")" = "$TRUNK" ] || fail "$1 is not on $TRUNK"
	[ $(($(cat "/sys/class/net/$1/flags") & 1)) -eq 1 ] || fail "$1 is not up"
}

# in_ns NAME CMD...: run CMD in container NAME's network namespace.
in_ns() {
	_ns=$1
	shift
	nsenter --net="/run/netns/$_ns" "$@"
}

# ping_ok NS ADDR [COUNT]: from container NS, ADDR answers (retried until
# LAB_PING_TIMEOUT, the peer may still be coming up), then COUNT more
# pings (default 3) all answer. ping -6 for IPv6 addresses (busybox and
# iputils alike).
ping_ok() {
	_ns=$1 _addr=$2 _count=${3:-3}
	_ping=ping
	case $_addr in *:*) _ping="ping -6" ;; esac
	_t0=$(now)
	until in_ns "$_ns" $_ping -c 1 -W 1 "$_addr" >/dev/null 2>&1; do
		[ "$(since "$_t0" | cut -d. -f1)" -lt "$LAB_PING_TIMEOUT" ] ||
			fail "$_ns cannot reach $_addr ($_ping, ${LAB_PING_TIMEOUT}s)"
		sleep 0.3
	done
	_out=$(in_ns "$_ns" $_ping -c "$_count" -i 0.2 -W 2 "$_addr" 2>&1)
	echo "$_out" | grep -q " $_count packets received\| $_count received" ||
		fail "$_ns -> $_addr: not all of $_count pings answered: $(echo "$_out" | tail -n 2 | tr '\n' ' ')"
	log "ok: $_ns reaches $_addr"
}

# ping_fails NS ADDR: from container NS, ADDR never answers 3 pings.
ping_fails() {
	_ns=$1 _addr=$2
	_ping=ping
	case $_addr in *:*) _ping="ping -6" ;; esac
	if in_ns "$_ns" $_ping -c 3 -i 0.3 -W 2 "$_addr" >/dev/null 2>&1; then
		fail "$_ns reaches $_addr but must not"
	fi
	log "ok: $_ns cannot reach $_addr"
}

# ---- JSON (no jq in the VMs) ------------------------------------------------

# jflat: JSON on stdin -> one "path<TAB>value" line per scalar, paths like
# .sections[0].checks[2].name; strings without their quotes.
jflat() { awk -f "$LAB_DIR/vm/jflat.awk"; }
# jget PATH: the value at PATH of the JSON on stdin.
jget() { jflat | awk -F'\t' -v p="$1" '$1 == p { print $2; exit }'; }

# doctor_check SECTION NAME: "ok", "missing" or "skipped" for one doctor check,
# from $doctor_json when set (one doctor run for many checks: each run loads
# and verifies mvlan's programs, seconds under emulation), else a new run.
doctor_check() {
	if [ -n "${doctor_json:-}" ]; then printf '%s\n' "$doctor_json"; else mvlan doctor --format json 2>/dev/null; fi | jflat | awk -F'\t' -v sec="$1" -v name="$2" '
		match($1, /^\.sections\[[0-9]+\]\.name$/) { s[substr($1, 1, RLENGTH - 5)] = $2 }
		match($1, /^\.sections\[[0-9]+\]\.checks\[[0-9]+\]\./) {
			key = substr($1, 1, RLENGTH - 1); f = substr($1, RLENGTH + 1); v[key, f] = $2; keys[key] = 1
		}
		END {
			for (k in keys) {
				sk = k; sub(/\.checks\[[0-9]+\]$/, "", sk)
				if (s[sk] == sec && v[k, "name"] == name) {
					print (v[k, "skipped"] == "true" ? "skipped" : (v[k, "ok"] == "true" ? "ok" : "missing")); exit
				}
			}
		}'
}

# drift: the agent section of mvlan doctor: empty when state, kernel links
# and IPAM agree, else one line per drift.
drift() {
	mvlan doctor --format json 2>/dev/null | jflat | awk -F'\t' '
		match($1, /^\.sections\[[0-9]+\]\.name$/) { s[substr($1, 1, RLENGTH - 5)] = $2 }
		match($1, /^\.sections\[[0-9]+\]\.checks\[[0-9]+\]\./) {
			key = substr($1, 1, RLENGTH - 1); f = substr($1, RLENGTH + 1); v[key, f] = $2; keys[key] = 1
		}
		END {
			found = 0
			for (k in keys) {
				sk = k; sub(/\.checks\[[0-9]+\]$/, "", sk)
				if (s[sk] != "agent") continue
				found = 1
				if (v[k, "ok"] != "true") print v[k, "name"] ": " v[k, "detail"]
			}
			if (!found) print "no agent section in mvlan doctor --format json"
		}'
}

# ---- metrics (the eBPF datapath's checks use these) --------------------------

metrics() { timeout 10 busybox wget -q -O - "http://${MVLAN_METRICS_ADDR:-127.0.0.1:9469}/metrics" 2>/dev/null; }
# metric NAME LABELMATCH...: sum of the samples of NAME whose labels contain
# every LABELMATCH (e.g. 'vlan="50"'); 0 when there is none. Fails (exit 1,
# the why written) when /metrics cannot be fetched: not a 0 that a
# before-and-after check would take as nothing counted. Give each value its
# own assignment (x=$(metric ...)), so that set -e sees the failure.
metric() {
	_m=$1
	shift
	_text=$(metrics) || fail "cannot fetch http://${MVLAN_METRICS_ADDR:-127.0.0.1:9469}/metrics" >&2
	echo "$_text" | awk -v m="$_m" -v want="$*" '
		BEGIN { n = split(want, w, " ") }
		index($0, m) == 1 {
			name = $1; sub(/\{.*/, "", name); if (name != m) next
			for (i = 1; i <= n; i++) if (index($1, w[i]) == 0) next
			sum += $NF
		}
		END { printf "%d\n", sum }'
}

# ---- coordination between the two hosts -------------------------------------
# Each host serves $LAB_RUN/www over HTTP on its management address (busybox
# httpd); "signal NAME" asks the peer's CGI to create the mark NAME there,
# "await NAME" waits for the peer's mark here. Waiting sends nothing on the
# wire, so a host can measure its trunk counters while the other waits.

mgmt_serve() {
	mkdir -p "$LAB_RUN/www/cgi-bin"
	cat >"$LAB_RUN/www/cgi-bin/mark" <<EOF
#!/bin/sh
name=\$(echo "\$QUERY_STRING" | tr -cd 'A-Za-z0-9._-')
[ -n "\$name" ] && touch "$MARKS/\$name"
printf 'Content-Type: text/plain\r\n\r\nok %s\n' "\$name"
EOF
	chmod +x "$LAB_RUN/www/cgi-bin/mark"
	busybox httpd -p "$LAB_SELF_IP:$LAB_MGMT_PORT" -h "$LAB_RUN/www"
}

# signal NAME: tell the peer NAME happened (retried until the peer answers).
signal() {
	_t0=$(now)
	# (timeout, not wget -T: busybox-static 1.35 wget crashes with -T)
	until timeout 5 busybox wget -q -O /dev/null "http://$LAB_PEER_IP:$LAB_MGMT_PORT/cgi-bin/mark?$1" 2>/dev/null; do
		[ "$(since "$_t0" | cut -d. -f1)" -lt "${2:-$LAB_BARRIER_TIMEOUT}" ] || { log "signal $1: peer unreachable"; return 1; }
		sleep 0.5
	done
}

# await NAME [TIMEOUT]: wait for the peer's signal NAME; fails early if the
# peer signalled that the current scenario failed there.
await() {
	_t0=$(now)
	while [ ! -e "$MARKS/$1" ]; do
		if [ -n "${SCENARIO:-}" ] && [ -e "$MARKS/abort-$SCENARIO" ]; then
			fail "$LAB_PEER failed this scenario (while waiting for $1)"
		fi
		[ "$(since "$_t0" | cut -d. -f1)" -lt "${2:-$LAB_BARRIER_TIMEOUT}" ] ||
			fail "timed out waiting for $LAB_PEER ($1, ${2:-$LAB_BARRIER_TIMEOUT}s)"
		sleep 0.2
	done
}

# barrier NAME [TIMEOUT]: both hosts get here before either goes on.
barrier() {
	step "barrier $1"
	signal "$1" "${2:-}" || fail "cannot reach $LAB_PEER for barrier $1"
	await "$1" "${2:-}"
}

# on HOSTN CMD...: run CMD only on host N (1 or 2).
on() {
	_h=$1
	shift
	[ "$_h" = "$ME" ] || return 0
	"$@"
}
