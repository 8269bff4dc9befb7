package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// outputFormat is a -o/--output flag value restricted to a fixed set of
// formats, so that a typo is a usage error listing the valid choices.
type outputFormat struct {
	value   string
	allowed []string
}

func newOutputFormat(def string, allowed ...string) *outputFormat {
	return &outputFormat{value: def, allowed: allowed}
}

var _ pflag.Value = (*outputFormat)(nil)

func (o *outputFormat) String() string { return o.value }
func (o *outputFormat) Type() string   { return "format" }

func (o *outputFormat) Set(v string) error {
	for _, a := range o.allowed {
		if v == a {
			o.value = v
			return nil
		}
	}
	return fmt.Errorf("unknown output format %q (valid: %s)", v, strings.Join(o.allowed, ", "))
}

// addTo registers the flag as -o/--output on fs.
func (o *outputFormat) addTo(fs *pflag.FlagSet) {
	fs.VarP(o, "output", "o", "output format: "+strings.Join(o.allowed, "|"))
}

// writeJSON writes v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
