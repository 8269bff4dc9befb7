package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kustode/kustode/internal/testutil"
)

const testPoll = 100 * time.Millisecond

// line returns audit event n as a log line.
func line(n int) string {
	return fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"id-%d","stage":"ResponseComplete","verb":"get"}`+"\n", n)
}

func lines(from, to int) string {
	var b strings.Builder
	for n := from; n <= to; n++ {
		b.WriteString(line(n))
	}
	return b.String()
}

func appendFile(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// ids lists the audit IDs of events as "1,2,3" (the numbers of id-N).
func ids(events []Event) string {
	var s []string
	for _, e := range events {
		s = append(s, strings.TrimPrefix(e.AuditID, "id-"))
	}
	return strings.Join(s, ",")
}

// running is a Follower started in the background of a synctest bubble.
type running struct {
	f    *Follower
	stop func() error
}

func startFollower(t *testing.T, path string, sink Sink, opts FollowerOptions) *running {
	t.Helper()
	if opts.PollInterval == 0 {
		opts.PollInterval = testPoll
	}
	f, err := NewFollower(path, sink, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Start(ctx) }()
	synctest.Wait()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return &running{f: f, stop: stop}
}

// tick lets one poll interval pass, and the Follower finish its poll.
func tick() {
	time.Sleep(testPoll + time.Millisecond)
	synctest.Wait()
}

func TestFollowerLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		appendFile(t, path, lines(1, 3))
		sink := &recordingSink{}
		var logs testutil.SyncBuffer
		r := startFollower(t, path, sink, FollowerOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		tick()
		if got := ids(sink.received()); got != "1,2,3" {
			t.Fatalf("received %s, want 1,2,3", got)
		}

		// A line being written waits for its newline.
		full := line(4)
		appendFile(t, path, full[:40])
		tick()
		if got := ids(sink.received()); got != "1,2,3" {
			t.Fatalf("a partial line was processed: received %s", got)
		}
		appendFile(t, path, full[40:])
		tick()
		if got := ids(sink.received()); got != "1,2,3,4" {
			t.Fatalf("received %s after the line was completed, want 1,2,3,4", got)
		}

		// Bad lines are counted, reported as file:line and skipped;
		// blank lines are ignored.
		appendFile(t, path, "not json\n\n{\"kind\":\"Pod\"}\n"+line(5))
		tick()
		if got := ids(sink.received()); got != "1,2,3,4,5" {
			t.Fatalf("received %s, want 1,2,3,4,5", got)
		}
		if st := r.f.Stats(); st.Malformed != 2 || st.Received != 5 {
			t.Fatalf("Stats() = %+v, want 5 received, 2 malformed", st)
		}
		for _, want := range []string{path + ":5: invalid JSON", path + `:7: kind`} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("logs lack %q:\n%s", want, logs.String())
			}
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Start() = %v after cancel, want nil", err)
		}
	})
}

func TestFollowerRotationByRename(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "audit.log")
		appendFile(t, path, lines(1, 3))
		sink := &recordingSink{}
		startFollower(t, path, sink, FollowerOptions{})
		tick()

		// The writer adds to the old file, renames it, and goes on in a
		// new one; its last line in the old file has no newline.
		appendFile(t, path, line(4)+strings.TrimSuffix(line(5), "\n"))
		if err := os.Rename(path, filepath.Join(dir, "audit-2025-03-14T09-26-53.000.log")); err != nil {
			t.Fatal(err)
		}
		appendFile(t, path, lines(6, 7))
		tick()
		if got := ids(sink.received()); got != "1,2,3,4,5,6,7" {
			t.Fatalf("received %s, want 1..7 in order", got)
		}

		// And again, with nothing left in the old file.
		if err := os.Rename(path, filepath.Join(dir, "audit.log.1")); err != nil {
			t.Fatal(err)
		}
		tick() // no file at path for a while
		appendFile(t, path, line(8))
		tick()
		if got := ids(sink.received()); got != "1,2,3,4,5,6,7,8" {
			t.Fatalf("received %s, want 1..8", got)
		}
	})
}

func TestFollowerRotationByTruncation(t *testing.T) {
	tests := []struct {
		name  string
		after string // written after the truncation
		want  string
	}{
		{name: "shorter than before", after: lines(10, 10), want: "1,2,3,10"},
		// The file grew past the old offset before the poll: only the
		// fingerprint of its first bytes shows it was truncated.
		{name: "longer than before", after: lines(10, 15), want: "1,2,3,10,11,12,13,14,15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "audit.log")
				appendFile(t, path, lines(1, 3))
				sink := &recordingSink{}
				startFollower(t, path, sink, FollowerOptions{})
				tick()
				if err := os.Truncate(path, 0); err != nil {
					t.Fatal(err)
				}
				appendFile(t, path, tt.after)
				tick()
				if got := ids(sink.received()); got != tt.want {
					t.Fatalf("received %s, want %s", got, tt.want)
				}
			})
		})
	}
}

func TestFollowerResume(t *testing.T) {
	tests := []struct {
		name string
		// whileStopped changes the log between two runs.
		whileStopped func(t *testing.T, path string)
		want         string // events of the second run
	}{
		{
			name:         "appended",
			whileStopped: func(t *testing.T, path string) { appendFile(t, path, lines(4, 5)) },
			want:         "4,5",
		},
		{
			name:         "nothing new",
			whileStopped: func(*testing.T, string) {},
			want:         "",
		},
		{
			name: "rotated by rename",
			whileStopped: func(t *testing.T, path string) {
				appendFile(t, path, lines(4, 5))
				if err := os.Rename(path, path+".1"); err != nil {
					t.Fatal(err)
				}
				appendFile(t, path, lines(6, 7))
			},
			want: "4,5,6,7",
		},
		{
			name: "rotated and the old file removed",
			whileStopped: func(t *testing.T, path string) {
				appendFile(t, path, lines(4, 5))
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				appendFile(t, path, lines(6, 7))
			},
			want: "6,7", // 4 and 5 are gone with the file; a warning says so
		},
		{
			name: "truncated",
			whileStopped: func(t *testing.T, path string) {
				if err := os.Truncate(path, 0); err != nil {
					t.Fatal(err)
				}
				appendFile(t, path, lines(20, 24))
			},
			want: "20,21,22,23,24",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "audit.log")
				store := NewFileOffsetStore(filepath.Join(dir, "offset.json"))
				appendFile(t, path, lines(1, 3))

				first := &recordingSink{}
				r := startFollower(t, path, first, FollowerOptions{Offsets: store})
				tick()
				if err := r.stop(); err != nil {
					t.Fatal(err)
				}
				if got := ids(first.received()); got != "1,2,3" {
					t.Fatalf("first run received %s", got)
				}
				pos, ok, err := store.Load(t.Context())
				if err != nil || !ok || pos.Line != 3 || pos.Offset != int64(len(lines(1, 3))) || pos.FingerprintLen == 0 {
					t.Fatalf("saved position = %+v, %v, %v", pos, ok, err)
				}

				tt.whileStopped(t, path)

				second := &recordingSink{}
				startFollower(t, path, second, FollowerOptions{Offsets: store})
				tick()
				if got := ids(second.received()); got != tt.want {
					t.Fatalf("second run received %q, want %q", got, tt.want)
				}
			})
		})
	}
}

func TestFollowerSinkFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "audit.log")
		store := NewFileOffsetStore(filepath.Join(dir, "offset.json"))
		appendFile(t, path, lines(1, 2))
		sink := &recordingSink{}
		r := startFollower(t, path, sink, FollowerOptions{Offsets: store, BatchSize: 2})
		tick()

		sink.setFail(errors.New("downstream unavailable"))
		appendFile(t, path, lines(3, 5))
		for range 5 {
			tick()
		}
		// Nothing past the refused batch is committed.
		pos, _, _ := store.Load(t.Context())
		if pos.Line != 2 {
			t.Fatalf("position moved to line %d while the sink refused events", pos.Line)
		}

		sink.setFail(nil)
		time.Sleep(maxRetryDelay) // longest back-off
		synctest.Wait()
		if got := ids(sink.received()); got != "1,2,3,4,5" {
			t.Fatalf("received %s, want each of 1..5 once", got)
		}
		pos, _, _ = store.Load(t.Context())
		if pos.Line != 5 {
			t.Fatalf("position at line %d, want 5", pos.Line)
		}
		if st := r.f.Stats(); st.Received != 5 || st.Dropped != 0 {
			t.Fatalf("Stats() = %+v", st)
		}
	})
}

func TestFollowerBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		appendFile(t, path, lines(1, 5))
		var sizes []int
		var mu sync.Mutex
		sink := SinkFunc(func(_ context.Context, events []Event) error {
			mu.Lock()
			defer mu.Unlock()
			sizes = append(sizes, len(events))
			return nil
		})
		startFollower(t, path, sink, FollowerOptions{BatchSize: 2})
		tick()
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(sizes, []int{2, 2, 1}) {
			t.Fatalf("batch sizes %v, want [2 2 1]", sizes)
		}
	})
}

func TestFollowerStartAtEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		// The last line is still being written: it is read once complete.
		partial := line(4)
		appendFile(t, path, lines(1, 3)+partial[:30])
		sink := &recordingSink{}
		var logs testutil.SyncBuffer
		startFollower(t, path, sink, FollowerOptions{StartAtEnd: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		tick()
		appendFile(t, path, partial[30:]+"oops\n")
		tick()
		if got := ids(sink.received()); got != "4" {
			t.Fatalf("received %s, want 4", got)
		}
		// Line numbers count the lines skipped.
		if !strings.Contains(logs.String(), path+":5:") {
			t.Fatalf("malformed line not reported as %s:5:\n%s", path, logs.String())
		}
	})
}

func TestFollowerWaitsForFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		sink := &recordingSink{}
		startFollower(t, path, sink, FollowerOptions{})
		tick()
		appendFile(t, path, lines(1, 2))
		tick()
		tick()
		if got := ids(sink.received()); got != "1,2" {
			t.Fatalf("received %s, want 1,2", got)
		}
	})
}

func TestFollowerLongLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		long := `{"kind":"Event","auditID":"long","requestObject":"` + strings.Repeat("x", 3*readChunk) + `"}` + "\n"
		appendFile(t, path, line(1)+long[:readChunk])
		sink := &recordingSink{}
		r := startFollower(t, path, sink, FollowerOptions{MaxLineBytes: readChunk})
		tick()
		appendFile(t, path, long[readChunk:]+line(3))
		tick()
		if got := ids(sink.received()); got != "1,3" {
			t.Fatalf("received %s, want 1,3", got)
		}
		if st := r.f.Stats(); st.Malformed != 1 {
			t.Fatalf("Stats() = %+v, want the long line counted as malformed", st)
		}
	})
}

func TestFollowerStartErrors(t *testing.T) {
	dir := t.TempDir()
	sink := &recordingSink{}
	t.Run("directory", func(t *testing.T) {
		f, err := NewFollower(dir, sink, FollowerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("Start() = %v", err)
		}
	})
	t.Run("corrupt offset file", func(t *testing.T) {
		store := filepath.Join(dir, "offset.json")
		if err := os.WriteFile(store, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
		f, _ := NewFollower(filepath.Join(dir, "audit.log"), sink, FollowerOptions{Offsets: NewFileOffsetStore(store)})
		if err := f.Start(t.Context()); err == nil || !strings.HasPrefix(err.Error(), "audit follower: load audit log offset: ") {
			t.Fatalf("Start() = %v", err)
		}
	})
	t.Run("options", func(t *testing.T) {
		if _, err := NewFollower("", sink, FollowerOptions{}); err == nil {
			t.Error("no path accepted")
		}
		if _, err := NewFollower("x", nil, FollowerOptions{}); err == nil {
			t.Error("no sink accepted")
		}
		if _, err := NewFollower("x", sink, FollowerOptions{BatchSize: -1}); err == nil {
			t.Error("negative batch size accepted")
		}
	})
}

func TestFileOffsetStore(t *testing.T) {
	dir := t.TempDir()
	s := NewFileOffsetStore(filepath.Join(dir, "pos.json"))
	if _, ok, err := s.Load(t.Context()); ok || err != nil {
		t.Fatalf("Load() of nothing = %v, %v", ok, err)
	}
	want := Position{Path: "/var/log/audit.log", Device: 2049, Inode: 1234, Offset: 987, Line: 12, FingerprintLen: 10, Fingerprint: "ab"}
	for range 2 {
		if err := s.Save(t.Context(), want); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := s.Load(t.Context())
	if err != nil || !ok || got != want {
		t.Fatalf("Load() = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d files, want only the position: temporary files left behind", len(entries))
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Save(ctx, want); !errors.Is(err, context.Canceled) {
		t.Fatalf("Save() with a canceled context = %v", err)
	}
	bad := NewFileOffsetStore(filepath.Join(dir, "missing", "pos.json"))
	if err := bad.Save(t.Context(), want); err == nil || !strings.HasPrefix(err.Error(), "save audit log offset: ") {
		t.Fatalf("Save() into a missing directory = %v", err)
	}
}
