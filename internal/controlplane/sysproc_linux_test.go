package controlplane

import (
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A process outlives the OS thread that asked for it. Pdeathsig kills a
// child when the thread that started it ends, not the whole parent, and Go
// ends a thread when a goroutine that locked it returns (the e2e tests'
// network-namespace helper does): a control-plane process started on such
// a thread died mid-run (a kube-scheduler in CI). Here a goroutine locks
// its thread (not the main thread, which Go never ends), starts a process
// and returns; the process must still run.
func TestProcessSurvivesThreadExit(t *testing.T) {
	dir := t.TempDir()
	started := make(chan *process, 1)
	for attempt := 0; ; attempt++ {
		onMain := make(chan bool, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			if unix.Gettid() == unix.Getpid() {
				onMain <- true
				return
			}
			onMain <- false
			p, err := startProcess("sleeper", "/bin/sh", []string{"-c", "exec sleep 60"}, filepath.Join(dir, "sleeper.log"))
			if err != nil {
				t.Error(err)
			}
			started <- p
		}()
		if !<-onMain {
			break
		}
		if attempt == 10 {
			t.Skip("11 goroutines in a row ran on the main thread, which Go never ends, so there was no thread to end; any other run tests it")
		}
	}
	p := <-started
	if p == nil {
		t.FailNow()
	}
	t.Cleanup(func() { _ = p.stop(10 * time.Second) })
	select {
	case <-p.done:
		t.Fatalf("the process died with the thread that started it: %v", p.waitErr)
	case <-time.After(500 * time.Millisecond):
	}
}
