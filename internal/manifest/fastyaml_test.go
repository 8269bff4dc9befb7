package manifest

import (
	"bytes"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/testcorpus"
	"github.com/kustode/kustode/internal/testgen"
)

// fastCases are documents inside and outside the fast path's subset. fast
// says whether the fast path must take the document: it may give up on any
// document, but not on the shapes manifests are usually written in.
var fastCases = []struct {
	name string
	doc  string
	fast bool
}{
	{"mapping", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n", true},
	{"indented root", "  a: b\n  c: d\n", true},
	{"ints", "a: 1\nb: 0x1F\nc: 017\nd: 0o17\ne: 1_000\nf: +5\ng: -0\nh: 0b101\ni: -0b101\nj: 18446744073709551615\nk: 9223372036854775807\nl: -9223372036854775808\n", true},
	{"floats", "a: 1.0\nb: .5\nc: 1e3\nd: 0.000001\ne: 1e21\nf: 1e-7\ng: 18446744073709551616\nh: -1.5e+300\ni: 1.\nj: +.5\n", true},
	{"not numbers", "a: 1e400\nb: 2006-01-02\nc: 1.0.0\nd: 100m\ne: 128Mi\nf: 0x\ng: 1_\nh: -\"x\"\ni: 0b\nj: 0b2\nk: ._5\nl: .x\nm: +\nnn: -.\n", true},
	{"bools", "a: yes\nb: No\nc: on\nd: OFF\ne: y\nf: n\ng: True\nh: tRue\ni: Y\nj: FALSE\nk: offf\n", true},
	{"nulls", "a: ~\nb: null\nc:\nd: NULL\ne: Null\nf: nULL\n", true},
	{"html and unicode", "a: <b>&c\nb: é ü 日本\nc: \"\\u2028 \\x80 \\U0001F600\"\nd: \U0001F600\n", true},
	{"double quoted", `a: "x\ty \"q\" \\ \/"` + "\n", false},
	{"escapes", `a: "\0\a\b\e\f\v\n\r\t\ \"\'\N\_\L\P\x41\u00e9"` + "\n", true},
	{"bad escapes", `a: "\uD800"` + "\n", false},
	{"single quoted", "a: 'it''s'\nb: ''\nc: \"\"\nd: '\\n'\ne: '''x'''\n", true},
	{"quoted keys", "\"a\": 1\n'b': 2\n\"c\" : 3\n\"\": 4\n", true},
	{"literal", "a: |\n  x\n  y\n\nb: |-\n  strip\n\n\nc: |+\n  keep\n\n\nd: |2\n    indented\ne: | # comment\n  x\nf: |\ng: x\n", true},
	{"folded", "a: >\n  folded\n  text\n\n  para\n    more\n  back\n\n\nb: >-\n  x\n   y\n  z\nc: >+\n  x\n\n", true},
	{"block scalar edge", "a: |\n\n    x\n  y\n", false},
	{"block scalar comments", "a: |\n  # not a comment\n  x\n# comment\nb: c\n", true},
	{"block scalar at end", "a: |\n  x", true},
	{"block scalar explicit", "a: |1\n  x\nb: |-2\n   x\n", true},
	{"block scalar zero", "a: |0\n x\n", false},
	{"block scalar junk", "a: |x\n", false},
	{"block scalar leading blank lines", "a: |\n\n\n  x\n", true},
	{"block scalar more indented blank", "a: >\n  x\n      \n  y\n", true},
	{"block scalars in sequences", "a:\n- |\n  x\n- >-\n  y\n  z\n-   |\n    w\n", true},
	{"block scalar in compact mapping", "a:\n- b: |\n    x\n  c: d\n", true},
	{"block scalar in indented sequence", "a:\n  - |\n   x\n", true},
	{"flow", "a: {b: c, d: [e, f, {g: h}], i: []}\nj: {}\nk: { }\nl: [ ]\nm: [1, 2]   # c\nnn: [a b, c d]\no: {b: 'x, y', c: \"]\"}\np: [[[[1]]]]\nq: {'a': 1, \"b\": 2}\nr: [-1, -x]\n", true},
	{"flow trailing comma", "a: [a, ]\n", false},
	{"flow then text", "a: [1, 2] x\n", false},
	{"flow multi-line", "a: [1,\n  2]\n", false},
	{"flow colon", "a: {u: http://x}\n", false},
	{"flow pair in sequence", "a: [b: c]\n", false},
	{"flow key without value", "a: {b}\n", false},
	{"flow JSON style", "a: {\"b\":1}\n", false},
	{"sequences", "a:\n- b\n- c: d\n  e: f\n-\n  g: h\n-\n- 'q': r\n-   s: t\n    u: v\n", true},
	{"nested sequence", "a:\n- - b\n", false},
	{"indented sequence", "a:\n  - b\n  - c\nd: e\n", true},
	{"sequence in compact mapping", "a:\n- b:\n  - c\n  d: e\n- f:\n- g\n", true},
	{"comments", "a: b # c\n# full\n  # indented\n\n   \nd: e#f\ng: 'h' #i\nj: [k] #l\nm: #n\n  o: p\n", true},
	{"duplicate keys", "a: 1\nb: 2\na: 3\nc: {x: 1, x: 2}\n", true},
	{"many keys", "z: 1\nyz: 2\nx: 3\nw: 4\nv: 5\nu: 6\nt: 7\ns: 8\nr: 9\nq: 10\np: 11\no: 12\nnz: 13\nm: 14\nz: 15\nyy: 16\n", true},
	{"keys with spaces", "a b: c\nd  : e\nf: g h  i\n", true},
	{"plain with colons", "a: http://x:80/y\nb: b:c\nc: ::1\nd: -x\ne: ?x\nf: :x\n", true},
	{"mapping value in value", "a: b: c\n", false},
	{"non-string keys", "1: x\n", false},
	{"bool key", "on: x\n", false},
	{"null key", "~: x\n", false},
	{"merge", "a: {b: c}\n<<: {d: e}\n", false},
	{"quoted merge key", "\"<<\": x\n", true},
	{"anchor", "a: &x 1\nb: *x\n", false},
	{"tag", "a: !!str 1\n", false},
	{"multi-line plain", "a: b\n  c\n", false},
	{"multi-line quoted", "a: 'b\n  c'\n", false},
	{"plain on next line", "a:\n  b\n", false},
	{"sequence root", "- a\n", false},
	{"scalar root", "a\n", false},
	{"flow root", "{a: b}\n", false},
	{"JSON", "{\"apiVersion\": \"v1\", \"kind\": \"Pod\"}\n", false},
	{"tab", "a:\tb\n", false},
	{"CRLF", "a: b\r\n", false},
	{"document end", "a: b\n...\n", false},
	{"directive", "%YAML 1.1\na: b\n", false},
	{"bad indentation", "a:\n    - b\n  c: d\n", false},
	{"sequence after value", "a: b\n- c\n", false},
	{"dash value", "a: - b\n", false},
	{"long key", strings.Repeat("k", 1100) + ": v\n", false},
	{"deep", strings.Repeat("[", 70) + strings.Repeat("]", 70), false},
	{"deep block", func() string {
		var b strings.Builder
		for i := range 70 {
			b.WriteString(strings.Repeat(" ", i) + "a:\n")
		}
		return b.String()
	}(), false},
	{"NaN", "a: .nan\n", false},
	{"Inf", "a: -.Inf\n", false},
	{"BOM", "\ufeffa: b\n", false},
	{"NEL", "a: b\u0085c\n", false},
	{"invalid UTF-8", "a: \xff\n", false},
	{"control", "a: \x01\n", false},

	// The header Load names objects by.
	{"list", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n- 5\n", true},
	{"empty list", "apiVersion: v1\nkind: PodList\nitems: []\n", true},
	{"null items", "apiVersion: v1\nkind: PodList\nitems:\n", true},
	{"items not a list", "apiVersion: v1\nkind: Pod\nitems: 5\n", true},
	{"items in a non-list", "apiVersion: v1\nkind: Pod\nitems: [1]\n", true},
	{"case-folded kind", "Kind: x\nkind: Pod\napiVersion: v1\n", true},
	{"case-folded kind only", "KIND: Pod\napiVersion: v1\n", true},
	{"Kelvin kind", "\u212Aind: Pod\napiVersion: v1\n", true},
	{"long s", "apiVer\u017Fion: v1\nkind: Pod\n", true},
	{"numeric label", "apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    a: 1\n", true},
	{"numeric name", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: 5\n", true},
	{"numeric apiVersion", "apiVersion: 1\nkind: Pod\n", true},
	{"null label", "apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    a:\n  annotations: {}\n", true},
	{"null metadata", "apiVersion: v1\nkind: Pod\nmetadata: null\n", true},
	{"metadata list", "apiVersion: v1\nkind: Pod\nmetadata: []\n", true},
	{"case-folded name", "apiVersion: v1\nkind: Pod\nmetadata:\n  Name: x\n", true},
	{"duplicate name", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\n", true},
	{"generateName", "apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: g-\n  namespace: ns\n", true},
	{"no apiVersion", "kind: Pod\n", true},
	{"null kind", "apiVersion: v1\nkind:\n", true},
}

// checkFast checks that the fast path, where it takes doc, returns exactly
// what sigs.k8s.io/yaml and encoding/json do, and reports whether it took it.
func checkFast(t *testing.T, fp *fastParser, doc []byte) bool {
	t.Helper()
	_, got, ok := fp.convert(doc)
	if !ok {
		return false // the slow path decodes it, as it always did
	}
	want, err := yaml.YAMLToJSON(doc)
	if err != nil {
		t.Errorf("fast path accepted a document sigs.k8s.io/yaml rejects (%v):\n%s", err, doc)
	} else if !bytes.Equal(got, want) {
		t.Errorf("fast path disagrees on\n%s\n got %s\nwant %s", doc, got, want)
	}
	src := finding.Source{File: "f.yaml", Line: 3}
	fastObjs, fastErr := decodeDocument(src, doc, fp)
	slowObjs, slowErr := decodeDocument(src, doc, nil)
	if !reflect.DeepEqual(fastObjs, slowObjs) {
		t.Errorf("objects differ on\n%s\n got %+v\nwant %+v", doc, fastObjs, slowObjs)
	}
	if (fastErr == nil) != (slowErr == nil) || (fastErr != nil && fastErr.Error() != slowErr.Error()) {
		t.Errorf("errors differ on\n%s\n got %v\nwant %v", doc, fastErr, slowErr)
	}
	return true
}

func TestFastYAML(t *testing.T) {
	var fp fastParser
	for _, c := range fastCases {
		t.Run(c.name, func(t *testing.T) {
			if ok := checkFast(t, &fp, []byte(c.doc)); c.fast && !ok {
				t.Errorf("fast path gave up on\n%s", c.doc)
			}
		})
	}
}

// TestFastYAMLDocuments runs every document the repository's tests and the
// shared corpus hold through the fast path. The synthetic manifests must all
// take it.
func TestFastYAMLDocuments(t *testing.T) {
	var fp fastParser
	var buf bytes.Buffer
	if err := testgen.Write(&buf, 500); err != nil {
		t.Fatal(err)
	}
	for _, d := range splitDocuments(buf.Bytes()) {
		if !checkFast(t, &fp, d.data) {
			t.Fatalf("fast path gave up on a synthetic manifest:\n%s", d.data)
		}
	}
	dirs := []string{"testdata", "../posture/checks/testdata", "../../examples"}
	t.Run("corpus", func(t *testing.T) {
		dirs := append(dirs, testcorpus.Dir(t, "manifests"))
		var docs, fast int
		for _, dir := range dirs {
			err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() {
					return err
				}
				data, err := os.ReadFile(path) //nolint:gosec // test input
				if err != nil {
					return err
				}
				for _, d := range splitDocuments(data) {
					docs++
					if checkFast(t, &fp, d.data) {
						fast++
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("fast path took %d of %d documents", fast, docs)
	})
}

// FuzzFastYAML checks the fast path against sigs.k8s.io/yaml on any input.
func FuzzFastYAML(f *testing.F) {
	for _, c := range fastCases {
		f.Add([]byte(c.doc))
	}
	var buf bytes.Buffer
	if err := testgen.Write(&buf, 14); err != nil {
		f.Fatal(err)
	}
	for _, d := range splitDocuments(buf.Bytes()) {
		f.Add(d.data)
	}
	var fp fastParser
	f.Fuzz(func(t *testing.T, doc []byte) {
		checkFast(t, &fp, doc)
	})
}

// TestFastYAMLRandom checks the fast path on random documents built from
// the constructs manifests use, mostly valid YAML, so that the paths where
// it does not give up are exercised more deeply than byte mutation does.
func TestFastYAMLRandom(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	var fp fastParser
	var fast int
	for seed := range n {
		g := yamlGen{r: rand.New(rand.NewPCG(uint64(seed), 7))}
		g.mapping(0, 0)
		if checkFast(t, &fp, g.b.Bytes()) {
			fast++
		}
		if t.Failed() {
			t.Fatalf("seed %d", seed)
		}
	}
	if fast < n/3 {
		t.Errorf("fast path took only %d of %d random documents", fast, n)
	}
	t.Logf("fast path took %d of %d random documents", fast, n)
}

type yamlGen struct {
	r *rand.Rand
	b bytes.Buffer
}

func (g *yamlGen) pick(s ...string) string { return s[g.r.IntN(len(s))] }

// Keys and scalars the fast path takes, and (rarer) ones it may give up on.
var (
	genKeys = []string{"apiVersion", "kind", "metadata", "name", "namespace", "labels", "annotations", "items",
		"spec", "a", "b", "app.kubernetes.io/name", "key with spaces", `"quoted"`, `'single'`, `"es\"c"`, "Name", "KIND",
		"-k", "k:v", "Kind", "metadata", "\u212Aind"}
	genOddKeys = []string{"y", "on", "1", "~", "<<", "? x", "&a k", "[k]", "k\t"}
	genScalars = []string{"v1", "Pod", "List", "PodList", "app", "hello world", "1", "-1", "0x1f", "017", "1_000", "1.5", ".5",
		"1e3", "yes", "No", "off", "true", "~", "null", "2020-01-02", "100m", "128Mi", "1.0.0", "http://x:80/y", "a#b",
		"-x", ":x", "?x", "<&>", "é", `"dq"`, `"a\tb\u00e9\x41"`, `'it''s'`, `''`, `""`, "[a, b]", "{a: b, c: [1, 2]}",
		"[]", "{}", "[1, {x: y}, [z]]", "{a: 1, a: 2}", "{k: 'v, w'}", "x # comment", "a  b", "0b101",
		"18446744073709551616", "+.5", "- x"}
	genOddScalars = []string{"a: b", "*alias", "&anchor x", "!!str 5", ".nan", "'multi", "[a,", "{a}", `"\/"`, "1e400",
		"[a, ]", "{a: http://x}", "\"\\L\"", "a\tb", `"\uD800"`, "|x", "@x", "%x"}
)

func (g *yamlGen) key() string {
	if g.r.IntN(40) == 0 {
		return g.pick(genOddKeys...)
	}
	return g.pick(genKeys...)
}

func (g *yamlGen) scalar() string {
	if g.r.IntN(40) == 0 {
		return g.pick(genOddScalars...)
	}
	return g.pick(genScalars...)
}

func (g *yamlGen) line(indent int, s string) {
	g.b.WriteString(strings.Repeat(" ", indent))
	g.b.WriteString(s)
	if g.r.IntN(8) == 0 {
		g.b.WriteString(g.pick("  ", " # c", "   #c"))
	}
	g.b.WriteByte('\n')
	if g.r.IntN(12) == 0 {
		g.b.WriteString(g.pick("\n", "# comment\n", strings.Repeat(" ", g.r.IntN(6))+"# indented\n", "   \n"))
	}
}

func (g *yamlGen) mapping(indent, depth int) {
	for range 1 + g.r.IntN(5) {
		key := g.key()
		g.value(indent, depth, key+":", false)
	}
}

// value writes prefix (a key and its colon, or a dash) and a value.
func (g *yamlGen) value(indent, depth int, prefix string, inSeq bool) {
	switch k := g.r.IntN(10); {
	case depth > 3 || k < 4:
		g.line(indent, prefix+" "+g.scalar())
	case k < 6:
		g.line(indent, prefix)
		step := g.pick("2", "2", "4", "1")[0] - '0'
		g.mapping(indent+int(step), depth+1)
	case k < 8:
		g.line(indent, prefix)
		in := indent + g.r.IntN(3)
		if inSeq && in == indent {
			in += 2
		}
		for range 1 + g.r.IntN(3) {
			if g.r.IntN(2) == 0 {
				// A compact mapping in the entry.
				g.b.WriteString(strings.Repeat(" ", in) + "- ")
				key := g.key()
				g.line(0, key+": "+g.scalar())
				if g.r.IntN(2) == 0 {
					g.value(in+2, depth+1, g.key()+":", false)
				}
			} else {
				g.value(in, depth+1, "-", true)
			}
		}
	default:
		g.blockScalar(indent, prefix)
	}
}

func (g *yamlGen) blockScalar(indent int, prefix string) {
	header := g.pick("|", ">", "|-", ">-", "|+", ">+", "|2", ">1", "|-1", "|0", "| # c")
	g.b.WriteString(strings.Repeat(" ", indent) + prefix + " " + header + "\n")
	in := indent + 1 + g.r.IntN(3)
	for range g.r.IntN(5) {
		switch g.r.IntN(6) {
		case 0:
			g.b.WriteString("\n")
		case 1:
			g.b.WriteString(strings.Repeat(" ", in+1+g.r.IntN(3)) + "more indented\n")
		case 2:
			g.b.WriteString(strings.Repeat(" ", g.r.IntN(in+3)) + "\n")
		default:
			g.b.WriteString(strings.Repeat(" ", in) + g.pick("text", "# not a comment", "a: b", "- x", "  lead") + "\n")
		}
	}
}
