package loader

// The BPF objects are compiled from ../bpf by bpf2go (pinned by go.mod) with
// Debian's clang-19; the generated *_bpfel.go and *_bpfel.o are committed and
// `make generate` reproduces them byte for byte. -no-global-types: the Go
// mirrors of the map layouts live in types.go. The endpoint programs are
// built twice: epEgressDev and epIngressDev read their namespace's cookie
// from the device (bpf/include/endpoint.h), the others take it from a
// stub. So are the parent programs: the Dev ones also tell a container's
// socket (sock_elsewhere). handoffGuard, a Docker endpoint's until its
// ep_ingress runs (GuardHandoff), reads no cookie: built once; so is
// tcxWatch (WatchTCX), on the bpf() system call's tracepoint.

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" epEgress ../bpf/ep_egress.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -DEP_COOKIE_FROM_DEV" epEgressDev ../bpf/ep_egress.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" epIngress ../bpf/ep_ingress.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -DEP_COOKIE_FROM_DEV" epIngressDev ../bpf/ep_ingress.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" parentIngress ../bpf/parent_ingress.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -DEP_COOKIE_FROM_DEV" parentIngressDev ../bpf/parent_ingress.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" parentEgress ../bpf/parent_egress.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -DEP_COOKIE_FROM_DEV" parentEgressDev ../bpf/parent_egress.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" handoffGuard ../bpf/handoff_guard.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" tcxWatch ../bpf/tcx_watch.c
