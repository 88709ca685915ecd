#!/usr/bin/env bash
# Installs what the test suites need, only when it is missing. Idempotent.
#
#   - Debian packages: chromium, python3-websockets, nodejs, npm, the
#     servers the gateway tests bridge to: mosquitto, redis-server, and
#     nats-server (the multi-process cluster test of cmd/duplex)
#   - npm packages for the interop peers (interop/node/node_modules: ws,
#     playwright-core, mqtt)
#
# Run as root (or with sudo available) on a Debian machine that has Go.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_DIR="$ROOT/interop/node"

log() { printf 'install-test-deps: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		log "not root and no sudo: cannot install Debian packages"
	fi
fi

# Each check maps to a Debian package. Node.js and npm are checked by
# command, not by package name: a machine may have Node.js from another
# Debian-format source whose nodejs package already ships npm.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
# Debian's python3-websockets is only importable by the system interpreter.
/usr/bin/python3 -c 'import websockets' >/dev/null 2>&1 || missing+=(python3-websockets)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# The gateway and cluster tests start these servers themselves (on free loopback ports,
# no persistence); the packages' own services are not needed.
[ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
[ -x /usr/sbin/nats-server ] || [ -x /usr/bin/nats-server ] || missing+=(nats-server)

if [ "${#missing[@]}" -gt 0 ]; then
	log "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
	log "Debian packages already present"
fi

if [ ! -f "$NODE_DIR/node_modules/ws/package.json" ] ||
	[ ! -f "$NODE_DIR/node_modules/playwright-core/package.json" ] ||
	[ ! -f "$NODE_DIR/node_modules/mqtt/package.json" ]; then
	log "installing npm packages in interop/node"
	cd "$NODE_DIR"
	if [ -f package-lock.json ]; then
		npm ci --no-audit --no-fund
	else
		npm install --no-audit --no-fund
	fi
else
	log "interop/node/node_modules already present"
fi

log "done"
