#!/usr/bin/env bash
# scripts/package.sh (make package): bin/mvlan_VERSION_ARCH.deb, staged from
# the built binaries (make build) and packaging/: /usr/bin/mvlan and
# mvlan-agent, /usr/lib/cni/mvlan (the CNI plugin), mvlan.service,
# /etc/default/mvlan, bash/zsh/fish completion, the man page (generated from
# the CLI's definition), the maintainer scripts. dpkg-deb only, no fakeroot:
# files are root-owned through --root-owner-group.
set -euo pipefail
cd "$(dirname "$0")/.."
# DEBVERSION, else git describe: v1.2.3 -> 1.2.3; a commit without a tag
# -> 0~git.HASH (Debian versions start with a digit).
version=${DEBVERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
if [[ $version =~ ^v?[0-9]+\.[0-9]+ ]]; then
	version=${version#v}
else
	version=0~git.$version
fi
version=${version//-/.}
arch=$(dpkg --print-architecture)
out=bin/mvlan_${version}_$arch.deb
for b in mvlan mvlan-agent mvlan-cni; do
	[[ -x bin/$b ]] || { echo "package: no bin/$b (make build)" >&2; exit 1; }
done

stage=$(mktemp -d "${TMPDIR:-/tmp}/mvlan-pkg.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
d() { install -d -m 0755 "$root/$1"; }
for dir in DEBIAN usr/bin usr/lib/cni lib/systemd/system etc/default usr/share/man/man8 \
	usr/share/bash-completion/completions usr/share/zsh/vendor-completions \
	usr/share/fish/vendor_completions.d usr/share/doc/mvlan; do
	d "$dir"
done
install -m 0755 bin/mvlan bin/mvlan-agent "$root/usr/bin/"
install -m 0755 bin/mvlan-cni "$root/usr/lib/cni/mvlan"
install -m 0644 packaging/mvlan.service "$root/lib/systemd/system/mvlan.service"
install -m 0644 packaging/mvlan.default "$root/etc/default/mvlan"
install -m 0644 packaging/completion/mvlan.bash "$root/usr/share/bash-completion/completions/mvlan"
install -m 0644 packaging/completion/_mvlan "$root/usr/share/zsh/vendor-completions/_mvlan"
# The man page and the fish completion come from the command definitions.
go run ./cmd/mvlan gen-docs "$stage"
gzip -9n <"$stage/mvlan.8" >"$root/usr/share/man/man8/mvlan.8.gz"
install -m 0644 "$stage/mvlan.fish" "$root/usr/share/fish/vendor_completions.d/mvlan.fish"
chmod 0644 "$root/usr/share/man/man8/mvlan.8.gz"
install -m 0644 README.md "$root/usr/share/doc/mvlan/README.md"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
	packaging/debian/control >"$root/DEBIAN/control"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "package: $out"
