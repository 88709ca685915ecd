//go:build !amd64 || purego

package websocket

import "testing"

// maskImpls returns the only path of maskBytes on this platform: Go.
func maskImpls() []maskImpl {
	return []maskImpl{{"go", func(testing.TB) bool { return true }}}
}
