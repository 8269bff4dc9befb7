package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kustode/kustode/internal/finding"
)

const alertColumns = `id, rule, title, severity, mitre, tags, ts, audit_ids, user_name, user_groups, source_ips,
	user_agent, verb, namespace, object, message, status, acked_by, acked_at`

// alertBatch is how many alerts one INSERT stores (17 parameters each).
const alertBatch = 500

// AddAlerts stores alerts, each with Status open, in one transaction, and
// returns them with the IDs the store assigned, in the order given. IDs
// increase in that order and are never reused, even after Prune.
func (s *Store) AddAlerts(ctx context.Context, alerts []finding.Alert) ([]Alert, error) {
	out := make([]Alert, 0, len(alerts))
	if len(alerts) == 0 {
		return out, nil
	}
	for _, a := range alerts {
		stored := Alert{Alert: a, Status: AlertOpen}
		stored.Time = a.Time.UTC()
		out = append(out, stored)
	}
	err := s.inTx(ctx, 0, func(tx *sql.Tx) error {
		// IDs are taken first and inserted explicitly, so that each alert
		// certainly gets its own ID in one multi-row INSERT (neither backend
		// promises the order of the rows INSERT ... RETURNING returns).
		ids, err := queryAll(ctx, tx, s.d.rebind(s.d.alertIDs), []any{len(alerts)}, func(sc scanner) (id int64, err error) {
			err = sc.Scan(&id)
			return id, err
		})
		if err != nil {
			return fmt.Errorf("assign IDs: %w", err)
		}
		if len(ids) != len(alerts) {
			return fmt.Errorf("assign IDs: got %d IDs for %d alerts", len(ids), len(alerts))
		}
		slices.Sort(ids)
		for i := range out {
			out[i].ID = ids[i]
		}
		for chunk := range slices.Chunk(out, alertBatch) {
			args := make([]any, 0, len(chunk)*17)
			for _, a := range chunk {
				var lists [5]string
				for i, l := range [][]string{a.MITRE, a.Tags, a.AuditIDs, a.Groups, a.SourceIPs} {
					if lists[i], err = jsonText(l); err != nil {
						return err
					}
				}
				args = append(args, a.ID, a.Rule, a.Title, int(a.Severity), lists[0], lists[1], nanos(a.Time),
					lists[2], a.User, lists[3], lists[4], a.UserAgent, a.Verb, a.Namespace, a.Object, a.Message,
					string(AlertOpen))
			}
			q := `INSERT INTO alerts (id, rule, title, severity, mitre, tags, ts, audit_ids, user_name, user_groups,
				source_ips, user_agent, verb, namespace, object, message, status) VALUES ` +
				repeatJoin(`(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, len(chunk))
			// #nosec G701 -- built from constant strings; values are parameters.
			if _, err := tx.ExecContext(ctx, s.d.rebind(q), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: add alerts: %w", err)
	}
	return out, nil
}

// Alerts returns the stored alerts that match f, newest first (by Time, then
// ID), at most f.Limit (DefaultLimit when 0).
func (s *Store) Alerts(ctx context.Context, f AlertFilter) ([]Alert, error) {
	var where []string
	var args []any
	if f.Rule != "" {
		where, args = append(where, "rule = ?"), append(args, f.Rule)
	}
	if f.Namespace != "" {
		where, args = append(where, "namespace = ?"), append(args, f.Namespace)
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
	if !f.Since.IsZero() {
		where, args = append(where, "ts >= ?"), append(args, nanos(f.Since))
	}
	q := `SELECT ` + alertColumns + ` FROM alerts` + whereClause(where) + ` ORDER BY ts DESC, id DESC LIMIT ?`
	args = append(args, limitOf(f.Limit))

	out, err := queryAll(ctx, s.r, s.d.rebind(q), args, scanAlert)
	if err != nil {
		return nil, fmt.Errorf("store: alerts: %w", err)
	}
	return out, nil
}

// Alert returns the alert with the ID, or an error matching ErrNotFound.
func (s *Store) Alert(ctx context.Context, id int64) (Alert, error) {
	a, err := s.alert(ctx, s.r, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return Alert{}, fmt.Errorf("%w: alert %d", ErrNotFound, id)
	case err != nil:
		return Alert{}, fmt.Errorf("store: alert %d: %w", id, err)
	}
	return a, nil
}

// AckAlert acknowledges the alert with the ID on behalf of by, at now, and
// returns it; an error matching ErrNotFound when there is no such alert. It
// is idempotent: acknowledging an acknowledged alert changes nothing and
// keeps the first acknowledgement's AckedBy and AckedAt.
func (s *Store) AckAlert(ctx context.Context, id int64, by string, now time.Time) (Alert, error) {
	var a Alert
	err := s.inTx(ctx, 0, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE alerts SET status = ?, acked_by = ?, acked_at = ?
			WHERE id = ? AND status = ?`), string(AlertAcknowledged), by, nanos(now), id, string(AlertOpen)); err != nil {
			return err
		}
		var err error
		a, err = s.alert(ctx, tx, id)
		return err
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return Alert{}, fmt.Errorf("%w: alert %d", ErrNotFound, id)
	case err != nil:
		return Alert{}, fmt.Errorf("store: ack alert %d: %w", id, err)
	}
	return a, nil
}

func (s *Store) alert(ctx context.Context, q queryer, id int64) (Alert, error) {
	a, err := scanAlert(q.QueryRowContext(ctx, s.d.rebind(`SELECT `+alertColumns+` FROM alerts WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Alert{}, ErrNotFound
	}
	return a, err
}

func scanAlert(sc scanner) (Alert, error) {
	var (
		a       Alert
		sev     int
		ts      int64
		lists   [5]string
		ackedAt sql.NullInt64
	)
	if err := sc.Scan(&a.ID, &a.Rule, &a.Title, &sev, &lists[0], &lists[1], &ts, &lists[2], &a.User, &lists[3], &lists[4],
		&a.UserAgent, &a.Verb, &a.Namespace, &a.Object, &a.Message, &a.Status, &a.AckedBy, &ackedAt); err != nil {
		return Alert{}, err
	}
	for i, dst := range []*[]string{&a.MITRE, &a.Tags, &a.AuditIDs, &a.Groups, &a.SourceIPs} {
		if err := json.Unmarshal([]byte(lists[i]), dst); err != nil {
			return Alert{}, fmt.Errorf("alert %d: %w", a.ID, err)
		}
	}
	a.Severity = finding.Severity(sev)
	a.Time = fromNanos(ts)
	a.AckedAt = fromNullNanos(ackedAt)
	return a, nil
}
