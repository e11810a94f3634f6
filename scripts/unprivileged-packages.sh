#!/usr/bin/env bash
# Prints the packages whose tests need no root: they import neither
# internal/nstest nor check the effective user themselves. make lint runs
# these with -race (the privileged ones run in make unit).
set -euo pipefail
go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}} {{join .TestImports " "}} {{join .XTestImports " "}}{{end}}' ./... |
  while read -r pkg dir imports; do
    case " $imports " in *"/internal/nstest "*) continue ;; esac
    if grep -qs 'Geteuid' "$dir"/*_test.go; then continue; fi
    echo "$pkg"
  done
