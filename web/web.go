// Package web holds the static files that duplex serve hands to browsers:
// the browser SDK (duplex.js and its TypeScript declarations) and, as they
// come, the web apps. They are embedded in the binary so that the server
// needs no file system, no CDN and no network beyond itself.
package web

import "embed"

// FS is the embedded file tree. The server serves duplex.js and
// duplex.d.ts at the root of its URL space (/duplex.js, /duplex.d.ts).
//
//go:embed duplex.js duplex.d.ts
var FS embed.FS
