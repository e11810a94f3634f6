#!/usr/bin/env bash
# Prometheus' web pages from Debian's packages, without installing them (make
# screenshots): the prometheus package and the JavaScript libraries its
# classic UI links to, unpacked into one tree so that its relative links
# resolve. Prints the directory for --web.local-assets. Cached in $1.
set -euo pipefail
root=${1:?usage: prometheus-web.sh DIR}
web=$root/usr/share/prometheus/web
if [ -e "$web/templates/_base.html" ] && [ -z "$(find "$root" -xtype l)" ]; then
  echo "$web"
  exit 0
fi
mkdir -p "$root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -qq prometheus fonts-glyphicons-halflings libjs-bootstrap4 libjs-d3 \
  libjs-eonasdan-bootstrap-datetimepicker libjs-jquery libjs-jquery-hotkeys libjs-moment \
  libjs-moment-timezone libjs-mustache libjs-popper.js libjs-rickshaw 2>/dev/null)
for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$root"; done
if broken=$(find "$root" -xtype l) && [ -n "$broken" ]; then
  echo "prometheus-web.sh: links left dangling in $root (a library package missing?):" >&2
  echo "$broken" >&2
  exit 1
fi
echo "$web"
