# doctor: `mvlan doctor` on the lab's kernel (Debian's 6.1): 8021q, dummy,
# macvlan and clsact are there, TCX is not (it came with 6.6), and the agent
# section reports no drift.
step "mvlan doctor"
mvlan doctor
doctor_json=$(mvlan doctor --format json 2>/dev/null)
kver=$(uname -r)
major=${kver%%.*}
minor=${kver#*.}
minor=${minor%%.*}
for c in macvlan 8021q dummy clsact btf bpffs; do
	step "doctor check $c"
	got=$(doctor_check kernel "$c")
	[ "$got" = ok ] || fail "doctor says $c is ${got:-absent}, want ok"
done
step "doctor check tcx"
got=$(doctor_check kernel tcx)
if [ "$major" -lt 6 ] || { [ "$major" -eq 6 ] && [ "$minor" -lt 6 ]; }; then
	[ "$got" = missing ] || fail "doctor says tcx is ${got:-absent} on $kver, want missing (TCX came with 6.6)"
else
	[ "$got" = ok ] || fail "doctor says tcx is ${got:-absent} on $kver, want ok"
fi
step "doctor agent section"
d=$(drift)
[ -z "$d" ] || fail "drift: $d"
