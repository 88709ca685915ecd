//go:build !unix

package main

import (
	"os"

	"golang.org/x/term"
)

// watchResize does nothing where there is no SIGWINCH: the width read at
// the start stays.
func watchResize(tty *os.File, t *term.Terminal) (stop func()) { return func() {} }
