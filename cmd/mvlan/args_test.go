package main

import (
	"slices"
	"strings"
	"testing"
)

func TestInterspersed(t *testing.T) {
	app := newApp()
	for _, tt := range []struct{ in, want []string }{
		{[]string{"mvlan", "network", "inspect", "n", "--format", "json"}, []string{"mvlan", "network", "inspect", "--format", "json", "n"}},
		{[]string{"mvlan", "ps", "-qa"}, []string{"mvlan", "ps", "-qa"}},
		// The reference's macvlan60 example: a dangling -o is dropped.
		{[]string{"mvlan", "network", "create", "-d", "macvlan", "--subnet=192.168.60.0/24", "--gateway=192.168.60.1",
			"-o", "parent=eth0.60", "-o", "-o", "macvlan_mode=bridge", "macvlan60"},
			[]string{"mvlan", "network", "create", "-d", "macvlan", "--subnet=192.168.60.0/24", "--gateway=192.168.60.1",
				"-o", "parent=eth0.60", "-o", "macvlan_mode=bridge", "macvlan60"}},
		{[]string{"mvlan", "network", "create", "n", "-o", "--opt", "parent=eth0"}, []string{"mvlan", "network", "create", "--opt", "parent=eth0", "n"}},
		// A network named o is not the flag -o.
		{[]string{"mvlan", "network", "create", "o", "--subnet=10.0.0.0/24"}, []string{"mvlan", "network", "create", "--subnet=10.0.0.0/24", "o"}},
		// A value flag before another flag is not an option: left for the parser.
		{[]string{"mvlan", "network", "create", "--subnet", "--gateway=10.0.0.1", "n"}, []string{"mvlan", "network", "create", "--subnet", "--gateway=10.0.0.1", "n"}},
		{[]string{"mvlan", "network", "create", "-o", "parent=eth0", "n", "--", "-o"}, []string{"mvlan", "network", "create", "-o", "parent=eth0", "--", "n", "-o"}},
		{[]string{"mvlan", "run", "--net", "n", "c1", "ping", "-o", "-c", "1"}, []string{"mvlan", "run", "--net", "n", "c1", "ping", "-o", "-c", "1"}},
	} {
		if got := interspersed(app, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("interspersed(%q)\n = %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// FuzzInterspersed: for any command line (tokens split at spaces),
// interspersed only reorders, drops nothing but -o/--opt tokens followed
// by another flag (dangling),
// keeps the program name, keeps what follows "--" last and in order, and
// is stable (its output is its own answer).
func FuzzInterspersed(f *testing.F) {
	for _, s := range []string{
		"network inspect n --format json",
		"network create -d macvlan --subnet=192.168.60.0/24 -o parent=eth0.60 -o -o macvlan_mode=bridge macvlan60",
		"network create n -o --opt parent=eth0",
		"network create --subnet --gateway=10.0.0.1 n",
		"network create -o parent=eth0 n -- -o",
		"run --net n c1 ping -o -c 1",
		"ps -qa",
		"network connect --ip 10.0.0.9 n c1 --alias x",
		"-o network create - -- --",
		"network create -subnet -- x -0", // "--" the value of -subnet
	} {
		f.Add(s)
	}
	app := newApp()
	f.Fuzz(func(t *testing.T, s string) {
		in := append([]string{"mvlan"}, strings.Split(s, " ")...)
		out := interspersed(app, in)
		if out[0] != "mvlan" || len(out) > len(in) {
			t.Fatalf("interspersed(%q) = %q", in, out)
		}
		left := map[string]int{}
		for _, a := range in {
			left[a]++
		}
		for _, a := range out {
			if left[a]--; left[a] < 0 {
				t.Fatalf("interspersed(%q) = %q: %q added", in, out, a)
			}
		}
		dropped, dangles := 0, 0
		for a, n := range left {
			if name := strings.TrimLeft(a, "-"); n > 0 && (name == a || name != "o" && name != "opt") {
				t.Fatalf("interspersed(%q) = %q: %q dropped", in, out, a)
			}
			dropped += n
		}
		for i, a := range in[:len(in)-1] {
			if name := strings.TrimLeft(a, "-"); name != a && (name == "o" || name == "opt") && strings.HasPrefix(in[i+1], "-") && in[i+1] != "-" {
				dangles++
			}
		}
		if dropped > dangles {
			t.Fatalf("interspersed(%q) = %q: %d option flags dropped, %d dangle", in, out, dropped, dangles)
		}
		// (A "--" after a flag may be that flag's value: not checked.)
		if k := slices.Index(in, "--"); k > 0 && !strings.HasPrefix(in[k-1], "-") && slices.Contains(out, "--") {
			after := in[k+1:]
			if tail := out[len(out)-len(after):]; !slices.Equal(tail, after) && !slices.Contains(in[:k], "--") {
				t.Fatalf("interspersed(%q) = %q: what follows -- moved", in, out)
			}
		}
		if again := interspersed(app, out); !slices.Equal(again, out) {
			t.Fatalf("interspersed(%q) = %q, then %q", in, out, again)
		}
	})
}
