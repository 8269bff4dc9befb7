package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kustode/kustode/internal/version"
)

func newVersionCommand(s streams) *cobra.Command {
	output := newOutputFormat("text", "text", "json")
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print kustode's version, commit, Go version and Kubernetes version",
		Long: `Print the version of this kustode build: release version, source commit,
the Go toolchain it was built with, and the Kubernetes minor release whose
API it was built against.

The JSON form (-o json) is stable: fields are only ever added.`,
		Example: `  kustode version
  kustode version -o json | jq -r .kubernetes`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			info := version.Get()
			if output.value == "json" {
				return writeJSON(s.out, info)
			}
			_, err := fmt.Fprint(s.out, info.String())
			return err
		},
	}
	output.addTo(cmd.Flags())
	return cmd
}
