package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kustode/kustode/internal/finding"
)

// FindingKey is the stable Key of a finding: the first 128 bits, in hex, of
// the SHA-256 of its check ID, object kind, namespace and name, and message.
// The object's apiVersion is not part of it (an object keeps its findings
// when its API version changes), nor are the severity, title or remediation
// (a finding keeps its history when a check's wording changes).
func FindingKey(f finding.Finding) string {
	h := sha256.New()
	for _, part := range []string{f.CheckID, f.Object.Kind, f.Object.Namespace, f.Object.Name, f.Message} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Batch sizes of the statements SyncFindings sends: large enough that a full
// resync of 50,000 findings is a few dozen statements, small enough to stay
// far below SQLite's 32,766 and PostgreSQL's 65,535 parameters.
const (
	upsertBatch = 500 // rows, upsertColumns parameters each
	keyBatch    = 1000
	objectBatch = 500 // objects, 3 parameters each
)

const upsertColumns = 16

// upsertFindings inserts new findings as open and rewrites the stored
// fields of findings that changed or come back, reopening resolved ones.
// The key-derived columns (check, object, message) never change, so they
// are not updated. SET expressions see the row as it was, so the CASE
// counts a reopening once.
const (
	upsertFindingsHead = `INSERT INTO findings (
	finding_key, check_id, severity, title, message, api_version, kind, namespace, name,
	file, line, remediation, frameworks, digest, first_seen, last_seen, status, resolved_at, reopened
) VALUES `
	upsertFindingsRow  = `(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'open',NULL,0)`
	upsertFindingsTail = ` ON CONFLICT (finding_key) DO UPDATE SET
	severity = excluded.severity,
	title = excluded.title,
	api_version = excluded.api_version,
	file = excluded.file,
	line = excluded.line,
	remediation = excluded.remediation,
	frameworks = excluded.frameworks,
	digest = excluded.digest,
	last_seen = excluded.last_seen,
	status = 'open',
	resolved_at = NULL,
	reopened = findings.reopened + CASE WHEN findings.status = 'resolved' THEN 1 ELSE 0 END`
)

// objectKey is an object as scopes match it: without its apiVersion.
type objectKey struct{ kind, namespace, name string }

func objectOf(r finding.ObjectRef) objectKey { return objectKey{r.Kind, r.Namespace, r.Name} }

// reported is a finding of the current evaluation, encoded for storage.
type reported struct {
	key        string
	f          finding.Finding
	frameworks string // JSON
	// digest identifies the stored fields that are not part of the key: an
	// open finding whose digest is unchanged only needs its LastSeen
	// updated, which is most of a resync.
	digest string
}

func newReported(key string, f finding.Finding) (reported, error) {
	fw, err := jsonText(f.Frameworks)
	if err != nil {
		return reported{}, fmt.Errorf("finding %s: frameworks: %w", key, err)
	}
	h := sha256.New()
	for _, part := range []string{strconv.Itoa(int(f.Severity)), f.Title, f.Object.APIVersion, f.File, strconv.Itoa(f.Line), f.Remediation, fw} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return reported{key: key, f: f, frameworks: fw, digest: hex.EncodeToString(h.Sum(nil)[:16])}, nil
}

// storedFinding is what SyncFindings reads of a stored finding.
type storedFinding struct {
	status Status
	digest string
}

// SyncFindings records one evaluation of the objects in scope, whose
// findings are current, at now, in one transaction; see the package
// documentation for the lifecycle. The objects of current are in scope even
// when scope.Objects does not list them. A finding reported twice in
// current counts once (the last report wins). Concurrent calls run one after
// the other. Calling it again with the same arguments only keeps.
//
// A full resync of a large cluster is cheap when little changed: findings
// that are still open and unchanged cost one key in a batched UPDATE of
// LastSeen.
func (s *Store) SyncFindings(ctx context.Context, scope Scope, current []finding.Finding, now time.Time) (SyncResult, error) {
	res, err := s.syncFindings(ctx, scope, current, now)
	if err != nil {
		return SyncResult{}, fmt.Errorf("store: sync findings: %w", err)
	}
	return res, nil
}

func (s *Store) syncFindings(ctx context.Context, scope Scope, current []finding.Finding, now time.Time) (SyncResult, error) {
	// Encode outside the transaction, which holds the write lock. The last
	// report of a key wins; order is kept so statements are deterministic.
	index := make(map[string]int, len(current))
	reports := make([]reported, 0, len(current))
	for _, f := range current {
		k := FindingKey(f)
		r, err := newReported(k, f)
		if err != nil {
			return SyncResult{}, err
		}
		if i, dup := index[k]; dup {
			reports[i] = r
			continue
		}
		index[k] = len(reports)
		reports = append(reports, r)
	}
	var objects []objectKey
	if !scope.All {
		seen := make(map[objectKey]bool, len(scope.Objects))
		add := func(o objectKey) {
			if !seen[o] {
				seen[o] = true
				objects = append(objects, o)
			}
		}
		for _, o := range scope.Objects {
			add(objectOf(o))
		}
		for _, r := range reports {
			add(objectOf(r.f.Object))
		}
	}

	var res SyncResult
	at := nanos(now)
	err := s.inTx(ctx, lockSync, func(tx *sql.Tx) error {
		res = SyncResult{}
		existing, err := s.storedFindings(ctx, tx, scope.All, objects)
		if err != nil {
			return err
		}
		var upsert []reported
		var touch, resolve []string
		for _, r := range reports {
			old, ok := existing[r.key]
			switch {
			case !ok:
				res.Opened++
				upsert = append(upsert, r)
			case old.status == StatusResolved:
				res.Reopened++
				upsert = append(upsert, r)
			case old.digest != r.digest:
				res.Kept++
				upsert = append(upsert, r)
			default:
				res.Kept++
				touch = append(touch, r.key)
			}
		}
		for k, old := range existing {
			if _, ok := index[k]; !ok && old.status == StatusOpen {
				resolve = append(resolve, k)
			}
		}
		slices.Sort(resolve)
		res.Resolved = len(resolve)

		if err := s.upsertFindings(ctx, tx, upsert, at); err != nil {
			return err
		}
		if err := s.updateByKeys(ctx, tx, `UPDATE findings SET last_seen = ?`, at, touch); err != nil {
			return err
		}
		return s.updateByKeys(ctx, tx, `UPDATE findings SET status = 'resolved', resolved_at = ?`, at, resolve)
	})
	return res, err
}

// ResolveUnseen resolves, at since, every open finding last seen before
// since, and returns how many it resolved. It completes a full evaluation
// stored in parts: each part a SyncFindings of some objects at since, so
// that every finding still reported was last seen at since; what remains
// open from before belongs to objects that evaluation did not judge
// (deleted ones). A finding last seen after since (a clock set back) is left
// alone.
func (s *Store) ResolveUnseen(ctx context.Context, since time.Time) (int, error) {
	var n int64
	at := nanos(since)
	err := s.inTx(ctx, lockSync, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE findings SET status = 'resolved', resolved_at = ? WHERE status = 'open' AND last_seen < ?`), at, at)
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: resolve unseen findings: %w", err)
	}
	return int(n), nil
}

// storedFindings returns the status and digest of every stored finding of
// the objects, or of every stored finding when all is set.
func (s *Store) storedFindings(ctx context.Context, tx *sql.Tx, all bool, objects []objectKey) (map[string]storedFinding, error) {
	type row struct {
		key string
		storedFinding
	}
	scan := func(sc scanner) (r row, err error) {
		err = sc.Scan(&r.key, &r.status, &r.digest)
		return r, err
	}
	stored := make(map[string]storedFinding)
	add := func(q string, args []any) error {
		rows, err := queryAll(ctx, tx, s.d.rebind(q), args, scan)
		for _, r := range rows {
			stored[r.key] = r.storedFinding
		}
		return err
	}
	const q = `SELECT finding_key, status, digest FROM findings`
	if all {
		return stored, add(q, nil)
	}
	for chunk := range slices.Chunk(objects, objectBatch) {
		args := make([]any, 0, 3*len(chunk))
		for _, o := range chunk {
			args = append(args, o.kind, o.namespace, o.name)
		}
		if err := add(q+` WHERE (kind, namespace, name) IN (VALUES `+repeatJoin("(?,?,?)", len(chunk))+`)`, args); err != nil {
			return nil, err
		}
	}
	return stored, nil
}

func (s *Store) upsertFindings(ctx context.Context, tx *sql.Tx, reports []reported, at int64) error {
	var full *sql.Stmt // the statement of a full batch, prepared once
	defer func() {
		if full != nil {
			_ = full.Close()
		}
	}()
	args := make([]any, 0, min(len(reports), upsertBatch)*upsertColumns)
	for chunk := range slices.Chunk(reports, upsertBatch) {
		args = args[:0]
		for _, r := range chunk {
			f := r.f
			args = append(args, r.key, f.CheckID, int(f.Severity), f.Title, f.Message,
				f.Object.APIVersion, f.Object.Kind, f.Object.Namespace, f.Object.Name,
				f.File, f.Line, f.Remediation, r.frameworks, r.digest, at, at)
		}
		q := s.d.rebind(upsertFindingsHead + repeatJoin(upsertFindingsRow, len(chunk)) + upsertFindingsTail)
		if len(chunk) < upsertBatch {
			// #nosec G701 -- built from constant strings; values are parameters.
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return err
			}
			continue
		}
		if full == nil {
			var err error
			// #nosec G701 -- built from constant strings; values are parameters.
			if full, err = tx.PrepareContext(ctx, q); err != nil {
				return err
			}
		}
		if _, err := full.ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// updateByKeys runs update (an UPDATE of findings with one parameter, at)
// for the findings with the keys, in batches.
func (s *Store) updateByKeys(ctx context.Context, tx *sql.Tx, update string, at int64, keys []string) error {
	args := make([]any, 0, min(len(keys), keyBatch)+1)
	for chunk := range slices.Chunk(keys, keyBatch) {
		args = append(args[:0], at)
		for _, k := range chunk {
			args = append(args, k)
		}
		q := update + ` WHERE finding_key IN (` + repeatJoin("?", len(chunk)) + `)`
		// #nosec G701 -- built from constant strings; values are parameters.
		if _, err := tx.ExecContext(ctx, s.d.rebind(q), args...); err != nil {
			return err
		}
	}
	return nil
}

const findingColumns = `finding_key, check_id, severity, title, message, api_version, kind, namespace, name,
	file, line, remediation, frameworks, status, first_seen, last_seen, resolved_at, reopened`

// Findings returns the stored findings that match f, most recently seen
// first (ties by key), at most f.Limit (DefaultLimit when 0).
func (s *Store) Findings(ctx context.Context, f FindingFilter) ([]Finding, error) {
	var where []string
	var args []any
	if f.Namespace != "" {
		where, args = append(where, "namespace = ?"), append(args, f.Namespace)
	}
	if f.CheckID != "" {
		where, args = append(where, "check_id = ?"), append(args, f.CheckID)
	}
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	}
	if len(f.Severities) > 0 {
		where = append(where, "severity IN ("+repeatJoin("?", len(f.Severities))+")")
		for _, sev := range f.Severities {
			args = append(args, int(sev))
		}
	}
	q := `SELECT ` + findingColumns + ` FROM findings` + whereClause(where) +
		` ORDER BY last_seen DESC, finding_key LIMIT ?`
	args = append(args, limitOf(f.Limit))

	out, err := queryAll(ctx, s.r, s.d.rebind(q), args, scanFinding)
	if err != nil {
		return nil, fmt.Errorf("store: findings: %w", err)
	}
	return out, nil
}

func scanFinding(sc scanner) (Finding, error) {
	var (
		f                   Finding
		sev                 int
		fw                  string
		firstSeen, lastSeen int64
		resolvedAt          sql.NullInt64
	)
	if err := sc.Scan(&f.Key, &f.CheckID, &sev, &f.Title, &f.Message,
		&f.Object.APIVersion, &f.Object.Kind, &f.Object.Namespace, &f.Object.Name,
		&f.File, &f.Line, &f.Remediation, &fw, &f.Status, &firstSeen, &lastSeen, &resolvedAt, &f.Reopened); err != nil {
		return Finding{}, err
	}
	if err := json.Unmarshal([]byte(fw), &f.Frameworks); err != nil {
		return Finding{}, fmt.Errorf("finding %s: frameworks: %w", f.Key, err)
	}
	f.Severity = finding.Severity(sev)
	f.FirstSeen, f.LastSeen, f.ResolvedAt = fromNanos(firstSeen), fromNanos(lastSeen), fromNullNanos(resolvedAt)
	return f, nil
}

func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// Summary counts the open findings, as a posture point at now. BySeverity
// has every severity, zeros included; ByCheck and ByNamespace only the
// checks and namespaces with open findings. It does not record the point
// (see RecordPosture).
func (s *Store) Summary(ctx context.Context, now time.Time) (PosturePoint, error) {
	p := PosturePoint{
		Time:        now.UTC(),
		BySeverity:  make(map[string]int),
		ByCheck:     make(map[string]int),
		ByNamespace: make(map[string]int),
	}
	for _, sev := range finding.Severities() {
		p.BySeverity[sev.String()] = 0
	}
	type group struct {
		severity         int
		check, namespace string
		n                int
	}
	groups, err := queryAll(ctx, s.r, s.d.rebind(`SELECT severity, check_id, namespace, COUNT(*) FROM findings
		WHERE status = ? GROUP BY severity, check_id, namespace`), []any{string(StatusOpen)},
		func(sc scanner) (g group, err error) {
			err = sc.Scan(&g.severity, &g.check, &g.namespace, &g.n)
			return g, err
		})
	if err != nil {
		return PosturePoint{}, fmt.Errorf("store: summary: %w", err)
	}
	for _, g := range groups {
		p.Open += g.n
		p.BySeverity[finding.Severity(g.severity).String()] += g.n
		p.ByCheck[g.check] += g.n
		p.ByNamespace[g.namespace] += g.n
	}
	return p, nil
}

// RecordPosture appends a point to the posture history. Points are not
// deduplicated: recording the same point twice stores it twice.
func (s *Store) RecordPosture(ctx context.Context, p PosturePoint) error {
	var enc [3]string
	for i, m := range []map[string]int{p.BySeverity, p.ByCheck, p.ByNamespace} {
		if m == nil {
			m = map[string]int{}
		}
		var err error
		if enc[i], err = jsonText(m); err != nil {
			return fmt.Errorf("store: record posture: %w", err)
		}
	}
	_, err := s.w.ExecContext(ctx, s.d.rebind(`INSERT INTO posture (ts, open_count, by_severity, by_check, by_namespace)
		VALUES (?, ?, ?, ?, ?)`), nanos(p.Time), p.Open, enc[0], enc[1], enc[2])
	if err != nil {
		return fmt.Errorf("store: record posture: %w", err)
	}
	return nil
}

// PostureHistory returns the recorded points with Time at or after since,
// oldest first. When there are more than limit (DefaultLimit when 0), it
// returns the newest limit of them.
func (s *Store) PostureHistory(ctx context.Context, since time.Time, limit int) ([]PosturePoint, error) {
	out, err := queryAll(ctx, s.r, s.d.rebind(`SELECT ts, open_count, by_severity, by_check, by_namespace FROM posture
		WHERE ts >= ? ORDER BY ts DESC, id DESC LIMIT ?`), []any{sinceNanos(since), limitOf(limit)}, scanPosture)
	if err != nil {
		return nil, fmt.Errorf("store: posture history: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}

func scanPosture(sc scanner) (PosturePoint, error) {
	var (
		p   PosturePoint
		ts  int64
		enc [3]string
	)
	if err := sc.Scan(&ts, &p.Open, &enc[0], &enc[1], &enc[2]); err != nil {
		return PosturePoint{}, err
	}
	p.Time = fromNanos(ts)
	for i, dst := range []*map[string]int{&p.BySeverity, &p.ByCheck, &p.ByNamespace} {
		if err := json.Unmarshal([]byte(enc[i]), dst); err != nil {
			return PosturePoint{}, err
		}
		if *dst == nil {
			*dst = map[string]int{}
		}
	}
	return p, nil
}

// sinceNanos is the stored form of a lower time bound: the zero time means
// no bound, which includes times stored as 0 or before 1970.
func sinceNanos(t time.Time) int64 {
	if t.IsZero() {
		return nanos(minNanos)
	}
	return nanos(t)
}
