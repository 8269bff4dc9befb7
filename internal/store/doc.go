// Package store is the persistence layer of `kustode serve`: posture
// findings with their lifecycle, posture history, alerts and their
// acknowledgement, API-managed exceptions, and opaque state that other
// components (audit follower offsets, learned detection state) keep across
// restarts. It owns the database schema and its migrations; nothing else in
// kustode writes SQL.
//
// # Backends
//
// One implementation over database/sql serves two backends; the differences
// are one small dialect value (placeholders, the auto-increment ID column,
// the binary column type, how alert IDs are reserved, a storage option and
// the advisory lock) and nothing else:
//
//   - SQLite (modernc.org/sqlite, pure Go), the default: one file, WAL
//     journal, busy timeout, foreign keys. Writes go through a pool of one
//     connection that begins its transactions IMMEDIATE, so writers are
//     serialized in the process and across processes; reads use a separate
//     read-only pool and are never blocked by a writer.
//   - PostgreSQL (pgx through its database/sql driver) for several replicas
//     sharing state. Migrations, SyncFindings and Prune take
//     transaction-scoped advisory locks, so concurrent replicas neither
//     migrate twice nor interleave two changes of the findings.
//
// The schema is a numbered list of migrations recorded in schema_migrations;
// Open applies the missing ones in one transaction and refuses a database
// written by a newer kustode. Times are stored as int64 Unix nanoseconds
// (UTC) on both backends, so a time.Time round-trips exactly and comparisons
// are the same everywhere; the zero time.Time is stored as 0. List and map
// fields are stored as JSON text.
//
// Listings filter in SQL, on indexed columns (status, namespace, check,
// severity for findings; time, rule, status, namespace, severity for
// alerts). No index contains a finding's LastSeen, which every evaluation
// rewrites: findings are sorted by it after filtering.
//
// # Findings lifecycle
//
// A finding is identified by its Key (FindingKey): a hash of the check ID,
// the object's kind, namespace and name, and the message. SyncFindings
// records one evaluation of a set of objects (the Scope) in one transaction:
//
//   - a new key is opened: FirstSeen = LastSeen = now;
//   - an open key reported again is kept: LastSeen = now;
//   - a resolved key reported again is reopened: LastSeen = now, ResolvedAt
//     cleared, Reopened incremented, FirstSeen kept;
//   - an open finding of an object in scope that is not reported again is
//     resolved: ResolvedAt = now. With Scope.All every object is in scope;
//     otherwise Scope.Objects and the objects of the reported findings are.
//
// The stored fields of a reported finding (severity, title, remediation,
// frameworks, source) are updated from the report. Findings of objects
// outside the scope are not touched.
//
// A full evaluation of a large cluster can also be stored in parts, so that
// no one holds every finding at once: a SyncFindings of each part's objects
// at the same now, then ResolveUnseen(now), which resolves every open
// finding not seen at now (those of objects no part covered). Readers see
// the parts arrive one by one.
//
// # Errors
//
// Errors are prefixed with the operation ("store: sync findings: ...");
// lookups of a missing ID return an error matching ErrNotFound. No error
// contains the password of a PostgreSQL URL. The package does not log.
package store
