package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// migrations is the schema, one entry per version (migrations[0] is version
// 1). Entries are only ever appended: a released migration never changes.
// Statements are written once for both backends; {{id}}, {{blob}} and
// {{findings_storage}} are replaced by the dialect's (see dialect). Times are BIGINT Unix nanoseconds,
// lists and maps JSON text, severities finding.Severity numbers.
var migrations = [][]string{
	// 1: findings, posture history, alerts, exceptions, state.
	{
		`CREATE TABLE findings (
			finding_key TEXT PRIMARY KEY,
			check_id    TEXT NOT NULL,
			severity    INTEGER NOT NULL,
			title       TEXT NOT NULL,
			message     TEXT NOT NULL,
			api_version TEXT NOT NULL,
			kind        TEXT NOT NULL,
			namespace   TEXT NOT NULL,
			name        TEXT NOT NULL,
			file        TEXT NOT NULL,
			line        INTEGER NOT NULL,
			remediation TEXT NOT NULL,
			frameworks  TEXT NOT NULL,
			digest      TEXT NOT NULL,
			status      TEXT NOT NULL,
			first_seen  BIGINT NOT NULL,
			last_seen   BIGINT NOT NULL,
			resolved_at BIGINT,
			reopened    INTEGER NOT NULL DEFAULT 0
		){{findings_storage}}`,
		// No index has last_seen: every evaluation rewrites it, for every
		// finding of a full resync. Listings sort the matches instead.
		`CREATE INDEX findings_status ON findings (status)`,
		`CREATE INDEX findings_namespace ON findings (namespace, status)`,
		`CREATE INDEX findings_check ON findings (check_id, status)`,
		`CREATE INDEX findings_severity ON findings (severity, status)`,
		`CREATE INDEX findings_object ON findings (kind, namespace, name)`,
		`CREATE INDEX findings_resolved_at ON findings (resolved_at)`,

		`CREATE TABLE posture (
			id           {{id}},
			ts           BIGINT NOT NULL,
			open_count   INTEGER NOT NULL,
			by_severity  TEXT NOT NULL,
			by_check     TEXT NOT NULL,
			by_namespace TEXT NOT NULL
		)`,
		`CREATE INDEX posture_ts ON posture (ts)`,

		`CREATE TABLE alerts (
			id          {{id}},
			rule        TEXT NOT NULL,
			title       TEXT NOT NULL,
			severity    INTEGER NOT NULL,
			mitre       TEXT NOT NULL,
			tags        TEXT NOT NULL,
			ts          BIGINT NOT NULL,
			audit_ids   TEXT NOT NULL,
			user_name   TEXT NOT NULL,
			user_groups TEXT NOT NULL,
			source_ips  TEXT NOT NULL,
			user_agent  TEXT NOT NULL,
			verb        TEXT NOT NULL,
			namespace   TEXT NOT NULL,
			object      TEXT NOT NULL,
			message     TEXT NOT NULL,
			status      TEXT NOT NULL,
			acked_by    TEXT NOT NULL DEFAULT '',
			acked_at    BIGINT
		)`,
		`CREATE INDEX alerts_ts ON alerts (ts)`,
		`CREATE INDEX alerts_rule ON alerts (rule, ts)`,
		`CREATE INDEX alerts_status ON alerts (status, ts)`,
		`CREATE INDEX alerts_namespace ON alerts (namespace, ts)`,
		`CREATE INDEX alerts_severity ON alerts (severity, ts)`,

		`CREATE TABLE exceptions (
			id         {{id}},
			checks     TEXT NOT NULL,
			kind       TEXT NOT NULL,
			namespace  TEXT NOT NULL,
			name       TEXT NOT NULL,
			labels     TEXT NOT NULL,
			reason     TEXT NOT NULL,
			owner      TEXT NOT NULL,
			expires    BIGINT NOT NULL,
			created_by TEXT NOT NULL,
			created_at BIGINT NOT NULL,
			expired_at BIGINT
		)`,

		`CREATE TABLE state (
			state_key  TEXT PRIMARY KEY,
			value      {{blob}} NOT NULL,
			updated_at BIGINT NOT NULL
		)`,
	},
}

// schemaVersion is the version this kustode migrates databases to.
var schemaVersion = len(migrations)

// migrate brings the schema to schemaVersion in one transaction: either
// every missing migration is applied or none is. On PostgreSQL an advisory
// lock makes replicas starting together wait for the first one's migration.
func (s *Store) migrate(ctx context.Context) error {
	err := s.inTx(ctx, lockMigrate, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			applied_at BIGINT NOT NULL
		)`); err != nil {
			return err
		}
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return err
		}
		if current > schemaVersion {
			return fmt.Errorf("database schema version %d is newer than this kustode's (%d): upgrade kustode", current, schemaVersion)
		}
		now := nanos(time.Now())
		for v := current + 1; v <= schemaVersion; v++ {
			for _, stmt := range migrations[v-1] {
				if _, err := tx.ExecContext(ctx, s.d.schema(stmt)); err != nil {
					return fmt.Errorf("version %d: %w", v, err)
				}
			}
			if _, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), v, now); err != nil {
				return fmt.Errorf("version %d: %w", v, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// schema replaces the column-type tokens of a migration statement.
func (d dialect) schema(stmt string) string {
	return strings.NewReplacer("{{id}}", d.autoID, "{{blob}}", d.blob, "{{findings_storage}}", d.findingsStorage).Replace(stmt)
}
