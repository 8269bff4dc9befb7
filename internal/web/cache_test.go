package web

import (
	"testing"
	"time"
)

func TestTTLCache(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		run  func(t *testing.T, c *ttlCache[int, string])
	}{
		{"hit and expiry", func(t *testing.T, c *ttlCache[int, string]) {
			c.put(1, "one", t0)
			if v, ok := c.get(1, t0.Add(9*time.Second)); !ok || v != "one" {
				t.Errorf("get before expiry = %q, %v", v, ok)
			}
			if _, ok := c.get(1, t0.Add(10*time.Second)); ok {
				t.Error("get at expiry hit")
			}
		}},
		{"bounded", func(t *testing.T, c *ttlCache[int, string]) {
			for i := range 100 {
				c.put(i, "v", t0)
			}
			if n := c.len(); n != 4 {
				t.Errorf("len = %d, want 4", n)
			}
			// The newest survive.
			for i := 96; i < 100; i++ {
				if _, ok := c.get(i, t0); !ok {
					t.Errorf("newest entry %d evicted", i)
				}
			}
		}},
		{"expired entries are dropped on put", func(t *testing.T, c *ttlCache[int, string]) {
			c.put(1, "a", t0)
			c.put(2, "b", t0)
			c.put(3, "c", t0.Add(11*time.Second))
			if n := c.len(); n != 1 {
				t.Errorf("len = %d, want 1", n)
			}
		}},
		{"re-put keeps the newest value", func(t *testing.T, c *ttlCache[int, string]) {
			c.put(1, "old", t0)
			c.put(1, "new", t0.Add(5*time.Second))
			// The first FIFO item for 1 expires at t0+10s; it must not take
			// the re-put entry with it.
			c.put(2, "x", t0.Add(12*time.Second))
			if v, ok := c.get(1, t0.Add(12*time.Second)); !ok || v != "new" {
				t.Errorf("get = %q, %v; want new", v, ok)
			}
		}},
		{"stale FIFO items are bounded", func(t *testing.T, c *ttlCache[int, string]) {
			for i := range 1000 {
				c.put(1, "v", t0.Add(time.Duration(i)*time.Millisecond))
			}
			if n := len(c.fifo) - c.head; n > 2*c.max {
				t.Errorf("fifo holds %d items, want at most %d", n, 2*c.max)
			}
			if _, ok := c.get(1, t0.Add(time.Second)); !ok {
				t.Error("entry lost")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newTTLCache[int, string](10*time.Second, 4))
		})
	}
}

func TestTTLCacheDisabled(t *testing.T) {
	c := newTTLCache[int, string](-1, 4)
	c.put(1, "v", time.Now())
	if _, ok := c.get(1, time.Now()); ok {
		t.Error("disabled cache hit")
	}
}
