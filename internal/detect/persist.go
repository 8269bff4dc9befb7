package detect

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// savedState is the JSON form of what firstSeen rules learned. Threshold
// windows are short-lived and not saved.
type savedState struct {
	Version int                       `json:"version"`
	Rules   map[string]savedFirstSeen `json:"rules"`
}

type savedFirstSeen struct {
	// Start is when the rule's learning period began.
	Start time.Time `json:"start"`
	// Keys are the keys seen, oldest first, with when each was first seen.
	Keys []savedKey `json:"keys"`
}

type savedKey struct {
	Key  string    `json:"key"`
	Seen time.Time `json:"seen"`
}

// SaveState writes what the firstSeen rules have learned, so that a
// restarted engine neither relearns (and stays silent again) nor alerts on
// keys it already knew. The output is bounded by the rules' MaxKeys.
func (e *Engine) SaveState(w io.Writer) error {
	s := e.state
	s.mu.Lock()
	out := savedState{Version: 1, Rules: map[string]savedFirstSeen{}}
	for rule, start := range s.start {
		sf := savedFirstSeen{Start: start}
		for _, k := range s.order[rule] {
			if t, ok := s.seen[rule][k]; ok {
				sf.Keys = append(sf.Keys, savedKey{Key: k, Seen: t})
			}
		}
		out.Rules[rule] = sf
	}
	s.mu.Unlock()
	if err := json.NewEncoder(w).Encode(out); err != nil {
		return fmt.Errorf("detect: save state: %w", err)
	}
	return nil
}

// LoadState restores what SaveState wrote. State of rules that no longer
// exist is dropped; a rule's MaxKeys applies again.
func (e *Engine) LoadState(r io.Reader) error {
	var in savedState
	if err := json.NewDecoder(r).Decode(&in); err != nil {
		return fmt.Errorf("detect: load state: %w", err)
	}
	if in.Version != 1 {
		return fmt.Errorf("detect: load state: unknown version %d", in.Version)
	}
	limits := map[string]int{}
	for _, c := range e.rules {
		if c.FirstSeen != nil {
			limits[c.ID] = c.FirstSeen.MaxKeys
			if limits[c.ID] <= 0 {
				limits[c.ID] = defaultMaxKeys
			}
		}
	}
	s := e.state
	s.mu.Lock()
	defer s.mu.Unlock()
	for rule, sf := range in.Rules {
		limit, ok := limits[rule]
		if !ok {
			continue
		}
		keys := sf.Keys
		if len(keys) > limit {
			keys = keys[len(keys)-limit:]
		}
		s.start[rule] = sf.Start
		s.seen[rule] = map[string]time.Time{}
		s.order[rule] = nil
		for _, k := range keys {
			s.seen[rule][k.Key] = k.Seen
			s.order[rule] = append(s.order[rule], k.Key)
		}
	}
	return nil
}
