// Package interop holds the interoperability tests of the websocket package
// against implementations nobody here wrote: Python's websockets (client and
// server), Node's ws (client and server) and a page in headless Chromium;
// on Linux also the event-loop server of websocket/eventloop against the
// three clients.
//
// The package has no code of its own: everything is in the _test.go files,
// and the peer programs are under python/ and node/. The scenarios every
// pairing runs, plain and with permessage-deflate (the TestCompress tests,
// which also check the bytes that crossed TCP), are described in README.md.
// Install the peers with scripts/install-test-deps.sh; a test whose peer is
// missing skips, or fails when the environment variable CI is "true".
package interop
