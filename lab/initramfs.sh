#!/usr/bin/env bash
# lab/initramfs.sh KERNEL_DIR MVLAN_BIN OUT: the lab VMs' initramfs (newc cpio,
# gzip): busybox-static, the kernel modules the lab needs (and those
# modules.dep says they need), mvlan, etcd when installed (with its
# libraries), lab/vm and lab/scenarios, /init.
# No root needed (init opens /dev/console itself, so the archive holds no
# device nodes).
set -euo pipefail
kdir=${1:?usage: initramfs.sh KERNEL_DIR MVLAN_BIN OUT}
mvlan=${2:?}
out=${3:?}
lab=$(cd "$(dirname "$0")" && pwd)
kver=$(cat "$kdir/release")

# The modules the VMs load (lab/vm/init), and what mvlan may ask the kernel
# for (doctor's probes, the datapath's clsact + cls_bpf, the XFRM and
# netfilter netlink families its netlink handles open).
want=(virtio_pci virtio_net virtio_blk 8021q macvlan dummy veth bridge
	sch_ingress cls_bpf act_bpf ext4 crc32c_generic crc32c-intel
	xfrm_user nfnetlink)

busybox=$(command -v busybox || echo /bin/busybox)
"$busybox" --list >/dev/null 2>&1 || { echo "lab: needs busybox-static (apt-get install busybox-static)" >&2; exit 1; }
if command -v ldd >/dev/null && ldd "$busybox" 2>&1 | grep -q '=>'; then
	echo "lab: $busybox is dynamically linked; install busybox-static" >&2
	exit 1
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/mvlan-lab-root.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,proc,sys,dev,run,tmp,root,lab,persist,var/lib}
cp "$busybox" "$root/bin/busybox"
cp "$mvlan" "$root/usr/local/bin/mvlan"
cp "$(dirname "$mvlan")/mvlan-agent" "$root/usr/local/bin/mvlan-agent" # what `mvlan agent` runs
cp "$lab/vm/init" "$root/init"
chmod 755 "$root/init" "$root/usr/local/bin/mvlan" "$root/usr/local/bin/mvlan-agent"
cp -r "$lab/vm" "$lab/scenarios" "$root/lab/"
# etcd for the cluster scenario (skipped without it), with the libraries
# Debian's build links.
if etcd=$(command -v etcd); then
	cp "$etcd" "$root/usr/bin/etcd"
	for lib in $(ldd "$etcd" 2>/dev/null | grep -o '/[^ ]*'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
fi
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
: >"$root/etc/mvlan-lab.env"

# Module closure from the full tree's modules.dep.
dep="$kdir/lib/modules/$kver/modules.dep"
declare -A files=()
for m in "${want[@]}"; do
	line=$(grep -E "/${m//-/[-_]}\.ko(\.xz|\.zst|\.gz)?:" "$dep" || true)
	[[ -n $line ]] || { [[ $m == crc32c-intel ]] && continue; echo "lab: module $m not in $kver" >&2; exit 1; }
	for f in ${line/:/}; do files[$f]=1; done
done
mdir="$root/lib/modules/$kver"
mkdir -p "$mdir"
for f in "${!files[@]}"; do
	mkdir -p "$mdir/$(dirname "$f")"
	case $f in
	*.ko.xz) "$busybox" unxz -c "$kdir/lib/modules/$kver/$f" >"$mdir/${f%.xz}" ;;
	*.ko.gz) "$busybox" gunzip -c "$kdir/lib/modules/$kver/$f" >"$mdir/${f%.gz}" ;;
	*.ko.zst) zstd -qdc "$kdir/lib/modules/$kver/$f" >"$mdir/${f%.zst}" ;;
	*) cp "$kdir/lib/modules/$kver/$f" "$mdir/$f" ;;
	esac
done
cp "$kdir/lib/modules/$kver/modules.builtin" "$kdir/lib/modules/$kver/modules.order" "$mdir/" 2>/dev/null || true
"$busybox" depmod -b "$root" "$kver"

mkdir -p "$(dirname "$out")"
(cd "$root" && find . | "$busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
echo "lab: initramfs $(du -h "$out" | cut -f1) ($kver, ${#files[@]} modules)" >&2
