#!/usr/bin/env bash
# scripts/deps.sh (make deps; .ci/run runs it too): installs, as root on
# Debian, what the build and the tests need beyond Go, skipping what is
# there. No package may start a service here.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)                      # also setpriv
command -v ping >/dev/null || need+=(iputils-ping)
command -v make >/dev/null || need+=(make)
command -v gcc >/dev/null || need+=(gcc libc6-dev)                      # go test -race needs cgo
command -v git >/dev/null || need+=(git ca-certificates)                # make package, the Go module proxy
command -v sysctl >/dev/null || need+=(procps)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)    # make lab
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)         # make lab, TestDockerd
command -v clang-19 >/dev/null || need+=(clang-19 llvm-19 libbpf-dev)   # make generate
command -v dockerd >/dev/null || need+=(docker.io)                       # TestDockerd (its own dockerd in a netns)
command -v podman >/dev/null || need+=(podman)                            # TestPodman (mvlan-cni; its own state in a temp dir)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)                   # TestDHCP (a real DHCP server in a test namespace)
command -v etcd >/dev/null || need+=(etcd-server)                       # cluster tests (their own etcd on 127.0.0.1)
command -v systemd-analyze >/dev/null || need+=(systemd)                 # make package: systemd-analyze verify
command -v dpkg-deb >/dev/null || need+=(dpkg)                           # make package
command -v zsh >/dev/null || need+=(zsh)                                 # TestPackage: the zsh completion loads and completes
command -v fish >/dev/null || need+=(fish)                               # TestPackage: the fish completion loads and completes
if ((${#need[@]})) || ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing ${need[*]:-} promtool/prometheus; run make deps as root (apt-get)" >&2
    exit 1
  fi
  apt-get update -qq
fi
if ((${#need[@]})); then
  # No package may start its service here: docker.io's would run a dockerd
  # (a bridge, iptables rules) in the machine's own namespace. Nor at the
  # next boot: the services of what this installs are disabled after.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT # a failed install too
  fi
  # Units enabled before (a node's own containerd, say) stay enabled.
  units=(docker.service docker.socket containerd.service etcd.service)
  before=()
  for u in "${units[@]}"; do
    systemctl is-enabled --quiet "$u" 2>/dev/null && before+=("$u")
  done
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  for u in "${units[@]}"; do
    [[ " ${before[*]} " == *" $u "* ]] || systemctl disable "$u" >/dev/null 2>&1 || true # none, or no systemd here
  done
fi
# promtool (promtool check metrics) and prometheus (one test scrapes the
# agent with it, in a namespace) without installing, or starting, a
# Prometheus service: take them out of Debian's package.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq prometheus && dpkg -x prometheus_*.deb x &&
    install -m 0755 x/usr/bin/promtool x/usr/bin/prometheus /usr/local/bin/)
  rm -rf "$tmp"
fi
echo "deps: all present"
