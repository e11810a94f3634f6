#!/usr/bin/env bash
# lab/kernel.sh CACHE: makes sure Debian's kernel (the versioned package that
# linux-image-amd64 depends on, e.g. linux-image-6.1.0-56-amd64) is unpacked
# under CACHE/kernel/<package>/ and prints that directory. apt-get download
# + dpkg -x: nothing is installed. Cached: a second run asks apt nothing when
# the package apt names is already there, or when apt cannot name one.
# LAB_KERNEL_PKG=linux-image-... picks another version.
set -euo pipefail
cache=${1:?usage: kernel.sh CACHE}
mkdir -p "$cache/kernel"
cache=$(cd "$cache" && pwd)

have() { [[ -n $1 && -f $cache/kernel/$1/vmlinuz && -d $cache/kernel/$1/lib/modules ]]; }

pkg=${LAB_KERNEL_PKG:-}
if [[ -z $pkg ]] && command -v apt-cache >/dev/null; then
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }') || true
	if [[ -z $pkg ]] && ! ls "$cache"/kernel/*/vmlinuz >/dev/null 2>&1; then
		echo "lab: apt does not know linux-image-amd64 yet; running apt-get update" >&2
		apt-get update -qq >&2 || true
		pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }') || true
	fi
fi
if [[ -z $pkg ]]; then
	# apt cannot tell (no apt, or no package lists): use the newest cached one.
	pkg=$(ls -1 "$cache/kernel" 2>/dev/null | sort -V | tail -n 1)
	have "$pkg" || { echo "lab: cannot find Debian's linux-image-amd64: needs apt (Debian) or LAB_KERNEL_PKG" >&2; exit 1; }
fi
if have "$pkg"; then
	echo "$cache/kernel/$pkg"
	exit 0
fi

echo "lab: fetching $pkg (apt-get download, cached in $cache/kernel)" >&2
tmp=$(mktemp -d "$cache/kernel/.dl.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# apt's sandbox user may not write into the cache: download as is, quietly.
(cd "$tmp" && apt-get download -q "$pkg" >&2 2> >(grep -v 'unsandboxed' >&2))
deb=$(ls "$tmp"/*.deb)
dpkg -x "$deb" "$tmp/x"
kver=$(ls "$tmp/x/lib/modules")
mkdir -p "$tmp/out"
mv "$tmp/x/boot/vmlinuz-$kver" "$tmp/out/vmlinuz"
mv "$tmp/x/boot/config-$kver" "$tmp/out/config"
mv "$tmp/x/lib" "$tmp/out/lib"
# busybox depmod: modules.dep/alias for the whole tree (the package has none).
busybox depmod -b "$tmp/out" "$kver"
echo "$kver" >"$tmp/out/release"
mv "$tmp/out" "$cache/kernel/$pkg"
echo "$cache/kernel/$pkg"
