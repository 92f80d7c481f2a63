package redis

import "syscall"

// sysProcAttr makes the kernel kill a test's redis-server if the test
// binary dies without cleaning up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
