package main

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/mvlan/mvlan/api"
)

func TestParseConf(t *testing.T) {
	for _, c := range []struct {
		name, conf string
		code       uint   // 0: valid
		says       string // in the error, or the network when valid
	}{
		{"by name", `{"name":"mvnet","type":"mvlan","network":"pub_net"}`, 0, "pub_net"},
		{"network defaults to name", `{"name":"mvnet","type":"mvlan"}`, 0, "mvnet"},
		{"inline", `{"name":"n","type":"mvlan","parent":"eth0","mode":"vepa","subnets":["10.0.0.0/24"],"gateway":"10.0.0.1"}`, 0, "n"},
		{"host-only inline", `{"name":"n","type":"mvlan","subnets":["10.0.0.0/24"]}`, 0, "n"},
		{"no name", `{"type":"mvlan"}`, types.ErrInvalidNetworkConfig, `"network"`},
		{"foreign ipam", `{"name":"n","type":"mvlan","ipam":{"type":"dhcp"}}`, types.ErrUnsupportedField, `"ipam" (type "dhcp")`},
		{"bad mode", `{"name":"n","type":"mvlan","subnets":["10.0.0.0/24"],"mode":"bridged"}`, types.ErrInvalidNetworkConfig, `"bridged"`},
		{"parent without subnets", `{"name":"n","type":"mvlan","parent":"eth0"}`, types.ErrInvalidNetworkConfig, `"subnets"`},
		{"not json", `{"name":`, types.ErrDecodingFailure, "decode"},
		{"subnets not a list", `{"name":"n","type":"mvlan","subnets":"10.0.0.0/24"}`, types.ErrDecodingFailure, "decode"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf, err := parseConf([]byte(c.conf))
			if c.code == 0 {
				if err != nil || conf.Network != c.says {
					t.Fatalf("parseConf: %v, network %q; want network %q", err, conf.Network, c.says)
				}
				return
			}
			var te *types.Error
			if !errors.As(err, &te) || te.Code != c.code || !strings.Contains(te.Msg, c.says) {
				t.Fatalf("parseConf: %v; want code %d saying %s", err, c.code, c.says)
			}
		})
	}
}

func TestWant(t *testing.T) {
	cid := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		name, conf, args string
		want             Want
		bad              string // in the error
		code             uint   // of the error: 7 the configuration's, 4 CNI_ARGS'
	}{
		{"container id", ``, "", Want{Name: "0123456789ab"}, "", 0},
		{"pod name", ``, "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0", Want{Name: "web-0"}, "", 0},
		{"runtimeConfig", `"runtimeConfig":{"ips":["10.0.0.5/24","fd00::5"],"mac":"02:00:00:00:00:05"}`, "",
			Want{Name: "0123456789ab", IP: "10.0.0.5", IP6: "fd00::5", MAC: "02:00:00:00:00:05"}, "", 0},
		{"args", `"args":{"cni":{"ips":["10.0.0.6"]}}`, "", Want{Name: "0123456789ab", IP: "10.0.0.6"}, "", 0},
		{"CNI_ARGS", ``, "IP=10.0.0.7;MAC=02:00:00:00:00:07", Want{Name: "0123456789ab", IP: "10.0.0.7", MAC: "02:00:00:00:00:07"}, "", 0},
		{"runtimeConfig first", `"runtimeConfig":{"ips":["10.0.0.8"]}`, "IP=10.0.0.7", Want{Name: "0123456789ab", IP: "10.0.0.8"}, "", 0},
		{"mapped v4", `"runtimeConfig":{"ips":["::ffff:10.0.0.9"]}`, "", Want{Name: "0123456789ab", IP: "10.0.0.9"}, "", 0},
		{"not an address", `"runtimeConfig":{"ips":["10.0.0"]}`, "", Want{}, `"10.0.0"`, types.ErrInvalidNetworkConfig},
		{"two v6", `"runtimeConfig":{"ips":["fd00::1","fd00::2"]}`, "", Want{}, "two IPv6", types.ErrInvalidNetworkConfig},
		{"bad mac", `"runtimeConfig":{"mac":"02:00"}`, "", Want{}, `"02:00"`, types.ErrInvalidNetworkConfig},
		{"bad args mac", `"args":{"cni":{"mac":"02:00"}}`, "", Want{}, `"02:00"`, types.ErrInvalidNetworkConfig},
		{"unknown CNI_ARGS", ``, "FOO=1", Want{}, "FOO", types.ErrInvalidEnvironmentVariables},
		{"bad CNI_ARGS IP", ``, "IP=10.0.0", Want{}, `"10.0.0"`, types.ErrInvalidEnvironmentVariables},
		{"bad CNI_ARGS MAC", ``, "MAC=02:00", Want{}, `"02:00"`, types.ErrInvalidEnvironmentVariables},
		{"multicast CNI_ARGS MAC", ``, "MAC=01:00:5e:00:00:01", Want{}, "multicast", types.ErrInvalidEnvironmentVariables},
		{"zero CNI_ARGS MAC", ``, "MAC=00:00:00:00:00:00", Want{}, "all zeros", types.ErrInvalidEnvironmentVariables},
		{"multicast runtimeConfig mac", `"runtimeConfig":{"mac":"03:00:00:00:00:01"}`, "", Want{}, "multicast", types.ErrInvalidNetworkConfig},
		{"zoned CNI_ARGS IP", ``, "IP=fe80::1%eth0", Want{}, "zone", types.ErrInvalidEnvironmentVariables},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf, err := parseConf([]byte(`{"name":"n","type":"mvlan"` + strings.TrimSuffix(","+c.conf, ",") + "}"))
			if err != nil {
				t.Fatal(err)
			}
			w, err := conf.want(cid, c.args)
			if c.bad != "" {
				var te *types.Error
				if !errors.As(err, &te) || te.Code != c.code || !strings.Contains(te.Msg, c.bad) {
					t.Fatalf("want: %v; want code %d saying %s", err, c.code, c.bad)
				}
				return
			}
			if err != nil || w != c.want {
				t.Fatalf("want: %+v, %v; want %+v", w, err, c.want)
			}
		})
	}
}

// TestHolds: the addresses an ADD asks of an inline network must be in
// its subnets (checked before the network is made).
func TestHolds(t *testing.T) {
	conf, err := parseConf([]byte(`{"name":"n","type":"mvlan","ipv6":true,"subnets":["10.7.0.0/24","fd00:7::/64"]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		w   Want
		bad string // in the error; "" when held
	}{
		{Want{}, ""},
		{Want{IP: "10.7.0.5", IP6: "fd00:7::5"}, ""},
		{Want{IP: "10.99.0.5"}, "10.99.0.5 is in none of the subnets 10.7.0.0/24, fd00:7::/64"},
		{Want{IP: "10.7.0.5", IP6: "fd00:8::5"}, "fd00:8::5"},
	} {
		err := conf.holds(c.w)
		var te *types.Error
		if c.bad == "" && err != nil || c.bad != "" && (!errors.As(err, &te) || te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg, c.bad)) {
			t.Errorf("holds(%+v) = %v; want %q", c.w, err, c.bad)
		}
	}
}

// TestParseDelConf: a DEL reads the network's name from any configuration
// whose name, network and socket decode, valid or not, whatever the rest
// (the DEL after a refused ADD must succeed).
func TestParseDelConf(t *testing.T) {
	for conf, network := range map[string]string{
		`{"name":"n","type":"mvlan","ipam":{"type":"dhcp"}}`:                "n",
		`{"name":"n","type":"mvlan","parent":"eth0"}`:                       "n",
		`{"name":"n","type":"mvlan","network":"x","mode":"bridged"}`:        "x",
		`{"name":"n","type":"mvlan","prevResult":{"interfaces":[null]}}`:    "n",
		`{"name":"n","type":"mvlan","subnets":["10.0.0.0/33"],"gateway":1}`: "n",
		`{"name":"n","type":"mvlan","network":"x","ipv6":"yes"}`:            "x",
		`{"name":"n","type":"mvlan","subnets":"10.0.0.0/24"}`:               "n",
		`{"name":"n","type":"mvlan","prevResult":"none","runtimeConfig":1}`: "n",
		`{"name":"n","type":"mvlan","network":5}`:                           "",
		`{"name":"n","type":"mvlan","socket":["/run/mvlan.sock"]}`:          "",
		`{"name":"n"`: "",
	} {
		c, err := parseDelConf([]byte(conf))
		if network == "" {
			if cniCode(err) != types.ErrDecodingFailure {
				t.Errorf("%s: %v; want code %d", conf, err, types.ErrDecodingFailure)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v; want network %q", conf, err, network)
		} else if c.Network != network || c.Name != "n" {
			t.Errorf("%s: name %q, network %q; want n, %q", conf, c.Name, c.Network, network)
		}
	}
}

func TestDiffers(t *testing.T) {
	n := api.Network{Name: "pub_net", Parent: "eth0", ParentKind: api.ParentExisting, Mode: "bridge", Pools: []api.Pool{{
		Subnet: netip.MustParsePrefix("172.16.86.0/24"), Gateway: netip.MustParseAddr("172.16.86.1"),
		IPRange: netip.MustParsePrefix("172.16.86.128/25")}}}
	for _, c := range []struct {
		conf string
		diff string // "" when it matches
	}{
		{`"parent":"eth0","subnets":["172.16.86.0/24"]`, ""},
		{`"parent":"eth0","subnets":["172.16.86.7/24"],"gateway":"172.16.86.1","ranges":["172.16.86.128/25"],"mode":"bridge"`, ""},
		{`"parent":"eth1","subnets":["172.16.86.0/24"]`, "parent eth0, not eth1"},
		{`"subnets":["172.16.86.0/24"]`, "not host-only"},
		{`"parent":"eth0","mode":"vepa","subnets":["172.16.86.0/24"]`, "mode bridge, not vepa"},
		{`"parent":"eth0","subnets":["172.16.86.0/24","10.0.0.0/8"]`, "subnets 172.16.86.0/24, not 10.0.0.0/8,172.16.86.0/24"},
		{`"parent":"eth0","subnets":["172.16.86.0/24"],"gateway":"172.16.86.254"`, "no gateway 172.16.86.254"},
		{`"parent":"eth0","subnets":["172.16.86.0/24"],"ranges":["172.16.86.0/25"]`, "no range 172.16.86.0/25"},
		{`"parent":"eth0","subnets":["172.16.86.0/24"],"ipv6":true`, "ipv6=false"},
	} {
		conf, err := parseConf([]byte(`{"name":"pub_net","type":"mvlan",` + c.conf + `}`))
		if err != nil {
			t.Fatal(err)
		}
		if got := conf.differs(n); (c.diff == "") != (got == "") || !strings.Contains(got, c.diff) {
			t.Errorf("%s: differs %q; want %q", c.conf, got, c.diff)
		}
	}
}

// FuzzParseConf: no configuration panics the parser, and what it accepts
// names a network.
func FuzzParseConf(f *testing.F) {
	f.Add([]byte(`{"name":"n","type":"mvlan","network":"pub_net","runtimeConfig":{"ips":["10.0.0.1/24"],"mac":"02:00:00:00:00:01"}}`))
	f.Add([]byte(`{"name":"n","type":"mvlan","parent":"eth0","subnets":["10.0.0.0/24"],"gateway":"10.0.0.1"}`))
	f.Add([]byte(`{"name":"n","ipam":{"type":"host-local"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConf(data)
		if err != nil {
			var te *types.Error
			if !errors.As(err, &te) || te.Code == 0 {
				t.Fatalf("parseConf error %v is not a CNI error", err)
			}
			return
		}
		if c.Network == "" {
			t.Fatalf("parseConf accepted %q without a network", data)
		}
		_, _ = c.want("abc", "")
		_ = c.NetworkCreate()
	})
}

// TestValidAttachments: a GC's list is read under the spec's key, else
// the old one; neither is no list, a null or empty one is a list.
func TestValidAttachments(t *testing.T) {
	a := []types.GCAttachment{{ContainerID: "a", IfName: "eth0"}}
	for _, c := range []struct {
		conf string
		want []types.GCAttachment
		ok   bool
	}{
		{`{"name":"n"}`, nil, false},
		{`{"name":"n","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`, a, true},
		{`{"name":"n","cni.dev/attachments":[{"containerID":"a","ifname":"eth0"}]}`, a, true},
		{`{"name":"n","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],"cni.dev/attachments":[]}`, a, true},
		{`{"name":"n","cni.dev/attachments":[]}`, nil, true},
		{`{"name":"n","cni.dev/valid-attachments":null}`, nil, true},
	} {
		got, ok, err := validAttachments([]byte(c.conf))
		if err != nil || ok != c.ok || !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, %v, %v; want %v, %v", c.conf, got, ok, err, c.want, c.ok)
		}
	}
	if _, _, err := validAttachments([]byte(`{"name":"n","cni.dev/attachments":{}}`)); cniCode(err) != types.ErrDecodingFailure {
		t.Errorf("a list that is an object: %v; want code %d", err, types.ErrDecodingFailure)
	}
}
