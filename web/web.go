// Package web holds the static files that duplex serve hands to browsers:
// the browser SDK (duplex.js and its TypeScript declarations) and the web
// apps under app/ (the landing page template, the chat room, the echo
// tester, the ticker, and their shared style sheet). They are embedded in
// the binary so that the server needs no file system, no CDN and no network
// beyond itself.
package web

import "embed"

// FS is the embedded file tree. The server serves duplex.js and
// duplex.d.ts at the root of its URL space (/duplex.js, /duplex.d.ts), the
// apps' scripts and styles under /app/, and their pages at /chat/, /echo/
// and /ticker/.
//
//go:embed duplex.js duplex.d.ts app
var FS embed.FS
