package detect

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kustode/kustode/internal/finding"
)

// RuleFile is one rules file:
//
//	apiVersion: kustode.io/v1alpha1
//	kind: RuleSet
//	lists:    {name: [values]}           # usable in CEL as lists.name
//	macros:   {name: "CEL expression"}   # usable in CEL as @name
//	exceptions: {...}                    # applied to every rule of the file
//	rules: [...]
type RuleFile struct {
	APIVersion string              `yaml:"apiVersion"`
	Kind       string              `yaml:"kind"`
	Lists      map[string][]string `yaml:"lists"`
	Macros     map[string]string   `yaml:"macros"`
	Exceptions Exceptions          `yaml:"exceptions"`
	Rules      []Rule              `yaml:"rules"`
}

// Rule is one detection rule.
type Rule struct {
	// ID is stable and kebab-case; users override or disable rules by it.
	ID          string   `yaml:"id"`
	Title       string   `yaml:"title"`
	Description string   `yaml:"description"`
	Severity    string   `yaml:"severity"`
	Tags        []string `yaml:"tags"`
	MITRE       []string `yaml:"mitre"`
	// Disabled turns a rule off, typically in a user file overriding a
	// default rule by ID.
	Disabled bool `yaml:"disabled"`
	// Match indexes the rule: only events whose verb and resource match run
	// its condition. Empty lists match everything.
	Match Match `yaml:"match"`
	// Condition is a CEL boolean expression over the event.
	Condition  string     `yaml:"condition"`
	Exceptions Exceptions `yaml:"exceptions"`
	// Output is the alert message; {user}, {verb}, {resource}, {namespace},
	// {name}, {sourceIP}, {userAgent}, {code}, {count} and {impersonated}
	// are replaced, and so is {requestObject.a.b} (or responseObject) by
	// that field of the recorded object: "" when absent, JSON for lists
	// and maps, cut at 1024 bytes. Other braces stay as they are.
	// "{namespace}/{name}" leaves out the '/' when either is empty.
	Output    string     `yaml:"output"`
	Threshold *Threshold `yaml:"threshold"`
	FirstSeen *FirstSeen `yaml:"firstSeen"`

	source finding.Source
	sev    finding.Severity
}

// Match selects events by verb and resource before the condition runs.
// Resources are "resource" or "resource/subresource", with the API group
// left out ("pods/exec", "clusterrolebindings").
type Match struct {
	Verbs     []string `yaml:"verbs"`
	Resources []string `yaml:"resources"`
}

// Exceptions are events a rule never alerts on.
type Exceptions struct {
	Users  []string `yaml:"users"`
	Groups []string `yaml:"groups"`
	// Namespaces of the object.
	Namespaces []string `yaml:"namespaces"`
	// ServiceAccounts as "namespace/name"; "namespace/*" for all of one.
	ServiceAccounts []string `yaml:"serviceAccounts"`
	// UserAgents match by prefix when they end in "*", else exactly.
	UserAgents  []string `yaml:"userAgents"`
	SourceCIDRs []string `yaml:"sourceCIDRs"`
	// Condition is a CEL expression; true exempts the event.
	Condition string `yaml:"condition"`

	cidrs []netip.Prefix
	sas   []saPattern
}

// saPattern is one of ServiceAccounts, with the literal text before its
// first wildcard: a name that does not start with it cannot match.
type saPattern struct {
	pattern, literal string
	exact            bool // no wildcard: the pattern is the name
	// star is set for a pattern that is literal, one * in the name, and
	// suffix (no other wildcard), such as kube-system/*-controller, which
	// matchStar matches without path.Match's backtracking.
	star   bool
	suffix string
}

// Threshold makes a rule alert when Count matching events with the same By
// key happen within Window; the key's count then starts again.
type Threshold struct {
	Count  int           `yaml:"count"`
	Window time.Duration `yaml:"window"`
	// By is a CEL string expression; default user.username.
	By string `yaml:"by"`
}

// FirstSeen makes a rule alert when its Key has not been seen before, once
// the engine has watched events for Learning (event time).
type FirstSeen struct {
	// Key is a CEL string expression.
	Key      string        `yaml:"key"`
	Learning time.Duration `yaml:"learning"`
	// MaxKeys bounds the remembered keys (default 100,000); the oldest are
	// forgotten first.
	MaxKeys int `yaml:"maxKeys"`
}

var ruleID = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// LoadError is everything wrong with one rules file, each problem with
// file:line and the rule.
type LoadError struct {
	Problems []string
}

func (e *LoadError) Error() string { return strings.Join(e.Problems, "\n") }

// parseFile decodes and validates a rules file. Rules keep their file and
// line for error messages and alerts' provenance.
func parseFile(name string, data []byte) (*RuleFile, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &LoadError{Problems: []string{fmt.Sprintf("%s: %v", name, err)}}
	}
	var rf RuleFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		return nil, &LoadError{Problems: []string{fmt.Sprintf("%s: %v", name, err)}}
	}
	var problems []string
	at := func(line int, rule, format string, args ...any) {
		where := fmt.Sprintf("%s:%d", name, line)
		if rule != "" {
			where += ": rule " + rule
		}
		problems = append(problems, where+": "+fmt.Sprintf(format, args...))
	}
	if rf.APIVersion != "kustode.io/v1alpha1" || rf.Kind != "RuleSet" {
		at(1, "", "want apiVersion kustode.io/v1alpha1 and kind RuleSet")
	}
	lines := ruleLines(&doc)
	seen := map[string]bool{}
	for i := range rf.Rules {
		r := &rf.Rules[i]
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		r.source = finding.Source{File: name, Line: line}
		if !ruleID.MatchString(r.ID) {
			at(line, r.ID, "id must be kebab-case")
		}
		if seen[r.ID] {
			at(line, r.ID, "defined twice in this file")
		}
		seen[r.ID] = true
		if r.Disabled {
			continue // an override that only switches a rule off needs nothing else
		}
		sev, err := finding.ParseSeverity(r.Severity)
		if err != nil {
			at(line, r.ID, "%v", err)
		}
		r.sev = sev
		if r.Title == "" || r.Condition == "" || r.Output == "" {
			at(line, r.ID, "title, condition and output are required")
		}
		if len(r.MITRE) == 0 {
			at(line, r.ID, "mitre: name the ATT&CK technique(s) the rule detects")
		}
		if r.Threshold != nil && (r.Threshold.Count < 2 || r.Threshold.Window <= 0) {
			at(line, r.ID, "threshold needs count >= 2 and a positive window")
		}
		if r.FirstSeen != nil && (r.FirstSeen.Key == "" || r.FirstSeen.Learning < 0) {
			at(line, r.ID, "firstSeen needs a key and a learning period")
		}
		if r.Threshold != nil && r.FirstSeen != nil {
			at(line, r.ID, "a rule is threshold or firstSeen, not both")
		}
		for _, p := range append(r.Exceptions.validate(), rf.Exceptions.validate()...) {
			at(line, r.ID, "exceptions: %s", p)
		}
	}
	if len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	return &rf, nil
}

// ruleLines returns the line of each item of the top-level rules sequence.
func ruleLines(doc *yaml.Node) []int {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "rules" {
			var lines []int
			for _, item := range m.Content[i+1].Content {
				lines = append(lines, item.Line)
			}
			return lines
		}
	}
	return nil
}

func (x *Exceptions) validate() []string {
	var p []string
	x.cidrs = nil
	for _, c := range x.SourceCIDRs {
		prefix, err := netip.ParsePrefix(c)
		if err != nil {
			p = append(p, fmt.Sprintf("sourceCIDRs: %v", err))
			continue
		}
		x.cidrs = append(x.cidrs, prefix)
	}
	x.sas = nil
	for _, sa := range x.ServiceAccounts {
		if ns, name, ok := strings.Cut(sa, "/"); !ok || ns == "" || name == "" {
			p = append(p, fmt.Sprintf("serviceAccounts: %q is not namespace/name", sa))
		}
		lit := sa
		if i := strings.IndexAny(sa, `*?[\`); i >= 0 {
			lit = sa[:i]
		}
		sp := saPattern{pattern: sa, literal: lit, exact: lit == sa}
		if rest, ok := strings.CutPrefix(sa[len(lit):], "*"); ok && strings.Contains(lit, "/") && !strings.ContainsAny(rest, `*?[\/`) {
			sp.star, sp.suffix = true, rest
		}
		x.sas = append(x.sas, sp)
	}
	return p
}

// loadDir reads every *.yaml file of a directory tree (sorted by path).
// loadDir loads the rule files under root in fsys, naming each (in
// messages and in alerts' provenance) after dir joined with its path: a
// user's directory, or "" for the embedded pack.
func loadDir(fsys fs.FS, root, dir string) ([]*RuleFile, error) {
	var names []string
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (path.Ext(p) == ".yaml" || path.Ext(p) == ".yml") && !strings.HasSuffix(p, "_test.yaml") {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var files []*RuleFile
	var problems []string
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		rf, err := parseFile(filepath.Join(dir, n), data)
		var le *LoadError
		if errors.As(err, &le) {
			problems = append(problems, le.Problems...)
			continue
		}
		if err != nil {
			return nil, err
		}
		files = append(files, rf)
	}
	if len(problems) > 0 {
		return files, &LoadError{Problems: problems}
	}
	return files, nil
}

// merge combines rule files in order: a later rule with an ID already seen
// replaces it (a user overriding a default rule); a disabled one removes it.
func merge(files []*RuleFile) []*compiledSource {
	var order []string
	byID := map[string]*compiledSource{}
	for _, f := range files {
		for i := range f.Rules {
			r := &f.Rules[i]
			if _, ok := byID[r.ID]; !ok {
				order = append(order, r.ID)
			}
			byID[r.ID] = &compiledSource{rule: r, file: f}
		}
	}
	var out []*compiledSource
	for _, id := range order {
		if cs := byID[id]; !cs.rule.Disabled {
			out = append(out, cs)
		}
	}
	return out
}

// compiledSource is a rule with the file whose lists, macros and common
// exceptions it uses.
type compiledSource struct {
	rule *Rule
	file *RuleFile
}
