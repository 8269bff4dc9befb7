package web

import (
	"sync"
	"time"
)

// ttlCache is a bounded map whose entries expire a fixed time after they
// were put. Because the TTL is the same for every entry, insertion order is
// expiry order: a FIFO of keys finds expired entries without scanning, and
// when the cache is full the oldest entry goes first. It is safe for
// concurrent use.
type ttlCache[K comparable, V any] struct {
	ttl time.Duration
	max int

	mu   sync.Mutex
	m    map[K]cacheEntry[V]
	fifo []cacheKey[K] // fifo[head:] is live
	head int
}

type cacheEntry[V any] struct {
	v   V
	exp time.Time
}

type cacheKey[K comparable] struct {
	k   K
	exp time.Time
}

func newTTLCache[K comparable, V any](ttl time.Duration, maxEntries int) *ttlCache[K, V] {
	return &ttlCache[K, V]{ttl: ttl, max: maxEntries, m: make(map[K]cacheEntry[V])}
}

// get returns the value of k unless it is absent or expired at now.
func (c *ttlCache[K, V]) get(k K, now time.Time) (V, bool) {
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if !ok || !now.Before(e.exp) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// put stores v under k until now+ttl, evicting expired entries and, when the
// cache is full, the oldest ones.
func (c *ttlCache[K, V]) put(k K, v V, now time.Time) {
	if c.ttl <= 0 || c.max <= 0 {
		return
	}
	exp := now.Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[k] = cacheEntry[V]{v: v, exp: exp}
	c.fifo = append(c.fifo, cacheKey[K]{k: k, exp: exp})
	// A key put again before it expired leaves a stale FIFO item behind; the
	// FIFO bound keeps those from piling up.
	for c.head < len(c.fifo) {
		front := c.fifo[c.head]
		if now.Before(front.exp) && len(c.m) <= c.max && len(c.fifo)-c.head <= 2*c.max {
			break
		}
		if e, ok := c.m[front.k]; ok && e.exp.Equal(front.exp) {
			delete(c.m, front.k)
		}
		var zero cacheKey[K]
		c.fifo[c.head] = zero
		c.head++
	}
	if c.head > len(c.fifo)/2 {
		n := copy(c.fifo, c.fifo[c.head:])
		clear(c.fifo[n:])
		c.fifo = c.fifo[:n]
		c.head = 0
	}
}

// len returns the number of entries, expired or not.
func (c *ttlCache[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
