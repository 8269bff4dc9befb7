package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// DefaultPollInterval is how often a Follower looks at its file by default.
const DefaultPollInterval = 250 * time.Millisecond

const (
	// maxRetryDelay caps the back-off while the Sink refuses events.
	maxRetryDelay = 30 * time.Second
	// readChunk is how much is read from the log at a time.
	readChunk = 256 << 10
)

// FollowerOptions configure a Follower. The zero value is usable.
type FollowerOptions struct {
	// Offsets persists the position so that a restart resumes where the
	// last run stopped. Nil means no persistence: every Start begins anew.
	Offsets OffsetStore
	// PollInterval is how often the file is checked for new lines,
	// rotation and truncation. Zero means DefaultPollInterval.
	PollInterval time.Duration
	// BatchSize is the most events handed to the Sink at once. Zero means
	// DefaultBatchSize.
	BatchSize int
	// MaxLineBytes is the longest line accepted; longer lines are counted
	// as malformed and skipped. Zero means DefaultMaxLineBytes.
	MaxLineBytes int
	// StartAtEnd starts after the last complete line of the file instead of
	// at its beginning when there is no saved position: for a first run
	// against a large existing log whose history is not wanted.
	StartAtEnd bool
	// Logger receives malformed lines (as file:line), rotations and
	// retries. Nil discards.
	Logger *slog.Logger
}

// Follower tails the audit log the API server writes with --audit-log-path:
// one JSON event per line, handed to a Sink in batches.
//
// It polls (no inotify: it works on every file system, including network
// and overlay ones) and follows the file across rotation:
//
//   - by rename (the API server's own --audit-log-maxsize rotation): the
//     old file is read to its end, including a last line without newline,
//     before the new one is opened. This assumes the writer moved to the
//     new file; the API server does not reopen its log when someone else
//     renames it, so an external logrotate must use copytruncate;
//   - by truncation (logrotate's copytruncate): reading restarts at offset
//     0. Lines written between the copy and the truncation are lost; that
//     is inherent to copytruncate.
//
// A line without its newline is still being written and waits. Blank lines
// are ignored; a line that is not an audit event is counted, logged as
// file:line and skipped.
//
// With an OffsetStore, the position after the last line of each batch is
// saved once the Sink accepted the batch, and only then: after a restart,
// no event is passed twice and none is skipped, as long as the file
// identified by the saved position still exists (a file rotated while the
// Follower was stopped is looked for by device and inode in the same
// directory). A batch the Sink refuses is offered again, with exponential
// back-off from PollInterval up to 30 s, and the file is not read further
// until it is accepted.
type Follower struct {
	path string
	sink Sink
	opts FollowerOptions
	log  *slog.Logger
	cnt  counters
}

// NewFollower returns a Follower of the audit log at path.
func NewFollower(path string, sink Sink, opts FollowerOptions) (*Follower, error) {
	if path == "" {
		return nil, errors.New("audit follower: no path")
	}
	if sink == nil {
		return nil, errors.New("audit follower: no sink")
	}
	if opts.PollInterval < 0 || opts.BatchSize < 0 || opts.MaxLineBytes < 0 {
		return nil, errors.New("audit follower: negative option")
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.MaxLineBytes == 0 {
		opts.MaxLineBytes = DefaultMaxLineBytes
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Follower{path: path, sink: sink, opts: opts, log: log.With("file", path)}, nil
}

// Stats returns the counters: Received events accepted by the Sink and
// Malformed lines skipped. A Follower never drops: it retries.
func (f *Follower) Stats() Stats { return f.cnt.snapshot() }

// Start follows the file until ctx is done, then returns nil. It blocks. It
// waits for the file if it does not exist yet. It returns an error only when
// it cannot start: the saved position cannot be loaded, or the path cannot
// be opened for a reason other than not existing yet. Errors after that
// (the Sink, reading, saving the position) are logged and retried. Start
// must not be called again while it runs.
func (f *Follower) Start(ctx context.Context) error {
	t, err := f.open(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer t.close()
	delay := f.opts.PollInterval
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		err := t.step(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			delay = min(2*delay, maxRetryDelay)
			f.log.Warn("audit follower: will retry", "error", err, "retry_in", delay.String(), "offset", t.pos.Offset)
		} else {
			delay = f.opts.PollInterval
		}
		timer.Reset(delay)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
	}
}

// tail is the state of one Start: the open file and how far it was read,
// processed and committed.
type tail struct {
	f    *Follower
	file *os.File
	info os.FileInfo
	// pos is the committed position: everything before pos.Offset was
	// accepted by the Sink.
	pos Position
	// buf holds the bytes of the file from scanOff to readOff; lines
	// before cursor have been processed.
	buf              []byte
	scanOff, readOff int64
	cursor           int
	// doneOff and doneLine are the end of the processed lines: what pos
	// becomes once batch is accepted.
	doneOff, doneLine int64
	// skipping is set inside a line longer than MaxLineBytes, which is
	// discarded up to its newline.
	skipping bool
	batch    []Event
}

func (f *Follower) open(ctx context.Context) (*tail, error) {
	var saved Position
	var haveSaved bool
	if f.opts.Offsets != nil {
		var err error
		saved, haveSaved, err = f.opts.Offsets.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("audit follower: %w", err)
		}
	}
	file, err := f.waitForFile(ctx)
	if err != nil {
		return nil, err
	}
	info, err := file.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("audit follower: %s: %w", f.path, err)
	}
	t := &tail{f: f, file: file, info: info}
	dev, ino, hasID := fileID(info)
	start := Position{Path: f.path, Device: dev, Inode: ino}

	switch {
	case haveSaved && saved.Path != f.path:
		f.log.Info("audit follower: saved position is for another file; ignoring it", "saved_file", saved.Path)
		if err := t.startFresh(&start); err != nil {
			return nil, err
		}
	case haveSaved && sameFile(saved, dev, ino, hasID) && info.Size() >= saved.Offset && matchesFingerprint(file, saved):
		start = saved
		f.log.Info("audit follower: resuming", "offset", saved.Offset, "line", saved.Line)
	case haveSaved && hasID && saved.Inode != 0 && !sameFile(saved, dev, ino, hasID):
		if old, oldInfo := findRotated(f.path, saved); old != nil {
			// Finish the rotated file first; step switches to the new
			// one when it reaches the end.
			file.Close()
			t.file, t.info = old, oldInfo
			start = saved
			f.log.Info("audit follower: resuming a file rotated while stopped", "rotated_file", old.Name(), "offset", saved.Offset)
		} else {
			f.log.Warn("audit follower: the file was rotated while stopped and is gone; its lines after the saved offset were not read",
				"offset", saved.Offset, "line", saved.Line)
		}
	case haveSaved:
		f.log.Warn("audit follower: the file was truncated or replaced while stopped; reading it from the start",
			"offset", saved.Offset)
	default:
		if err := t.startFresh(&start); err != nil {
			return nil, err
		}
	}
	t.pos = start
	t.scanOff, t.readOff, t.doneOff, t.doneLine = start.Offset, start.Offset, start.Offset, start.Line
	return t, nil
}

// startFresh sets where to start without a usable saved position: the
// beginning, or after the last complete line with StartAtEnd.
func (t *tail) startFresh(pos *Position) error {
	if !t.f.opts.StartAtEnd {
		return nil
	}
	lines, end, err := countLines(t.file, t.info.Size())
	if err != nil {
		return fmt.Errorf("audit follower: %s: %w", t.f.path, err)
	}
	pos.Offset, pos.Line = end, lines
	if n := int(min(end, fingerprintBytes)); n > 0 {
		if pos.Fingerprint, err = fingerprint(t.file, n); err != nil {
			return fmt.Errorf("audit follower: %s: %w", t.f.path, err)
		}
		pos.FingerprintLen = n
	}
	return nil
}

func (f *Follower) waitForFile(ctx context.Context) (*os.File, error) {
	logged := false
	for {
		file, err := os.Open(f.path)
		if err == nil {
			return file, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("audit follower: %w", err)
		}
		if !logged {
			f.log.Info("audit follower: waiting for the file to appear")
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(f.opts.PollInterval):
		}
	}
}

func sameFile(pos Position, dev, ino uint64, hasID bool) bool {
	if !hasID || pos.Inode == 0 {
		return true // only the fingerprint can tell
	}
	return pos.Device == dev && pos.Inode == ino
}

// findRotated looks in path's directory for the file pos was in, renamed
// by a rotation, and opens it.
func findRotated(path string, pos Position) (*os.File, os.FileInfo) {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if dev, ino, ok := fileID(info); !ok || dev != pos.Device || ino != pos.Inode || info.Size() < pos.Offset {
			continue
		}
		file, err := os.Open(filepath.Join(dir, e.Name())) //nolint:gosec // G304: a file beside the configured log
		if err != nil {
			return nil, nil
		}
		if !matchesFingerprint(file, pos) {
			file.Close()
			return nil, nil
		}
		return file, info
	}
	return nil, nil
}

func (t *tail) close() {
	if t.file != nil {
		t.file.Close()
	}
}

// step processes everything the file holds now, then checks for rotation.
// An error means a batch is still waiting for the Sink, or the file could
// not be read; step is called again after a back-off and carries on where it
// stopped.
func (t *tail) step(ctx context.Context) error {
	// Truncation first: reading on from the old offset of a truncated and
	// rewritten file would start in the middle of its lines.
	t.checkTruncated(ctx)
	if err := t.readToEnd(ctx); err != nil {
		return err
	}
	return t.checkRotated(ctx)
}

// readToEnd processes lines until the end of the file, delivering full
// batches as it goes and what remains at the end.
func (t *tail) readToEnd(ctx context.Context) error {
	for {
		if len(t.batch) >= t.f.opts.BatchSize {
			if err := t.flush(ctx); err != nil {
				return err
			}
		}
		if t.process() {
			continue
		}
		n, err := t.read()
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			return t.flush(ctx)
		}
	}
}

// process turns the complete lines in buf into events until the batch is
// full; it reports whether it stopped because the batch is.
func (t *tail) process() bool {
	for len(t.batch) < t.f.opts.BatchSize {
		rest := t.buf[t.cursor:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if len(rest) > t.f.opts.MaxLineBytes {
				// Drop what there is of the long line; doneOff stays
				// at its start until its newline is found.
				t.skipping = true
				t.scanOff += int64(len(t.buf))
				t.buf, t.cursor = t.buf[:0], 0
			}
			return false
		}
		t.cursor += i + 1
		t.doneOff = t.scanOff + int64(t.cursor)
		t.doneLine++
		if t.skipping || i > t.f.opts.MaxLineBytes {
			t.skipping = false
			t.malformed(t.doneLine, fmt.Errorf("line longer than %d bytes", t.f.opts.MaxLineBytes))
			continue
		}
		t.line(rest[:i], t.doneLine)
	}
	return true
}

// line decodes one line into the batch.
func (t *tail) line(data []byte, lineNo int64) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return
	}
	n := len(t.batch)
	t.batch = append(t.batch, Event{})
	e := &t.batch[n]
	err := DecodeEvent(data, e)
	if err == nil {
		err = checkEvent(e)
	}
	if err != nil {
		t.batch = t.batch[:n]
		t.malformed(lineNo, err)
	}
}

func (t *tail) malformed(lineNo int64, err error) {
	t.f.cnt.malformed.Add(1)
	rerr := &RecordError{Source: t.file.Name(), Line: int(lineNo), Err: err}
	t.f.log.Warn("audit follower: skipped malformed line", "line", lineNo, "error", rerr)
}

// read appends what the file holds after readOff to buf. It returns 0 at
// the end of the file.
func (t *tail) read() (int, error) {
	if t.cursor > 0 {
		t.buf = t.buf[:copy(t.buf, t.buf[t.cursor:])]
		t.scanOff += int64(t.cursor)
		t.cursor = 0
	}
	if cap(t.buf)-len(t.buf) < readChunk/2 {
		grown := make([]byte, len(t.buf), max(2*cap(t.buf), len(t.buf)+readChunk))
		copy(grown, t.buf)
		t.buf = grown
	}
	end := min(cap(t.buf), len(t.buf)+4*readChunk)
	n, err := t.file.ReadAt(t.buf[len(t.buf):end], t.readOff)
	t.buf = t.buf[:len(t.buf)+n]
	t.readOff += int64(n)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// flush hands the batch to the Sink and, once it is accepted, commits the
// position after it. The batch stays for the next attempt if the Sink
// refuses it.
func (t *tail) flush(ctx context.Context) error {
	if len(t.batch) > 0 {
		if err := t.f.sink.Receive(ctx, t.batch); err != nil {
			return fmt.Errorf("deliver %d events: %w", len(t.batch), err)
		}
		t.f.cnt.received.Add(uint64(len(t.batch)))
		clear(t.batch)
		t.batch = t.batch[:0]
	}
	t.commit(ctx)
	return nil
}

// commit saves the position after the processed lines if it moved.
func (t *tail) commit(ctx context.Context) {
	if t.doneOff == t.pos.Offset && t.doneLine == t.pos.Line {
		return
	}
	t.pos.Offset, t.pos.Line = t.doneOff, t.doneLine
	if t.pos.FingerprintLen < fingerprintBytes && t.pos.Offset > int64(t.pos.FingerprintLen) {
		n := int(min(t.pos.Offset, fingerprintBytes))
		if fp, err := fingerprint(t.file, n); err == nil {
			t.pos.Fingerprint, t.pos.FingerprintLen = fp, n
		}
	}
	t.save(ctx)
}

func (t *tail) save(ctx context.Context) {
	if t.f.opts.Offsets == nil {
		return
	}
	// A failed save is retried with the next commit; until then a restart
	// would pass some events again, but none is lost.
	if err := t.f.opts.Offsets.Save(ctx, t.pos); err != nil && ctx.Err() == nil {
		t.f.log.Error("audit follower: cannot save position", "offset", t.pos.Offset, "error", err)
	}
}

// checkTruncated starts over at the beginning of the file if it is shorter
// than what was read, or no longer starts with the bytes committed.
func (t *tail) checkTruncated(ctx context.Context) {
	info, err := t.file.Stat()
	if err != nil {
		return
	}
	if info.Size() < t.readOff || !matchesFingerprint(t.file, t.pos) {
		t.f.log.Info("audit follower: file truncated; reading it from the start", "offset", t.readOff)
		t.reset(t.file, t.info)
		t.save(ctx)
	}
}

// checkRotated switches to a new file at the path, once the current one
// has been read to its end.
func (t *tail) checkRotated(ctx context.Context) error {
	info, err := os.Stat(t.f.path)
	if errors.Is(err, fs.ErrNotExist) {
		// Renamed away and not yet recreated: keep the old file, which
		// may still be written to until then.
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if os.SameFile(info, t.info) {
		return nil
	}
	return t.rotate(ctx)
}

// rotate finishes the renamed file and switches to the new one.
func (t *tail) rotate(ctx context.Context) error {
	// The writer has moved to the new file: whatever the old one holds is
	// final, including a last line without newline.
	if err := t.readToEnd(ctx); err != nil {
		return err
	}
	if rest := t.buf[t.cursor:]; len(rest) > 0 || t.skipping {
		t.cursor = len(t.buf)
		t.doneOff = t.scanOff + int64(t.cursor)
		t.doneLine++
		if t.skipping {
			t.skipping = false
			t.malformed(t.doneLine, fmt.Errorf("line longer than %d bytes", t.f.opts.MaxLineBytes))
		} else {
			t.line(rest, t.doneLine)
		}
		if err := t.flush(ctx); err != nil {
			return err
		}
	}
	file, err := os.Open(t.f.path)
	if err != nil {
		return fmt.Errorf("open rotated-in file: %w", err)
	}
	info, err := file.Stat()
	if err != nil {
		file.Close()
		return fmt.Errorf("open rotated-in file: %w", err)
	}
	t.f.log.Info("audit follower: file rotated; following the new one", "previous_lines", t.doneLine)
	t.file.Close()
	t.reset(file, info)
	t.save(ctx)
	return t.readToEnd(ctx)
}

// reset starts over at the beginning of file.
func (t *tail) reset(file *os.File, info os.FileInfo) {
	dev, ino, _ := fileID(info)
	t.file, t.info = file, info
	t.pos = Position{Path: t.f.path, Device: dev, Inode: ino}
	t.buf, t.cursor, t.skipping = t.buf[:0], 0, false
	t.scanOff, t.readOff, t.doneOff, t.doneLine = 0, 0, 0, 0
}
