#!/usr/bin/env bash
# The side-by-side benchmark of Go WebSocket libraries (duplex, duplex-eventloop, gorilla,
# coder, gobwas, gws, nbio): builds bench/echoserver and bench/load, runs
# every scenario against every library one after another, and writes the
# results into docs/benchmarks.md (between its results markers), the plots
# into docs/plots/ and the raw numbers into bench/results/side-by-side.json.
#
# With taskset and at least 2 CPUs, each server runs on CPU 0 and the load
# generator (with its idle-connection children) on CPU 1.
#
# Arguments go to the load generator, e.g. a quick run:
#   bench/run.sh -duration 2s -echo 100x32 -idle 1000,2000
# or to redraw the report from saved numbers without measuring:
#   bench/run.sh -from results/side-by-side.json
# With NODOC=1 nothing is written into docs/ (only the JSON, and the report
# on standard output), e.g. to compare duplex's event-loop mode with
# net/http duplex and nbio without replacing the main results:
#   NODOC=1 bench/run.sh -libs duplex,duplex-eventloop,nbio -idle 1000,19000 -json results/eventloop.json
set -euo pipefail
cd "$(dirname "$0")"
GO="${GO:-go}"

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
"$GO" build -o "$bin/echoserver" ./echoserver
"$GO" build -o "$bin/load" ./load

pin=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	pin=(-pin -server-cpu 0 -load-cpu 1)
else
	echo "run.sh: taskset missing or fewer than 2 CPUs: running unpinned" >&2
fi

json=results/side-by-side.json
for a in "$@"; do
	if [ "$a" = "-from" ]; then json=""; fi
done
doc=(-doc ../docs/benchmarks.md -plots ../docs/plots)
if [ "${NODOC:-}" = 1 ]; then
	doc=()
fi
"$bin/load" -server "$bin/echoserver" "${pin[@]}" ${json:+-json "$json"} "${doc[@]}" "$@"
