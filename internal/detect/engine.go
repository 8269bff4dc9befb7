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
	"sync/atomic"
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
}

// Engine evaluates rules over events. It is safe for concurrent use;
// stateful rules serialise on their own state.
type Engine struct {
	rules []*compiled
	// index: verb → resource → rules; "*" keys hold rules that match any.
	index map[string]map[string][]*compiled
	state *state
	// candidateCache: candidateKey → []*compiled, filled on first use.
	candidateCache sync.Map
	candidateCount atomic.Int64
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
	add := func(fsys fs.FS, root string) error {
		f, err := loadDir(fsys, root)
		files = append(files, f...)
		var le *LoadError
		if errors.As(err, &le) {
			problems = append(problems, le.Problems...)
			return nil
		}
		return err
	}
	if !opts.NoDefaults {
		if err := add(defaultRules, "rules"); err != nil {
			return nil, fmt.Errorf("detect: default rules: %w", err)
		}
	}
	for _, d := range opts.Dirs {
		if err := add(os.DirFS(d), "."); err != nil {
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
	// Files from a user dir are named relative to it: prefix the dir so
	// messages point at the file.
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
	c := &compiled{Rule: r, lists: f.Lists}
	var errs []error
	prog := func(what, expr string, want *cel.Type) cel.Program {
		expanded, err := expandMacros(expr, f.Macros)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			return nil
		}
		ast, iss := env.Compile(expanded)
		if iss.Err() != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, iss.Err()))
			return nil
		}
		if !ast.OutputType().IsExactType(want) && !ast.OutputType().IsExactType(cel.DynType) {
			errs = append(errs, fmt.Errorf("%s: is %s, want %s", what, ast.OutputType(), want))
			return nil
		}
		p, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
		return p
	}
	c.condition = prog("condition", r.Condition, cel.BoolType)
	c.exceptions = []*Exceptions{&r.Exceptions, &f.Exceptions}
	for _, x := range c.exceptions {
		if x.Condition != "" {
			c.exceptCEL = append(c.exceptCEL, prog("exceptions.condition", x.Condition, cel.BoolType))
		}
	}
	switch {
	case r.Threshold != nil:
		by := r.Threshold.By
		if by == "" {
			by = "user.username"
		}
		c.by = prog("threshold.by", by, cel.StringType)
	case r.FirstSeen != nil:
		c.by = prog("firstSeen.key", r.FirstSeen.Key, cel.StringType)
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

// candidates returns the rules indexed for an event's verb and resource,
// each once, in load order (so one event's alerts come in a stable order).
// The list for each (verb, resource) is computed once and shared.
func (e *Engine) candidates(ev *audit.Event) []*compiled {
	res := ev.ObjectRef.Resource
	if ev.ObjectRef.Subresource != "" {
		res += "/" + ev.ObjectRef.Subresource
	}
	key := candidateKey{ev.Verb, res}
	if c, ok := e.candidateCache.Load(key); ok {
		return c.([]*compiled)
	}
	out := e.computeCandidates(ev.Verb, res)
	// Bounded: verbs and resources come from the API server, but a
	// replayed file could hold anything.
	if e.candidateCount.Add(1) < 100000 {
		e.candidateCache.Store(key, out)
	}
	return out
}

type candidateKey struct{ verb, resource string }

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
	var alerts []finding.Alert
	act := newActivation(ev, nil)
	var memo exemptMemo
	for _, c := range e.candidates(ev) {
		act.lists = c.lists
		// The structured exceptions exempt most of the control plane's own
		// traffic: test them (once per exceptions block and event) before
		// any CEL runs.
		if c.exemptStructured(ev, &memo) || !matches(c.condition, act) || c.exemptCEL(act) {
			continue
		}
		if !e.state.firstAlertFor(ev.AuditID, c.ID) {
			continue // the same request at another stage (ResponseStarted, then ResponseComplete)
		}
		switch {
		case c.Threshold != nil:
			key := evalString(c.by, act)
			ids, count, fire := e.state.threshold(c.ID, key, ev, c.Threshold)
			if fire {
				a := c.alert(ev, count)
				a.AuditIDs = ids
				alerts = append(alerts, a)
			}
		case c.FirstSeen != nil:
			if e.state.firstSeen(c.ID, evalString(c.by, act), ev.Time(), c.FirstSeen) {
				alerts = append(alerts, c.alert(ev, 1))
			}
		default:
			alerts = append(alerts, c.alert(ev, 1))
		}
	}
	return alerts
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
func (c *compiled) exemptCEL(act *activation) bool {
	for _, p := range c.exceptCEL {
		if matches(p, act) {
			return true
		}
	}
	return false
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
	if rest, ok := strings.CutPrefix(u.Username, "system:serviceaccount:"); ok {
		sa := strings.Replace(rest, ":", "/", 1)
		for _, pattern := range x.ServiceAccounts {
			if ok, _ := path.Match(pattern, sa); ok {
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
	sourceIP := ""
	if len(ev.SourceIPs) > 0 {
		sourceIP = ev.SourceIPs[0]
	}
	vars := map[string]string{
		"user": ev.User.Username, "verb": ev.Verb, "resource": res,
		"namespace": ev.ObjectRef.Namespace, "name": ev.ObjectRef.Name,
		"sourceIP": sourceIP, "userAgent": ev.UserAgent,
		"code": strconv.Itoa(int(ev.ResponseStatus.Code)), "count": strconv.Itoa(count),
		"impersonated": impersonated(ev),
	}
	objects := map[string]json.RawMessage{"requestObject": ev.RequestObject, "responseObject": ev.ResponseObject}
	decoded := map[string]any{} // the recorded objects, decoded on first use
	// One pass over the template: a value (a Kubernetes Event's message,
	// say) that looks like a placeholder stays as it is.
	msg := placeholder.ReplaceAllStringFunc(c.Output, func(p string) string {
		name := p[1 : len(p)-1]
		if v, ok := vars[name]; ok {
			return v
		}
		root, field, _ := strings.Cut(name, ".")
		raw, ok := objects[root]
		if !ok || field == "" {
			return p
		}
		obj, ok := decoded[root]
		if !ok {
			obj = decodeRaw(raw)
			decoded[root] = obj
		}
		return fieldString(obj, field)
	})
	return finding.Alert{
		Rule: c.ID, Title: c.Title, Severity: c.sev, MITRE: c.MITRE, Tags: c.Tags,
		Time: ev.Time(), AuditIDs: []string{ev.AuditID},
		User: ev.User.Username, Groups: ev.User.Groups, SourceIPs: ev.SourceIPs, UserAgent: ev.UserAgent,
		Verb: ev.Verb, Namespace: ev.ObjectRef.Namespace, Object: object, Message: msg,
	}
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
