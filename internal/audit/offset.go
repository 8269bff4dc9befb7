package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// fingerprintBytes is how much of the start of a log file identifies it. The
// first line of an audit log holds an audit ID and timestamps, so two files
// practically never share their first kilobyte.
const fingerprintBytes = 1024

// Position is how far a Follower has processed an audit log. Offset and Line
// are the byte offset and the number of lines before the first line not yet
// accepted by the Sink. The file is identified twice: by Device and Inode
// (zero where the platform has none), which survive a rename, and by a
// fingerprint of its first bytes, which changes when the file is truncated
// and rewritten or its inode reused. A Follower resumes at Offset only in a
// file that matches both.
type Position struct {
	Path   string `json:"path"`
	Device uint64 `json:"device,omitempty"`
	Inode  uint64 `json:"inode,omitempty"`
	Offset int64  `json:"offset"`
	Line   int64  `json:"line"`
	// FingerprintLen is how many bytes from the start of the file
	// Fingerprint covers, at most 1 KiB; Fingerprint is their SHA-256 in
	// hex. Both are empty while the file is.
	FingerprintLen int    `json:"fingerprintLen,omitempty"`
	Fingerprint    string `json:"fingerprint,omitempty"`
}

// OffsetStore persists a Follower's Position across restarts. The Follower
// saves after every batch the Sink accepted, from one goroutine.
type OffsetStore interface {
	// Load returns the saved position; ok is false when none was saved.
	Load(ctx context.Context) (pos Position, ok bool, err error)
	// Save replaces the saved position. When it returns nil the position
	// must survive a crash of the process.
	Save(ctx context.Context, pos Position) error
}

// FileOffsetStore keeps a Position as a small JSON file. Save writes a
// temporary file in the same directory, syncs it and renames it over the old
// one, so a crash leaves either the old or the new position, never a torn
// one.
type FileOffsetStore struct {
	path string
}

var _ OffsetStore = (*FileOffsetStore)(nil)

// NewFileOffsetStore returns a store that keeps its position in path. The
// directory must exist and be writable.
func NewFileOffsetStore(path string) *FileOffsetStore {
	return &FileOffsetStore{path: path}
}

// Load reads the position file; a missing file is not an error.
func (s *FileOffsetStore) Load(ctx context.Context) (Position, bool, error) {
	if err := ctx.Err(); err != nil {
		return Position{}, false, err
	}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return Position{}, false, nil
	}
	if err != nil {
		return Position{}, false, fmt.Errorf("load audit log offset: %w", err)
	}
	var pos Position
	if err := json.Unmarshal(data, &pos); err != nil {
		return Position{}, false, fmt.Errorf("load audit log offset: %s: %w", s.path, err)
	}
	return pos, true, nil
}

// Save writes the position atomically and durably.
func (s *FileOffsetStore) Save(ctx context.Context, pos Position) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := json.Marshal(pos)
	if err != nil {
		return fmt.Errorf("save audit log offset: %w", err)
	}
	dir, base := filepath.Split(s.path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, base+".tmp*")
	if err != nil {
		return fmt.Errorf("save audit log offset: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // fails once renamed, as it should
	_, err = tmp.Write(append(data, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path)
	}
	if err != nil {
		return fmt.Errorf("save audit log offset: %w", err)
	}
	// Make the rename itself durable. Not every platform can sync a
	// directory; the rename is atomic regardless.
	if d, err := os.Open(dir); err == nil { //nolint:gosec // G304: the directory of the configured offset file
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// fingerprint hashes the first n bytes of f.
func fingerprint(f io.ReaderAt, n int) (string, error) {
	if n <= 0 {
		return "", nil
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return "", err
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:]), nil
}

// matchesFingerprint reports whether f starts with the bytes pos was
// fingerprinted from.
func matchesFingerprint(f io.ReaderAt, pos Position) bool {
	if pos.FingerprintLen == 0 {
		return true
	}
	got, err := fingerprint(f, pos.FingerprintLen)
	return err == nil && got == pos.Fingerprint
}

// countLines returns the number of lines in f before offset end and the
// offset just after the last newline before end.
func countLines(f io.ReaderAt, end int64) (lines, lastLineEnd int64, err error) {
	buf := make([]byte, 256<<10)
	for off := int64(0); off < end; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		chunk := buf[:n]
		lines += int64(bytes.Count(chunk, []byte{'\n'}))
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			lastLineEnd = off + int64(i) + 1
		}
		off += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return 0, 0, err
		}
	}
	return lines, lastLineEnd, nil
}
