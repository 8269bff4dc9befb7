package detect

import (
	"bytes"
	"encoding/json"
)

// Why this exists: the pod helpers read a recorded object's pod spec as
// decodePodSpec makes it from the object decoded for CEL (a map): encode
// the map again, then decode that into the typed workload. For the objects
// the API server records that round trip changes nothing, and it is most
// of the cost of a workload rule. plainObject recognises, in one pass over
// the bytes, the objects for which decoding the recorded bytes straight
// into the typed workload is certain to give the same result, and the
// pod helpers then skip the round trip; anything else takes it.
//
// The round trip can change a decoded struct in three ways, and a plain
// object has none of them:
//
//   - keys: the map keeps the last of duplicate keys and the encoding
//     sorts them, so where two keys of one object name the same struct
//     field (equal ignoring case, as encoding/json matches them) the one
//     that wins can differ. In a plain object keys are printable ASCII
//     without escapes and no two of one object are equal ignoring case.
//   - numbers: the map holds float64s, so 1.0 or 1e2 comes back as 1 or
//     100 (which an integer field accepts and the original did not), and
//     integers beyond 2^53 come back rounded. In a plain object every
//     number is an integer of at most 15 digits, which a float64 holds and
//     encoding/json prints exactly as written.
//   - validity: what encoding/json rejects is no map at all. A plain object
//     is a strict subset of valid JSON (and its value is never null).
//
// Strings need nothing: decoding unescapes them, and replaces invalid
// UTF-8, the same way on both paths.

// Bounds past which plainObject gives up (the round trip then runs).
const (
	plainMaxDepth = 256
	plainMaxKeys  = 64 // per object: keys are compared pairwise
	plainMaxDigit = 15
)

// plainObject reports whether raw is a plain JSON object (see above) and
// returns its top-level kind as decoding {"kind": ...} into a string field
// reads it: kindOK is false when the value is neither a string nor null
// (an error there, so no pod spec).
func plainObject(raw []byte) (kind string, kindOK, plain bool) {
	p := plainParser{data: raw}
	p.ws()
	if p.peek() != '{' {
		return "", false, false
	}
	if !p.object(0, true) {
		return "", false, false
	}
	p.ws()
	if p.pos != len(p.data) {
		return "", false, false
	}
	kindOK = true
	if p.kind != nil {
		switch p.kind[0] {
		case '"':
			kind = unquotePlain(p.kind)
		case 'n':
		default:
			kindOK = false
		}
	}
	return kind, kindOK, true
}

// unquotePlain returns the value of a JSON string literal as encoding/json
// decodes it.
func unquotePlain(lit []byte) string {
	inner := lit[1 : len(lit)-1]
	simple := true
	for _, c := range inner {
		if c == '\\' || c >= 0x80 {
			simple = false
			break
		}
	}
	if simple {
		return string(inner)
	}
	var s string
	if json.Unmarshal(lit, &s) != nil {
		return ""
	}
	return s
}

type plainParser struct {
	data []byte
	pos  int
	// kind is the literal of the top-level kind, if any.
	kind []byte
}

func (p *plainParser) peek() byte {
	if p.pos < len(p.data) {
		return p.data[p.pos]
	}
	return 0
}

func (p *plainParser) ws() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *plainParser) value(depth int) bool {
	switch c := p.peek(); {
	case c == '{':
		return p.object(depth+1, false)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		_, ok := p.str(false)
		return ok
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	}
	return false
}

func (p *plainParser) literal(lit string) bool {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(lit)) {
		return false
	}
	p.pos += len(lit)
	return true
}

// object parses an object at p.pos ('{'); top records its kind.
func (p *plainParser) object(depth int, top bool) bool {
	if depth > plainMaxDepth {
		return false
	}
	p.pos++ // '{'
	var keys [plainMaxKeys][]byte
	n := 0
	p.ws()
	if p.peek() == '}' {
		p.pos++
		return true
	}
	for {
		p.ws()
		if p.peek() != '"' {
			return false
		}
		key, ok := p.str(true)
		if !ok || n == plainMaxKeys {
			return false
		}
		for _, k := range keys[:n] {
			if bytes.EqualFold(k, key) {
				return false
			}
		}
		keys[n] = key
		n++
		p.ws()
		if p.peek() != ':' {
			return false
		}
		p.pos++
		p.ws()
		start := p.pos
		if !p.value(depth) {
			return false
		}
		if top && bytes.EqualFold(key, []byte("kind")) {
			p.kind = p.data[start:p.pos]
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return true
		default:
			return false
		}
	}
}

func (p *plainParser) array(depth int) bool {
	if depth > plainMaxDepth {
		return false
	}
	p.pos++ // '['
	p.ws()
	if p.peek() == ']' {
		p.pos++
		return true
	}
	for {
		p.ws()
		if !p.value(depth) {
			return false
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return true
		default:
			return false
		}
	}
}

// str parses a string literal and returns its contents. A key must be
// printable ASCII without escapes; a value may hold any valid escape and
// any byte from 0x20 up (encoding/json replaces invalid UTF-8).
func (p *plainParser) str(key bool) ([]byte, bool) {
	p.pos++ // '"'
	start := p.pos
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			s := p.data[start:p.pos]
			p.pos++
			return s, true
		case c < 0x20:
			return nil, false
		case key && (c == '\\' || c >= 0x7f):
			return nil, false
		case c == '\\':
			if p.pos+1 >= len(p.data) {
				return nil, false
			}
			switch p.data[p.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.pos += 2
			case 'u':
				if p.pos+6 > len(p.data) {
					return nil, false
				}
				for _, h := range p.data[p.pos+2 : p.pos+6] {
					if !isHexDigit(h) {
						return nil, false
					}
				}
				p.pos += 6
			default:
				return nil, false
			}
		default:
			p.pos++
		}
	}
	return nil, false
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// number parses an integer of at most plainMaxDigit digits.
func (p *plainParser) number() bool {
	if p.peek() == '-' {
		p.pos++
	}
	start := p.pos
	switch c := p.peek(); {
	case c == '0':
		p.pos++
	case c >= '1' && c <= '9':
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
		}
	default:
		return false
	}
	if p.pos-start > plainMaxDigit {
		return false
	}
	// A fraction or an exponent makes it no plain integer; anything else
	// after it is the caller's to judge.
	switch p.peek() {
	case '.', 'e', 'E':
		return false
	}
	return true
}
