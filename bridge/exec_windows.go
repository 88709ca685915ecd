//go:build windows

package bridge

import "syscall"

// Windows has no signals to send another process and no process groups
// that a kill reaches whole: the command gets EOF on stdin when its client
// leaves, and KillTimeout later it is ended with TerminateProcess. What it
// started itself is not ended with it (docs/gateways.md).

// ownGroup starts the command in a new process group, so that a Ctrl+C
// in the console of duplex exec does not reach it before the bridge ends
// it.
func ownGroup() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}

// terminateGroup does nothing: there is no SIGTERM; the closed stdin is
// the command's notice.
func (p *process) terminateGroup() {}

// killGroup ends the process (TerminateProcess).
func (p *process) killGroup() { p.cmd.Process.Kill() }
