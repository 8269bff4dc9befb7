package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/kustode/kustode/internal/finding"
)

// pgEnv names the PostgreSQL server the tests use, e.g.
// postgres://kustode@127.0.0.1:55432/kustode_test?sslmode=disable as printed
// by `hack/postgres.sh start`. Each test gets a schema of its own in it.
const pgEnv = "KUSTODE_TEST_POSTGRES"

// forEachBackend runs fn against a fresh, empty store of each backend:
// SQLite always, PostgreSQL when KUSTODE_TEST_POSTGRES is set (and in CI,
// where it must be set).
func forEachBackend(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Helper()
	forEachURL(t, func(t *testing.T, url string) {
		fn(t, openStore(t, url))
	})
}

// forEachURL is forEachBackend for tests that open the store themselves:
// url names a fresh, empty database of each backend.
func forEachURL(t *testing.T, fn func(t *testing.T, url string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		fn(t, sqliteURL(t))
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, postgresSchemaURL(t, requirePostgres(t)))
	})
}

func sqliteURL(tb testing.TB) string {
	return "sqlite:" + filepath.Join(tb.TempDir(), "kustode.db")
}

// requirePostgres returns the URL of the test server: it skips the test when
// there is none, but fails it in CI, where the PostgreSQL half of the suite
// must run.
func requirePostgres(t *testing.T) string {
	t.Helper()
	url := os.Getenv(pgEnv)
	switch {
	case url != "":
		return url
	case os.Getenv("CI") != "":
		t.Fatalf("%s is not set, but CI is: CI must run the PostgreSQL tests. Start a server with "+
			"`export %s=$(hack/postgres.sh start)` (and `hack/postgres.sh stop` afterwards)", pgEnv, pgEnv)
	default:
		t.Skipf("PostgreSQL tests skipped: set %s to a database URL, e.g. `export %s=$(hack/postgres.sh start)`", pgEnv, pgEnv)
	}
	return ""
}

// postgresSchemaURL creates a schema of its own for the test in the
// database of base and returns base with search_path set to it. The schema
// is dropped when the test ends.
func postgresSchemaURL(tb testing.TB, base string) string {
	tb.Helper()
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		tb.Fatalf("%s: %v", pgEnv, err)
	}
	admin := stdlib.OpenDB(*cfg)
	suffix := make([]byte, 8)
	_, _ = rand.Read(suffix)
	schema := "kustode_test_" + hex.EncodeToString(suffix)
	if _, err := admin.ExecContext(tb.Context(), "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		tb.Fatalf("create schema %s in %s: %v", schema, redactURL(base), err)
	}
	tb.Cleanup(func() {
		// tb.Context() is done when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	u, err := neturl.Parse(base)
	if err != nil {
		tb.Fatalf("%s: %v", pgEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openStore(tb testing.TB, url string) *Store {
	tb.Helper()
	s, err := Open(tb.Context(), url, "")
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// base is the start of the tests' clock: sub-second on purpose, so that
// times that lose precision on the way to the database and back show.
var base = time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

func obj(kind, ns, name string) finding.ObjectRef {
	apiVersion := "v1"
	if kind == "Deployment" {
		apiVersion = "apps/v1"
	}
	return finding.ObjectRef{APIVersion: apiVersion, Kind: kind, Namespace: ns, Name: name}
}

func fnd(check string, o finding.ObjectRef, sev finding.Severity, msg string) finding.Finding {
	return finding.Finding{
		CheckID:     check,
		Severity:    sev,
		Title:       "title of " + check,
		Message:     msg,
		Object:      o,
		Remediation: "fix " + check,
	}
}

// byKey returns every stored finding by key.
func byKey(t *testing.T, s *Store) map[string]Finding {
	t.Helper()
	all, err := s.Findings(t.Context(), FindingFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatalf("Findings: %v", err)
	}
	m := make(map[string]Finding, len(all))
	for _, f := range all {
		m[f.Key] = f
	}
	return m
}

func mustSync(t *testing.T, s *Store, scope Scope, now time.Time, current ...finding.Finding) SyncResult {
	t.Helper()
	res, err := s.SyncFindings(t.Context(), scope, current, now)
	if err != nil {
		t.Fatalf("SyncFindings: %v", err)
	}
	return res
}

var all = Scope{All: true}

func TestOpenMigrations(t *testing.T) {
	forEachURL(t, func(t *testing.T, url string) {
		ctx := t.Context()
		s1 := openStore(t, url)
		// A second store on the same database, open at the same time, finds
		// the schema current and migrates nothing.
		s2 := openStore(t, url)
		for _, s := range []*Store{s1, s2} {
			if err := s.Ping(ctx); err != nil {
				t.Errorf("Ping: %v", err)
			}
			var n, maxV int
			if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &maxV); err != nil {
				t.Fatal(err)
			}
			if n != schemaVersion || maxV != schemaVersion {
				t.Errorf("schema_migrations: %d rows, version %d; want %d, %d", n, maxV, schemaVersion, schemaVersion)
			}
		}
		want := "sqlite"
		if strings.HasPrefix(url, "postgres") {
			want = "postgres"
		}
		if got := s1.Backend(); got != want {
			t.Errorf("Backend() = %q, want %q", got, want)
		}

		// A database migrated by a newer kustode is refused.
		if _, err := s1.w.ExecContext(ctx, s1.d.rebind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`), schemaVersion+1); err != nil {
			t.Fatal(err)
		}
		if s, err := Open(ctx, url, ""); err == nil {
			s.Close()
			t.Error("Open of a database with a newer schema succeeded")
		} else if !strings.Contains(err.Error(), "newer") {
			t.Errorf("Open of a database with a newer schema: %v; want an error saying it is newer", err)
		}
	})
}

func TestParseLocation(t *testing.T) {
	tests := []struct {
		url, dataDir string
		want         location
		wantErr      string
	}{
		{url: "", dataDir: "/var/lib/kustode", want: location{backend: "sqlite", path: "/var/lib/kustode/kustode.db", mkdir: "/var/lib/kustode"}},
		{url: "", wantErr: "neither"},
		{url: "sqlite:/data/k.db", want: location{backend: "sqlite", path: "/data/k.db"}},
		{url: "sqlite:///data/k.db", want: location{backend: "sqlite", path: "/data/k.db"}},
		{url: "sqlite://k.db", dataDir: "/ignored", want: location{backend: "sqlite", path: "k.db"}},
		{url: "/data/k.db", want: location{backend: "sqlite", path: "/data/k.db"}},
		{url: "k.db", want: location{backend: "sqlite", path: "k.db"}},
		{url: "postgres://u:pw@db:5432/k", want: location{backend: "postgres", url: "postgres://u:pw@db:5432/k"}},
		{url: "postgresql://db/k?sslmode=require", want: location{backend: "postgres", url: "postgresql://db/k?sslmode=require"}},
		{url: "sqlite:", wantErr: "no SQLite file path"},
		{url: "/data/k.db?mode=ro", wantErr: "cannot contain '?'"},
		{url: "mysql://root:hunter2@db/k", wantErr: `unsupported database URL scheme "mysql"`},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := parseLocation(tt.url, tt.dataDir)
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q contains the password", err)
				}
			case err != nil:
				t.Fatal(err)
			case got != tt.want:
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOpenDataDir(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data", "kustode")
	s, err := Open(t.Context(), "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for path, mode := range map[string]os.FileMode{dataDir: 0o700 | os.ModeDir, filepath.Join(dataDir, "kustode.db"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
		}
	}
	var journal string
	if err := s.w.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&journal); err != nil {
		t.Fatal(err)
	}
	if journal != "wal" {
		t.Errorf("journal_mode %q, want wal", journal)
	}
	// The read pool cannot write.
	if _, err := s.r.ExecContext(t.Context(), "DELETE FROM alerts"); err == nil {
		t.Error("a write through the read pool succeeded")
	}
}

// TestPasswordNotInErrors checks that failing to open PostgreSQL does not
// leak the URL's password, for an unreachable server and a malformed URL
// always, and for a wrong password when a test server is available.
func TestPasswordNotInErrors(t *testing.T) {
	const secret = "s3cr3t-Pa55word"
	tests := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"unreachable", func(*testing.T) string {
			return "postgres://kustode:" + secret + "@127.0.0.1:1/kustode?sslmode=disable&connect_timeout=5"
		}},
		{"unreachable password parameter", func(*testing.T) string {
			return "postgres://kustode@127.0.0.1:1/kustode?sslmode=disable&connect_timeout=5&password=" + secret
		}},
		{"malformed port", func(*testing.T) string {
			return "postgres://kustode:" + secret + "@127.0.0.1:notaport/kustode"
		}},
		{"malformed parameter", func(*testing.T) string {
			return "postgres://kustode:" + secret + "@127.0.0.1/kustode?sslmode=sometimes"
		}},
		{"wrong password", func(t *testing.T) string {
			u, err := neturl.Parse(requirePostgres(t))
			if err != nil {
				t.Fatal(err)
			}
			// A role the test server does not trust: it must send a password.
			u.User = neturl.UserPassword("kustode_wrong_password", secret)
			return u.String()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := tt.url(t)
			s, err := Open(t.Context(), url, "")
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			t.Logf("error: %v", err)
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), neturl.QueryEscape(secret)) {
				t.Errorf("error contains the password: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "store: open ") {
				t.Errorf("error %q does not start with the operation", err)
			}
		})
	}
}

func TestRestart(t *testing.T) {
	forEachURL(t, func(t *testing.T, url string) {
		ctx := t.Context()
		s, err := Open(ctx, url, "")
		if err != nil {
			t.Fatal(err)
		}
		f := fnd("privileged", obj("Pod", "ns", "p"), finding.High, "privileged container")
		mustSync(t, s, all, at(0), f)
		alerts, err := s.AddAlerts(ctx, []finding.Alert{{Rule: "exec", Time: at(time.Second), Namespace: "ns"}})
		if err != nil {
			t.Fatal(err)
		}
		ex, err := s.AddException(ctx, Exception{Checks: []string{"*"}, Reason: "r", Owner: "o", Expires: at(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PutState(ctx, "audit/offset", []byte("42")); err != nil {
			t.Fatal(err)
		}
		point, err := s.Summary(ctx, at(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RecordPosture(ctx, point); err != nil {
			t.Fatal(err)
		}
		before := byKey(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		s = openStore(t, url)
		if got := byKey(t, s); !reflect.DeepEqual(got, before) {
			t.Errorf("findings after restart:\n%+v\nwant\n%+v", got, before)
		}
		if got, err := s.Alert(ctx, alerts[0].ID); err != nil || !reflect.DeepEqual(got, alerts[0]) {
			t.Errorf("alert after restart: %+v, %v; want %+v", got, err, alerts[0])
		}
		if got, err := s.Exceptions(ctx, true, at(0)); err != nil || !reflect.DeepEqual(got, []Exception{ex}) {
			t.Errorf("exceptions after restart: %+v, %v; want %+v", got, err, ex)
		}
		if v, ok, err := s.GetState(ctx, "audit/offset"); err != nil || !ok || string(v) != "42" {
			t.Errorf("state after restart: %q, %v, %v", v, ok, err)
		}
		if h, err := s.PostureHistory(ctx, time.Time{}, 0); err != nil || !reflect.DeepEqual(h, []PosturePoint{point}) {
			t.Errorf("history after restart: %+v, %v; want %+v", h, err, point)
		}
		// Counters continue: the next alert gets a new ID.
		more, err := s.AddAlerts(ctx, []finding.Alert{{Rule: "exec", Time: at(2 * time.Second)}})
		if err != nil {
			t.Fatal(err)
		}
		if more[0].ID <= alerts[0].ID {
			t.Errorf("alert ID after restart %d, want more than %d", more[0].ID, alerts[0].ID)
		}
	})
}

// TestConcurrency runs writers and readers at once; run it with -race. On
// SQLite the writers queue for the single writer connection, on PostgreSQL
// they run in parallel.
func TestConcurrency(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		const (
			alertWriters = 4
			batches      = 10
			batchSize    = 5
			syncers      = 3
			rounds       = 10
		)
		var wg sync.WaitGroup
		var mu sync.Mutex
		ids := map[int64]bool{}
		for w := range alertWriters {
			wg.Go(func() {
				for b := range batches {
					batch := make([]finding.Alert, batchSize)
					for i := range batch {
						batch[i] = finding.Alert{Rule: "r", Namespace: "ns", Time: at(time.Duration(w*1000 + b*10 + i))}
					}
					got, err := s.AddAlerts(ctx, batch)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, a := range got {
						if ids[a.ID] {
							t.Errorf("ID %d assigned twice", a.ID)
						}
						ids[a.ID] = true
					}
					mu.Unlock()
				}
			})
		}
		// Each syncer evaluates its own pod, alternating between two sets of
		// findings; the last round reports set (rounds-1)%2.
		podFindings := func(g, round int) []finding.Finding {
			o := obj("Pod", "ns", "pod-"+string(rune('a'+g)))
			var out []finding.Finding
			for i := range 20 {
				out = append(out, fnd("check", o, finding.Medium, "m"+string(rune('a'+i))+string(rune('0'+round%2))))
			}
			return out
		}
		for g := range syncers {
			wg.Go(func() {
				for r := range rounds {
					cur := podFindings(g, r)
					if _, err := s.SyncFindings(ctx, Scope{Objects: []finding.ObjectRef{cur[0].Object}}, cur, at(time.Duration(r)*time.Second)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		for range 2 {
			wg.Go(func() {
				for range rounds {
					if _, err := s.Findings(ctx, FindingFilter{Status: StatusOpen}); err != nil {
						t.Error(err)
					}
					if _, err := s.Alerts(ctx, AlertFilter{Rule: "r"}); err != nil {
						t.Error(err)
					}
					if _, err := s.Summary(ctx, at(0)); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Go(func() {
			for i := range rounds {
				if err := s.PutState(ctx, "k", []byte{byte(i)}); err != nil {
					t.Error(err)
				}
			}
		})
		wg.Wait()

		got, err := s.Alerts(ctx, AlertFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if want := alertWriters * batches * batchSize; len(got) != want || len(ids) != want {
			t.Errorf("%d alerts stored, %d IDs returned; want %d", len(got), len(ids), want)
		}
		p, err := s.Summary(ctx, at(0))
		if err != nil {
			t.Fatal(err)
		}
		if want := syncers * 20; p.Open != want {
			t.Errorf("%d open findings, want %d", p.Open, want)
		}
		stored := byKey(t, s)
		for g := range syncers {
			for _, f := range podFindings(g, rounds-1) {
				if sf := stored[FindingKey(f)]; sf.Status != StatusOpen {
					t.Errorf("%s: status %q, want open", f.Object, sf.Status)
				}
			}
		}
		if v, ok, err := s.GetState(ctx, "k"); err != nil || !ok || !reflect.DeepEqual(v, []byte{rounds - 1}) {
			t.Errorf("state: %v, %v, %v", v, ok, err)
		}
	})
}

// TestTwoStores opens the same database twice, as two replicas (or a
// replica and `kustode report`) would, and writes through both at once.
func TestTwoStores(t *testing.T) {
	forEachURL(t, func(t *testing.T, url string) {
		ctx := t.Context()
		stores := []*Store{openStore(t, url), openStore(t, url)}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ids := map[int64]bool{}
		for i, s := range stores {
			wg.Go(func() {
				for r := range 20 {
					got, err := s.AddAlerts(ctx, []finding.Alert{{Rule: "r"}, {Rule: "r"}})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, a := range got {
						if ids[a.ID] {
							t.Errorf("ID %d assigned twice", a.ID)
						}
						ids[a.ID] = true
					}
					mu.Unlock()
					f := fnd("c", obj("Pod", "ns", "p"), finding.Low, fmt.Sprint(i, r))
					if _, err := s.SyncFindings(ctx, Scope{Objects: []finding.ObjectRef{f.Object}}, []finding.Finding{f}, at(time.Duration(r))); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		for _, s := range stores {
			got, err := s.Alerts(ctx, AlertFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 80 {
				t.Errorf("%d alerts, want 80", len(got))
			}
		}
		if p, err := stores[0].Summary(ctx, base); err != nil || p.Open != 1 {
			t.Errorf("Summary: %d open, %v; want 1 (the last sync of the pod)", p.Open, err)
		}
	})
}

func TestState(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		binary := []byte{0, 1, 0xff, 0xfe, '\n', 0}
		steps := []struct {
			name    string
			put     bool
			key     string
			value   []byte
			want    []byte
			wantOK  bool
			wantErr bool
		}{
			{name: "missing", key: "a"},
			{name: "put", put: true, key: "a", value: []byte("v1")},
			{name: "get", key: "a", want: []byte("v1"), wantOK: true},
			{name: "overwrite", put: true, key: "a", value: []byte("v2")},
			{name: "get overwritten", key: "a", want: []byte("v2"), wantOK: true},
			{name: "put binary", put: true, key: "detect/window", value: binary},
			{name: "get binary", key: "detect/window", want: binary, wantOK: true},
			{name: "put nil", put: true, key: "empty"},
			{name: "get empty", key: "empty", want: []byte{}, wantOK: true},
			{name: "others untouched", key: "a", want: []byte("v2"), wantOK: true},
		}
		for _, st := range steps {
			if st.put {
				if err := s.PutState(ctx, st.key, st.value); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				continue
			}
			got, ok, err := s.GetState(ctx, st.key)
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if ok != st.wantOK || !reflect.DeepEqual(got, st.want) {
				t.Errorf("%s: GetState(%q) = %q, %v; want %q, %v", st.name, st.key, got, ok, st.want, st.wantOK)
			}
		}
	})
}

func TestPrune(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		day := 24 * time.Hour
		now := at(10 * day)
		// Alerts 3 days and 1 day old.
		if _, err := s.AddAlerts(ctx, []finding.Alert{{Rule: "old", Time: now.Add(-3 * day)}, {Rule: "new", Time: now.Add(-day)}}); err != nil {
			t.Fatal(err)
		}
		// Findings resolved 3 and 1 days ago, and one open since long ago.
		pod := obj("Pod", "ns", "p")
		oldF, newF, openF := fnd("a", pod, finding.Low, "old"), fnd("b", pod, finding.Low, "new"), fnd("c", pod, finding.Low, "open")
		mustSync(t, s, all, now.Add(-9*day), oldF, newF, openF)
		mustSync(t, s, all, now.Add(-3*day), newF, openF)
		mustSync(t, s, all, now.Add(-day), openF)
		// Posture points 3 days and 1 day old.
		for _, ago := range []time.Duration{3 * day, day} {
			if err := s.RecordPosture(ctx, PosturePoint{Time: now.Add(-ago)}); err != nil {
				t.Fatal(err)
			}
		}

		steps := []struct {
			name string
			r    Retention
			want int64
		}{
			{"zero keeps forever", Retention{}, 0},
			{"negative keeps forever", Retention{Alerts: -day, ResolvedFindings: -day, History: -day}, 0},
			{"longer than everything", Retention{Alerts: 30 * day, ResolvedFindings: 30 * day, History: 30 * day}, 0},
			{"alerts", Retention{Alerts: 2 * day}, 1},
			{"findings and history", Retention{Alerts: 2 * day, ResolvedFindings: 2 * day, History: 2 * day}, 2},
			{"again", Retention{Alerts: 2 * day, ResolvedFindings: 2 * day, History: 2 * day}, 0},
		}
		for _, st := range steps {
			got, err := s.Prune(ctx, st.r, now)
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if got != st.want {
				t.Errorf("%s: Prune deleted %d, want %d", st.name, got, st.want)
			}
		}

		alerts, err := s.Alerts(ctx, AlertFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(alerts) != 1 || alerts[0].Rule != "new" {
			t.Errorf("alerts after prune: %+v, want only the new one", alerts)
		}
		stored := byKey(t, s)
		if _, ok := stored[FindingKey(oldF)]; ok || len(stored) != 2 {
			t.Errorf("findings after prune: %v, want the new resolved one and the open one", stored)
		}
		h, err := s.PostureHistory(ctx, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 1 || !h[0].Time.Equal(now.Add(-day)) {
			t.Errorf("history after prune: %+v, want the point of a day ago", h)
		}

		// IDs of pruned alerts are not handed out again.
		if _, err := s.Prune(ctx, Retention{Alerts: time.Nanosecond}, now); err != nil {
			t.Fatal(err)
		}
		added, err := s.AddAlerts(ctx, []finding.Alert{{Rule: "after"}})
		if err != nil {
			t.Fatal(err)
		}
		if added[0].ID <= alerts[0].ID {
			t.Errorf("alert added after prune has ID %d, want more than %d", added[0].ID, alerts[0].ID)
		}
	})
}

// requireAllFieldsSet fails unless every exported field of v (recursively)
// is set, so that a round-trip test using v covers fields added later.
func requireAllFieldsSet(t *testing.T, v any) {
	t.Helper()
	var walk func(path string, rv reflect.Value)
	walk = func(path string, rv reflect.Value) {
		if rv.Kind() == reflect.Struct && rv.Type() != reflect.TypeFor[time.Time]() {
			for i := range rv.NumField() {
				if f := rv.Type().Field(i); f.IsExported() {
					walk(path+"."+f.Name, rv.Field(i))
				}
			}
			return
		}
		if rv.IsZero() {
			t.Errorf("%s is not set in the fixture: set it, and store it (a new column needs a migration)", path)
		}
	}
	walk(reflect.TypeOf(v).Name(), reflect.ValueOf(v))
}

func TestRoundTrip(t *testing.T) {
	f := finding.Finding{
		CheckID:     "host-path",
		Severity:    finding.Critical,
		Title:       "Host path mounted",
		Message:     `volume "root" mounts / from the host`,
		Object:      finding.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "prod", Name: "web"},
		File:        "deploy/web.yaml",
		Line:        12,
		Remediation: "Use a PVC.",
		Frameworks:  finding.Frameworks{PSS: "baseline", CIS: []string{"5.2.12"}, NSA: []string{"Pod security"}, MITRE: []string{"T1611"}},
	}
	a := finding.Alert{
		Rule:      "exec-into-pod",
		Title:     "Exec into a pod",
		Severity:  finding.High,
		MITRE:     []string{"T1609"},
		Tags:      []string{"exec", "interactive"},
		Time:      time.Date(2026, 5, 1, 12, 0, 0, 987654321, time.FixedZone("CEST", 2*3600)),
		AuditIDs:  []string{"a1", "a2"},
		User:      "alice@example.com",
		Groups:    []string{"system:authenticated", "devs"},
		SourceIPs: []string{"10.0.0.1", "2001:db8::1"},
		UserAgent: "kubectl/v1.37.0",
		Verb:      "create",
		Namespace: "prod",
		Object:    "pods/exec web-1",
		Message:   "alice exec'd into prod/web-1 — «unicode» and 'quotes'",
	}
	e := Exception{
		Checks:    []string{"host-path", "privileged"},
		Kind:      "Deployment",
		Namespace: "kube-*",
		Name:      "csi-?",
		Labels:    map[string]string{"app": "csi"},
		Reason:    "the CSI driver needs the host",
		Owner:     "storage-team",
		Expires:   time.Date(2027, 1, 1, 0, 0, 0, 1, time.UTC),
		CreatedBy: "bob",
	}
	requireAllFieldsSet(t, f)
	requireAllFieldsSet(t, a)

	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		mustSync(t, s, all, base, f)
		got := byKey(t, s)[FindingKey(f)]
		if !reflect.DeepEqual(got.Finding, f) {
			t.Errorf("finding:\n%+v\nwant\n%+v", got.Finding, f)
		}

		added, err := s.AddAlerts(ctx, []finding.Alert{a})
		if err != nil {
			t.Fatal(err)
		}
		stored, err := s.Alert(ctx, added[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(stored, added[0]) {
			t.Errorf("Alert:\n%+v\nAddAlerts returned\n%+v", stored, added[0])
		}
		want := a
		want.Time = a.Time.UTC()
		if !reflect.DeepEqual(stored.Alert, want) {
			t.Errorf("alert:\n%+v\nwant\n%+v", stored.Alert, want)
		}

		ex, err := s.AddException(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		requireAllFieldsSet(t, withExpiredAt(ex))
		list, err := s.Exceptions(ctx, true, base)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || !reflect.DeepEqual(list[0], ex) {
			t.Errorf("Exceptions:\n%+v\nAddException returned\n%+v", list, ex)
		}
	})
}

// withExpiredAt sets the one field a new exception lacks, for
// requireAllFieldsSet.
func withExpiredAt(e Exception) Exception {
	e.ExpiredAt = &base
	return e
}

func TestErrNotFound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		tests := []struct {
			name string
			call func() error
		}{
			{"Alert", func() error { _, err := s.Alert(ctx, 404); return err }},
			{"AckAlert", func() error { _, err := s.AckAlert(ctx, 404, "alice", base); return err }},
			{"ExpireException", func() error { _, err := s.ExpireException(ctx, 404, base); return err }},
		}
		for _, tt := range tests {
			err := tt.call()
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", tt.name, err)
			}
			if err != nil && !strings.HasSuffix(err.Error(), " 404") {
				t.Errorf("%s: %q does not name the ID", tt.name, err)
			}
		}
	})
}

func TestContextCanceled(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := s.SyncFindings(ctx, all, []finding.Finding{fnd("c", obj("Pod", "ns", "p"), finding.Low, "m")}, base)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("SyncFindings with a canceled context: %v", err)
		}
		if got := byKey(t, s); len(got) != 0 {
			t.Errorf("a canceled sync stored %d findings", len(got))
		}
	})
}
