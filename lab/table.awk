# lab/table.awk: the lab's scenario table from its events, one line each:
#   <seconds since the run started> <host> <marker words...>
# where the marker words are those of lab/vm/runner.sh (start NAME,
# result NAME STATUS SECONDS DETAIL...). One row per scenario: each host's
# result and the time the VM measured, and the wall time from the first
# start to the last result. Exits 1 if a scenario failed, or has no result
# from a host, or there is none. Used by lab/lab.sh and lab/vagrant/run.sh.
$3 == "start" { if (!($4 in t0)) { t0[$4] = $1; order[++n] = $4 } }
$3 == "result" {
	sc = $4; h = $2
	if (!(sc in t0)) { t0[sc] = $1; order[++n] = sc }
	st[sc, h] = $5; secs[sc, h] = $6
	d = ""; for (i = 7; i <= NF; i++) d = d (i > 7 ? " " : "") $i
	if (d != "") detail[sc] = detail[sc] (detail[sc] != "" ? "; " : "") h ": " d
	if ($1 > t1[sc]) t1[sc] = $1
}
END {
	printf "%-14s %-13s %-13s %7s\n", "SCENARIO", "HOST1", "HOST2", "WALL"
	for (i = 1; i <= n; i++) {
		sc = order[i]; row = "pass"
		for (j = 1; j <= 2; j++) {
			h = "host" j
			s = (sc SUBSEP h) in st ? st[sc, h] : "-"
			cell[j] = sprintf("%-5s %6s", s, s == "-" ? "" : secs[sc, h] "s")
			if (s == "fail" || s == "-") row = "fail"; else if (s == "skip" && row != "fail") row = "skip"
		}
		wall = (sc in t1) ? sprintf("%6.1fs", t1[sc] - t0[sc]) : "     -"
		printf "%-14s %-13s %-13s %7s\n", sc, cell[1], cell[2], wall
		if (detail[sc] != "") printf "  %s\n", detail[sc]
		count[row]++
	}
	printf "\n%d scenarios\nlab: %d passed, %d failed, %d skipped\n", n, count["pass"], count["fail"] + 0, count["skip"] + 0
	if (count["fail"] > 0 || n == 0) exit 1
}
