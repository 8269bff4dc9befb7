package daemon

import (
	"encoding/binary"
	"errors"
	"math"
	"sync"
	"weak"
)

// Objects of one kind in one namespace are mostly alike: pods of the same
// few workloads, the same sidecars, security contexts, probes, environment
// and the same admission defaults. The inventory keeps each such object as
// its difference from a reference: the encoding of the first object of its
// kind seen in its namespace. A pod's 1.5 KB of protobuf becomes 100 to 300
// bytes; decoding it takes a microsecond or two.
//
// The difference is LZ77 without entropy coding, against the reference
// only: runs of literal bytes and copies of the reference's bytes. Unlike a
// general-purpose compressor primed with a dictionary (compress/flate keeps
// 700 KB of state per dictionary), it needs a small hash table per
// reference, and encodes in a few microseconds.

// reference is the object encoding others are stored as differences from.
// It never changes once made.
type reference struct {
	data []byte
	// table maps a hash of refMatch bytes to one more than a position of
	// data where they occur (0: none).
	table []int32
	shift uint
}

const (
	// refMatch is the shortest copy worth encoding: a copy costs 3 to 4
	// bytes.
	refMatch = 5
	// refTableBits bounds a reference's hash table (4 bytes a slot).
	refTableBits = 14
)

var errCorruptDelta = errors.New("inventory: corrupt object encoding")

func newReference(data []byte) *reference {
	bits := uint(6)
	for 1<<bits < len(data) && bits < refTableBits {
		bits++
	}
	r := &reference{data: data, table: make([]int32, 1<<bits), shift: 32 - bits}
	for i := 0; i+4 <= len(data) && i < math.MaxInt32; i++ {
		h := r.hash(data[i:])
		if r.table[h] == 0 {
			r.table[h] = int32(i + 1) //nolint:gosec // i < MaxInt32
		}
	}
	return r
}

func (r *reference) hash(b []byte) uint32 {
	return (binary.LittleEndian.Uint32(b) * 2654435761) >> r.shift
}

// encode returns the difference of src from r: repeated literal runs
// (uvarint length, bytes), each but the last followed by a copy (uvarint
// length, uvarint position in r.data).
func (r *reference) encode(src []byte) []byte {
	dst := make([]byte, 0, 64)
	lit := 0
	for i := 0; i+4 <= len(src); {
		p := int(r.table[r.hash(src[i:])]) - 1
		n := 0
		if p >= 0 {
			for i+n < len(src) && p+n < len(r.data) && src[i+n] == r.data[p+n] {
				n++
			}
		}
		if n < refMatch {
			i++
			continue
		}
		dst = appendUvarint(dst, i-lit)
		dst = append(dst, src[lit:i]...)
		dst = appendUvarint(dst, n)
		dst = appendUvarint(dst, p)
		i += n
		lit = i
	}
	dst = appendUvarint(dst, len(src)-lit)
	return append(dst, src[lit:]...)
}

// decode returns what enc, a difference from r, encodes.
func (r *reference) decode(enc []byte) ([]byte, error) {
	dst := make([]byte, 0, len(r.data)+len(enc))
	for {
		n, k := uvarint(enc, len(enc))
		if k <= 0 || n > len(enc)-k {
			return nil, errCorruptDelta
		}
		dst = append(dst, enc[k:k+n]...)
		enc = enc[k+n:]
		if len(enc) == 0 {
			return dst, nil
		}
		n, k = uvarint(enc, len(r.data))
		if k <= 0 {
			return nil, errCorruptDelta
		}
		enc = enc[k:]
		p, k := uvarint(enc, len(r.data)-n)
		if k <= 0 {
			return nil, errCorruptDelta
		}
		enc = enc[k:]
		dst = append(dst, r.data[p:p+n]...)
	}
}

func appendUvarint(b []byte, n int) []byte {
	return binary.AppendUvarint(b, uint64(n)) //nolint:gosec // lengths and positions are never negative
}

// uvarint returns the uvarint b starts with and its length in bytes; k <= 0
// when b starts with none, or with one larger than limit (not negative).
func uvarint(b []byte, limit int) (v, k int) {
	u, k := binary.Uvarint(b)
	if k <= 0 || u > uint64(limit) { //nolint:gosec // limit is a length
		return 0, 0
	}
	return int(u), k //nolint:gosec // at most limit
}

// references holds the reference of each kind and namespace, weakly: a
// reference lives as long as an object stored against it, so the
// references of deleted namespaces go with their objects.
type references struct {
	mu    sync.Mutex
	m     map[refKey]weak.Pointer[reference]
	sweep int // sweep dead references when m grows this big
}

type refKey struct {
	kind      *watchedKind
	namespace string
}

// get returns the reference of kind and namespace, making one of data (an
// encoding the caller gives up) when there is none.
func (rs *references) get(kind *watchedKind, namespace string, data []byte) *reference {
	k := refKey{kind, namespace}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r := rs.m[k].Value(); r != nil {
		return r
	}
	if rs.m == nil {
		rs.m = map[refKey]weak.Pointer[reference]{}
	}
	if len(rs.m) >= rs.sweep {
		for k, w := range rs.m {
			if w.Value() == nil {
				delete(rs.m, k)
			}
		}
		rs.sweep = 2*len(rs.m) + 64
	}
	r := newReference(data)
	rs.m[k] = weak.Make(r)
	return r
}
