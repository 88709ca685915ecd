#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need when it
# is missing, then gofmt, go vet, go test -race on every package (the
# conformance suite, interop with Python websockets, Node ws and headless
# Chromium), and each fuzz target for a short time.
#
# With CI=true no test skips: a missing browser or peer library fails.
# FUZZTIME (default 100000x: a count of executions) sets how long each fuzz
# target runs. A count, not a duration: go1.26's fuzzing coordinator can
# report a spurious "context deadline exceeded" when a duration runs out
# (golang/go#75804, fixed in Go 1.27).
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"
FUZZTIME="${FUZZTIME:-100000x}"

step() { printf '\n=== %s\n' "$*"; }

step "dependencies"
bash scripts/install-test-deps.sh

step "gofmt"
unformatted=$(find . -name '*.go' -not -path '*/node_modules/*' -not -path './.git/*' -print0 | xargs -0 gofmt -l)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo ok

step "go vet"
"$GO" vet ./...

step "the module builds for macOS, Windows and FreeBSD, and for Linux on arm64 (the tests themselves need Linux)"
for os in darwin windows freebsd; do
	echo "GOOS=$os"
	GOOS=$os GOARCH=amd64 "$GO" build ./...
done
echo "GOOS=linux GOARCH=arm64 (no assembly: the Go masking, the event loop's system calls on another ABI)"
GOOS=linux GOARCH=arm64 "$GO" vet ./...

step "go test -race"
"$GO" test -race -count=1 -timeout 30m ./...

step "allocation tests (built without -race, which allocates)"
"$GO" test -count=1 -run 'Allocs' -v ./websocket/ ./websocket/eventloop/ ./websocket/internal/deflate/

step "event loop built with eventloop_safe (x/sys/unix calls instead of raw system calls)"
"$GO" vet -tags eventloop_safe ./websocket/eventloop/
"$GO" test -race -count=1 -tags eventloop_safe ./websocket/eventloop/
"$GO" test -count=1 -tags eventloop_safe -run 'Allocs' -v ./websocket/eventloop/

step "websocket built with purego (the Go masking that other architectures use, instead of the assembly)"
"$GO" vet -tags purego ./websocket/
"$GO" test -count=1 -tags purego ./websocket/

step "bench module: go vet and its tests (the measurements themselves are run by hand)"
(cd bench && "$GO" vet ./... && "$GO" test -count=1 -timeout 10m ./...)

step "fuzz (each target for $FUZZTIME)"
for pkg in ./websocket/ ./websocket/internal/deflate/ ./websocket/eventloop/ ./server/; do
	for target in $("$GO" test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "fuzz $pkg $target"
		"$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 5s "$pkg"
	done
done

step "all tests passed"
