package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the YAML configuration file at path over Default() and returns
// the result without validating it (Resolve and Validate do that).
//
// The file is read strictly: an unknown key is an error with file:line:col
// and, when a known key is close, "did you mean"; a value of the wrong type
// (a plain number as a duration, a string where a list belongs) is an error
// with its position. All problems are returned at once, joined. A key with
// a null value keeps its default. Relative paths in file settings are taken
// relative to the file's directory, so that a file and the files it names
// can move together.
func Load(path string) (Config, error) {
	c, _, err := load(path)
	return c, err
}

// load is Load that also returns where each setting was set, as
// "file:line:col" by YAML key.
func load(path string) (Config, map[string]string, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the user names the file
	if err != nil {
		return Config{}, nil, fmt.Errorf("config: %w", err)
	}
	return parse(path, data)
}

// parse decodes data, the content of the file name, over Default().
func parse(name string, data []byte) (Config, map[string]string, error) {
	d := decoder{name: name, dir: filepath.Dir(name), cfg: Default(), at: map[string]string{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, nil, syntaxError(name, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return Config{}, nil, syntaxError(name, err)
	case len(extra.Content) > 0 && !isNull(extra.Content[0]):
		d.errorf(extra.Content[0], "", "a second YAML document: the configuration is one document, remove the \"---\"")
	}
	if len(doc.Content) > 0 {
		d.mapping("", doc.Content[0])
	}
	if len(d.errs) > 0 {
		return Config{}, nil, errors.Join(d.errs...)
	}
	return d.cfg, d.at, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxError puts the file name in front of a YAML parser error, in the
// file:line form editors jump to.
func syntaxError(name string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s:%s: %s", name, m[1], msg[len(m[0]):])
	}
	return fmt.Errorf("%s: %s", name, strings.TrimPrefix(msg, "yaml: "))
}

type decoder struct {
	name string // file name, for positions
	dir  string // directory relative paths are resolved against
	cfg  Config
	at   map[string]string // position of each setting the file sets
	errs []error
}

func (d *decoder) errorf(n *yaml.Node, key, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Key: key, Problem: fmt.Sprintf(format, args...), At: d.pos(n)})
}

func (d *decoder) pos(n *yaml.Node) string {
	return fmt.Sprintf("%s:%d:%d", d.name, n.Line, n.Column)
}

// mapping decodes the settings of one section ("" for the top level).
func (d *decoder) mapping(section string, n *yaml.Node) {
	n = resolveAlias(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, section, "want a mapping of settings (%s), got %s", strings.Join(children[section], ", "), describe(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolveAlias(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.errorf(k, section, "a key must be a name, got %s", describe(k))
			continue
		}
		key := joinKey(section, k.Value)
		if k.Tag == "!!merge" {
			d.errorf(k, section, "merge keys (<<) are not supported: write the settings out")
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.errorf(k, key, "set twice (first at line %d): keep one", line)
			continue
		}
		seen[k.Value] = k.Line
		if _, ok := children[key]; ok && k.Value != "" {
			d.mapping(key, v)
			continue
		}
		s, ok := settingByKey[key]
		if !ok {
			d.errorf(k, key, "unknown setting; %s", suggest(section, k.Value))
			continue
		}
		d.setting(s, v)
	}
}

// setting decodes the value of one setting.
func (d *decoder) setting(s Setting, n *yaml.Node) {
	n = resolveAlias(n)
	if isNull(n) {
		return // keeps the default
	}
	v := s.value(&d.cfg)
	if list, ok := v.(*listValue); ok {
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, s.Key, "want a list (e.g. [a, b], or one \"- item\" per line), got %s", describe(n))
			return
		}
		var items []string
		for _, item := range n.Content {
			item = resolveAlias(item)
			if item.Kind != yaml.ScalarNode || isNull(item) {
				d.errorf(item, s.Key, "want a list of strings, got %s in it", describe(item))
				return
			}
			items = append(items, d.relative(s, item.Value))
		}
		*list.p = items
	} else {
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, s.Key, "want a %s, got %s", s.Type(), describe(n))
			return
		}
		if err := v.replace(d.relative(s, n.Value)); err != nil {
			d.errorf(n, s.Key, "%v", err)
			return
		}
	}
	d.at[s.Key] = d.pos(n)
}

// relative resolves a relative path against the file's directory, for path
// settings and for the PATH of store "sqlite:PATH". A leading ~/ is the
// home directory.
func (d *decoder) relative(s Setting, v string) string {
	if s.path {
		v = expandHome(v)
	}
	if s.Key == "store" {
		if p, ok := strings.CutPrefix(v, "sqlite:"); ok {
			if p = strings.TrimPrefix(p, "//"); p != "" && !filepath.IsAbs(p) {
				return "sqlite:" + filepath.Join(d.dir, p)
			}
		}
		return v
	}
	if !s.path || v == "" || filepath.IsAbs(v) || strings.HasPrefix(v, "~") {
		return v // ~user is not expanded; Validate says so
	}
	return filepath.Join(d.dir, v)
}

// expandHome replaces a leading ~/ (or a lone ~) by the home directory; if
// there is none, v is returned unchanged and Validate reports the file
// missing.
func expandHome(v string) string {
	if v != "~" && !strings.HasPrefix(v, "~/") {
		return v
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return v
	}
	return filepath.Join(home, v[1:])
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the kind of a node for an error. Scalars are named by
// type, never quoted: a value in the wrong place may be a secret.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		}
		return "a string"
	}
	return "an alias"
}

func joinKey(section, name string) string {
	if section == "" {
		return name
	}
	return section + "." + name
}

// children lists the keys of each section ("" is the top level) in table
// order; a key that is itself a section is listed by its name.
var children = func() map[string][]string {
	m := map[string][]string{"": nil}
	for _, s := range settings {
		section, name := "", s.Key
		if i := strings.LastIndexByte(s.Key, '.'); i >= 0 {
			section, name = s.Key[:i], s.Key[i+1:]
		}
		if _, ok := m[section]; !ok {
			m[section] = nil
			m[""] = append(m[""], section)
		}
		m[section] = append(m[section], name)
	}
	return m
}()

// suggest says which known key an unknown key was probably meant to be:
// a close key of the same section, else the key anywhere whose name or flag
// matches (tokenFile at the top level is api.tokenFile), else the keys of
// the section.
func suggest(section, key string) string {
	if best, ok := closest(key, children[section]); ok {
		return fmt.Sprintf("did you mean %q?", best)
	}
	var names, full []string
	for _, s := range settings {
		names = append(names, s.Key[strings.LastIndexByte(s.Key, '.')+1:], s.Flag)
		full = append(full, s.Key, s.Key)
	}
	if best, ok := closest(key, names); ok {
		return fmt.Sprintf("did you mean %q?", full[slices.Index(names, best)])
	}
	where := "here"
	if section != "" {
		where = "in " + section
	}
	return fmt.Sprintf("the settings %s are %s (docs/config.md)", where, strings.Join(children[section], ", "))
}

// closest returns the candidate nearest to key, ignoring case, dashes and
// underscores, if it is near enough to be a typo.
func closest(key string, candidates []string) (string, bool) {
	k := normalize(key)
	best, bestDist := "", -1
	for _, c := range candidates {
		if dist := editDistance(k, normalize(c)); bestDist < 0 || dist < bestDist {
			best, bestDist = c, dist
		}
	}
	if bestDist == 0 || (bestDist > 0 && bestDist <= 2 && 3*bestDist <= len(k)) {
		return best, true
	}
	return "", false
}

func normalize(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', '_', ' ':
			return -1
		}
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent letters each
// cost 1.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return max(len(ra), len(rb)) // not a typo of a key; keep it cheap
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
