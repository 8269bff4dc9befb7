package audit

import "github.com/kustode/kustode/internal/jsonscan"

// Why a second skipper: requestObject, responseObject and the fields no
// rule reads (responseStatus.details, v1beta1 metadata) are most of an
// event's bytes, and skip spends a few function calls per token on them
// (nextKey, skip, scanString, one recursion per level). skipFast validates
// the same grammar in one loop, with the nesting kept in a bit stack. It
// only says whether the value is valid: at anything it does not accept it
// gives up, and skip goes over the value again to name the problem, so
// error messages and offsets do not depend on which of the two ran.

// fastDepth is how deep skipFast follows nesting, the bits of its stack;
// deeper values are left to skip.
const fastDepth = 64

// skipFast consumes one value of any type, validating it as skip does, and
// reports true; or reports false, leaving d.pos alone, when the value is
// invalid or nested deeper than fastDepth (or than maxDepth allows).
func (d *decoder) skipFast() bool {
	data := d.data
	n := len(data)
	i := d.pos
	limit := min(fastDepth, maxDepth-d.depth)
	// Bit k of stack is set when the container k+1 levels down is an
	// object, clear when it is an array; depth counts the levels.
	var stack uint64
	depth := 0
	var c byte

value: // i is at the first byte of a value.
	if i >= n {
		return false
	}
	switch c = data[i]; c {
	case '{':
		if depth == limit {
			return false
		}
		stack, depth = stack<<1|1, depth+1
		i = jsonscan.SkipSpace(data, i+1)
		if i < n && data[i] == '}' {
			i++
			stack, depth = stack>>1, depth-1
			goto after
		}
		goto key
	case '[':
		if depth == limit {
			return false
		}
		stack, depth = stack<<1, depth+1
		i = jsonscan.SkipSpace(data, i+1)
		if i < n && data[i] == ']' {
			i++
			stack, depth = stack>>1, depth-1
			goto after
		}
		goto value
	case '"':
		if i = jsonscan.SkipString(data, i); i < 0 {
			return false
		}
		goto after
	case 't':
		if i+4 > n || string(data[i:i+4]) != "true" {
			return false
		}
		i += 4
		goto after
	case 'f':
		if i+5 > n || string(data[i:i+5]) != "false" {
			return false
		}
		i += 5
		goto after
	case 'n':
		if i+4 > n || string(data[i:i+4]) != "null" {
			return false
		}
		i += 4
		goto after
	default:
		if i = skipNumber(data, i); i < 0 {
			return false
		}
		goto after
	}

key: // i is where an object key must start.
	if i >= n || data[i] != '"' {
		return false
	}
	if i = jsonscan.SkipString(data, i); i < 0 {
		return false
	}
	i = jsonscan.SkipSpace(data, i)
	if i >= n || data[i] != ':' {
		return false
	}
	i = jsonscan.SkipSpace(data, i+1)
	goto value

after: // A value ended at i; what follows depends on its container.
	for depth > 0 {
		i = jsonscan.SkipSpace(data, i)
		if i >= n {
			return false
		}
		switch c = data[i]; {
		case c == ',':
			i = jsonscan.SkipSpace(data, i+1)
			if stack&1 != 0 {
				goto key
			}
			goto value
		case c == '}' && stack&1 != 0, c == ']' && stack&1 == 0:
			i++
			stack, depth = stack>>1, depth-1
		default:
			return false
		}
	}
	d.pos = i
	return true
}

// skipNumber returns the index after the valid number literal at i, or -1.
func skipNumber(data []byte, i int) int {
	n := len(data)
	if i < n && data[i] == '-' {
		i++
	}
	if i >= n {
		return -1
	}
	switch c := data[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		i++
		for i < n && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		return -1
	}
	if i < n && data[i] == '.' {
		i++
		if i >= n || data[i] < '0' || data[i] > '9' {
			return -1
		}
		for i < n && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	if i < n && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < n && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= n || data[i] < '0' || data[i] > '9' {
			return -1
		}
		for i < n && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	return i
}
