//go:build !linux

package main

import "errors"

// runBroadcast needs epoll to read thousands of subscribers with a few
// goroutines; elsewhere the scenario reports that it cannot run.
func runBroadcast(cfg *config, s *server, b bcastSpec) (BCResult, error) {
	return BCResult{Window: cfg.bcastWindow}, errors.New("the broadcast scenario needs Linux (epoll)")
}
