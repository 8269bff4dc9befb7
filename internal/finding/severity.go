package finding

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Severity ranks how much a finding matters. The zero value is Info; higher
// values are more severe, so severities compare with < and >.
type Severity int

// Severities, least to most severe.
const (
	Info Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

// Severities lists every severity, least severe first.
func Severities() []Severity { return []Severity{Info, Low, Medium, High, Critical} }

// String returns the lowercase name ("high").
func (s Severity) String() string {
	if s < Info || s > Critical {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity parses a severity name, case-insensitively.
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(name, n) {
			return Severity(i), nil
		}
	}
	return Info, fmt.Errorf("unknown severity %q (valid: %s)", name, strings.Join(severityNames[:], ", "))
}

// MarshalText encodes the severity as its name, in JSON and YAML alike.
func (s Severity) MarshalText() ([]byte, error) {
	if s < Info || s > Critical {
		return nil, fmt.Errorf("invalid severity %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText decodes a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

var (
	_ json.Marshaler = Severity(0)
)

// MarshalJSON encodes the severity as a JSON string.
func (s Severity) MarshalJSON() ([]byte, error) {
	b, err := s.MarshalText()
	if err != nil {
		return nil, err
	}
	return json.Marshal(string(b))
}
