package controlplane

import "syscall"

// sysProcAttr makes the kernel kill a control-plane process if the process
// that started it dies without calling Stop (a crashed or killed test binary),
// so no orphaned etcd or API server outlives its test run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
