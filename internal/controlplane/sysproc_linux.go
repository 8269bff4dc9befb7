package controlplane

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// sysProcAttr makes the kernel kill a control-plane process if the process
// that started it dies without calling Stop (a crashed or killed test binary),
// so no orphaned etcd or API server outlives its test run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// startCmd starts cmd from one OS thread that lives as long as this
// process. Pdeathsig fires when the thread that started the child ends, not
// only the process, and Go ends a thread whenever a goroutine that locked
// it returns without unlocking (the e2e tests' network-namespace helper
// does, on purpose): a child started on such a thread was killed mid-run
// (TestProcessSurvivesThreadExit).
func startCmd(cmd *exec.Cmd) error {
	startThreadOnce.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must not end
			for r := range startRequests {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	startRequests <- startRequest{cmd, done}
	return <-done
}

type startRequest struct {
	cmd  *exec.Cmd
	done chan<- error
}

var (
	startThreadOnce sync.Once
	startRequests   = make(chan startRequest)
)
