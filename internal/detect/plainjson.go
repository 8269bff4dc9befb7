package detect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"iter"

	"github.com/kustode/kustode/internal/jsonscan"
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
		if !key {
			// Values: eight bytes at a time to the next that needs a
			// look. Keys are short, and must also refuse 0x7f.
			if p.pos = jsonscan.IndexAttention(p.data, p.pos); p.pos >= len(p.data) {
				break
			}
		}
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
					if !jsonscan.IsHex(h) {
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

// podSecurityPlain is podSecurityOf for a plain object (plainObject said
// so), without encoding/json's walk over the whole object: it goes down to
// the pod spec by the members encoding/json would match (keys equal
// ignoring case; a plain object has at most one such per object) and
// decodes only the values podSecurity reads, the containers' securityContext
// and the volumes' hostPath rather than whole containers and volumes. The
// result and the failures are podSecurityOf's: a member that should be an
// object and is something else than an object or null is an error, null is
// a zero value, a missing template an error (TestPlainObjectMatchesRoundTrip
// and FuzzPlainObject compare the two).
func podSecurityPlain(kind string, raw []byte) (*podSecurity, bool, error) {
	var path []string
	switch kind {
	case "Pod":
		path = []string{"spec"}
	case "Deployment", "ReplicaSet", "ReplicationController", "StatefulSet", "DaemonSet", "Job":
		path = []string{"spec", "template", "spec"}
	case "CronJob":
		path = []string{"spec", "jobTemplate", "spec", "template", "spec"}
	case "PodTemplate":
		path = []string{"template", "spec"}
	default:
		return nil, false, nil
	}
	obj := raw[jsonscan.SkipSpace(raw, 0):]
	for _, name := range path {
		v, err := objectOrNull(plainMember(obj, name))
		if err != nil {
			return nil, true, fmt.Errorf("decode %s: %s: %w", kind, name, err)
		}
		if v == nil && name == "template" {
			return nil, true, fmt.Errorf("%s has no template", kind)
		}
		obj = v // nil: every member below is absent
	}
	spec := &podSecurity{}
	var err error
	for key, val := range plainMembers(obj) {
		switch {
		case bytes.EqualFold(key, []byte("hostNetwork")):
			err = json.Unmarshal(val, &spec.HostNetwork)
		case bytes.EqualFold(key, []byte("hostPID")):
			err = json.Unmarshal(val, &spec.HostPID)
		case bytes.EqualFold(key, []byte("hostIPC")):
			err = json.Unmarshal(val, &spec.HostIPC)
		case bytes.EqualFold(key, []byte("volumes")):
			spec.Volumes, err = plainSlice(val, "hostPath", func(v *podVolume, val []byte) error { return json.Unmarshal(val, &v.HostPath) })
		case bytes.EqualFold(key, []byte("containers")):
			spec.Containers, err = plainSlice(val, "securityContext", containerSecurityOf)
		case bytes.EqualFold(key, []byte("initContainers")):
			spec.InitContainers, err = plainSlice(val, "securityContext", containerSecurityOf)
		case bytes.EqualFold(key, []byte("ephemeralContainers")):
			spec.EphemeralContainers, err = plainSlice(val, "securityContext", containerSecurityOf)
		}
		if err != nil {
			return nil, true, fmt.Errorf("decode %s: %w", kind, err)
		}
	}
	return spec, true, nil
}

func containerSecurityOf(c *containerSecurity, val []byte) error {
	return json.Unmarshal(val, &c.SecurityContext)
}

// plainSlice decodes an array of objects of which only the member name is
// read (by set), as encoding/json decodes it into a slice of structs: null
// is a nil slice, [] an empty one, a null element a zero one.
func plainSlice[T any](val []byte, name string, set func(*T, []byte) error) ([]T, error) {
	if val[0] == 'n' {
		return nil, nil
	}
	if val[0] != '[' {
		return nil, errors.New("not an array")
	}
	out := []T{}
	for el := range plainElements(val) {
		var t T
		obj, err := objectOrNull(el)
		if err != nil {
			return nil, err
		}
		if v := plainMember(obj, name); v != nil {
			if err := set(&t, v); err != nil {
				return nil, err
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// objectOrNull returns v if it is an object, nil if it is null or absent
// (nil), and an error otherwise.
func objectOrNull(v []byte) ([]byte, error) {
	switch {
	case v == nil || v[0] == 'n':
		return nil, nil
	case v[0] == '{':
		return v, nil
	}
	return nil, errors.New("not an object")
}

// plainMember returns the value of the member of obj (a plain object, or
// nil) whose key equals name ignoring case, nil if there is none.
func plainMember(obj []byte, name string) []byte {
	for key, val := range plainMembers(obj) {
		if bytes.EqualFold(key, []byte(name)) {
			return val
		}
	}
	return nil
}

// plainMembers yields the keys and values of obj, a valid JSON object whose
// keys have no escapes (a plain object's), or nothing for nil.
func plainMembers(obj []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		if obj == nil {
			return
		}
		i := jsonscan.SkipSpace(obj, 1)
		for i < len(obj) && obj[i] == '"' {
			end := skipValue(obj, i)
			key := obj[i+1 : end-1]
			i = jsonscan.SkipSpace(obj, end)
			i = jsonscan.SkipSpace(obj, i+1) // ':'
			end = skipValue(obj, i)
			if !yield(key, obj[i:end]) {
				return
			}
			i = jsonscan.SkipSpace(obj, end)
			if obj[i] == ',' {
				i = jsonscan.SkipSpace(obj, i+1)
			}
		}
	}
}

// plainElements yields the elements of arr, a valid JSON array.
func plainElements(arr []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		i := jsonscan.SkipSpace(arr, 1)
		for i < len(arr) && arr[i] != ']' {
			end := skipValue(arr, i)
			if !yield(arr[i:end]) {
				return
			}
			i = jsonscan.SkipSpace(arr, end)
			if arr[i] == ',' {
				i = jsonscan.SkipSpace(arr, i+1)
			}
		}
	}
}

// skipValue returns the end of the valid JSON value starting at data[i].
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(data) {
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// skipString returns the end of the string literal starting at data[i],
// in an object already found plain (valid): after the first quote that no
// odd run of backslashes escapes. bytes.IndexByte finds the quotes many
// bytes at a time, also through values full of escapes (kubectl's
// last-applied annotation), which a scan that stops at each escape does not.
func skipString(data []byte, i int) int {
	for j := i + 1; j < len(data); {
		k := bytes.IndexByte(data[j:], '"')
		if k < 0 {
			break
		}
		j += k
		escaped := false
		for b := j - 1; b > i && data[b] == '\\'; b-- {
			escaped = !escaped
		}
		if !escaped {
			return j + 1
		}
		j++
	}
	return len(data)
}
