package jsonscan

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"math/rand/v2"
	"testing"
)

func needsAttention(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80 }

// Attention's lowest flagged byte is the first that needs attention, on
// random words and words of the bytes at the edges of each class.
func TestAttention(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	edges := []byte{0, 0x1f, 0x20, 0x21, '"', '\\', 'a', 0x7f, 0x80, 0xff, '[', ']'}
	var b [8]byte
	for n := range 500000 {
		for i := range b {
			if n%2 == 0 {
				b[i] = edges[rng.IntN(len(edges))]
			} else {
				b[i] = byte(rng.Uint32())
			}
		}
		want := -1
		for i, c := range b {
			if needsAttention(c) {
				want = i
				break
			}
		}
		got := -1
		if m := Attention(binary.LittleEndian.Uint64(b[:])); m != 0 {
			got = bits.TrailingZeros64(m) >> 3
		}
		if got != want {
			t.Fatalf("% x: first byte needing attention %d, want %d", b, got, want)
		}
	}
}

func TestIndexAttention(t *testing.T) {
	for _, tc := range []struct {
		data string
		from int
		want int
	}{
		{`abcdefghijklmnop"`, 0, 16},
		{`abc"`, 0, 0}, // fewer than eight bytes: none looked at
		{`abcdefgh\ijkl`, 0, 8},
		{`abcdefghijklmnopq`, 3, 11},
		{"abcdefg\x01", 0, 7},
		{"abcd\xc3\xa9fgh", 0, 4},
	} {
		if got := IndexAttention([]byte(tc.data), tc.from); got != tc.want {
			t.Errorf("IndexAttention(%q, %d) = %d, want %d", tc.data, tc.from, got, tc.want)
		}
	}
}

// SkipString accepts exactly the string literals encoding/json accepts
// and ends where they end.
func FuzzSkipString(f *testing.F) {
	for _, s := range []string{`"a"`, `"\u00e9x"`, `"\q"`, `"abc\"def" rest`, `"unterminated`, "\"\x01\"", `"\ud800"`, `"` + "\xff" + `"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || data[0] != '"' {
			return
		}
		end := SkipString(data, 0)
		if end < 0 {
			// No prefix of data is a valid literal ending at a quote.
			for i := 1; i < len(data); i++ {
				if data[i] == '"' && json.Valid(data[:i+1]) {
					t.Fatalf("%q: refused, but %q is valid", data, data[:i+1])
				}
			}
			return
		}
		if !json.Valid(data[:end]) || data[end-1] != '"' {
			t.Fatalf("%q: accepted %q, which encoding/json refuses", data, data[:end])
		}
	})
}

func TestSkipSpaceAndIsHex(t *testing.T) {
	if got := SkipSpace([]byte(" \t\r\n x"), 0); got != 5 {
		t.Errorf("SkipSpace = %d, want 5", got)
	}
	if got := SkipSpace([]byte("  "), 0); got != 2 {
		t.Errorf("SkipSpace at the end = %d, want 2", got)
	}
	for c := range 256 {
		want := c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
		if IsHex(byte(c)) != want {
			t.Errorf("IsHex(%#x) = %v", c, !want)
		}
	}
}
