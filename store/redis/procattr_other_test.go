//go:build !linux

package redis

import "syscall"

// sysProcAttr: outside Linux, TestMain's cleanup is all there is.
func sysProcAttr() *syscall.SysProcAttr {
	return nil
}
