package store

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kustode/kustode/internal/finding"
)

func TestAlerts(t *testing.T) {
	in := []finding.Alert{
		{Rule: "exec", Severity: finding.High, Namespace: "prod", Time: at(1 * time.Minute), User: "alice"},
		{Rule: "exec", Severity: finding.High, Namespace: "dev", Time: at(2 * time.Minute), User: "bob"},
		{Rule: "secret-read", Severity: finding.Critical, Namespace: "prod", Time: at(3 * time.Minute)},
		{Rule: "forbidden-burst", Severity: finding.Medium, Namespace: "", Time: at(3 * time.Minute)},
		{Rule: "exec", Severity: finding.Low, Namespace: "prod", Time: at(4 * time.Minute)},
	}
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		if got, err := s.AddAlerts(ctx, nil); err != nil || len(got) != 0 {
			t.Errorf("AddAlerts(nil) = %v, %v", got, err)
		}
		added, err := s.AddAlerts(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(added) != len(in) {
			t.Fatalf("AddAlerts returned %d alerts, want %d", len(added), len(in))
		}
		for i, a := range added {
			if a.Rule != in[i].Rule || a.User != in[i].User || !a.Time.Equal(in[i].Time) {
				t.Errorf("AddAlerts[%d] = %+v, want %+v in that position", i, a.Alert, in[i])
			}
			if a.Status != AlertOpen || a.AckedBy != "" || a.AckedAt != nil {
				t.Errorf("AddAlerts[%d]: status %q, acked %q %v; want open, not acknowledged", i, a.Status, a.AckedBy, a.AckedAt)
			}
			if i > 0 && a.ID <= added[i-1].ID {
				t.Errorf("AddAlerts[%d].ID = %d, not after %d", i, a.ID, added[i-1].ID)
			}
		}
		// A second batch continues the IDs.
		more, err := s.AddAlerts(ctx, []finding.Alert{{Rule: "late", Time: at(-time.Hour)}})
		if err != nil {
			t.Fatal(err)
		}
		if more[0].ID <= added[len(added)-1].ID {
			t.Errorf("second batch ID %d, want after %d", more[0].ID, added[len(added)-1].ID)
		}

		// Acknowledge alert 1 (dev exec); re-acknowledging keeps the first.
		acked, err := s.AckAlert(ctx, added[1].ID, "carol", at(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if acked.Status != AlertAcknowledged || acked.AckedBy != "carol" || acked.AckedAt == nil || !acked.AckedAt.Equal(at(time.Hour)) {
			t.Errorf("AckAlert = %+v", acked)
		}
		again, err := s.AckAlert(ctx, added[1].ID, "dave", at(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(again, acked) {
			t.Errorf("second AckAlert = %+v, want the first acknowledgement %+v", again, acked)
		}
		if got, err := s.Alert(ctx, added[1].ID); err != nil || !reflect.DeepEqual(got, acked) {
			t.Errorf("Alert after ack = %+v, %v; want %+v", got, err, acked)
		}
		if got, err := s.Alert(ctx, added[0].ID); err != nil || !reflect.DeepEqual(got, added[0]) {
			t.Errorf("Alert = %+v, %v; want %+v", got, err, added[0])
		}

		// Indexes into added; more[0] is "late". Newest first; alerts 2 and 3
		// share a time and are ordered by ID, newest first.
		late := len(added)
		tests := []struct {
			name   string
			filter AlertFilter
			want   []int
		}{
			{"everything, newest first", AlertFilter{}, []int{4, 3, 2, 1, 0, late}},
			{"rule", AlertFilter{Rule: "exec"}, []int{4, 1, 0}},
			{"namespace", AlertFilter{Namespace: "prod"}, []int{4, 2, 0}},
			{"severity", AlertFilter{Severities: []finding.Severity{finding.High}}, []int{1, 0}},
			{"severities", AlertFilter{Severities: []finding.Severity{finding.Critical, finding.Low}}, []int{4, 2}},
			{"open", AlertFilter{Status: AlertOpen}, []int{4, 3, 2, 0, late}},
			{"acknowledged", AlertFilter{Status: AlertAcknowledged}, []int{1}},
			{"since is inclusive", AlertFilter{Since: at(3 * time.Minute)}, []int{4, 3, 2}},
			{"since, sub-second", AlertFilter{Since: at(3*time.Minute + time.Nanosecond)}, []int{4}},
			{"limit keeps the newest", AlertFilter{Limit: 2}, []int{4, 3}},
			{"combined", AlertFilter{Rule: "exec", Namespace: "prod", Status: AlertOpen, Since: at(2 * time.Minute)}, []int{4}},
			{"no match", AlertFilter{Rule: "exec", Namespace: "kube-system"}, nil},
		}
		all := append(slices.Clone(added), more[0])
		all[1] = acked
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Alerts(t.Context(), tt.filter)
				if err != nil {
					t.Fatal(err)
				}
				want := []Alert{}
				for _, i := range tt.want {
					want = append(want, all[i])
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got %d alerts\n%+v\nwant %d\n%+v", len(got), got, len(want), want)
				}
			})
		}
	})
}

func TestExceptions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		now := at(0)
		add := func(name string, expires time.Time) Exception {
			t.Helper()
			start := time.Now()
			e, err := s.AddException(ctx, Exception{
				ID:        99, // assigned by the store
				Checks:    []string{"privileged"},
				Namespace: "kube-system",
				Name:      name,
				Reason:    "vendor component",
				Owner:     "platform",
				Expires:   expires,
				CreatedBy: "alice",
				ExpiredAt: &now, // ignored
			})
			if err != nil {
				t.Fatal(err)
			}
			if e.ID == 99 || e.ID <= 0 {
				t.Errorf("AddException: ID %d not assigned by the store", e.ID)
			}
			if e.CreatedAt.Before(start.Add(-time.Second)) || e.CreatedAt.After(time.Now().Add(time.Second)) || e.CreatedAt.Location() != time.UTC {
				t.Errorf("AddException: CreatedAt %v, want the current time in UTC", e.CreatedAt)
			}
			if e.ExpiredAt != nil {
				t.Errorf("AddException: ExpiredAt %v, want nil", e.ExpiredAt)
			}
			return e
		}
		active := add("active", now.Add(time.Hour))
		pastDate := add("past-date", now.Add(-time.Hour))
		atNow := add("expires-now", now) // stops applying at now
		early := add("expired-early", now.Add(time.Hour))
		never := add("no-expiry", time.Time{})

		expired, err := s.ExpireException(ctx, early.ID, now.Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if expired.ExpiredAt == nil || !expired.ExpiredAt.Equal(now.Add(-time.Minute)) {
			t.Errorf("ExpireException: ExpiredAt %v, want %v", expired.ExpiredAt, now.Add(-time.Minute))
		}
		again, err := s.ExpireException(ctx, early.ID, now.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(again, expired) {
			t.Errorf("second ExpireException = %+v, want the first %+v", again, expired)
		}

		tests := []struct {
			name            string
			includeInactive bool
			now             time.Time
			want            []Exception
		}{
			{"in force now", false, now, []Exception{active}},
			{"including inactive", true, now, []Exception{active, pastDate, atNow, expired, never}},
			// Before ExpireException's time the early one was still in force.
			{"earlier", false, now.Add(-2 * time.Minute), []Exception{active, atNow, expired}},
			{"later", false, now.Add(2 * time.Hour), []Exception{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Exceptions(t.Context(), tt.includeInactive, tt.now)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got\n%+v\nwant\n%+v", got, tt.want)
				}
			})
		}
	})
}
