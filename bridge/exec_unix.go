//go:build unix

package bridge

import "syscall"

// ownGroup starts the command in a process group of its own, so that what
// it starts in turn is signalled with it.
func ownGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// terminateGroup asks the process's whole group to end (SIGTERM).
func (p *process) terminateGroup() { p.signalGroup(syscall.SIGTERM) }

// killGroup ends what is left of the process's group (SIGKILL).
func (p *process) killGroup() { p.signalGroup(syscall.SIGKILL) }

// signalGroup signals the process's whole group. The group's id is the
// process's pid (Setpgid), and cannot be reused while any member lives.
func (p *process) signalGroup(sig syscall.Signal) {
	syscall.Kill(-p.cmd.Process.Pid, sig)
}
