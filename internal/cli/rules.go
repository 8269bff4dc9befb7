package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kustode/kustode/internal/detect"
)

func newRulesCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Work with detection rules",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newRulesTestCommand(s))
	return cmd
}

func newRulesTestCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "test [DIR]",
		Short: "Run rule tests: events in, expected alerts out",
		Long: `Run the rule tests in DIR (files named *_test.yaml), against the default rule
pack plus the rules in DIR (*.yaml), as 'kustode audit replay --rules DIR'
would load them. Without DIR, run the default pack's own tests.

A test file:

  apiVersion: kustode.io/v1alpha1
  kind: RuleTests
  tests:
  - name: exec into a pod is seen
    interval: 1s                      # time between events (default 1s)
    events:                           # partial audit.k8s.io/v1 Events
    - {verb: create, user: {username: alice}, objectRef: {resource: pods, subresource: exec, namespace: shop, name: web-1}, responseStatus: {code: 101}}
    alerts: [pod-exec]                # rule ids, in order; [] expects silence

Each test starts with fresh rule state. Exit 1 if a test fails, 2 if the
rules or tests do not load.`,
		Example: `  kustode rules test
  kustode rules test ./my-rules`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var (
				results []detect.TestResult
				err     error
			)
			if len(args) == 0 {
				results, err = detect.DefaultTests()
			} else {
				dir := args[0]
				results, err = detect.RunTestsDir(dir, func() (*detect.Engine, error) {
					return detect.NewEngine(detect.Options{Dirs: []string{dir}})
				})
			}
			if err != nil {
				return usageError{err}
			}
			failed := 0
			for _, r := range results {
				if r.Err != nil {
					failed++
					fmt.Fprintf(s.out, "FAIL %s:%d %s: %v\n", r.File, r.Line, r.Name, r.Err)
				}
			}
			fmt.Fprintf(s.out, "%d passed, %d failed\n", len(results)-failed, failed)
			if failed > 0 {
				return exitError{code: ExitFindings}
			}
			return nil
		},
	}
	return cmd
}
