package detect

import (
	"net/netip"
	"path"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"

	"github.com/kustode/kustode/internal/audit"
)

// Why conditions are also translated to Go: most of what rules test is a
// handful of event fields (the verb, the user, the namespace, the response
// code) against constants and lists, and a CEL program spends far longer on
// its interpreter and on building the maps it reads than on the tests
// themselves. At load, each CEL expression is translated, as far as it
// goes, into Go closures over the typed event; at evaluation the
// translation answers first and CEL runs only when it cannot tell.
//
// The translation is exact where it answers: it covers only operations
// whose CEL result on these fields it reproduces, errors included (the
// recorded objects only as far as comparing them with null and the pod
// helpers go), and everything else (fields of the recorded objects,
// regular expressions, has(), any type it does not know) is "unknown". Unknowns
// combine as CEL combines errors, so an answer never depends on one: false
// && unknown is false, true || unknown is true, and anything else with an
// unknown is unknown. TestNativeAgreesWithCEL and FuzzNativeAgreesWithCEL
// check the translation against CEL on every default rule.

// tri is a condition's value as far as the Go translation knows it.
type tri uint8

const (
	triUnknown tri = iota // only CEL can tell (it may be an error)
	triFalse
	triTrue
)

func triOf(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

// maxNativeVars bounds the comprehension variables in scope at once.
const maxNativeVars = 4

// frame is what a translated expression reads: the event, and the values
// of the comprehension variables in scope, innermost last.
type frame struct {
	ev   *audit.Event
	vars [maxNativeVars]string
	// objects are the recorded objects (requestObject, responseObject),
	// decoded on first use; the CEL activation shares them.
	objects [2]recorded
}

// recorded is one recorded object of the event: decoded as CEL sees it
// (decodeRaw), its pod template's spec as the pod helpers see it, and
// what readPlain finds in it (plainjson.go), each found on first use.
type recorded struct {
	decoded, specDone, plainDone bool
	value                        any
	spec                         *podSecurity
	plainRead
}

func (f *frame) raw(i int) []byte {
	if i == 1 {
		return f.ev.ResponseObject
	}
	return f.ev.RequestObject
}

// object returns recorded object i (0: request, 1: response), decoded.
func (f *frame) object(i int) *recorded {
	r := &f.objects[i]
	if !r.decoded {
		r.value, r.decoded = decodeRaw(f.raw(i)), true
	}
	return r
}

// plainObject returns recorded object i with what readPlain finds in it.
func (f *frame) plainObject(i int) *recorded {
	r := &f.objects[i]
	if !r.plainDone {
		r.plainRead = readPlain(f.raw(i))
		r.plainDone = true
	}
	return r
}

// isNull reports whether recorded object i is null to CEL: absent, null or
// not JSON.
func (f *frame) isNull(i int) bool {
	if len(f.raw(i)) == 0 {
		return true
	}
	if r := &f.objects[i]; !r.decoded && f.plainObject(i).plain {
		return false // an object
	}
	return f.object(i).value == nil
}

// podSpec returns the pod spec the pod helpers read in recorded object i:
// the one podSpecOf finds, or an empty one. A plain object's is read from
// its bytes; anything else takes podSpecOf's way, through the decoded map.
func (f *frame) podSpec(i int) *podSecurity {
	r := &f.objects[i]
	if !r.specDone {
		switch {
		case len(f.raw(i)) == 0:
		case f.plainObject(i).plain:
			r.spec = r.podSpec
		default:
			if m, ok := f.object(i).value.(map[string]any); ok {
				r.spec = decodePodSpec(m)
			}
		}
		if r.spec == nil {
			r.spec = &podSecurity{}
		}
		r.specDone = true
	}
	return r.spec
}

func objectIndex(name string) int {
	if name == "responseObject" {
		return 1
	}
	return 0
}

// The translated forms of an expression, by its type. A false ok means
// unknown.
type (
	boolFn func(*frame) tri
	strFn  func(*frame) (string, bool)
	intFn  func(*frame) (int64, bool)
	listFn func(*frame) ([]string, bool)
)

// nkind is the type of a translated expression.
type nkind uint8

const (
	kBool nkind = iota + 1
	kString
	kInt
	kList
	kNull
	kAnnotations // the annotations map: only `in` and indexing
	kObject      // requestObject or responseObject: only compared with null
	kRecord      // user, impersonatedUser, objectRef, responseStatus: only selected from
	kLists       // the lists variable: only selected from
)

// nexpr is one translated expression.
type nexpr struct {
	kind nkind
	b    boolFn
	s    strFn
	i    intFn
	l    listFn
	// constList is set for a list known at load time (a literal or one of
	// the file's lists).
	constList []string
	isConst   bool
	// constStr or constInt is the value of a kString or kInt literal
	// (isLit), which operators capture rather than call for.
	isLit    bool
	constStr string
	constInt int64
	// name is the variable of a kRecord or kObject.
	name string
}

// translator turns one checked CEL expression into Go.
type translator struct {
	ast   *celast.AST
	lists map[string][]string
	scope []string // comprehension variables, innermost last
}

// nativeBool translates a boolean CEL expression; nil when no part of it
// can be answered in Go.
func nativeBool(a *cel.Ast, lists map[string][]string) boolFn {
	t := &translator{ast: a.NativeRep(), lists: lists}
	n, ok := t.expr(t.ast.Expr())
	if !ok || n.kind != kBool {
		return nil
	}
	return n.b
}

// nativeString translates a string CEL expression (a threshold or firstSeen
// key); nil when it cannot be answered in Go.
func nativeString(a *cel.Ast, lists map[string][]string) strFn {
	t := &translator{ast: a.NativeRep(), lists: lists}
	n, ok := t.expr(t.ast.Expr())
	if !ok || n.kind != kString {
		return nil
	}
	return n.s
}

func unknownBool(*frame) tri { return triUnknown }

// boolOperand translates an operand of a logical operator: what cannot be
// translated is unknown there, as a CEL error would be.
func (t *translator) boolOperand(e celast.Expr) boolFn {
	n, ok := t.expr(e)
	if !ok || n.kind != kBool {
		return unknownBool
	}
	return n.b
}

func strConst(s string) nexpr {
	return nexpr{kind: kString, s: func(*frame) (string, bool) { return s, true }, isLit: true, constStr: s}
}

func boolOf(f boolFn) nexpr { return nexpr{kind: kBool, b: f} }

func (t *translator) expr(e celast.Expr) (nexpr, bool) {
	switch e.Kind() {
	case celast.LiteralKind:
		return t.literal(e)
	case celast.IdentKind:
		return t.ident(e.AsIdent())
	case celast.SelectKind:
		return t.selectExpr(e.AsSelect())
	case celast.ListKind:
		return t.list(e.AsList())
	case celast.CallKind:
		return t.call(e.AsCall())
	case celast.ComprehensionKind:
		return t.comprehension(e.AsComprehension())
	}
	return nexpr{}, false
}

func (t *translator) literal(e celast.Expr) (nexpr, bool) {
	switch v := e.AsLiteral().(type) {
	case types.String:
		return strConst(string(v)), true
	case types.Int:
		return nexpr{kind: kInt, i: func(*frame) (int64, bool) { return int64(v), true }, isLit: true, constInt: int64(v)}, true
	case types.Bool:
		b := triOf(bool(v))
		return boolOf(func(*frame) tri { return b }), true
	case types.Null:
		return nexpr{kind: kNull}, true
	}
	return nexpr{}, false
}

func (t *translator) ident(name string) (nexpr, bool) {
	for i := len(t.scope) - 1; i >= 0; i-- {
		if t.scope[i] == name {
			return nexpr{kind: kString, s: func(f *frame) (string, bool) { return f.vars[i], true }}, true
		}
	}
	str := func(get strFn) (nexpr, bool) { return nexpr{kind: kString, s: get}, true }
	switch name {
	case "verb":
		return str(func(f *frame) (string, bool) { return f.ev.Verb, true })
	case "stage":
		return str(func(f *frame) (string, bool) { return string(f.ev.Stage), true })
	case "requestURI":
		return str(func(f *frame) (string, bool) { return f.ev.RequestURI, true })
	case "userAgent":
		return str(func(f *frame) (string, bool) { return f.ev.UserAgent, true })
	case "sourceIPs":
		return nexpr{kind: kList, l: func(f *frame) ([]string, bool) { return f.ev.SourceIPs, true }}, true
	case "annotations":
		return nexpr{kind: kAnnotations}, true
	case "requestObject", "responseObject":
		return nexpr{kind: kObject, name: name}, true
	case "user", "impersonatedUser", "objectRef", "responseStatus":
		return nexpr{kind: kRecord, name: name}, true
	case "lists":
		return nexpr{kind: kLists}, true
	}
	return nexpr{}, false
}

// selectExpr translates a field of a record, or one of the file's lists.
// The records are the maps the activation builds (userMap and the others):
// the fields here are exactly their keys.
func (t *translator) selectExpr(s celast.SelectExpr) (nexpr, bool) {
	if s.IsTestOnly() {
		return nexpr{}, false
	}
	op, ok := t.expr(s.Operand())
	if !ok {
		return nexpr{}, false
	}
	field := s.FieldName()
	str := func(get strFn) (nexpr, bool) { return nexpr{kind: kString, s: get}, true }
	switch op.kind {
	case kLists:
		l, ok := t.lists[field]
		if !ok {
			return nexpr{}, false // no such key: an error in CEL
		}
		return constListExpr(l), true
	case kRecord:
	default:
		return nexpr{}, false
	}
	switch op.name {
	case "user":
		switch field {
		case "username":
			return str(func(f *frame) (string, bool) { return f.ev.User.Username, true })
		case "uid":
			return str(func(f *frame) (string, bool) { return f.ev.User.UID, true })
		case "groups":
			return nexpr{kind: kList, l: func(f *frame) ([]string, bool) { return f.ev.User.Groups, true }}, true
		}
	case "impersonatedUser":
		switch field {
		case "username":
			return str(func(f *frame) (string, bool) { return impersonatedInfo(f.ev).Username, true })
		case "uid":
			return str(func(f *frame) (string, bool) { return impersonatedInfo(f.ev).UID, true })
		case "groups":
			return nexpr{kind: kList, l: func(f *frame) ([]string, bool) { return impersonatedInfo(f.ev).Groups, true }}, true
		}
	case "objectRef":
		switch field {
		case "resource":
			return str(func(f *frame) (string, bool) { return f.ev.ObjectRef.Resource, true })
		case "subresource":
			return str(func(f *frame) (string, bool) { return f.ev.ObjectRef.Subresource, true })
		case "namespace":
			return str(func(f *frame) (string, bool) { return f.ev.ObjectRef.Namespace, true })
		case "name":
			return str(func(f *frame) (string, bool) { return f.ev.ObjectRef.Name, true })
		case "apiGroup":
			return str(func(f *frame) (string, bool) { return f.ev.ObjectRef.APIGroup, true })
		case "apiVersion":
			return str(func(f *frame) (string, bool) { return f.ev.ObjectRef.APIVersion, true })
		}
	case "responseStatus":
		switch field {
		case "code":
			return nexpr{kind: kInt, i: func(f *frame) (int64, bool) { return int64(f.ev.ResponseStatus.Code), true }}, true
		case "status":
			return str(func(f *frame) (string, bool) { return f.ev.ResponseStatus.Status, true })
		case "reason":
			return str(func(f *frame) (string, bool) { return f.ev.ResponseStatus.Reason, true })
		case "message":
			return str(func(f *frame) (string, bool) { return f.ev.ResponseStatus.Message, true })
		}
	}
	return nexpr{}, false
}

var noUser audit.UserInfo

// impersonatedInfo is the impersonated user, or an empty one, as the
// activation presents it.
func impersonatedInfo(ev *audit.Event) *audit.UserInfo {
	if ev.ImpersonatedUser == nil {
		return &noUser
	}
	return ev.ImpersonatedUser
}

func constListExpr(l []string) nexpr {
	return nexpr{kind: kList, constList: l, isConst: true, l: func(*frame) ([]string, bool) { return l, true }}
}

// list translates a list literal of string constants.
func (t *translator) list(l celast.ListExpr) (nexpr, bool) {
	if len(l.OptionalIndices()) > 0 {
		return nexpr{}, false
	}
	out := make([]string, 0, l.Size())
	for _, el := range l.Elements() {
		if el.Kind() != celast.LiteralKind {
			return nexpr{}, false
		}
		s, ok := el.AsLiteral().(types.String)
		if !ok {
			return nexpr{}, false
		}
		out = append(out, string(s))
	}
	return constListExpr(out), true
}

func (t *translator) call(c celast.CallExpr) (nexpr, bool) {
	args := c.Args()
	if c.IsMemberFunction() {
		args = append([]celast.Expr{c.Target()}, args...)
	}
	switch fn := c.FunctionName(); fn {
	case operators.LogicalAnd, operators.LogicalOr:
		ops := make([]boolFn, len(args))
		for i, a := range args {
			ops[i] = t.boolOperand(a)
		}
		if fn == operators.LogicalAnd {
			return boolOf(andOf(ops)), true
		}
		return boolOf(orOf(ops)), true
	case operators.LogicalNot:
		if len(args) != 1 {
			return nexpr{}, false
		}
		x := t.boolOperand(args[0])
		return boolOf(func(f *frame) tri {
			switch x(f) {
			case triTrue:
				return triFalse
			case triFalse:
				return triTrue
			}
			return triUnknown
		}), true
	case operators.Conditional:
		return t.conditional(args)
	case operators.Equals, operators.NotEquals:
		return t.equality(args, fn == operators.NotEquals)
	case operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals:
		return t.compare(fn, args)
	case operators.In:
		return t.in(args)
	case operators.Add:
		return t.concat(args)
	case operators.Index:
		return t.index(args)
	case "size":
		if len(args) != 1 {
			return nexpr{}, false
		}
		x, ok := t.expr(args[0])
		if !ok || x.kind != kList {
			return nexpr{}, false
		}
		return nexpr{kind: kInt, i: func(f *frame) (int64, bool) {
			l, ok := x.l(f)
			return int64(len(l)), ok
		}}, true
	case "startsWith", "endsWith", "contains", "glob":
		if !c.IsMemberFunction() {
			return nexpr{}, false
		}
		return t.stringPredicate(fn, args)
	case "inCIDR":
		return t.inCIDR(args)
	case "privileged", "hostNamespaces", "hostPaths", "addedCapabilities":
		return t.podHelper(fn, args)
	case "execCommand":
		return t.execCommand(args)
	case "imageRegistry", "imageRepository":
		if len(args) != 1 {
			return nexpr{}, false
		}
		x, ok := t.expr(args[0])
		if !ok || x.kind != kString {
			return nexpr{}, false
		}
		conv := imageRegistry
		if fn == "imageRepository" {
			conv = imageRepository
		}
		return nexpr{kind: kString, s: func(f *frame) (string, bool) {
			s, ok := x.s(f)
			if !ok {
				return "", false
			}
			return conv(s), true
		}}, true
	}
	return nexpr{}, false
}

// andOf is CEL's &&: false if any operand is false, whatever the others.
func andOf(ops []boolFn) boolFn { return junction(ops, triFalse, triTrue) }

// orOf is CEL's ||: true if any operand is true, whatever the others.
func orOf(ops []boolFn) boolFn { return junction(ops, triTrue, triFalse) }

// junction is && (decisive false) or || (decisive true): decisive if any
// operand is, else rest if every operand is, else unknown.
func junction(ops []boolFn, decisive, rest tri) boolFn {
	if len(ops) == 2 {
		x, y := ops[0], ops[1]
		return func(f *frame) tri {
			a := x(f)
			if a == decisive {
				return decisive
			}
			b := y(f)
			if b == decisive {
				return decisive
			}
			if a == rest && b == rest {
				return rest
			}
			return triUnknown
		}
	}
	return func(f *frame) tri {
		out := rest
		for _, op := range ops {
			switch op(f) {
			case decisive:
				return decisive
			case triUnknown:
				out = triUnknown
			}
		}
		return out
	}
}

func (t *translator) conditional(args []celast.Expr) (nexpr, bool) {
	if len(args) != 3 {
		return nexpr{}, false
	}
	cond := t.boolOperand(args[0])
	a, aok := t.expr(args[1])
	b, bok := t.expr(args[2])
	if !aok || !bok || a.kind != b.kind {
		return nexpr{}, false
	}
	switch a.kind {
	case kBool:
		return boolOf(func(f *frame) tri {
			switch cond(f) {
			case triTrue:
				return a.b(f)
			case triFalse:
				return b.b(f)
			}
			return triUnknown
		}), true
	case kString:
		return nexpr{kind: kString, s: func(f *frame) (string, bool) {
			switch cond(f) {
			case triTrue:
				return a.s(f)
			case triFalse:
				return b.s(f)
			}
			return "", false
		}}, true
	}
	return nexpr{}, false
}

func (t *translator) equality(args []celast.Expr, negate bool) (nexpr, bool) {
	if len(args) != 2 {
		return nexpr{}, false
	}
	x, xok := t.expr(args[0])
	y, yok := t.expr(args[1])
	if !xok || !yok {
		return nexpr{}, false
	}
	res := func(eq bool) tri { return triOf(eq != negate) }
	if x.isLit && !y.isLit {
		x, y = y, x // equality is symmetric: the literal second
	}
	switch {
	case x.kind == kString && y.kind == kString && y.isLit:
		want := y.constStr
		return boolOf(func(f *frame) tri {
			a, ok := x.s(f)
			if !ok {
				return triUnknown
			}
			return res(a == want)
		}), true
	case x.kind == kInt && y.kind == kInt && y.isLit:
		want := y.constInt
		return boolOf(func(f *frame) tri {
			a, ok := x.i(f)
			if !ok {
				return triUnknown
			}
			return res(a == want)
		}), true
	case x.kind == kString && y.kind == kString:
		return boolOf(func(f *frame) tri {
			a, ok := x.s(f)
			if !ok {
				return triUnknown
			}
			b, ok := y.s(f)
			if !ok {
				return triUnknown
			}
			return res(a == b)
		}), true
	case x.kind == kInt && y.kind == kInt:
		return boolOf(func(f *frame) tri {
			a, ok := x.i(f)
			if !ok {
				return triUnknown
			}
			b, ok := y.i(f)
			if !ok {
				return triUnknown
			}
			return res(a == b)
		}), true
	case x.kind == kObject && y.kind == kNull, x.kind == kNull && y.kind == kObject:
		// The object as the activation gives it to CEL: absent, null and
		// invalid JSON are null.
		name := x.name
		if x.kind == kNull {
			name = y.name
		}
		i := objectIndex(name)
		return boolOf(func(f *frame) tri { return res(f.isNull(i)) }), true
	}
	return nexpr{}, false
}

func (t *translator) compare(fn string, args []celast.Expr) (nexpr, bool) {
	if len(args) != 2 {
		return nexpr{}, false
	}
	x, xok := t.expr(args[0])
	y, yok := t.expr(args[1])
	if !xok || !yok || x.kind != kInt || y.kind != kInt {
		return nexpr{}, false
	}
	var cmp func(a, b int64) bool
	switch fn {
	case operators.Less:
		cmp = func(a, b int64) bool { return a < b }
	case operators.LessEquals:
		cmp = func(a, b int64) bool { return a <= b }
	case operators.Greater:
		cmp = func(a, b int64) bool { return a > b }
	default:
		cmp = func(a, b int64) bool { return a >= b }
	}
	if y.isLit {
		b := y.constInt
		switch fn {
		case operators.Less:
			return boolOf(func(f *frame) tri {
				a, ok := x.i(f)
				if !ok {
					return triUnknown
				}
				return triOf(a < b)
			}), true
		case operators.GreaterEquals:
			return boolOf(func(f *frame) tri {
				a, ok := x.i(f)
				if !ok {
					return triUnknown
				}
				return triOf(a >= b)
			}), true
		}
	}
	return boolOf(func(f *frame) tri {
		a, ok := x.i(f)
		if !ok {
			return triUnknown
		}
		b, ok := y.i(f)
		if !ok {
			return triUnknown
		}
		return triOf(cmp(a, b))
	}), true
}

func (t *translator) in(args []celast.Expr) (nexpr, bool) {
	if len(args) != 2 {
		return nexpr{}, false
	}
	x, xok := t.expr(args[0])
	y, yok := t.expr(args[1])
	if !xok || !yok || x.kind != kString {
		return nexpr{}, false
	}
	switch {
	case y.kind == kList && y.isConst:
		l := y.constList
		return boolOf(func(f *frame) tri {
			s, ok := x.s(f)
			if !ok {
				return triUnknown
			}
			return triOf(slices.Contains(l, s))
		}), true
	case y.kind == kList:
		return boolOf(func(f *frame) tri {
			s, ok := x.s(f)
			if !ok {
				return triUnknown
			}
			l, ok := y.l(f)
			if !ok {
				return triUnknown
			}
			return triOf(slices.Contains(l, s))
		}), true
	case y.kind == kAnnotations:
		return boolOf(func(f *frame) tri {
			s, ok := x.s(f)
			if !ok {
				return triUnknown
			}
			_, in := f.ev.Annotations[s]
			return triOf(in)
		}), true
	}
	return nexpr{}, false
}

func (t *translator) concat(args []celast.Expr) (nexpr, bool) {
	if len(args) != 2 {
		return nexpr{}, false
	}
	x, xok := t.expr(args[0])
	y, yok := t.expr(args[1])
	if !xok || !yok || x.kind != kString || y.kind != kString {
		return nexpr{}, false
	}
	return nexpr{kind: kString, s: func(f *frame) (string, bool) {
		a, ok := x.s(f)
		if !ok {
			return "", false
		}
		b, ok := y.s(f)
		if !ok {
			return "", false
		}
		return a + b, true
	}}, true
}

// index translates annotations[key] (an error, so unknown, when absent)
// and list[i] (unknown out of range).
func (t *translator) index(args []celast.Expr) (nexpr, bool) {
	if len(args) != 2 {
		return nexpr{}, false
	}
	x, xok := t.expr(args[0])
	k, kok := t.expr(args[1])
	if !xok || !kok {
		return nexpr{}, false
	}
	switch {
	case x.kind == kAnnotations && k.kind == kString:
		return nexpr{kind: kString, s: func(f *frame) (string, bool) {
			key, ok := k.s(f)
			if !ok {
				return "", false
			}
			v, ok := f.ev.Annotations[key]
			return v, ok
		}}, true
	case x.kind == kList && k.kind == kInt:
		return nexpr{kind: kString, s: func(f *frame) (string, bool) {
			l, ok := x.l(f)
			if !ok {
				return "", false
			}
			i, ok := k.i(f)
			if !ok || i < 0 || i >= int64(len(l)) {
				return "", false
			}
			return l[i], true
		}}, true
	}
	return nexpr{}, false
}

func (t *translator) stringPredicate(fn string, args []celast.Expr) (nexpr, bool) {
	if len(args) != 2 {
		return nexpr{}, false
	}
	x, xok := t.expr(args[0])
	y, yok := t.expr(args[1])
	if !xok || !yok || x.kind != kString || y.kind != kString {
		return nexpr{}, false
	}
	var test func(s, arg string) bool
	switch fn {
	case "startsWith":
		test = strings.HasPrefix
	case "endsWith":
		test = strings.HasSuffix
	case "contains":
		test = strings.Contains
	default: // glob
		test = func(s, pattern string) bool {
			ok, _ := path.Match(pattern, s)
			return ok
		}
	}
	if y.isLit {
		arg := y.constStr
		if fn == "startsWith" {
			return boolOf(func(f *frame) tri {
				a, ok := x.s(f)
				if !ok {
					return triUnknown
				}
				return triOf(strings.HasPrefix(a, arg))
			}), true
		}
		return boolOf(func(f *frame) tri {
			a, ok := x.s(f)
			if !ok {
				return triUnknown
			}
			return triOf(test(a, arg))
		}), true
	}
	return boolOf(func(f *frame) tri {
		a, ok := x.s(f)
		if !ok {
			return triUnknown
		}
		b, ok := y.s(f)
		if !ok {
			return triUnknown
		}
		return triOf(test(a, b))
	}), true
}

// execCommand translates execCommand(uri, obj) (cel.go) of a string and a
// recorded object.
func (t *translator) execCommand(args []celast.Expr) (nexpr, bool) {
	if len(args) != 2 {
		return nexpr{}, false
	}
	uri, ok := t.expr(args[0])
	obj, ok2 := t.expr(args[1])
	if !ok || !ok2 || uri.kind != kString || obj.kind != kObject {
		return nexpr{}, false
	}
	i := objectIndex(obj.name)
	return nexpr{kind: kList, l: func(f *frame) ([]string, bool) {
		s, ok := uri.s(f)
		if !ok {
			return nil, false
		}
		return execCommand(s, f.object(i).value), true
	}}, true
}

// podHelper translates a pod helper (cel.go) of a recorded object.
func (t *translator) podHelper(fn string, args []celast.Expr) (nexpr, bool) {
	if len(args) != 1 {
		return nexpr{}, false
	}
	x, ok := t.expr(args[0])
	if !ok || x.kind != kObject {
		return nexpr{}, false
	}
	i := objectIndex(x.name)
	var list func(*podSecurity) []string
	switch fn {
	case "privileged":
		return boolOf(func(f *frame) tri { return triOf(isPrivileged(f.podSpec(i))) }), true
	case "hostNamespaces":
		list = hostNamespaces
	case "hostPaths":
		list = hostPaths
	default:
		list = addedCapabilities
	}
	return nexpr{kind: kList, l: func(f *frame) ([]string, bool) { return list(f.podSpec(i)), true }}, true
}

// inCIDR translates the inCIDR helper; a list of CIDRs known at load (one
// of the file's lists) is parsed once.
func (t *translator) inCIDR(args []celast.Expr) (nexpr, bool) {
	if len(args) != 2 {
		return nexpr{}, false
	}
	x, xok := t.expr(args[0])
	y, yok := t.expr(args[1])
	if !xok || !yok || x.kind != kString || y.kind != kList {
		return nexpr{}, false
	}
	var prefixes []netip.Prefix
	if y.isConst {
		for _, c := range y.constList {
			if p, err := netip.ParsePrefix(c); err == nil {
				prefixes = append(prefixes, p)
			}
		}
	}
	return boolOf(func(f *frame) tri {
		ip, ok := x.s(f)
		if !ok {
			return triUnknown
		}
		l, ok := y.l(f)
		if !ok {
			return triUnknown
		}
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			return triFalse
		}
		if y.isConst {
			for _, p := range prefixes {
				if p.Contains(addr) {
					return triTrue
				}
			}
			return triFalse
		}
		return triOf(inCIDRs(addr, l))
	}), true
}

// comprehension translates exists() and all() over a list of strings.
func (t *translator) comprehension(c celast.ComprehensionExpr) (nexpr, bool) {
	if c.HasIterVar2() || len(t.scope) >= maxNativeVars {
		return nexpr{}, false
	}
	init, step, result := c.AccuInit(), c.LoopStep(), c.Result()
	if init.Kind() != celast.LiteralKind || result.Kind() != celast.IdentKind || result.AsIdent() != c.AccuVar() ||
		step.Kind() != celast.CallKind {
		return nexpr{}, false
	}
	initVal, ok := init.AsLiteral().(types.Bool)
	if !ok {
		return nexpr{}, false
	}
	call := step.AsCall()
	steps := call.Args()
	if len(steps) != 2 || steps[0].Kind() != celast.IdentKind || steps[0].AsIdent() != c.AccuVar() {
		return nexpr{}, false
	}
	var exists bool
	switch {
	case call.FunctionName() == operators.LogicalOr && !bool(initVal):
		exists = true
	case call.FunctionName() == operators.LogicalAnd && bool(initVal):
		exists = false
	default:
		return nexpr{}, false
	}
	rng, ok := t.expr(c.IterRange())
	if !ok || rng.kind != kList {
		return nexpr{}, false
	}
	slot := len(t.scope)
	t.scope = append(t.scope, c.IterVar())
	pred := t.boolOperand(steps[1])
	t.scope = t.scope[:slot]
	// exists: true if the predicate is true for any element; all: false if
	// false for any. Otherwise an unknown element leaves it unknown.
	decisive, otherwise := triTrue, triFalse
	if !exists {
		decisive, otherwise = triFalse, triTrue
	}
	return boolOf(func(f *frame) tri {
		l, ok := rng.l(f)
		if !ok {
			return triUnknown
		}
		out := otherwise
		for _, s := range l {
			f.vars[slot] = s
			switch pred(f) {
			case decisive:
				return decisive
			case triUnknown:
				out = triUnknown
			}
		}
		return out
	}), true
}

// inCIDRs reports whether addr is inside one of the CIDRs; invalid ones
// are skipped.
func inCIDRs(addr netip.Addr, cidrs []string) bool {
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Contains(addr) {
			return true
		}
	}
	return false
}

// guardField is an event field the index selects rules by, besides verb
// and resource, when their conditions require it to have given values.
type guardField uint8

const (
	guardUser      guardField = iota // user.username
	guardNamespace                   // objectRef.namespace
	guardName                        // objectRef.name
	numGuards
)

func (g guardField) value(ev *audit.Event) string {
	switch g {
	case guardUser:
		return ev.User.Username
	case guardNamespace:
		return ev.ObjectRef.Namespace
	}
	return ev.ObjectRef.Name
}

// nativeGuard finds, among the top-level conjuncts of a condition, one
// that requires a guard field to equal a constant or to be in a list known
// at load (`user.username == "x"`, `objectRef.namespace in ["a", "b"]`,
// `... in lists.name`): for events with any other value that conjunct is
// false, and so, in CEL, is the whole condition, whatever the rest. The
// index then runs the rule only for events with one of those values. ok is
// false when there is no such conjunct; of several, the one with the
// fewest values.
func nativeGuard(a *cel.Ast, lists map[string][]string) (field guardField, values []string, ok bool) {
	t := &translator{ast: a.NativeRep(), lists: lists}
	var conjuncts []celast.Expr
	var flatten func(e celast.Expr)
	flatten = func(e celast.Expr) {
		if e.Kind() == celast.CallKind && e.AsCall().FunctionName() == operators.LogicalAnd {
			for _, arg := range e.AsCall().Args() {
				flatten(arg)
			}
			return
		}
		conjuncts = append(conjuncts, e)
	}
	flatten(t.ast.Expr())
	for _, e := range conjuncts {
		if e.Kind() != celast.CallKind {
			continue
		}
		call := e.AsCall()
		args := call.Args()
		if call.IsMemberFunction() || len(args) != 2 {
			continue
		}
		var g guardField
		var vals []string
		var found bool
		switch call.FunctionName() {
		case operators.Equals:
			for _, pair := range [2][2]celast.Expr{{args[0], args[1]}, {args[1], args[0]}} {
				if f, isField := guardOf(pair[0]); isField && pair[1].Kind() == celast.LiteralKind {
					if s, isStr := pair[1].AsLiteral().(types.String); isStr {
						g, vals, found = f, []string{string(s)}, true
						break
					}
				}
			}
		case operators.In:
			f, isField := guardOf(args[0])
			if !isField {
				continue
			}
			if l, isList := t.expr(args[1]); isList && l.kind == kList && l.isConst {
				g, vals, found = f, l.constList, true
			}
		}
		if found && (!ok || len(vals) < len(values)) {
			field, values, ok = g, vals, true
		}
	}
	return field, values, ok
}

// guardOf reports whether e is a guard field.
func guardOf(e celast.Expr) (guardField, bool) {
	if e.Kind() != celast.SelectKind {
		return 0, false
	}
	s := e.AsSelect()
	if s.IsTestOnly() || s.Operand().Kind() != celast.IdentKind {
		return 0, false
	}
	switch s.Operand().AsIdent() + "." + s.FieldName() {
	case "user.username":
		return guardUser, true
	case "objectRef.namespace":
		return guardNamespace, true
	case "objectRef.name":
		return guardName, true
	}
	return 0, false
}
