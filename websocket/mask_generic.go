//go:build !amd64 || purego

package websocket

// maskAsm reports whether maskBlocks has an assembly version: not on this
// platform (or with the purego build tag), so maskBytes is plain Go.
const maskAsm = false

// maskAsmMin is unused without assembly; it exists so that maskBytes
// compiles the same everywhere.
const maskAsmMin = 0

// maskBlocks masks nothing without assembly; maskBytes never calls it.
func maskBlocks(k uint32, b []byte) int { return 0 }
