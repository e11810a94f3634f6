// Package packaging holds the files of mvlan's Debian package (make
// package): the systemd unit, the default settings, the shell completions
// and the maintainer scripts. Its test builds the package, inspects it,
// installs it into a throwaway root and removes it again.
package packaging
