package detect

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/cel-go/cel"

	"github.com/kustode/kustode/internal/audit"
	"github.com/kustode/kustode/internal/finding"
)

//go:embed rules/*.yaml
var defaultRules embed.FS

// compiled is a rule ready to run.
type compiled struct {
	*Rule
	lists      map[string][]string
	condition  cel.Program
	exceptions []*Exceptions // the rule's and its file's (shared by the file's rules)
	exceptCEL  []cel.Program
	by         cel.Program // threshold key or firstSeen key
	order      int         // position in load order
	output     []outputPart
	// The Go translations (native.go) of condition, exceptCEL (one each)
	// and by, nil where no part translates. They answer before CEL does.
	nativeCond   boolFn
	nativeExcept []boolFn
	nativeBy     strFn
	// guarded: the condition is false unless guard's field has one of
	// guardValues (nativeGuard), so the index runs it for those only.
	guarded     bool
	guard       guardField
	guardValues []string
}

// Engine evaluates rules over events. It is safe for concurrent use;
// stateful rules serialise on their own state.
type Engine struct {
	rules []*compiled
	// index: verb → resource → rules; "*" keys hold rules that match any.
	index map[string]map[string][]*compiled
	// byVerb holds every event's candidates, computed from index once all
	// rules are added: for each verb a rule names, and otherVerbs for the
	// rest.
	byVerb     map[string]*verbCandidates
	otherVerbs *verbCandidates
	state      *state
	// opts built the engine; rule tests that set lists build theirs from it.
	opts Options
}

// Options configures NewEngine.
type Options struct {
	// NoDefaults leaves the embedded default rule pack out.
	NoDefaults bool
	// Dirs are user rule directories, read after the defaults: a rule with
	// a default's ID replaces it; disabled: true removes it.
	Dirs []string
	// Lists replace, by name, the list of that name in every loaded rule
	// file that declares it (serve sets allowed_registries from its
	// configuration this way). Naming a list no loaded file declares is an
	// error: a typo would otherwise leave a rule silently unconfigured.
	Lists map[string][]string
}

// NewEngine loads, merges and compiles the rules. Every problem is reported
// at once, each with file:line and rule ID; invalid CEL fails here, never at
// evaluation time.
func NewEngine(opts Options) (*Engine, error) {
	var files []*RuleFile
	var problems []string
	add := func(fsys fs.FS, root, dir string) error {
		f, err := loadDir(fsys, root, dir)
		files = append(files, f...)
		var le *LoadError
		if errors.As(err, &le) {
			problems = append(problems, le.Problems...)
			return nil
		}
		return err
	}
	if !opts.NoDefaults {
		if err := add(defaultRules, "rules", ""); err != nil {
			return nil, fmt.Errorf("detect: default rules: %w", err)
		}
	}
	for _, d := range opts.Dirs {
		if err := add(os.DirFS(d), ".", d); err != nil {
			return nil, fmt.Errorf("detect: rules in %s: %w", d, err)
		}
	}
	undeclared := setLists(files, opts.Lists)
	if len(undeclared) > 0 && len(problems) == 0 {
		// With load problems, a list may be undeclared only because its
		// file failed to load: those problems come first.
		if len(undeclared) == 1 {
			return nil, fmt.Errorf("detect: list %s set in options is not declared by any rule file", undeclared[0])
		}
		return nil, fmt.Errorf("detect: lists %s set in options are not declared by any rule file", strings.Join(undeclared, ", "))
	}
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("detect: CEL environment: %w", err)
	}
	e := &Engine{index: map[string]map[string][]*compiled{}, state: newState(), opts: opts}
	for _, cs := range merge(files) {
		c, errs := compile(env, cs)
		for _, err := range errs {
			problems = append(problems, fmt.Sprintf("%s: rule %s: %v", cs.rule.source, cs.rule.ID, err))
		}
		if len(errs) == 0 {
			e.add(c)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("detect: %w", &LoadError{Problems: problems})
	}
	e.buildCandidates()
	return e, nil
}

// setLists replaces the named lists in every file that declares them and
// returns, sorted, the names no file declares.
func setLists(files []*RuleFile, lists map[string][]string) (undeclared []string) {
	for _, name := range slices.Sorted(maps.Keys(lists)) {
		declared := false
		for _, f := range files {
			if _, ok := f.Lists[name]; ok {
				f.Lists[name] = append([]string{}, lists[name]...)
				declared = true
			}
		}
		if !declared {
			undeclared = append(undeclared, name)
		}
	}
	return undeclared
}

// withLists returns the options with lists set on top of their Lists.
func (o Options) withLists(lists map[string][]string) Options {
	merged := maps.Clone(o.Lists)
	if merged == nil {
		merged = map[string][]string{}
	}
	maps.Copy(merged, lists)
	o.Lists = merged
	return o
}

func compile(env *cel.Env, cs *compiledSource) (*compiled, []error) {
	r, f := cs.rule, cs.file
	c := &compiled{Rule: r, lists: f.Lists, output: parseOutput(r.Output)}
	var errs []error
	prog := func(what, expr string, want *cel.Type) (cel.Program, *cel.Ast) {
		expanded, err := expandMacros(expr, f.Macros)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			return nil, nil
		}
		ast, iss := env.Compile(expanded)
		if iss.Err() != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, iss.Err()))
			return nil, nil
		}
		if !ast.OutputType().IsExactType(want) && !ast.OutputType().IsExactType(cel.DynType) {
			errs = append(errs, fmt.Errorf("%s: is %s, want %s", what, ast.OutputType(), want))
			return nil, nil
		}
		p, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			return nil, nil
		}
		return p, ast
	}
	var ast *cel.Ast
	c.condition, ast = prog("condition", r.Condition, cel.BoolType)
	if ast != nil {
		c.nativeCond = nativeBool(ast, c.lists)
		c.guard, c.guardValues, c.guarded = nativeGuard(ast, c.lists)
	}
	for _, x := range []*Exceptions{&r.Exceptions, &f.Exceptions} {
		if x.structured() {
			c.exceptions = append(c.exceptions, x)
		}
		if x.Condition != "" {
			p, ast := prog("exceptions.condition", x.Condition, cel.BoolType)
			c.exceptCEL = append(c.exceptCEL, p)
			var fn boolFn
			if ast != nil {
				fn = nativeBool(ast, c.lists)
			}
			c.nativeExcept = append(c.nativeExcept, fn)
		}
	}
	switch {
	case r.Threshold != nil:
		by := r.Threshold.By
		if by == "" {
			by = "user.username"
		}
		c.by, ast = prog("threshold.by", by, cel.StringType)
	case r.FirstSeen != nil:
		c.by, ast = prog("firstSeen.key", r.FirstSeen.Key, cel.StringType)
	}
	if c.by != nil && ast != nil {
		c.nativeBy = nativeString(ast, c.lists)
	}
	return c, errs
}

func (e *Engine) add(c *compiled) {
	c.order = len(e.rules)
	e.rules = append(e.rules, c)
	verbs := c.Match.Verbs
	if len(verbs) == 0 {
		verbs = []string{"*"}
	}
	resources := c.Match.Resources
	if len(resources) == 0 {
		resources = []string{"*"}
	}
	for _, v := range verbs {
		if e.index[v] == nil {
			e.index[v] = map[string][]*compiled{}
		}
		for _, res := range resources {
			e.index[v][res] = append(e.index[v][res], c)
		}
	}
}

// Rules returns the loaded rules' IDs in load order.
func (e *Engine) Rules() []string {
	ids := make([]string, len(e.rules))
	for i, r := range e.rules {
		ids[i] = r.ID
	}
	return ids
}

// verbCandidates are the candidate rules of the events with one verb, by
// resource ("resource" or "resource/subresource", as rules name them).
type verbCandidates struct {
	byResource map[string]*candidateList
	// other is for the resources no rule names.
	other *candidateList
}

// candidateList is the rules an event with some verb and resource runs.
type candidateList struct {
	all []*compiled // in load order
	// always are the rules of all without a guard; guarded, by field and
	// value, those with one (each under every value it allows).
	always  []*compiled
	guarded [numGuards]map[string][]*compiled
}

func newCandidateList(rules []*compiled) *candidateList {
	cl := &candidateList{all: rules}
	for _, c := range rules {
		if !c.guarded {
			cl.always = append(cl.always, c)
			continue
		}
		m := cl.guarded[c.guard]
		if m == nil {
			m = map[string][]*compiled{}
			cl.guarded[c.guard] = m
		}
		for _, v := range c.guardValues {
			if !slices.Contains(m[v], c) {
				m[v] = append(m[v], c)
			}
		}
	}
	return cl
}

// forEvent returns the rules of cl whose guard, if any, allows ev, in
// load order.
func (cl *candidateList) forEvent(ev *audit.Event) ruleMerge {
	var m ruleMerge
	if len(cl.always) > 0 {
		m.lists[0], m.n = cl.always, 1
	}
	for g, byValue := range cl.guarded {
		if l := byValue[guardField(g).value(ev)]; len(l) > 0 {
			m.lists[m.n] = l
			m.n++
		}
	}
	return m
}

// ruleMerge merges lists of rules, each in load order.
type ruleMerge struct {
	lists [numGuards + 1][]*compiled // the first n are not empty
	n     int
}

// next returns the next rule in load order, nil at the end.
func (m *ruleMerge) next() *compiled {
	best := 0
	switch m.n {
	case 0:
		return nil
	case 1: // the common case: no guarded rule, or only guarded ones
	default:
		for i := 1; i < m.n; i++ {
			if m.lists[i][0].order < m.lists[best][0].order {
				best = i
			}
		}
	}
	l := m.lists[best]
	c := l[0]
	if len(l) == 1 {
		m.n--
		m.lists[best] = m.lists[m.n]
		m.lists[m.n] = nil
	} else {
		m.lists[best] = l[1:]
	}
	return c
}

// buildCandidates computes, for every verb and resource the rules name, the
// rules an event with that verb and resource runs, so that Evaluate finds
// them with two map lookups.
func (e *Engine) buildCandidates() {
	resources := map[string]bool{}
	for _, byRes := range e.index {
		for r := range byRes {
			if r != "*" {
				resources[r] = true
			}
		}
	}
	build := func(verb string) *verbCandidates {
		vc := &verbCandidates{byResource: map[string]*candidateList{}, other: newCandidateList(e.computeCandidates(verb, "*"))}
		for r := range resources {
			vc.byResource[r] = newCandidateList(e.computeCandidates(verb, r))
		}
		return vc
	}
	e.byVerb = map[string]*verbCandidates{}
	for v := range e.index {
		if v != "*" {
			e.byVerb[v] = build(v)
		}
	}
	e.otherVerbs = build("*")
}

// candidates returns the rules indexed for an event's verb and resource,
// each once, in load order (so one event's alerts come in a stable order).
func (e *Engine) candidates(ev *audit.Event) []*compiled {
	return e.candidateList(ev).all
}

func (e *Engine) candidateList(ev *audit.Event) *candidateList {
	vc := e.byVerb[ev.Verb]
	if vc == nil {
		vc = e.otherVerbs
	}
	var (
		out *candidateList
		ok  bool
	)
	if ev.ObjectRef.Subresource == "" {
		out, ok = vc.byResource[ev.ObjectRef.Resource]
	} else {
		// The key without allocating: the lookup does not keep it.
		var buf [128]byte
		key := append(append(append(buf[:0], ev.ObjectRef.Resource...), '/'), ev.ObjectRef.Subresource...)
		out, ok = vc.byResource[string(key)]
	}
	if !ok {
		return vc.other
	}
	return out
}

// computeCandidates returns the rules indexed for verb and res, and those
// indexed for any ("*"), each once, in load order.
func (e *Engine) computeCandidates(verb, res string) []*compiled {
	var out []*compiled
	for _, v := range [2]string{verb, "*"} {
		byRes := e.index[v]
		if byRes == nil {
			continue
		}
		for _, r := range [2]string{res, "*"} {
			for _, c := range byRes[r] {
				if !slices.Contains(out, c) {
					out = append(out, c)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b *compiled) int { return a.order - b.order })
	return out
}

// Evaluate runs every applicable rule on one event and returns the alerts
// it raises. Events at stage RequestReceived are skipped: the same request
// comes again with its response. A rule whose condition errors on the event
// (a missing field, a type mismatch) does not match it.
func (e *Engine) Evaluate(ev *audit.Event) []finding.Alert {
	if ev.Stage == "RequestReceived" {
		return nil
	}
	cl := e.candidateList(ev)
	if len(cl.all) == 0 {
		return nil
	}
	var alerts []finding.Alert
	x := newEvaluation(ev)
	defer x.release()
	rules := cl.forEvent(ev)
	for c := rules.next(); c != nil; c = rules.next() {
		// The structured exceptions exempt most of the control plane's own
		// traffic: test them (once per exceptions block and event) before
		// any CEL runs.
		if c.exemptStructured(ev, &x.memo) || !x.matches(c.nativeCond, c.condition, c.lists) || x.exemptCEL(c) {
			continue
		}
		if !e.state.firstAlertFor(ev.AuditID, c.ID) {
			continue // the same request at another stage (ResponseStarted, then ResponseComplete)
		}
		switch {
		case c.Threshold != nil:
			key := x.str(c.nativeBy, c.by, c.lists)
			ids, count, fire := e.state.threshold(c.ID, key, ev, c.Threshold)
			if fire {
				a := c.alert(ev, count)
				a.AuditIDs = ids
				alerts = append(alerts, a)
			}
		case c.FirstSeen != nil:
			if e.state.firstSeen(c.ID, x.str(c.nativeBy, c.by, c.lists), ev.Time(), c.FirstSeen) {
				alerts = append(alerts, c.alert(ev, 1))
			}
		default:
			alerts = append(alerts, c.alert(ev, 1))
		}
	}
	return alerts
}

// evaluation is what evaluating one event needs besides the rules: the
// translated expressions' frame, the CEL activation (set up only when a
// rule needs CEL) and the exceptions memo. Evaluations are pooled: most
// events need no heap memory at all.
type evaluation struct {
	frame  frame
	act    activation
	actSet bool
	memo   exemptMemo
}

var evaluations = sync.Pool{New: func() any { return new(evaluation) }}

func newEvaluation(ev *audit.Event) *evaluation {
	x := evaluations.Get().(*evaluation)
	x.frame.ev = ev
	return x
}

// release returns x to the pool, keeping nothing of its event.
func (x *evaluation) release() {
	x.frame = frame{}
	if x.actSet {
		x.act.reset()
		x.actSet = false
	}
	x.memo = exemptMemo{}
	evaluations.Put(x)
}

// activation returns the CEL activation over the event, with the lists of
// the rule about to run.
func (x *evaluation) activation(lists map[string][]string) *activation {
	if !x.actSet {
		x.act.ev, x.act.frame = x.frame.ev, &x.frame
		x.actSet = true
	}
	x.act.lists = lists
	return &x.act
}

// matches reports whether a boolean expression is true for the event:
// its Go translation answers if it can, else the CEL program.
func (x *evaluation) matches(native boolFn, p cel.Program, lists map[string][]string) bool {
	if native != nil {
		switch native(&x.frame) {
		case triTrue:
			return true
		case triFalse:
			return false
		}
	}
	return matches(p, x.activation(lists))
}

// str evaluates a string expression ("" on error) as matches does.
func (x *evaluation) str(native strFn, p cel.Program, lists map[string][]string) string {
	if native != nil {
		if s, ok := native(&x.frame); ok {
			return s
		}
	}
	return evalString(p, x.activation(lists))
}

func matches(p cel.Program, act *activation) bool {
	out, _, err := p.Eval(act)
	if err != nil {
		return false
	}
	b, ok := out.Value().(bool)
	return ok && b
}

func evalString(p cel.Program, act *activation) string {
	out, _, err := p.Eval(act)
	if err != nil {
		return ""
	}
	s, _ := out.Value().(string)
	return s
}

// exemptMemo remembers, for one event, whether a few exceptions blocks
// cover it: every rule of a file shares the file's block.
type exemptMemo struct {
	n    int
	keys [4]*Exceptions
	vals [4]bool
}

func (m *exemptMemo) covers(x *Exceptions, ev *audit.Event) bool {
	for i := 0; i < m.n; i++ {
		if m.keys[i] == x {
			return m.vals[i]
		}
	}
	v := x.covers(ev)
	if m.n < len(m.keys) {
		m.keys[m.n], m.vals[m.n] = x, v
		m.n++
	}
	return v
}

// exemptStructured reports whether a structured exception of the rule or
// its file covers ev.
func (c *compiled) exemptStructured(ev *audit.Event, memo *exemptMemo) bool {
	for _, x := range c.exceptions {
		if memo.covers(x, ev) {
			return true
		}
	}
	return false
}

// exemptCEL reports whether a CEL exception of the rule or its file covers
// the event.
func (x *evaluation) exemptCEL(c *compiled) bool {
	for i, p := range c.exceptCEL {
		if x.matches(c.nativeExcept[i], p, c.lists) {
			return true
		}
	}
	return false
}

// structured reports whether x has any exception besides its condition.
func (x *Exceptions) structured() bool {
	return len(x.Users) > 0 || len(x.Groups) > 0 || len(x.Namespaces) > 0 || len(x.ServiceAccounts) > 0 ||
		len(x.UserAgents) > 0 || len(x.cidrs) > 0
}

func (x *Exceptions) covers(ev *audit.Event) bool {
	u := &ev.User
	if slices.Contains(x.Users, u.Username) {
		return true
	}
	for _, g := range u.Groups {
		if slices.Contains(x.Groups, g) {
			return true
		}
	}
	if ev.ObjectRef.Namespace != "" && slices.Contains(x.Namespaces, ev.ObjectRef.Namespace) {
		return true
	}
	if rest, ok := strings.CutPrefix(u.Username, "system:serviceaccount:"); ok && len(x.sas) > 0 {
		// The account is "namespace/name": rest with its first ':' a '/'.
		// Most patterns differ from it in their literal part, so compare
		// that first, without building the name.
		colon := strings.IndexByte(rest, ':')
		sa := ""
		for _, p := range x.sas {
			if !saHasPrefix(rest, colon, p.literal) {
				continue
			}
			if p.exact {
				if len(rest) == len(p.pattern) {
					return true
				}
				continue
			}
			if p.star {
				if p.matchStar(rest, colon) {
					return true
				}
				continue
			}
			if sa == "" {
				sa = strings.Replace(rest, ":", "/", 1)
			}
			if ok, _ := path.Match(p.pattern, sa); ok {
				return true
			}
		}
	}
	for _, ua := range x.UserAgents {
		if p, ok := strings.CutSuffix(ua, "*"); ok && strings.HasPrefix(ev.UserAgent, p) || ua == ev.UserAgent {
			return true
		}
	}
	if len(x.cidrs) > 0 && len(ev.SourceIPs) > 0 {
		if addr, err := parseAddr(ev.SourceIPs[0]); err == nil {
			for _, p := range x.cidrs {
				if p.Contains(addr) {
					return true
				}
			}
		}
	}
	return false
}

// saHasPrefix reports whether rest, with its byte at colon (if any) read
// as '/', starts with prefix.
// matchStar reports whether path.Match(p.pattern, name) for a star
// pattern (p.literal + "*" + p.suffix), where name is rest with the byte at
// colon a '/' and rest starts with p.literal (saHasPrefix): * matches any
// run of bytes without a '/'.
func (p *saPattern) matchStar(rest string, colon int) bool {
	end := len(rest) - len(p.suffix)
	if end < len(p.literal) {
		return false
	}
	for i := len(p.literal); i < len(rest); i++ {
		c := rest[i]
		if i == colon {
			c = '/'
		}
		if i < end && c == '/' || i >= end && c != p.suffix[i-end] {
			return false
		}
	}
	return true
}

func saHasPrefix(rest string, colon int, prefix string) bool {
	if len(rest) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := rest[i]
		if i == colon {
			c = '/'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// alert builds the alert for ev; count is the threshold count (1 otherwise).
func (c *compiled) alert(ev *audit.Event, count int) finding.Alert {
	res := ev.ObjectRef.Resource
	if ev.ObjectRef.Subresource != "" {
		res += "/" + ev.ObjectRef.Subresource
	}
	object := res
	if ev.ObjectRef.Name != "" {
		object += " " + ev.ObjectRef.Name
	}
	if object == "" {
		object = ev.RequestURI
	}
	return finding.Alert{
		Rule: c.ID, Title: c.Title, Severity: c.sev, MITRE: c.MITRE, Tags: c.Tags,
		Time: ev.Time(), AuditIDs: []string{ev.AuditID},
		User: ev.User.Username, Groups: ev.User.Groups, SourceIPs: ev.SourceIPs, UserAgent: ev.UserAgent,
		Verb: ev.Verb, Namespace: ev.ObjectRef.Namespace, Object: object, Message: c.message(ev, res, count),
	}
}

// outputPart is a piece of a rule's output: literal text, or a placeholder
// (text is then the placeholder as written, "{user}").
type outputPart struct {
	text        string
	placeholder bool
	// objectPath marks "{namespace}/{name}" (one part), which reads the
	// name alone for a cluster-scoped object and the namespace alone for
	// a request about a whole collection.
	objectPath bool
}

// parseOutput splits an output template at its placeholders, once at load.
func parseOutput(out string) []outputPart {
	var parts []outputPart
	last := 0
	for _, m := range placeholder.FindAllStringIndex(out, -1) {
		if m[0] > last {
			parts = append(parts, outputPart{text: out[last:m[0]]})
		}
		parts = append(parts, outputPart{text: out[m[0]:m[1]], placeholder: true})
		last = m[1]
	}
	if last < len(out) {
		parts = append(parts, outputPart{text: out[last:]})
	}
	for i := 0; i+2 < len(parts); i++ {
		if parts[i].text == "{namespace}" && parts[i+1].text == "/" && !parts[i+1].placeholder && parts[i+2].text == "{name}" {
			parts[i] = outputPart{text: "{namespace}/{name}", placeholder: true, objectPath: true}
			parts = slices.Delete(parts, i+1, i+3)
		}
	}
	return parts
}

// objectPath is "namespace/name", or whichever of the two is not empty.
func objectPath(namespace, name string) string {
	switch {
	case namespace == "":
		return name
	case name == "":
		return namespace
	}
	return namespace + "/" + name
}

// message fills the rule's output for ev. One pass over the template: a
// value (a Kubernetes Event's message, say) that looks like a placeholder
// stays as it is.
func (c *compiled) message(ev *audit.Event, res string, count int) string {
	var b strings.Builder
	var decoded [2]any // the recorded objects, decoded on first use
	var isDecoded [2]bool
	for _, p := range c.output {
		if !p.placeholder {
			b.WriteString(p.text)
			continue
		}
		if p.objectPath {
			b.WriteString(objectPath(ev.ObjectRef.Namespace, ev.ObjectRef.Name))
			continue
		}
		name := p.text[1 : len(p.text)-1]
		if v, ok := outputVar(ev, name, res, count); ok {
			b.WriteString(v)
			continue
		}
		root, field, _ := strings.Cut(name, ".")
		i := 0
		raw := ev.RequestObject
		switch root {
		case "requestObject":
		case "responseObject":
			i, raw = 1, ev.ResponseObject
		default:
			field = ""
		}
		if field == "" {
			b.WriteString(p.text)
			continue
		}
		if !isDecoded[i] {
			decoded[i], isDecoded[i] = decodeRaw(raw), true
		}
		b.WriteString(fieldString(decoded[i], field))
	}
	return b.String()
}

// outputVar returns the value of an output variable ({user}, {verb}, ...).
func outputVar(ev *audit.Event, name, res string, count int) (string, bool) {
	switch name {
	case "user":
		return ev.User.Username, true
	case "verb":
		return ev.Verb, true
	case "resource":
		return res, true
	case "namespace":
		return ev.ObjectRef.Namespace, true
	case "name":
		return ev.ObjectRef.Name, true
	case "sourceIP":
		if len(ev.SourceIPs) > 0 {
			return ev.SourceIPs[0], true
		}
		return "", true
	case "userAgent":
		return ev.UserAgent, true
	case "code":
		return strconv.Itoa(int(ev.ResponseStatus.Code)), true
	case "count":
		return strconv.Itoa(count), true
	case "impersonated":
		return impersonated(ev), true
	}
	return "", false
}

// placeholder is a name in braces in a rule's output.
var placeholder = regexp.MustCompile(`\{[A-Za-z][A-Za-z0-9_.]*\}`)

// maxFieldLen bounds one object field in an alert message: an event
// message or an annotation can be long, and alerts end up in chat.
const maxFieldLen = 1024

// fieldString returns the field at a dotted path in a decoded object as
// text: strings as they are, numbers and booleans formatted, lists and maps
// as JSON, and "" when the field is absent.
func fieldString(obj any, dotted string) string {
	for _, key := range strings.Split(dotted, ".") {
		m, ok := obj.(map[string]any)
		if !ok {
			return ""
		}
		obj = m[key]
	}
	var s string
	switch v := obj.(type) {
	case nil:
		return ""
	case string:
		s = v
	case float64:
		s = strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		s = strconv.FormatBool(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		s = string(b)
	}
	if len(s) > maxFieldLen {
		cut := maxFieldLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func impersonated(ev *audit.Event) string {
	if ev.ImpersonatedUser == nil {
		return ""
	}
	return ev.ImpersonatedUser.Username
}

// state holds the stateful rules' memory, bounded.
type state struct {
	mu sync.Mutex
	// windows: rule → key → recent matching events (time and audit ID).
	windows map[string]map[string][]stamp
	// seen: rule → key → first time seen; order for eviction.
	seen  map[string]map[string]time.Time
	order map[string][]string
	// start: rule → time of the first event the rule saw (learning clock).
	start map[string]time.Time
	// alerted: recent audit ID and rule pairs that alerted.
	alerted      map[string]struct{}
	alertedOrder []string
}

type stamp struct {
	t  time.Time
	id string
}

// firstAlertFor reports whether rule has not yet matched the request with
// this audit ID: long-running requests (exec, watch) log ResponseStarted and
// ResponseComplete, and one request is one alert. It remembers the last
// 10,000 pairs.
func (s *state) firstAlertFor(auditID, rule string) bool {
	if auditID == "" {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := auditID + "\x00" + rule
	if _, dup := s.alerted[key]; dup {
		return false
	}
	s.alerted[key] = struct{}{}
	s.alertedOrder = append(s.alertedOrder, key)
	if len(s.alertedOrder) > 10000 {
		delete(s.alerted, s.alertedOrder[0])
		s.alertedOrder = s.alertedOrder[1:]
	}
	return true
}

// defaultMaxKeys bounds a firstSeen rule's memory when it sets none.
const defaultMaxKeys = 100000

// maxThresholdKeys bounds the keys a threshold rule tracks; past it, keys
// whose windows have expired are dropped, then the whole map if need be.
const maxThresholdKeys = 50000

func newState() *state {
	return &state{
		windows: map[string]map[string][]stamp{},
		seen:    map[string]map[string]time.Time{},
		order:   map[string][]string{},
		start:   map[string]time.Time{},
		alerted: map[string]struct{}{},
	}
}

// threshold records a matching event and reports whether the key reached
// the count within the window; if so, the key starts again.
func (s *state) threshold(rule, key string, ev *audit.Event, t *Threshold) (ids []string, count int, fire bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.windows[rule]
	if w == nil {
		w = map[string][]stamp{}
		s.windows[rule] = w
	}
	now := ev.Time()
	kept := w[key][:0]
	for _, st := range w[key] {
		if now.Sub(st.t) < t.Window {
			kept = append(kept, st)
		}
	}
	kept = append(kept, stamp{now, ev.AuditID})
	if len(kept) >= t.Count {
		delete(w, key)
		for _, st := range kept {
			ids = append(ids, st.id)
		}
		return ids, len(kept), true
	}
	w[key] = kept
	if len(w) > maxThresholdKeys {
		for k, stamps := range w {
			if len(stamps) == 0 || now.Sub(stamps[len(stamps)-1].t) >= t.Window {
				delete(w, k)
			}
		}
		if len(w) > maxThresholdKeys {
			s.windows[rule] = map[string][]stamp{}
		}
	}
	return nil, 0, false
}

// firstSeen reports whether key is new for the rule after its learning
// period; during learning it only remembers.
func (s *state) firstSeen(rule, key string, now time.Time, f *FirstSeen) bool {
	if key == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	start, ok := s.start[rule]
	if !ok {
		start = now
		s.start[rule] = now
	}
	m := s.seen[rule]
	if m == nil {
		m = map[string]time.Time{}
		s.seen[rule] = m
	}
	if _, known := m[key]; known {
		return false
	}
	m[key] = now
	s.order[rule] = append(s.order[rule], key)
	limit := f.MaxKeys
	if limit <= 0 {
		limit = defaultMaxKeys
	}
	for len(m) > limit {
		oldest := s.order[rule][0]
		s.order[rule] = s.order[rule][1:]
		delete(m, oldest)
	}
	return now.Sub(start) >= f.Learning
}

// RuleInfo describes a loaded rule for listings and documentation.
type RuleInfo struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Severity    string   `json:"severity"`
	MITRE       []string `json:"mitre"`
	Tags        []string `json:"tags,omitempty"`
	Verbs       []string `json:"verbs,omitempty"`
	Resources   []string `json:"resources,omitempty"`
	Stateful    string   `json:"stateful,omitempty"` // "threshold" or "firstSeen"
	// File is the rules file that defines the rule ("rules/events.yaml"
	// for an embedded default).
	File string `json:"file"`
}

// Describe returns the loaded rules in load order.
func (e *Engine) Describe() []RuleInfo {
	out := make([]RuleInfo, len(e.rules))
	for i, r := range e.rules {
		info := RuleInfo{
			ID: r.ID, Title: r.Title, Description: r.Description, Severity: r.sev.String(),
			MITRE: r.MITRE, Tags: r.Tags, Verbs: r.Match.Verbs, Resources: r.Match.Resources,
			File: r.source.File,
		}
		switch {
		case r.Threshold != nil:
			info.Stateful = "threshold"
		case r.FirstSeen != nil:
			info.Stateful = "firstSeen"
		}
		out[i] = info
	}
	return out
}
