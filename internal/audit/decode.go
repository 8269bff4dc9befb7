package audit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/kustode/kustode/internal/jsonscan"
)

// Why a hand-written decoder: audit events arrive at tens of thousands per
// second and encoding/json spends most of its time on reflection and on
// scanning requestObject/responseObject byte by byte, which detection
// rarely reads. This decoder knows the Event fields, validates and skips
// the raw objects in a tight loop and interns the strings that repeat in
// every event (verbs, groups, resources, annotation keys). docs/performance.md
// has the numbers.
//
// It accepts and rejects exactly what encoding/json accepts and rejects for
// an Event, and produces the same values: FuzzDecodeEvent checks this
// against encoding/json on every input. The deliberate differences: a
// top-level null is an error here (it is no event), a null requestObject or
// responseObject is nil rather than the bytes "null", and timestamps may
// have a space instead of "T" (see unmarshalTime).

// maxDepth is encoding/json's nesting limit, kept so both agree.
const maxDepth = 10000

// DecodeError is why a JSON record is not an audit event: invalid JSON
// (Syntax, at byte Offset) or a field of the wrong type (Field, a dotted
// path such as "user.groups").
type DecodeError struct {
	Offset int
	Field  string
	Syntax bool
	Msg    string
}

func (e *DecodeError) Error() string {
	if e.Syntax {
		return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
	}
	if e.Field != "" {
		return e.Field + ": " + e.Msg
	}
	return e.Msg
}

// DecodeEvent decodes one audit event, a JSON object, into e, replacing
// what e held. Unknown fields are ignored; kind and apiVersion are not
// checked. On error e holds whatever was decoded before the error and
// should not be used. The result shares no memory with data.
func DecodeEvent(data []byte, e *Event) error {
	*e = Event{}
	d := decoder{data: data}
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == 'n' {
		if err := d.literal("null"); err != nil {
			return err
		}
		if err := d.end(); err != nil {
			return err
		}
		return &DecodeError{Msg: "expected an audit event (JSON object), found null"}
	}
	if err := d.event(e); err != nil {
		return err
	}
	return d.end()
}

// UnmarshalJSON decodes an audit event with DecodeEvent, so that
// encoding/json callers (an []Event, a wrapper struct) get the same result.
// A JSON null leaves e unchanged.
func (e *Event) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	return DecodeEvent(data, e)
}

// decodeEventList decodes an audit.k8s.io EventList, a JSON object whose
// "items" is an array of events, calling add for each item decoded and bad
// for each item that is valid JSON but not an event. add may keep *e. Other fields are
// ignored. A syntax error anywhere is returned and nothing after it is
// decoded; a caller that must not act on part of an invalid body should
// hold what add received until decodeEventList returns nil.
func decodeEventList(data []byte, add func(e *Event), bad func(index int, err error)) error {
	d := decoder{data: data}
	d.ws()
	if err := d.openObject("EventList"); err != nil {
		return err
	}
	for first := true; ; first = false {
		key, done, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if done {
			break
		}
		if string(key) != "items" && !strings.EqualFold(string(key), "items") {
			if err := d.skip(); err != nil {
				return err
			}
			continue
		}
		if d.peek() == 'n' {
			if err := d.literal("null"); err != nil {
				return err
			}
			continue
		}
		if err := d.openArray("items"); err != nil {
			return err
		}
		for i, first := 0, true; ; i, first = i+1, false {
			done, err := d.nextElem(first)
			if err != nil {
				return err
			}
			if done {
				break
			}
			start, depth := d.pos, d.depth
			var e Event
			err = d.event(&e)
			if err == nil {
				if cerr := checkEvent(&e); cerr != nil {
					bad(i, cerr)
				} else {
					add(&e)
				}
				continue
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Syntax {
				return err
			}
			// Valid JSON of the wrong shape: skip this item only.
			bad(i, err)
			d.pos, d.depth = start, depth
			if err := d.skip(); err != nil {
				return err
			}
		}
	}
	return d.end()
}

type decoder struct {
	data  []byte
	pos   int
	depth int
	// keyBuf holds an unescaped object key; reused.
	keyBuf []byte
	// wrapped is set when the top-level object has a field that wraps
	// events in another format (see isWrapperKey).
	wrapped bool
}

func (d *decoder) syntaxErr(msg string) error {
	return &DecodeError{Offset: d.pos, Syntax: true, Msg: msg}
}

func (d *decoder) eof() error {
	return &DecodeError{Offset: len(d.data), Syntax: true, Msg: "unexpected end of JSON input"}
}

func (d *decoder) unexpected(context string) error {
	if d.pos >= len(d.data) {
		return d.eof()
	}
	return d.syntaxErr(fmt.Sprintf("invalid character %s %s", quoteChar(d.data[d.pos]), context))
}

func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	return strconv.QuoteRune(rune(c))
}

// typeErr reports a value of the wrong JSON type for field. The value is not
// consumed.
func (d *decoder) typeErr(field, want string) error {
	if d.pos >= len(d.data) {
		return d.eof()
	}
	var found string
	{
		switch c := d.data[d.pos]; {
		case c == '{':
			found = "object"
		case c == '[':
			found = "array"
		case c == '"':
			found = "string"
		case c == 't' || c == 'f':
			found = "boolean"
		case c == 'n':
			found = "null"
		case c == '-' || c >= '0' && c <= '9':
			found = "number"
		default:
			return d.unexpected("looking for beginning of value")
		}
	}
	return &DecodeError{Offset: d.pos, Field: field, Msg: "expected " + want + ", found " + found}
}

// inField prefixes a type error's field path with the enclosing field.
func inField(err error, field string) error {
	if err == nil {
		return nil
	}
	var de *DecodeError
	if errors.As(err, &de) && !de.Syntax {
		if de.Field == "" {
			de.Field = field
		} else {
			de.Field = field + "." + de.Field
		}
	}
	return err
}

func (d *decoder) ws() {
	if d.pos < len(d.data) && d.data[d.pos] > ' ' {
		return
	}
	d.wsSlow()
}

func (d *decoder) wsSlow() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek returns the current byte, or 0 at the end of input.
func (d *decoder) peek() byte {
	if d.pos < len(d.data) {
		return d.data[d.pos]
	}
	return 0
}

// end checks that only whitespace follows the top-level value.
func (d *decoder) end() error {
	d.ws()
	if d.pos < len(d.data) {
		return d.unexpected("after top-level value")
	}
	return nil
}

func (d *decoder) literal(lit string) error {
	for i := 0; i < len(lit); i++ {
		if d.pos >= len(d.data) {
			return d.eof()
		}
		if d.data[d.pos] != lit[i] {
			return d.unexpected("in literal " + lit + " (expecting " + quoteChar(lit[i]) + ")")
		}
		d.pos++
	}
	return nil
}

func (d *decoder) push() error {
	d.depth++
	if d.depth > maxDepth {
		return d.syntaxErr("exceeded max depth")
	}
	return nil
}

// openObject consumes '{'; field names the value for a type error.
func (d *decoder) openObject(field string) error {
	if d.peek() != '{' {
		return d.typeErr(field, "object")
	}
	if err := d.push(); err != nil {
		return err
	}
	d.pos++
	return nil
}

func (d *decoder) openArray(field string) error {
	if d.peek() != '[' {
		return d.typeErr(field, "array")
	}
	if err := d.push(); err != nil {
		return err
	}
	d.pos++
	return nil
}

// nextKey moves to the next member of the current object and returns its
// key, unescaped, valid until the next call; it leaves d at the start of the
// member's value. done reports the end of the object, which it consumes.
func (d *decoder) nextKey(first bool) (key []byte, done bool, err error) {
	if key, ok := d.nextKeyCompact(first); ok {
		return key, false, nil
	}
	d.ws()
	if d.pos >= len(d.data) {
		return nil, false, d.eof()
	}
	switch c := d.data[d.pos]; {
	case c == '}':
		d.pos++
		d.depth--
		return nil, true, nil
	case first:
	case c == ',':
		d.pos++
		d.ws()
	default:
		return nil, false, d.unexpected("after object key:value pair")
	}
	if d.pos >= len(d.data) {
		return nil, false, d.eof()
	}
	if d.data[d.pos] != '"' {
		return nil, false, d.unexpected("looking for beginning of object key string")
	}
	raw, plain, err := d.scanString()
	if err != nil {
		return nil, false, err
	}
	if plain {
		key = raw
	} else {
		d.keyBuf = appendUnquoted(d.keyBuf[:0], raw)
		key = d.keyBuf
	}
	d.ws()
	if d.pos >= len(d.data) {
		return nil, false, d.eof()
	}
	if d.data[d.pos] != ':' {
		return nil, false, d.unexpected("after object key")
	}
	d.pos++
	d.ws()
	if d.pos >= len(d.data) {
		return nil, false, d.eof()
	}
	return key, false, nil
}

// nextKeyCompact is nextKey for the common case of a plain key with no
// whitespace around it or its comma and colon. It reports false, leaving d
// alone, for anything else.
func (d *decoder) nextKeyCompact(first bool) ([]byte, bool) {
	data, start := d.data, d.pos
	i := start
	if !first {
		if i >= len(data) || data[i] != ',' {
			return nil, false
		}
		i++
	}
	if i >= len(data) || data[i] != '"' {
		return nil, false
	}
	j := jsonscan.IndexAttention(data, i+1)
	if j+1 >= len(data) || data[j] != '"' || data[j+1] != ':' {
		return nil, false
	}
	d.pos = j + 2
	if d.pos >= len(data) || data[d.pos] <= ' ' {
		d.pos = start
		return nil, false
	}
	return data[i+1 : j], true
}

// nextElem moves to the next element of the current array; done reports
// the end of the array, which it consumes.
func (d *decoder) nextElem(first bool) (done bool, err error) {
	d.ws()
	if d.pos >= len(d.data) {
		return false, d.eof()
	}
	switch c := d.data[d.pos]; {
	case c == ']':
		d.pos++
		d.depth--
		return true, nil
	case first:
	case c == ',':
		d.pos++
		d.ws()
		if d.pos >= len(d.data) {
			return false, d.eof()
		}
		if d.data[d.pos] == ']' {
			return false, d.unexpected("looking for beginning of value")
		}
	default:
		return false, d.unexpected("after array element")
	}
	return false, nil
}

// strSafe marks bytes that need no attention inside a string literal.
var strSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString consumes a string literal and returns its bytes between the
// quotes. plain reports that they are the string's value as is: no escapes
// and valid UTF-8.
func (d *decoder) scanString() (raw []byte, plain bool, err error) {
	data := d.data
	start := d.pos + 1
	// Most strings are short and plain: eight bytes at a time to the
	// first byte that needs attention, and done if it is the closing quote.
	i := jsonscan.IndexAttention(data, start)
	if i < len(data) && data[i] == '"' {
		d.pos = i + 1
		return data[start:i], true, nil
	}
	return d.scanStringFrom(start, i)
}

// scanStringFrom is scanString from byte i of the string starting at
// start, every byte before i needing no attention.
func (d *decoder) scanStringFrom(start, i int) (raw []byte, plain bool, err error) {
	data := d.data
	escaped, nonASCII := false, false
	for {
		// Eight bytes at a time while none of them needs attention: most
		// strings are plain ASCII, and this is where decoding spends its
		// time.
		i = jsonscan.IndexAttention(data, i)
		for i < len(data) && strSafe[data[i]] {
			i++
		}
		if i >= len(data) {
			d.pos = i
			return nil, false, d.eof()
		}
		switch c := data[i]; {
		case c == '"':
			raw = data[start:i]
			d.pos = i + 1
			plain = !escaped && (!nonASCII || utf8.Valid(raw))
			return raw, plain, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(data) {
				d.pos = len(data)
				return nil, false, d.eof()
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := 2; k < 6; k++ {
					if i+k >= len(data) {
						d.pos = len(data)
						return nil, false, d.eof()
					}
					if !jsonscan.IsHex(data[i+k]) {
						d.pos = i + k
						return nil, false, d.unexpected("in \\u hexadecimal character escape")
					}
				}
				i += 6
			default:
				d.pos = i + 1
				return nil, false, d.unexpected("in string escape code")
			}
		case c < 0x20:
			d.pos = i
			return nil, false, d.unexpected("in string literal")
		default: // c >= 0x80
			nonASCII = true
			i++
		}
	}
}

// appendUnquoted appends the value of a string literal's contents s, already
// validated by scanString, the way encoding/json does: escapes decoded,
// invalid UTF-8 and unpaired surrogates replaced by U+FFFD.
func appendUnquoted(b, s []byte) []byte {
	for r := 0; r < len(s); {
		// Copy the run up to the next escape or non-ASCII byte at once;
		// a validated literal has no quote or control character, so the
		// bytes needing attention are those.
		j := jsonscan.IndexAttention(s, r)
		for j < len(s) && s[j] != '\\' && s[j] < utf8.RuneSelf {
			j++
		}
		b = append(b, s[r:j]...)
		if r = j; r >= len(s) {
			break
		}
		c := s[r]
		switch {
		case c == '\\':
			r++
			switch s[r] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[r-1:])
				r += 5
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[r:])); dec != unicode.ReplacementChar {
						r += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\', '/'
				b = append(b, s[r])
			}
			r++
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	return b
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// stringValue returns the value of a scanned literal as a new string,
// interned when intern is set and the value is a common one.
func stringValue(raw []byte, plain, intern bool) string {
	if !plain {
		var buf [256]byte
		return string(appendUnquoted(buf[:0], raw))
	}
	if intern {
		if s, ok := internString(raw); ok {
			return s
		}
	}
	return string(raw)
}

// scanNumber consumes a number literal and returns it.
func (d *decoder) scanNumber() ([]byte, error) {
	data, start := d.data, d.pos
	i := start
	if i < len(data) && data[i] == '-' {
		i++
	}
	if i >= len(data) {
		d.pos = i
		return nil, d.eof()
	}
	switch c := data[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		d.pos = i
		return nil, d.unexpected("in numeric literal")
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) {
			d.pos = i
			return nil, d.eof()
		}
		if data[i] < '0' || data[i] > '9' {
			d.pos = i
			return nil, d.unexpected("after decimal point in numeric literal")
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) {
			d.pos = i
			return nil, d.eof()
		}
		if data[i] < '0' || data[i] > '9' {
			d.pos = i
			return nil, d.unexpected("in exponent of numeric literal")
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	d.pos = i
	return data[start:i], nil
}

// skip consumes one value of any type, validating it.
func (d *decoder) skip() error {
	if d.skipFast() {
		return nil
	}
	return d.skipSlow()
}

// skipSlow is skip one token at a time, which names the problem of an
// invalid value (see skipFast).
func (d *decoder) skipSlow() error {
	if d.pos >= len(d.data) {
		return d.eof()
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		if err := d.push(); err != nil {
			return err
		}
		d.pos++
		for first := true; ; first = false {
			_, done, err := d.nextKey(first)
			if err != nil {
				return err
			}
			if done {
				return nil
			}
			if err := d.skipSlow(); err != nil {
				return err
			}
		}
	case c == '[':
		if err := d.push(); err != nil {
			return err
		}
		d.pos++
		for first := true; ; first = false {
			done, err := d.nextElem(first)
			if err != nil {
				return err
			}
			if done {
				return nil
			}
			if err := d.skipSlow(); err != nil {
				return err
			}
		}
	case c == '"':
		_, _, err := d.scanString()
		return err
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		_, err := d.scanNumber()
		return err
	default:
		return d.unexpected("looking for beginning of value")
	}
}

// raw consumes one value and returns its bytes.
func (d *decoder) raw() ([]byte, error) {
	start := d.pos
	if err := d.skip(); err != nil {
		return nil, err
	}
	return d.data[start:d.pos], nil
}

// str decodes a string into *p; null leaves *p alone, as in encoding/json.
func (d *decoder) str(p *string, field string, intern bool) error {
	switch d.peek() {
	case '"':
		raw, plain, err := d.scanString()
		if err != nil {
			return err
		}
		*p = stringValue(raw, plain, intern)
		return nil
	case 'n':
		return d.literal("null")
	default:
		return d.typeErr(field, "string")
	}
}

// strSlice decodes an array of strings into *p the way encoding/json does:
// elements are decoded in place over any existing ones, null elements keep
// what was there, and [] gives an empty, non-nil slice.
func (d *decoder) strSlice(p *[]string, field string, intern bool) error {
	if d.peek() == 'n' {
		if err := d.literal("null"); err != nil {
			return err
		}
		*p = nil
		return nil
	}
	if err := d.openArray(field); err != nil {
		return err
	}
	s := *p
	i := 0
	for first := true; ; first = false {
		done, err := d.nextElem(first)
		if err != nil {
			return err
		}
		if done {
			break
		}
		if i >= len(s) {
			switch {
			case i < cap(s):
				s = s[:i+1]
			case s == nil:
				// Most arrays here are short lists of groups or addresses.
				s = make([]string, 1, 4)
			default:
				s = append(s, "")
			}
		}
		if err := d.str(&s[i], field, intern); err != nil {
			return err
		}
		i++
	}
	if i < len(s) {
		s = s[:i]
	}
	if i == 0 {
		s = []string{}
	}
	*p = s
	return nil
}

// strMap decodes an object of strings into *p, adding to an existing map.
func (d *decoder) strMap(p *map[string]string, field string) error {
	if d.peek() == 'n' {
		if err := d.literal("null"); err != nil {
			return err
		}
		*p = nil
		return nil
	}
	if err := d.openObject(field); err != nil {
		return err
	}
	if *p == nil {
		*p = make(map[string]string, 4)
	}
	m := *p
	for first := true; ; first = false {
		key, done, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		k := stringValue(key, true, true)
		var v string
		if err := d.str(&v, "", true); err != nil {
			return inField(err, field+"."+k)
		}
		m[k] = v
	}
}

// strSliceMap decodes an object of string arrays into *p, adding to an
// existing map.
func (d *decoder) strSliceMap(p *map[string][]string, field string) error {
	if d.peek() == 'n' {
		if err := d.literal("null"); err != nil {
			return err
		}
		*p = nil
		return nil
	}
	if err := d.openObject(field); err != nil {
		return err
	}
	if *p == nil {
		*p = make(map[string][]string, 2)
	}
	m := *p
	for first := true; ; first = false {
		key, done, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		k := stringValue(key, true, true)
		var v []string
		if err := d.strSlice(&v, "", false); err != nil {
			return inField(err, field+"."+k)
		}
		m[k] = v
	}
}

// rawMessage decodes any value into *p as a copy of its bytes; null gives
// nil.
func (d *decoder) rawMessage(p *[]byte) error {
	if d.peek() == 'n' {
		if err := d.literal("null"); err != nil {
			return err
		}
		*p = nil
		return nil
	}
	raw, err := d.raw()
	if err != nil {
		return err
	}
	*p = append([]byte(nil), raw...)
	return nil
}

// timestamp decodes a timestamp with unmarshalTime.
func (d *decoder) timestamp(t *time.Time, field string) error {
	raw, err := d.raw()
	if err != nil {
		return err
	}
	if v, ok := parseUTCTimestamp(raw); ok {
		*t = v
		return nil
	}
	if err := unmarshalTime(raw, t); err != nil {
		return &DecodeError{Offset: d.pos - len(raw), Field: field, Msg: err.Error()}
	}
	return nil
}

// unmarshalTime decodes a JSON timestamp as time.Time's UnmarshalJSON does
// (RFC 3339; null leaves *t alone), and also accepts the form with a space
// for "T" that log pipelines such as Panther rewrite timestamps into
// ("2022-11-29 00:09:04.38"), as UTC when it has no zone.
func unmarshalTime(raw []byte, t *time.Time) error {
	err := t.UnmarshalJSON(raw)
	if err == nil || len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return err
	}
	s := string(raw[1 : len(raw)-1])
	for _, layout := range []string{"2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if v, perr := time.Parse(layout, s); perr == nil {
			*t = v
			return nil
		}
	}
	return err
}

// parseUTCTimestamp parses, without the generality of time.Parse, the one
// form the API server writes ("2006-01-02T15:04:05.999999Z" as a JSON
// string), giving what unmarshalTime gives. Anything else, or a date or
// time out of range, is not ok and left to unmarshalTime.
func parseUTCTimestamp(raw []byte) (time.Time, bool) {
	if len(raw) < len(`"2006-01-02T15:04:05Z"`) || raw[0] != '"' || raw[len(raw)-1] != '"' || raw[len(raw)-2] != 'Z' {
		return time.Time{}, false
	}
	s := raw[1 : len(raw)-2] // without the quotes and the Z
	if s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return time.Time{}, false
	}
	nsec := 0
	if frac := s[19:]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return time.Time{}, false
		}
		n, ok := digits(frac[1:])
		if !ok {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			n *= 10
		}
		nsec = n
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

// digits returns the value of a run of decimal digits.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// daysIn returns the number of days of a month (1-12) of the proleptic
// Gregorian calendar, as time.Parse checks them.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// int32Value decodes an integer that fits in 32 bits; null leaves *p alone.
func (d *decoder) int32Value(p *int32, field string) error {
	switch c := d.peek(); {
	case c == 'n':
		return d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		start := d.pos
		num, err := d.scanNumber()
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil || n < -1<<31 || n > 1<<31-1 {
			return &DecodeError{Offset: start, Field: field, Msg: "number " + string(num) + " is not a 32-bit integer"}
		}
		*p = int32(n)
		return nil
	default:
		return d.typeErr(field, "integer")
	}
}

// fold finds the field of names that key matches case-insensitively, as
// encoding/json falls back to; "" if none.
func fold(key []byte, names []string) string {
	for _, n := range names {
		if len(key) >= len(n) && len(key) <= 3*len(n) && strings.EqualFold(string(key), n) {
			return n
		}
	}
	return ""
}

var eventFields = []string{
	"kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb",
	"user", "impersonatedUser", "sourceIPs", "userAgent", "objectRef",
	"responseStatus", "requestObject", "responseObject",
	"requestReceivedTimestamp", "stageTimestamp", "annotations", "timestamp",
}

// The field name functions return the field a key names: exactly (a
// switch on string(key) allocates nothing), or else case-insensitively as
// encoding/json falls back to; "" for fields that are skipped.

func eventFieldName(key []byte) string {
	switch string(key) {
	case "kind":
		return "kind"
	case "apiVersion":
		return "apiVersion"
	case "level":
		return "level"
	case "auditID":
		return "auditID"
	case "stage":
		return "stage"
	case "requestURI":
		return "requestURI"
	case "verb":
		return "verb"
	case "user":
		return "user"
	case "impersonatedUser":
		return "impersonatedUser"
	case "sourceIPs":
		return "sourceIPs"
	case "userAgent":
		return "userAgent"
	case "objectRef":
		return "objectRef"
	case "responseStatus":
		return "responseStatus"
	case "requestObject":
		return "requestObject"
	case "responseObject":
		return "responseObject"
	case "requestReceivedTimestamp":
		return "requestReceivedTimestamp"
	case "stageTimestamp":
		return "stageTimestamp"
	case "annotations":
		return "annotations"
	case "timestamp":
		return "timestamp"
	case "metadata":
		return ""
	}
	return fold(key, eventFields)
}

func userFieldName(key []byte) string {
	switch string(key) {
	case "username":
		return "username"
	case "uid":
		return "uid"
	case "groups":
		return "groups"
	case "extra":
		return "extra"
	}
	return fold(key, userFields)
}

func objectRefFieldName(key []byte) string {
	switch string(key) {
	case "resource":
		return "resource"
	case "namespace":
		return "namespace"
	case "name":
		return "name"
	case "uid":
		return "uid"
	case "apiGroup":
		return "apiGroup"
	case "apiVersion":
		return "apiVersion"
	case "resourceVersion":
		return "resourceVersion"
	case "subresource":
		return "subresource"
	}
	return fold(key, objectRefFields)
}

func statusFieldName(key []byte) string {
	switch string(key) {
	case "code":
		return "code"
	case "status":
		return "status"
	case "reason":
		return "reason"
	case "message":
		return "message"
	case "metadata", "details", "kind", "apiVersion":
		return ""
	}
	return fold(key, statusFields)
}

func (d *decoder) event(e *Event) error {
	if d.peek() != '{' {
		return d.typeErr("", "an audit event (JSON object)")
	}
	if err := d.openObject(""); err != nil {
		return err
	}
	for first := true; ; first = false {
		key, done, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		// v1beta1's metadata and timestamp are not kept.
		name := eventFieldName(key)
		if name == "" && d.depth == 1 && isWrapperKey(key) {
			d.wrapped = true
		}
		if err := d.eventField(e, name); err != nil {
			return err
		}
	}
}

// isWrapperKey reports top-level fields of the formats that carry events
// inside (see Read), which a plain event does not have.
func isWrapperKey(key []byte) bool {
	switch string(key) {
	case "items", "protoPayload", "records", "category", "properties", "logEvents", "events", "@message", "message":
		return true
	}
	return false
}

func (d *decoder) eventField(e *Event, name string) error {
	switch name {
	case "kind":
		return d.str(&e.Kind, name, true)
	case "apiVersion":
		return d.str(&e.APIVersion, name, true)
	case "level":
		return d.str((*string)(&e.Level), name, true)
	case "auditID":
		return d.str(&e.AuditID, name, false)
	case "stage":
		return d.str((*string)(&e.Stage), name, true)
	case "requestURI":
		return d.str(&e.RequestURI, name, false)
	case "verb":
		return d.str(&e.Verb, name, true)
	case "user":
		if d.peek() == 'n' {
			return d.literal("null")
		}
		return inField(d.userInfo(&e.User), name)
	case "impersonatedUser":
		if d.peek() == 'n' {
			if err := d.literal("null"); err != nil {
				return err
			}
			e.ImpersonatedUser = nil
			return nil
		}
		if d.peek() != '{' {
			return d.typeErr(name, "object")
		}
		if e.ImpersonatedUser == nil {
			e.ImpersonatedUser = new(UserInfo)
		}
		return inField(d.userInfo(e.ImpersonatedUser), name)
	case "sourceIPs":
		return d.strSlice(&e.SourceIPs, name, true)
	case "userAgent":
		return d.str(&e.UserAgent, name, true)
	case "objectRef":
		if d.peek() == 'n' {
			return d.literal("null")
		}
		return inField(d.objectRef(&e.ObjectRef), name)
	case "responseStatus":
		if d.peek() == 'n' {
			return d.literal("null")
		}
		return inField(d.status(&e.ResponseStatus), name)
	case "requestObject":
		return d.rawMessage((*[]byte)(&e.RequestObject))
	case "responseObject":
		return d.rawMessage((*[]byte)(&e.ResponseObject))
	case "requestReceivedTimestamp":
		return d.timestamp(&e.RequestReceivedTimestamp, name)
	case "stageTimestamp":
		return d.timestamp(&e.StageTimestamp, name)
	case "timestamp":
		return d.timestamp(&e.LegacyTimestamp, name)
	case "annotations":
		return d.strMap(&e.Annotations, name)
	default:
		return d.skip()
	}
}

var userFields = []string{"username", "uid", "groups", "extra"}

func (d *decoder) userInfo(u *UserInfo) error {
	if err := d.openObject(""); err != nil {
		return err
	}
	for first := true; ; first = false {
		key, done, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		switch name := userFieldName(key); name {
		case "username":
			err = d.str(&u.Username, name, true)
		case "uid":
			err = d.str(&u.UID, name, false)
		case "groups":
			err = d.strSlice(&u.Groups, name, true)
		case "extra":
			err = d.strSliceMap(&u.Extra, name)
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
}

var objectRefFields = []string{
	"resource", "namespace", "name", "uid", "apiGroup", "apiVersion",
	"resourceVersion", "subresource",
}

func (d *decoder) objectRef(o *ObjectReference) error {
	if err := d.openObject(""); err != nil {
		return err
	}
	for first := true; ; first = false {
		key, done, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		switch name := objectRefFieldName(key); name {
		case "resource":
			err = d.str(&o.Resource, name, true)
		case "namespace":
			err = d.str(&o.Namespace, name, true)
		case "name":
			err = d.str(&o.Name, name, false)
		case "uid":
			err = d.str(&o.UID, name, false)
		case "apiGroup":
			err = d.str(&o.APIGroup, name, true)
		case "apiVersion":
			err = d.str(&o.APIVersion, name, true)
		case "resourceVersion":
			err = d.str(&o.ResourceVersion, name, false)
		case "subresource":
			err = d.str(&o.Subresource, name, true)
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
}

var statusFields = []string{"code", "status", "reason", "message"}

func (d *decoder) status(s *ResponseStatus) error {
	if err := d.openObject(""); err != nil {
		return err
	}
	for first := true; ; first = false {
		key, done, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		switch name := statusFieldName(key); name {
		case "code":
			err = d.int32Value(&s.Code, name)
		case "status":
			err = d.str(&s.Status, name, true)
		case "reason":
			err = d.str(&s.Reason, name, true)
		case "message":
			err = d.str(&s.Message, name, false)
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
}
