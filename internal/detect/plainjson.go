package detect

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"

	"github.com/kustode/kustode/internal/jsonscan"
)

// Why this exists: the pod helpers read a recorded object's pod spec as
// decodePodSpec makes it from the object decoded for CEL (a map): encode
// the map again, then decode that into the typed workload. For the objects
// the API server records that round trip changes nothing, and it is most
// of the cost of a workload rule. readPlain recognises, in one pass over
// the bytes, the objects for which decoding the recorded bytes straight
// into the typed workload is certain to give the same result, and reads
// the pod helpers' fields in the same pass; anything else takes the round
// trip.
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

// Bounds past which readPlain gives up (the round trip then runs).
const (
	plainMaxDepth = 256
	plainMaxKeys  = 64 // per object: keys are compared pairwise
	// plainKeyStack bounds the keys of all the objects open at once.
	plainKeyStack = 256
	plainMaxDigit = 15
)

// plainRead is what readPlain finds in a recorded object.
type plainRead struct {
	// plain reports whether the object is plain (see above); nothing
	// else is set when it is not.
	plain bool
	// kind is the top-level kind as decoding {"kind": ...} into a string
	// field reads it; kindOK is false when the value is neither a string
	// nor null (an error there, so no pod spec).
	kind   string
	kindOK bool
	// podSpec is the pod spec of a kind that has one (podSecurityOf's),
	// nil for other kinds and where podSecurityOf fails.
	podSpec *podSecurity
}

// Where a pod spec can be, by kind: a slot each, with its path of members
// from the top (matched ignoring case, as encoding/json matches fields).
const (
	slotPod = iota
	slotWorkload
	slotCronJob
	slotPodTemplate
	numSlots
)

var slotPaths = [numSlots][]string{
	slotPod:         {"spec"},
	slotWorkload:    {"spec", "template", "spec"},
	slotCronJob:     {"spec", "jobTemplate", "spec", "template", "spec"},
	slotPodTemplate: {"template", "spec"},
}

func kindSlot(kind string) int {
	switch kind {
	case "Pod":
		return slotPod
	case "Deployment", "ReplicaSet", "ReplicationController", "StatefulSet", "DaemonSet", "Job":
		return slotWorkload
	case "CronJob":
		return slotCronJob
	case "PodTemplate":
		return slotPodTemplate
	}
	return -1
}

// readPlain reports whether raw is a plain JSON object and, in the same
// pass, reads its kind and the pod helpers' fields of every place a pod
// spec can be; the kind picks one at the end (it may come last).
//
// The pod spec is podSecurityOf's, errors included: on the way down, a
// member that should be an object and is something else than an object or
// null is an error, null is absent, a missing template an error; in the
// spec, the fields are decoded as encoding/json decodes them into
// podSecurity, and any type error makes the whole spec an error.
// TestPlainObjectMatchesRoundTrip and FuzzPlainObject compare the two.
func readPlain(raw []byte) plainRead {
	if len(raw) > math.MaxInt32 { // keySpan's offsets
		return plainRead{}
	}
	p := plainParser{data: raw, reached: [numSlots]int{-1, -1, -1, -1}}
	p.ws()
	if p.peek() != '{' || !p.pathObject(0, 1<<numSlots-1) {
		return plainRead{}
	}
	p.ws()
	if p.pos != len(p.data) {
		return plainRead{}
	}
	r := plainRead{plain: true, kindOK: true}
	if p.kind != nil {
		switch p.kind[0] {
		case '"':
			r.kind = unquotePlain(p.kind)
		case 'n':
		default:
			r.kindOK = false
		}
	}
	s := kindSlot(r.kind)
	if !r.kindOK || s < 0 || p.bad&(1<<s) != 0 {
		return r
	}
	// podSecurityOf requires the template, where the path has one (the top,
	// depth 0, is always reached).
	if p.reached[s] < slices.Index(slotPaths[s], "template")+1 {
		return r
	}
	spec := p.specs[s] // zero where the path stops short of the spec
	r.podSpec = &spec
	return r
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
	// keys[:nkeys] are the keys of the objects being parsed, outermost
	// first.
	keys  [plainKeyStack]keySpan
	nkeys int
	// Per slot: the pod spec's fields, the depth of the deepest object
	// reached on its path, and (bad) a type error on the way or in it.
	specs   [numSlots]podSecurity
	reached [numSlots]int
	bad     uint8
}

type keySpan struct{ start, end int32 }

func (p *plainParser) peek() byte {
	if p.pos < len(p.data) {
		return p.data[p.pos]
	}
	return 0
}

func (p *plainParser) ws() {
	p.pos = jsonscan.SkipSpace(p.data, p.pos)
}

// value parses any value at p.pos; depth is that of the enclosing object
// or array.
func (p *plainParser) value(depth int) bool {
	switch c := p.peek(); {
	case c == '"':
		i := jsonscan.SkipString(p.data, p.pos)
		if i < 0 {
			return false
		}
		p.pos = i
		return true
	case c == '{':
		return p.object(depth+1, nil)
	case c == '[':
		return p.array(depth+1, nil)
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

// object parses the object at p.pos ('{') at the given depth. member,
// if not nil, parses each member's value (key is its key); otherwise
// value does.
func (p *plainParser) object(depth int, member func(key []byte) bool) bool {
	if depth > plainMaxDepth {
		return false
	}
	base := p.nkeys
	ok := p.members(depth, member)
	p.nkeys = base
	return ok
}

func (p *plainParser) members(depth int, member func(key []byte) bool) bool {
	p.pos++ // '{'
	base := p.nkeys
	p.ws()
	if p.peek() == '}' {
		p.pos++
		return true
	}
	for {
		p.ws()
		start, end, ok := p.key()
		if !ok || p.nkeys-base == plainMaxKeys || p.nkeys == len(p.keys) {
			return false
		}
		key := p.data[start:end]
		for _, k := range p.keys[base:p.nkeys] {
			if is(key, p.data[k.start:k.end]) {
				return false
			}
		}
		p.keys[p.nkeys] = keySpan{int32(start), int32(end)} //nolint:gosec // readPlain refuses data past MaxInt32
		p.nkeys++
		p.ws()
		if p.peek() != ':' {
			return false
		}
		p.pos++
		p.ws()
		if member != nil {
			ok = member(key)
		} else {
			ok = p.value(depth)
		}
		if !ok {
			return false
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

// array parses the array at p.pos ('[') at the given depth. element, if
// not nil, parses each element; otherwise value does.
func (p *plainParser) array(depth int, element func() bool) bool {
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
		var ok bool
		if element != nil {
			ok = element()
		} else {
			ok = p.value(depth)
		}
		if !ok {
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

// key parses a key at p.pos and returns where its contents are: printable
// ASCII without escapes, or not plain.
func (p *plainParser) key() (start, end int, ok bool) {
	if p.peek() != '"' {
		return 0, 0, false
	}
	start = p.pos + 1
	for i := start; i < len(p.data); i++ {
		switch c := p.data[i]; {
		case c == '"':
			p.pos = i + 1
			return start, i, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return 0, 0, false
		}
	}
	return 0, 0, false
}

// is reports whether key, printable ASCII, equals name ignoring the case
// of letters, as encoding/json matches keys to fields.
func is[T string | []byte](key []byte, name T) bool {
	if len(key) != len(name) {
		return false
	}
	for i, c := range key {
		if d := name[i]; c != d {
			if c|0x20 != d|0x20 || c|0x20 < 'a' || c|0x20 > 'z' {
				return false
			}
		}
	}
	return true
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

// pathObject parses an object at the given depth of the paths of slots
// (a set of slots, a bit each): the top (depth 0, every slot), an object
// on the way down to a pod spec, or a pod spec.
func (p *plainParser) pathObject(depth int, slots uint8) bool {
	spec := -1 // the slot whose pod spec this object is
	for s := range numSlots {
		if slots&(1<<s) != 0 {
			p.reached[s] = depth
			if len(slotPaths[s]) == depth {
				spec = s
			}
		}
	}
	return p.object(depth, func(key []byte) bool {
		if depth == 0 && is(key, "kind") {
			start := p.pos
			ok := p.value(depth)
			p.kind = p.data[start:p.pos]
			return ok
		}
		if spec >= 0 {
			if ok, read := p.podSpecMember(depth, spec, key); read {
				return ok
			}
		}
		var next uint8
		for s := range numSlots {
			if slots&(1<<s) != 0 && depth < len(slotPaths[s]) && is(key, slotPaths[s][depth]) {
				next |= 1 << s
			}
		}
		switch {
		case next == 0:
		case p.peek() == '{':
			return p.pathObject(depth+1, next)
		case p.peek() != 'n':
			p.bad |= next // neither an object nor null
		}
		return p.value(depth)
	})
}

// podSpecMember parses the value of the member key of slot's pod spec
// (at depth) if the pod helpers read it; read is false, and nothing
// parsed, when they do not.
func (p *plainParser) podSpecMember(depth, slot int, key []byte) (ok, read bool) {
	spec := &p.specs[slot]
	switch {
	case is(key, "hostNetwork"):
		return p.boolean(depth, slot, &spec.HostNetwork), true
	case is(key, "hostPID"):
		return p.boolean(depth, slot, &spec.HostPID), true
	case is(key, "hostIPC"):
		return p.boolean(depth, slot, &spec.HostIPC), true
	case is(key, "volumes"):
		return p.volumes(depth, slot, &spec.Volumes), true
	case is(key, "containers"):
		return p.containers(depth, slot, &spec.Containers), true
	case is(key, "initContainers"):
		return p.containers(depth, slot, &spec.InitContainers), true
	case is(key, "ephemeralContainers"):
		return p.containers(depth, slot, &spec.EphemeralContainers), true
	}
	return false, false
}

// The readers of the pod helpers' fields below parse a member's value at
// p.pos, in an object or array at depth, into dst as encoding/json decodes
// it, and mark slot bad where encoding/json fails.

func (p *plainParser) boolean(depth, slot int, dst *bool) bool {
	start := p.pos
	if !p.value(depth) {
		return false
	}
	switch p.data[start] {
	case 't':
		*dst = true
	case 'f':
		*dst = false
	case 'n': // no change
	default:
		p.bad |= 1 << slot
	}
	return true
}

func (p *plainParser) optionalBool(depth, slot int, dst **bool) bool {
	start := p.pos
	if !p.value(depth) {
		return false
	}
	switch p.data[start] {
	case 't', 'f':
		b := p.data[start] == 't'
		*dst = &b
	case 'n':
		*dst = nil
	default:
		p.bad |= 1 << slot
	}
	return true
}

func (p *plainParser) str(depth, slot int, dst *string) bool {
	start := p.pos
	if !p.value(depth) {
		return false
	}
	switch p.data[start] {
	case '"':
		*dst = unquotePlain(p.data[start:p.pos])
	case 'n': // no change
	default:
		p.bad |= 1 << slot
	}
	return true
}

// opens reports whether the value at p.pos is of the JSON type that
// starts with open (an object or an array); null is not, and anything
// else also marks slot bad.
func (p *plainParser) opens(open byte, slot int) bool {
	switch p.peek() {
	case open:
		return true
	case 'n':
	default:
		p.bad |= 1 << slot
	}
	return false
}

// plainList reads an array into dst, each element by elem (null is a nil
// slice, [] an empty one); depth is the enclosing object's.
func plainList[T any](p *plainParser, depth, slot int, dst *[]T, elem func(*T) bool) bool {
	if !p.opens('[', slot) {
		*dst = nil
		return p.value(depth)
	}
	out := []T{}
	ok := p.array(depth+1, func() bool {
		var zero T
		out = append(out, zero)
		return elem(&out[len(out)-1]) // the pointer serves this element only
	})
	*dst = out
	return ok
}

// plainRef reads an object into a new *dst, each member by member (null
// leaves *dst nil); depth is the enclosing object's or array's.
func plainRef[T any](p *plainParser, depth, slot int, dst **T, member func(v *T, key []byte) bool) bool {
	if !p.opens('{', slot) {
		*dst = nil
		return p.value(depth)
	}
	v := new(T)
	*dst = v
	return p.object(depth+1, func(key []byte) bool { return member(v, key) })
}

// elementMembers reads an array element's members by member (null reads
// nothing: a null element is a zero one); depth is the enclosing array's.
func (p *plainParser) elementMembers(depth, slot int, member func(key []byte) bool) bool {
	if !p.opens('{', slot) {
		return p.value(depth)
	}
	return p.object(depth+1, member)
}

func (p *plainParser) stringList(depth, slot int, dst *[]string) bool {
	return plainList(p, depth, slot, dst, func(s *string) bool { return p.str(depth+1, slot, s) })
}

func (p *plainParser) volumes(depth, slot int, dst *[]podVolume) bool {
	return plainList(p, depth, slot, dst, func(v *podVolume) bool {
		return p.elementMembers(depth+1, slot, func(key []byte) bool {
			if !is(key, "hostPath") {
				return p.value(depth + 2)
			}
			return plainRef(p, depth+2, slot, &v.HostPath, func(hp *hostPathSource, key []byte) bool {
				if is(key, "path") {
					return p.str(depth+3, slot, &hp.Path)
				}
				return p.value(depth + 3)
			})
		})
	})
}

func (p *plainParser) containers(depth, slot int, dst *[]containerSecurity) bool {
	return plainList(p, depth, slot, dst, func(c *containerSecurity) bool {
		return p.elementMembers(depth+1, slot, func(key []byte) bool {
			if is(key, "securityContext") {
				return p.securityContext(depth+2, slot, &c.SecurityContext)
			}
			return p.value(depth + 2)
		})
	})
}

func (p *plainParser) securityContext(depth, slot int, dst **securityContext) bool {
	return plainRef(p, depth, slot, dst, func(sc *securityContext, key []byte) bool {
		switch {
		case is(key, "privileged"):
			return p.optionalBool(depth+1, slot, &sc.Privileged)
		case is(key, "capabilities"):
			return plainRef(p, depth+1, slot, &sc.Capabilities, func(caps *capabilities, key []byte) bool {
				if is(key, "add") {
					return p.stringList(depth+2, slot, &caps.Add)
				}
				return p.value(depth + 2)
			})
		}
		return p.value(depth + 1)
	})
}
