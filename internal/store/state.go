package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// GetState returns the value last stored under key by PutState; ok is false
// when there is none. The value belongs to the caller.
func (s *Store) GetState(ctx context.Context, key string) (value []byte, ok bool, err error) {
	err = s.r.QueryRowContext(ctx, s.d.rebind(`SELECT value FROM state WHERE state_key = ?`), key).Scan(&value)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("store: get state %q: %w", key, err)
	}
	if value == nil {
		value = []byte{}
	}
	return value, true, nil
}

// PutState stores value under key, replacing what was there. A nil value is
// stored as an empty one. Keys are owned by their components; a component
// prefixes its keys with its name ("audit/offset/...").
func (s *Store) PutState(ctx context.Context, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	_, err := s.w.ExecContext(ctx, s.d.rebind(`INSERT INTO state (state_key, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (state_key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`),
		key, value, nanos(time.Now()))
	if err != nil {
		return fmt.Errorf("store: put state %q: %w", key, err)
	}
	return nil
}

// Prune deletes, in one transaction, the alerts whose Time is before
// now-r.Alerts, the resolved findings resolved before
// now-r.ResolvedFindings and the posture points before now-r.History, and
// returns how many rows it deleted. A zero (or negative) duration keeps
// those records forever. Open findings and exceptions are never pruned.
// Prune waits for a running SyncFindings, whose view of the findings it
// would otherwise change.
func (s *Store) Prune(ctx context.Context, r Retention, now time.Time) (int64, error) {
	var deleted int64
	err := s.inTx(ctx, lockSync, func(tx *sql.Tx) error {
		deleted = 0
		for _, p := range []struct {
			keep time.Duration
			q    string
		}{
			{r.Alerts, `DELETE FROM alerts WHERE ts < ?`},
			{r.ResolvedFindings, `DELETE FROM findings WHERE status = 'resolved' AND resolved_at < ?`},
			{r.History, `DELETE FROM posture WHERE ts < ?`},
		} {
			if p.keep <= 0 {
				continue
			}
			res, err := tx.ExecContext(ctx, s.d.rebind(p.q), nanos(now.Add(-p.keep)))
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			deleted += n
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune: %w", err)
	}
	return deleted, nil
}
