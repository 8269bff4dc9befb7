package manifest

import (
	"bytes"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file is a fast path for the YAML that manifests are made of: block
// mappings and sequences, single-line plain and quoted scalars, literal and
// folded block scalars, and flow collections written on one line. It turns
// one document into exactly the bytes sigs.k8s.io/yaml.YAMLToJSON returns
// (YAML 1.1 scalars as go.yaml.in/yaml/v2 resolves them, keys sorted as
// encoding/json sorts them), about ten times faster, with a handful of
// allocations per document instead of one or more per node (BenchmarkConvert:
// 8 instead of 985 for a typical object).
//
// Anything outside that subset, or anything it is unsure of, makes it give
// up (ok false), and the caller converts the document the slow way, which
// also produces the error message for invalid input. So the fast path only
// ever decides how fast a document is read, never what it means:
// FuzzFastYAML checks that on every input, against sigs.k8s.io/yaml.
//
// Given up on: anchors, aliases, tags, directives, complex keys, merge keys,
// keys that are not strings (1:, true:, ~:), multi-line plain and quoted
// scalars, flow collections that span lines, tabs, carriage returns,
// non-printable and non-UTF-8 input, NaN and infinities, and documents whose
// root is not a block mapping.

// ynode is one node of a parsed document.
type ynode struct {
	// s is the decoded text of a string, or the JSON text of a number or
	// boolean. It points into the document or into fastParser.text.
	s     []byte
	first int // index of the first child in fastParser.items or .pairs
	n     int // number of children
	kind  ykind
}

type ykind uint8

const (
	yNull ykind = iota
	yLiteral
	yString
	yMap
	ySeq
)

type ypair struct{ k, v int }

// fastParser holds the buffers one worker reuses from document to document.
type fastParser struct {
	d     []byte
	nodes []ynode
	items []int   // children of sequences
	pairs []ypair // children of mappings
	stack []int   // children of the sequences being parsed
	pstk  []ypair // children of the mappings being parsed
	text  []byte  // decoded strings and numbers
	out   []byte  // the JSON being written
	depth int
}

// giveUp is the panic value that abandons the fast path; convert recovers
// it. Panicking keeps the recursive descent free of error plumbing.
type giveUp struct{}

func (p *fastParser) fail() { panic(giveUp{}) }

// maxFastDepth bounds nesting, far below where the slow path objects.
const maxFastDepth = 64

// maxSimpleKey is under the 1024 characters libyaml allows a key on one line.
const maxSimpleKey = 1000

// convert parses one document and writes it as JSON. The result is valid
// until the next call. ok false means the document is outside the fast
// path's subset; nothing is known about its validity.
func (p *fastParser) convert(d []byte) (root int, js []byte, ok bool) {
	if p == nil || !printable(d) {
		return 0, nil, false
	}
	p.d = d
	p.nodes, p.items, p.pairs = p.nodes[:0], p.items[:0], p.pairs[:0]
	p.stack, p.pstk, p.text = p.stack[:0], p.pstk[:0], p.text[:0]
	p.depth = 0
	defer func() {
		if r := recover(); r != nil {
			if _, is := r.(giveUp); !is {
				panic(r)
			}
			ok = false
		}
	}()
	ls, col := p.nextContent(0)
	if col < 0 {
		p.fail()
	}
	root, next := p.blockMapping(ls+col, col)
	if _, col := p.nextContent(next); col >= 0 {
		p.fail()
	}
	p.out = p.appendJSON(p.out[:0], root)
	return root, p.out, true
}

// printable reports whether d holds only characters the fast path accepts:
// printable ASCII, line feeds and valid UTF-8 that libyaml reads as an
// ordinary printable character (not a line break, BOM or control).
func printable(d []byte) bool {
	for i := 0; i < len(d); {
		c := d[i]
		if c < utf8.RuneSelf {
			if (c < ' ' && c != '\n') || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(d[i:])
		switch {
		case r == utf8.RuneError && size == 1, r < 0xA0, r == 0x2028, r == 0x2029,
			r >= 0xD800 && r < 0xE000, r == 0xFEFF, r > 0xFFFD && r < 0x10000:
			return false
		}
		i += size
	}
	return true
}

func (p *fastParser) enter() {
	p.depth++
	if p.depth > maxFastDepth {
		p.fail()
	}
}

// nextContent skips blank and comment lines from the line starting at i and
// returns the start of the next content line and its indentation, or
// (len(d), -1) at the end of the document.
func (p *fastParser) nextContent(i int) (lineStart, col int) {
	d := p.d
	for i < len(d) {
		j := i
		for j < len(d) && d[j] == ' ' {
			j++
		}
		if j == len(d) {
			break
		}
		switch d[j] {
		case '\n':
			i = j + 1
			continue
		case '#':
			i = p.lineAfter(j)
			continue
		}
		if j == i && (hasMarker(d[i:], "---") || hasMarker(d[i:], "...")) {
			p.fail() // a document marker: more than one document
		}
		return i, j - i
	}
	return len(d), -1
}

func hasMarker(b []byte, m string) bool {
	return len(b) >= 3 && string(b[:3]) == m && (len(b) == 3 || b[3] == ' ' || b[3] == '\n')
}

// lineAfter returns the start of the line after the one holding i.
func (p *fastParser) lineAfter(i int) int {
	if j := bytes.IndexByte(p.d[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(p.d)
}

// blankAt reports whether i is past the end, a space or a line feed: what
// must follow "-", "?" and ":" for them to be indicators.
func (p *fastParser) blankAt(i int) bool {
	return i >= len(p.d) || p.d[i] == ' ' || p.d[i] == '\n'
}

func (p *fastParser) skipSpaces(i int) int {
	for i < len(p.d) && p.d[i] == ' ' {
		i++
	}
	return i
}

// endOfLine checks that only spaces and a comment follow i and returns the
// start of the next line.
func (p *fastParser) endOfLine(i int) int {
	i = p.skipSpaces(i)
	if i < len(p.d) && p.d[i] != '\n' && p.d[i] != '#' {
		p.fail()
	}
	return p.lineAfter(i)
}

func (p *fastParser) node(n ynode) int {
	p.nodes = append(p.nodes, n)
	return len(p.nodes) - 1
}

func (p *fastParser) stringNode(s []byte) int { return p.node(ynode{kind: yString, s: s}) }

// blockMapping parses the mapping whose first key is at i, in column col,
// and returns it with the start of the first line after it.
func (p *fastParser) blockMapping(i, col int) (int, int) {
	p.enter()
	base := len(p.pstk)
	for {
		k, after := p.key(i)
		v, next := p.value(after, col, false)
		p.pstk = append(p.pstk, ypair{k, v})
		ls, c := p.nextContent(next)
		if c < col {
			first := len(p.pairs)
			p.pairs = append(p.pairs, p.pstk[base:]...)
			n := len(p.pstk) - base
			p.pstk = p.pstk[:base]
			p.depth--
			return p.node(ynode{kind: yMap, first: first, n: n}), ls
		}
		if c > col {
			p.fail() // a continuation line, or bad indentation
		}
		i = ls + c
	}
}

// blockSequence parses the sequence whose first "-" is at i, in column col.
// It ends before a line in column col that is not an entry, which is how a
// sequence that is a mapping value may share its mapping's column.
func (p *fastParser) blockSequence(i, col int) (int, int) {
	p.enter()
	base := len(p.stack)
	var ls int
	for {
		v, next := p.value(i+1, col, true)
		p.stack = append(p.stack, v)
		var c int
		ls, c = p.nextContent(next)
		if c < col {
			break
		}
		if c > col {
			p.fail()
		}
		i = ls + c
		if p.d[i] != '-' || !p.blankAt(i+1) {
			break
		}
	}
	first := len(p.items)
	p.items = append(p.items, p.stack[base:]...)
	n := len(p.stack) - base
	p.stack = p.stack[:base]
	p.depth--
	return p.node(ynode{kind: ySeq, first: first, n: n}), ls
}

// key parses a mapping key at i and returns it with the position after its
// ":".
func (p *fastParser) key(i int) (int, int) {
	d := p.d
	var k int
	var colon int
	switch d[i] {
	case '"', '\'':
		var s []byte
		var end int
		if d[i] == '"' {
			s, end = p.doubleQuoted(i)
		} else {
			s, end = p.singleQuoted(i)
		}
		colon = p.skipSpaces(end)
		if colon >= len(d) || d[colon] != ':' || !p.blankAt(colon+1) {
			p.fail()
		}
		k = p.stringNode(s)
	default:
		if !p.plainStart(i, false) {
			p.fail()
		}
		end, stop, why := p.plain(i, false)
		if why != stopColon {
			p.fail()
		}
		colon = stop
		k = p.scalar(d[i:end])
		if p.nodes[k].kind != yString {
			p.fail() // 1:, true:, null: and the like become strings by rules of their own
		}
	}
	if colon-i > maxSimpleKey {
		p.fail()
	}
	return k, colon + 1
}

// value parses what follows a mapping's ":" or a sequence's "-" at i. col is
// the column of the enclosing collection, which bounds block scalars and
// nested collections.
func (p *fastParser) value(i, col int, inSeq bool) (int, int) {
	d := p.d
	i = p.skipSpaces(i)
	if i >= len(d) || d[i] == '\n' || d[i] == '#' {
		// The value, if any, is on the following lines.
		ls, c := p.nextContent(p.lineAfter(i))
		if c > col {
			j := ls + c
			if d[j] == '-' && p.blankAt(j+1) {
				return p.blockSequence(j, c)
			}
			return p.blockMapping(j, c) // gives up if j is not a key
		}
		if c == col && !inSeq && d[ls+c] == '-' && p.blankAt(ls+c+1) {
			return p.blockSequence(ls+c, c)
		}
		return p.node(ynode{kind: yNull}), ls
	}
	switch c := d[i]; c {
	case '|', '>':
		return p.blockScalar(i, col)
	case '"', '\'':
		var s []byte
		var end int
		if c == '"' {
			s, end = p.doubleQuoted(i)
		} else {
			s, end = p.singleQuoted(i)
		}
		if j := p.skipSpaces(end); j < len(d) && d[j] == ':' {
			if !inSeq {
				p.fail()
			}
			return p.blockMapping(i, p.column(i))
		}
		return p.stringNode(s), p.endOfLine(end)
	case '{', '[':
		n, end := p.flow(i)
		return n, p.endOfLine(end)
	}
	if !p.plainStart(i, false) {
		p.fail()
	}
	end, stop, why := p.plain(i, false)
	if why == stopColon {
		if !inSeq {
			p.fail() // "a: b: c"
		}
		return p.blockMapping(i, p.column(i))
	}
	return p.scalar(d[i:end]), p.lineAfter(stop)
}

// column returns the column of i, which only spaces and "-" precede on its
// line wherever it is asked.
func (p *fastParser) column(i int) int {
	return i - (bytes.LastIndexByte(p.d[:i], '\n') + 1)
}

// plainStart reports whether a plain scalar may start at i (libyaml's rule).
func (p *fastParser) plainStart(i int, flow bool) bool {
	switch p.d[i] {
	case '-':
		return !p.blankAt(i + 1)
	case '?', ':':
		return !flow && !p.blankAt(i+1)
	case ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', ' ', '\n':
		return false
	}
	return true
}

const (
	stopEOL     = iota // at a line feed or the end
	stopComment        // at "#"
	stopColon          // at ":" followed by a blank
	stopFlow           // at , [ ] { } inside a flow collection
)

// plain scans a plain scalar on one line from i. It returns the end of its
// text (trailing spaces excluded), where it stopped and why.
func (p *fastParser) plain(i int, flow bool) (end, stop, why int) {
	d := p.d
	end = i
	for i < len(d) {
		switch c := d[i]; c {
		case '\n':
			return end, i, stopEOL
		case ' ':
			j := p.skipSpaces(i)
			if j == len(d) || d[j] == '\n' {
				return end, j, stopEOL
			}
			if d[j] == '#' {
				return end, j, stopComment
			}
			i = j
			continue
		case ':':
			if p.blankAt(i + 1) {
				return end, i, stopColon
			}
			if flow {
				p.fail() // "a:b" is one scalar in yaml.v2, but not in YAML 1.2
			}
		case ',', '[', ']', '{', '}':
			if flow {
				return end, i, stopFlow
			}
		case '?':
			if flow {
				p.fail()
			}
		}
		i++
		end = i
	}
	return end, i, stopEOL
}

// flow parses a flow mapping or sequence at i that closes on the same line,
// and returns it with the position after its closing bracket.
func (p *fastParser) flow(i int) (int, int) {
	p.enter()
	d := p.d
	isMap := d[i] == '{'
	closing := byte(']')
	if isMap {
		closing = '}'
	}
	base, pbase := len(p.stack), len(p.pstk)
	i = p.skipSpaces(i + 1)
	if i < len(d) && d[i] == closing {
		i++
	} else {
		for {
			if isMap {
				k, after := p.flowKey(i)
				v, end := p.flowValue(p.skipSpaces(after))
				p.pstk = append(p.pstk, ypair{k, v})
				i = end
			} else {
				v, end := p.flowValue(i)
				p.stack = append(p.stack, v)
				i = end
			}
			i = p.skipSpaces(i)
			if i >= len(d) {
				p.fail()
			}
			if d[i] == closing {
				i++
				break
			}
			if d[i] != ',' {
				p.fail()
			}
			i = p.skipSpaces(i + 1)
			if i >= len(d) || d[i] == closing || d[i] == ',' {
				p.fail() // a trailing or doubled comma
			}
		}
	}
	p.depth--
	if isMap {
		first := len(p.pairs)
		p.pairs = append(p.pairs, p.pstk[pbase:]...)
		n := len(p.pstk) - pbase
		p.pstk = p.pstk[:pbase]
		return p.node(ynode{kind: yMap, first: first, n: n}), i
	}
	first := len(p.items)
	p.items = append(p.items, p.stack[base:]...)
	n := len(p.stack) - base
	p.stack = p.stack[:base]
	return p.node(ynode{kind: ySeq, first: first, n: n}), i
}

// flowKey parses "key: " inside a flow mapping and returns the key and the
// position after the ":".
func (p *fastParser) flowKey(i int) (int, int) {
	d := p.d
	if i >= len(d) {
		p.fail()
	}
	var k int
	var colon int
	switch d[i] {
	case '"', '\'':
		var s []byte
		var end int
		if d[i] == '"' {
			s, end = p.doubleQuoted(i)
		} else {
			s, end = p.singleQuoted(i)
		}
		colon = p.skipSpaces(end)
		k = p.stringNode(s)
	default:
		if !p.plainStart(i, true) {
			p.fail()
		}
		end, stop, why := p.plain(i, true)
		if why != stopColon {
			p.fail() // a key without a value, or not on this line
		}
		colon = stop
		k = p.scalar(d[i:end])
		if p.nodes[k].kind != yString {
			p.fail()
		}
	}
	if colon+1 >= len(d) || d[colon] != ':' || d[colon+1] != ' ' || colon-i > maxSimpleKey {
		p.fail()
	}
	return k, colon + 1
}

// flowValue parses a value inside a flow collection and returns it with the
// position after it.
func (p *fastParser) flowValue(i int) (int, int) {
	d := p.d
	if i >= len(d) {
		p.fail()
	}
	switch d[i] {
	case '{', '[':
		return p.flow(i)
	case '"', '\'':
		var s []byte
		var end int
		if d[i] == '"' {
			s, end = p.doubleQuoted(i)
		} else {
			s, end = p.singleQuoted(i)
		}
		if j := p.skipSpaces(end); j < len(d) && d[j] == ':' {
			p.fail() // a single-pair mapping inside a sequence
		}
		return p.stringNode(s), end
	}
	if !p.plainStart(i, true) {
		p.fail()
	}
	end, stop, why := p.plain(i, true)
	if why != stopFlow {
		p.fail()
	}
	return p.scalar(d[i:end]), stop
}

// singleQuoted scans a single-quoted scalar at i that ends on the same line.
func (p *fastParser) singleQuoted(i int) ([]byte, int) {
	d := p.d
	i++
	start := i
	for i < len(d) && d[i] != '\'' && d[i] != '\n' {
		i++
	}
	if i >= len(d) || d[i] == '\n' {
		p.fail()
	}
	if i+1 >= len(d) || d[i+1] != '\'' {
		return d[start:i], i + 1
	}
	// Quotes are escaped by doubling them.
	t := len(p.text)
	for {
		if i >= len(d) || d[i] == '\n' {
			p.fail()
		}
		if d[i] == '\'' {
			p.text = append(p.text, d[start:i]...)
			if i+1 < len(d) && d[i+1] == '\'' {
				p.text = append(p.text, '\'')
				i += 2
				start = i
				continue
			}
			return p.text[t:len(p.text):len(p.text)], i + 1
		}
		i++
	}
}

// doubleQuoted scans a double-quoted scalar at i that ends on the same line,
// decoding escapes as libyaml does.
func (p *fastParser) doubleQuoted(i int) ([]byte, int) {
	d := p.d
	i++
	start := i
	for i < len(d) && d[i] != '"' && d[i] != '\\' && d[i] != '\n' {
		i++
	}
	if i >= len(d) || d[i] == '\n' {
		p.fail()
	}
	if d[i] == '"' {
		return d[start:i], i + 1
	}
	t := len(p.text)
	p.text = append(p.text, d[start:i]...)
	for {
		if i >= len(d) || d[i] == '\n' {
			p.fail()
		}
		c := d[i]
		if c == '"' {
			return p.text[t:len(p.text):len(p.text)], i + 1
		}
		if c != '\\' {
			p.text = append(p.text, c)
			i++
			continue
		}
		if i+1 >= len(d) {
			p.fail()
		}
		codeLen := 0
		switch e := d[i+1]; e {
		case '0':
			p.text = append(p.text, 0)
		case 'a':
			p.text = append(p.text, '\a')
		case 'b':
			p.text = append(p.text, '\b')
		case 't':
			p.text = append(p.text, '\t')
		case 'n':
			p.text = append(p.text, '\n')
		case 'v':
			p.text = append(p.text, '\v')
		case 'f':
			p.text = append(p.text, '\f')
		case 'r':
			p.text = append(p.text, '\r')
		case 'e':
			p.text = append(p.text, 0x1b)
		case ' ', '"', '\'', '\\':
			p.text = append(p.text, e)
		case 'N':
			p.text = append(p.text, "\u0085"...)
		case '_':
			p.text = append(p.text, "\u00a0"...)
		case 'L':
			p.text = append(p.text, "\u2028"...)
		case 'P':
			p.text = append(p.text, "\u2029"...)
		case 'x':
			codeLen = 2
		case 'u':
			codeLen = 4
		case 'U':
			codeLen = 8
		default:
			p.fail() // an unknown escape, or an escaped line break
		}
		i += 2
		if codeLen > 0 {
			if i+codeLen > len(d) {
				p.fail()
			}
			v, err := strconv.ParseUint(string(d[i:i+codeLen]), 16, 32)
			if err != nil || (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF {
				p.fail()
			}
			p.text = utf8.AppendRune(p.text, rune(v))
			i += codeLen
		}
	}
}

// blockScalar parses a literal (|) or folded (>) scalar at i, as libyaml's
// yaml_parser_scan_block_scalar does. col is the enclosing collection's
// column: content must be indented further.
func (p *fastParser) blockScalar(i, col int) (int, int) {
	d := p.d
	literal := d[i] == '|'
	i++
	chomping, increment := 0, 0
	chomp := func() {
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			chomping = 1
			if d[i] == '-' {
				chomping = -1
			}
			i++
		}
	}
	digit := func() {
		if i < len(d) && d[i] >= '0' && d[i] <= '9' {
			if d[i] == '0' {
				p.fail()
			}
			increment = int(d[i] - '0')
			i++
		}
	}
	if i < len(d) && (d[i] == '+' || d[i] == '-') {
		chomp()
		digit()
	} else {
		digit()
		chomp()
	}
	i = p.skipSpaces(i)
	if i < len(d) && d[i] == '#' {
		for i < len(d) && d[i] != '\n' {
			i++
		}
	}
	if i < len(d) && d[i] != '\n' {
		p.fail()
	}
	if i < len(d) {
		i++
	}
	indent := 0
	if increment > 0 {
		indent = col + increment
	}
	t := len(p.text)
	var ls, trailing int
	i, ls, indent, trailing = p.blockBreaks(i, indent, col)
	leading := 0
	leadingBlank := false
	for i-ls == indent && i < len(d) {
		trailingBlank := d[i] == ' '
		if !literal && !leadingBlank && !trailingBlank && leading > 0 {
			if trailing == 0 {
				p.text = append(p.text, ' ')
			}
		} else {
			p.text = appendBreaks(p.text, leading)
		}
		leading = 0
		p.text = appendBreaks(p.text, trailing)
		leadingBlank = d[i] == ' '
		end := len(d)
		if j := bytes.IndexByte(d[i:], '\n'); j >= 0 {
			end = i + j
		}
		p.text = append(p.text, d[i:end]...)
		i = end
		if i < len(d) {
			leading = 1
			i++
		}
		i, ls, indent, trailing = p.blockBreaks(i, indent, col)
	}
	if chomping != -1 {
		p.text = appendBreaks(p.text, leading)
	}
	if chomping == 1 {
		p.text = appendBreaks(p.text, trailing)
	}
	return p.stringNode(p.text[t:len(p.text):len(p.text)]), ls
}

// blockBreaks skips the indentation and empty lines before a block scalar's
// next content line, as libyaml's yaml_parser_scan_block_scalar_breaks does,
// determining the indentation from the first content line if it is not yet
// known. It returns the position reached, the start of its line, the
// indentation and the number of line feeds skipped.
func (p *fastParser) blockBreaks(i, indent, col int) (pos, lineStart, newIndent, breaks int) {
	d := p.d
	maxIndent := 0
	for {
		ls := i
		for (indent == 0 || i-ls < indent) && i < len(d) && d[i] == ' ' {
			i++
		}
		maxIndent = max(maxIndent, i-ls)
		if i >= len(d) || d[i] != '\n' {
			if indent == 0 {
				indent = max(maxIndent, col+1, 1)
			}
			return i, ls, indent, breaks
		}
		breaks++
		i++
	}
}

func appendBreaks(b []byte, n int) []byte {
	for range n {
		b = append(b, '\n')
	}
	return b
}

// resolveHint classifies a plain scalar by its first byte, as yaml.v2's
// resolve table does: 0 means it can only be a string.
var resolveHint = func() (t [256]byte) {
	t['+'], t['-'] = 'S', 'S'
	for c := '0'; c <= '9'; c++ {
		t[c] = 'D'
	}
	for _, c := range "yYnNtTfFoO~" {
		t[c] = 'M'
	}
	t['.'] = '.'
	return t
}()

// numberish holds the bytes that strconv may accept in a YAML int or float
// (digits, signs, base prefixes, hex digits, exponents, underscores).
var numberish = func() (t [256]bool) {
	for _, c := range "0123456789abcdefABCDEFxXoO_+-." {
		t[c] = true
	}
	return t
}()

var yamlStyleFloat = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// scalar resolves a plain scalar as yaml.v2 does for an untagged value
// decoded into interface{} (resolve in go.yaml.in/yaml/v2), and returns its
// node. Timestamps stay strings there, so they are not looked for.
func (p *fastParser) scalar(s []byte) int {
	hint := resolveHint[s[0]]
	if hint == 0 {
		if string(s) == "<<" {
			p.fail() // a merge key
		}
		return p.stringNode(s)
	}
	switch string(s) {
	case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON":
		return p.literal(jsonTrue)
	case "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF":
		return p.literal(jsonFalse)
	case "~", "null", "Null", "NULL":
		return p.node(ynode{kind: yNull})
	case ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF":
		p.fail() // not JSON
	}
	switch hint {
	case '.':
		if f, err := strconv.ParseFloat(string(s), 64); err == nil {
			return p.float(f)
		}
	case 'D', 'S':
		for _, c := range s {
			if !numberish[c] {
				return p.stringNode(s)
			}
		}
		plain := string(s)
		if bytes.IndexByte(s, '_') >= 0 {
			plain = string(bytes.ReplaceAll(s, []byte("_"), nil))
		}
		if v, err := strconv.ParseInt(plain, 0, 64); err == nil {
			return p.number(strconv.AppendInt(p.text, v, 10))
		}
		if v, err := strconv.ParseUint(plain, 0, 64); err == nil {
			return p.number(strconv.AppendUint(p.text, v, 10))
		}
		if yamlStyleFloat.MatchString(plain) {
			if f, err := strconv.ParseFloat(plain, 64); err == nil {
				return p.float(f)
			}
		}
		if len(plain) > 2 && plain[:2] == "0b" {
			if v, err := strconv.ParseInt(plain[2:], 2, 64); err == nil {
				return p.number(strconv.AppendInt(p.text, v, 10))
			}
			if v, err := strconv.ParseUint(plain[2:], 2, 64); err == nil {
				return p.number(strconv.AppendUint(p.text, v, 10))
			}
		} else if len(plain) > 3 && plain[:3] == "-0b" {
			if v, err := strconv.ParseInt("-"+plain[3:], 2, 64); err == nil {
				return p.number(strconv.AppendInt(p.text, v, 10))
			}
		}
	}
	return p.stringNode(s)
}

var jsonTrue, jsonFalse = []byte("true"), []byte("false")

func (p *fastParser) literal(s []byte) int {
	return p.node(ynode{kind: yLiteral, s: s})
}

// number records the JSON text appended to p.text.
func (p *fastParser) number(b []byte) int {
	t := len(p.text)
	p.text = b
	return p.node(ynode{kind: yLiteral, s: p.text[t:len(p.text):len(p.text)]})
}

// float records f as encoding/json writes a float64.
func (p *fastParser) float(f float64) int {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		p.fail()
	}
	t := len(p.text)
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b := strconv.AppendFloat(p.text, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n-t >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	p.text = b
	return p.node(ynode{kind: yLiteral, s: p.text[t:len(p.text):len(p.text)]})
}

// appendJSON writes node n as encoding/json writes the map[string]any and
// []any sigs.k8s.io/yaml builds: mapping keys sorted, the last of duplicate
// keys kept. Mappings are sorted in place.
func (p *fastParser) appendJSON(b []byte, n int) []byte {
	nd := &p.nodes[n]
	switch nd.kind {
	case yNull:
		return append(b, "null"...)
	case yLiteral:
		return append(b, nd.s...)
	case yString:
		return appendJSONString(b, nd.s)
	case ySeq:
		b = append(b, '[')
		for i, c := range p.items[nd.first : nd.first+nd.n] {
			if i > 0 {
				b = append(b, ',')
			}
			b = p.appendJSON(b, c)
		}
		return append(b, ']')
	}
	pairs := p.sortedPairs(nd)
	b = append(b, '{')
	first := true
	for i, kv := range pairs {
		if i+1 < len(pairs) && bytes.Equal(p.nodes[kv.k].s, p.nodes[pairs[i+1].k].s) {
			continue // a later duplicate wins
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, p.nodes[kv.k].s)
		b = append(b, ':')
		b = p.appendJSON(b, kv.v)
	}
	return append(b, '}')
}

// sortedPairs sorts a mapping's pairs by key, stably, so that among
// duplicates the last written comes last.
func (p *fastParser) sortedPairs(nd *ynode) []ypair {
	pairs := p.pairs[nd.first : nd.first+nd.n]
	less := func(a, b ypair) int { return bytes.Compare(p.nodes[a.k].s, p.nodes[b.k].s) }
	if len(pairs) > 12 {
		slices.SortStableFunc(pairs, less)
		return pairs
	}
	for i := 1; i < len(pairs); i++ {
		for j := i; j > 0 && less(pairs[j-1], pairs[j]) > 0; j-- {
			pairs[j-1], pairs[j] = pairs[j], pairs[j-1]
		}
	}
	return pairs
}

// jsonSafe marks the ASCII bytes encoding/json writes unescaped (with HTML
// escaping, its default).
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()

// appendJSONString writes s as encoding/json writes a string (see its
// appendString, which this follows).
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// header reads the fields Load names an object by from a converted
// document, as json.Unmarshal of its JSON into a header would. ok is false
// where the two might differ: a key that matches a field only
// case-insensitively, a value of the wrong type (which is an error there),
// or a List, whose items are decoded from JSON one by one.
func (p *fastParser) header(root int) (h header, ok bool) {
	var list bool
	ok = p.eachPair(root, func(k []byte, v int) bool {
		switch string(k) {
		case "apiVersion":
			return p.stringField(v, &h.APIVersion)
		case "kind":
			return p.stringField(v, &h.Kind)
		case "metadata":
			return p.metadata(v, &h)
		case "items":
			switch p.nodes[v].kind {
			case yNull:
				return true
			case ySeq:
				list = true
				return true
			}
			return false
		}
		return !foldsTo(k, "apiVersion", "kind", "metadata", "items")
	})
	if list && strings.HasSuffix(h.Kind, "List") {
		return h, false
	}
	return h, ok
}

func (p *fastParser) metadata(v int, h *header) bool {
	switch p.nodes[v].kind {
	case yNull:
		return true
	case yMap:
	default:
		return false
	}
	m := &h.Metadata
	return p.eachPair(v, func(k []byte, v int) bool {
		switch string(k) {
		case "name":
			return p.stringField(v, &m.Name)
		case "generateName":
			return p.stringField(v, &m.GenerateName)
		case "namespace":
			return p.stringField(v, &m.Namespace)
		case "labels":
			return p.stringMap(v, &m.Labels)
		case "annotations":
			return p.stringMap(v, &m.Annotations)
		}
		return !foldsTo(k, "name", "generateName", "namespace", "labels", "annotations")
	})
}

// eachPair calls f on every key of a sorted mapping, the last of duplicates
// only, until f returns false.
func (p *fastParser) eachPair(m int, f func(k []byte, v int) bool) bool {
	nd := &p.nodes[m]
	pairs := p.pairs[nd.first : nd.first+nd.n]
	for i, kv := range pairs {
		k := p.nodes[kv.k].s
		if i+1 < len(pairs) && bytes.Equal(k, p.nodes[pairs[i+1].k].s) {
			continue
		}
		if !f(k, kv.v) {
			return false
		}
	}
	return true
}

// stringField stores a string value in dst; null leaves it unchanged, as
// encoding/json does.
func (p *fastParser) stringField(v int, dst *string) bool {
	switch nd := &p.nodes[v]; nd.kind {
	case yString:
		*dst = string(nd.s)
		return true
	case yNull:
		return true
	}
	return false
}

// stringMap stores a mapping of strings in dst as encoding/json decodes a
// map[string]string: null is a nil map, and a null value an empty string.
func (p *fastParser) stringMap(v int, dst *map[string]string) bool {
	switch p.nodes[v].kind {
	case yNull:
		return true
	case yMap:
	default:
		return false
	}
	m := make(map[string]string, p.nodes[v].n)
	*dst = m
	return p.eachPair(v, func(k []byte, v int) bool {
		var s string
		if !p.stringField(v, &s) {
			return false
		}
		m[string(k)] = s
		return true
	})
}

// foldsTo reports whether k matches one of names only case-insensitively,
// which encoding/json would accept as that field.
func foldsTo(k []byte, names ...string) bool {
	for _, n := range names {
		if string(k) != n && bytes.EqualFold(k, []byte(n)) {
			return true
		}
	}
	return false
}
