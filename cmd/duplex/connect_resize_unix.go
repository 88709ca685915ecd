//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

// watchResize keeps the line editor's idea of the terminal's width up to
// date when the window is resized (SIGWINCH), so long lines wrap right.
// It returns a function that stops watching.
func watchResize(tty *os.File, t *term.Terminal) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				if w, h, err := term.GetSize(int(tty.Fd())); err == nil && w > 0 && h > 0 {
					t.SetSize(w, h)
				}
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}
