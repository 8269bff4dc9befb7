// Package jsonscan holds the byte-scanning primitive kustode's hand-written
// JSON readers share (the audit event decoder, the detection rules' walk of
// recorded objects): finding, eight bytes at a time, the first byte of a
// string literal that needs attention.
package jsonscan

import (
	"encoding/binary"
	"math/bits"
)

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// Attention returns, for the eight bytes in x (the first in the low bits),
// a mask whose lowest set bit is the high bit of the first that is a quote,
// a backslash, a control character or not ASCII; zero when none is. Bits
// above the lowest may be set for bytes that need no attention (a borrow
// carries into them), so only the lowest one says where.
//
// Bytes before the first that needs attention neither borrow nor set a
// high bit in any term: (v-lsb)&^v sets it where v is zero (a quote or a
// backslash), x-0x20*lsb where x < 0x20, and x itself where x >= 0x80.
func Attention(x uint64) uint64 {
	quote := x ^ (lsb * '"')
	backslash := x ^ (lsb * '\\')
	return ((quote-lsb)&^quote | (backslash-lsb)&^backslash | (x - lsb*0x20) | x) & msb
}

// IndexAttention returns the index of the first byte of data at or after
// i that needs attention in a string literal (see Attention), or the index
// of the last few bytes, fewer than eight, that it did not look at.
func IndexAttention(data []byte, i int) int {
	for i+8 <= len(data) {
		if m := Attention(binary.LittleEndian.Uint64(data[i : i+8])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	return i
}

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func SkipSpace(data []byte, i int) int {
	for i < len(data) && data[i] <= ' ' && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t') {
		i++
	}
	return i
}

// SkipString returns the index after the valid string literal whose
// opening quote is at i, or -1 if it is invalid or unterminated. Bytes that
// are not ASCII need no check: encoding/json keeps invalid UTF-8 in raw
// values, and replaces it only in strings it decodes.
func SkipString(data []byte, i int) int {
	i++
	for {
		if i = IndexAttention(data, i); i >= len(data) {
			return -1
		}
		switch c := data[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= len(data) {
				return -1
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) || !IsHex(data[i+2]) || !IsHex(data[i+3]) || !IsHex(data[i+4]) || !IsHex(data[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		case c < 0x20:
			return -1
		default: // not ASCII, or a plain byte of the last few
			i++
		}
	}
}

// IsHex reports whether c is a hexadecimal digit.
func IsHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
