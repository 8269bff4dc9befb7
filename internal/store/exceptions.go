package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

const exceptionColumns = `id, checks, kind, namespace, name, labels, reason, owner, expires, created_by, created_at, expired_at`

// AddException stores e and returns it with the ID and CreatedAt (now, from
// the clock) the store assigned; e's own ID, CreatedAt and ExpiredAt are
// ignored. The store does not validate e: an exception whose Expires is the
// zero time is never in force, one without Checks matches nothing.
func (s *Store) AddException(ctx context.Context, e Exception) (Exception, error) {
	e.CreatedAt = time.Now().UTC()
	e.Expires = e.Expires.UTC()
	e.ExpiredAt = nil
	checks, err := jsonText(e.Checks)
	if err != nil {
		return Exception{}, fmt.Errorf("store: add exception: %w", err)
	}
	labels, err := jsonText(e.Labels)
	if err != nil {
		return Exception{}, fmt.Errorf("store: add exception: %w", err)
	}
	err = s.w.QueryRowContext(ctx, s.d.rebind(`INSERT INTO exceptions (checks, kind, namespace, name, labels, reason, owner,
		expires, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		checks, e.Kind, e.Namespace, e.Name, labels, e.Reason, e.Owner, nanos(e.Expires), e.CreatedBy, nanos(e.CreatedAt),
	).Scan(&e.ID)
	if err != nil {
		return Exception{}, fmt.Errorf("store: add exception: %w", err)
	}
	return e, nil
}

// Exceptions lists exceptions by ID. Without includeInactive it lists only
// those in force at now: Expires after now, and not expired by
// ExpireException at or before now.
func (s *Store) Exceptions(ctx context.Context, includeInactive bool, now time.Time) ([]Exception, error) {
	q := `SELECT ` + exceptionColumns + ` FROM exceptions`
	var args []any
	if !includeInactive {
		n := nanos(now)
		q += ` WHERE expires > ? AND (expired_at IS NULL OR expired_at > ?)`
		args = append(args, n, n)
	}
	out, err := queryAll(ctx, s.r, s.d.rebind(q+` ORDER BY id`), args, scanException)
	if err != nil {
		return nil, fmt.Errorf("store: exceptions: %w", err)
	}
	return out, nil
}

// ExpireException ends the exception with the ID at now and returns it; an
// error matching ErrNotFound when there is no such exception. It is
// idempotent: expiring an expired exception keeps the first ExpiredAt.
func (s *Store) ExpireException(ctx context.Context, id int64, now time.Time) (Exception, error) {
	var e Exception
	err := s.inTx(ctx, 0, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE exceptions SET expired_at = ? WHERE id = ? AND expired_at IS NULL`),
			nanos(now), id); err != nil {
			return err
		}
		var err error
		e, err = scanException(tx.QueryRowContext(ctx, s.d.rebind(`SELECT `+exceptionColumns+` FROM exceptions WHERE id = ?`), id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return Exception{}, fmt.Errorf("%w: exception %d", ErrNotFound, id)
	case err != nil:
		return Exception{}, fmt.Errorf("store: expire exception %d: %w", id, err)
	}
	return e, nil
}

func scanException(sc scanner) (Exception, error) {
	var (
		e                  Exception
		checks, labels     string
		expires, createdAt int64
		expiredAt          sql.NullInt64
	)
	if err := sc.Scan(&e.ID, &checks, &e.Kind, &e.Namespace, &e.Name, &labels, &e.Reason, &e.Owner,
		&expires, &e.CreatedBy, &createdAt, &expiredAt); err != nil {
		return Exception{}, err
	}
	if err := json.Unmarshal([]byte(checks), &e.Checks); err != nil {
		return Exception{}, fmt.Errorf("exception %d: checks: %w", e.ID, err)
	}
	if err := json.Unmarshal([]byte(labels), &e.Labels); err != nil {
		return Exception{}, fmt.Errorf("exception %d: labels: %w", e.ID, err)
	}
	e.Expires, e.CreatedAt, e.ExpiredAt = fromNanos(expires), fromNanos(createdAt), fromNullNanos(expiredAt)
	return e, nil
}
