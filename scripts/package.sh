#!/usr/bin/env bash
# scripts/package.sh (make package): bin/mvlan_VERSION_ARCH.deb, staged from
# the built binaries (make build) and packaging/: /usr/bin/mvlan and
# mvlan-agent, /usr/lib/cni/mvlan (the CNI plugin), mvlan.service,
# /etc/default/mvlan, bash/zsh/fish completion, the man page (generated from
# the CLI's definition), the maintainer scripts, md5sums and a changelog.
# dpkg-deb only, no fakeroot: files are root-owned through --root-owner-group.
set -euo pipefail
cd "$(dirname "$0")/.."
# DEBVERSION, else from git, in an order dpkg (and apt, upgrading) follows:
# v1.2.3 -> 1.2.3; v1.2.3-rc1 -> 1.2.3~rc1 (before 1.2.3; -alpha, -beta
# too; other suffixes stay: v1.2.3-hotfix1 -> 1.2.3.hotfix1); 5 commits after
# v1.2.3 -> 1.2.3+git5.HASH; a commit with no tag before it ->
# 0~gitN.HASH, N its number of commits (a hash alone sorts at random).
version=${DEBVERSION:-}
if [[ -z $version ]]; then
	hash=$(git rev-parse --short HEAD 2>/dev/null || echo dev)
	if [[ $(git rev-parse --is-shallow-repository 2>/dev/null) == true ]]; then
		echo "package: a shallow clone counts too few commits for a version that sorts; fetch with --unshallow or give DEBVERSION" >&2
		exit 1
	fi
	if tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null); then
		version=${tag#v}
		[[ $version =~ ^([0-9.]+)-((rc|alpha|beta)[0-9]*)$ ]] && version=${BASH_REMATCH[1]}~${BASH_REMATCH[2]}
		after=$(git rev-list --count "$tag..HEAD")
		((after == 0)) || version+="+git$after.$hash"
	else
		version=0~git$(git rev-list --count HEAD 2>/dev/null || echo 0).$hash
	fi
	git diff --quiet HEAD 2>/dev/null || version+="+dirty" # after its commit's, before the next's
fi
version=${version//-/.}
arch=$(dpkg --print-architecture)
out=bin/mvlan_${version}_$arch.deb
rm -f bin/mvlan_*.deb # older builds: README's apt install ./bin/mvlan_*.deb takes one
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
# Debian's changelog of a native package (no Debian revision): this build,
# from which commit, dated as the commit is.
when=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'mvlan (%s) unstable; urgency=medium\n\n  * Built from %s.\n\n -- %s  %s\n' \
	"$version" "$(git rev-parse HEAD 2>/dev/null || echo 'a tree without git')" \
	"$(sed -n 's/^Maintainer: //p' packaging/debian/control)" "$when" |
	gzip -9n >"$root/usr/share/doc/mvlan/changelog.gz"
chmod 0644 "$root/usr/share/doc/mvlan/changelog.gz"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/"
# md5sums: dpkg --verify (and debsums) check the installed files with it;
# not the conffiles, whose sums dpkg keeps itself.
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
	grep -vxF -f <(sed 's,^/,,' "$root/DEBIAN/conffiles") | xargs -d '\n' md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
	packaging/debian/control >"$root/DEBIAN/control"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "package: $out"
