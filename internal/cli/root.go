package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit codes. See the package documentation.
const (
	ExitOK       = 0
	ExitFindings = 1
	ExitUsage    = 2
	ExitError    = 3
)

// streams are the process's standard streams, injected so commands are
// testable without touching os.Stdout.
type streams struct {
	in  io.Reader
	out io.Writer
	err io.Writer
}

// usageError marks an error caused by how the command was called, so Run
// exits with ExitUsage rather than ExitError.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitError carries a specific exit code out of a command that has already
// printed its result (for example, findings above a threshold).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Run executes kustode with args (without the program name) and returns the
// process exit code. It never calls os.Exit, so it is safe to call from tests.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	s := streams{in: stdin, out: stdout, err: stderr}
	root := newRootCommand(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(stderr, "kustode: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", commandPath(root, args))
		return ExitUsage
	}
	return ExitError
}

// commandPath names the (sub)command args resolve to, for the usage hint.
func commandPath(root *cobra.Command, args []string) string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return root.Name()
	}
	return cmd.CommandPath()
}

func newRootCommand(s streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "kustode",
		Short: "Kubernetes security monitoring: posture, threat detection, alerting and response",
		Long: `kustode watches Kubernetes clusters for security problems, tells the right
people, and responds.

It is one binary. Each command below is one way to use it; run
'kustode COMMAND --help' for what the command does, its flags and examples.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.CompletionOptions.HiddenDefaultCmd = true
	// Cobra reports an unknown subcommand through the root's Args validator;
	// make that a usage error too.
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
		}
		return nil
	}
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }

	root.AddCommand(
		newScanCommand(s),
		newChecksCommand(s),
		newWhoCanCommand(s),
		newAccessCommand(s),
		newAuditCommand(s),
		newRulesCommand(s),
		newServeCommand(s),
		newDemoCommand(s),
		newVersionCommand(s),
	)
	markArgErrorsAsUsage(root)
	return root
}

// markArgErrorsAsUsage wraps every command's positional-argument validator so
// that a wrong number or kind of arguments exits with ExitUsage.
func markArgErrorsAsUsage(cmd *cobra.Command) {
	if validate := cmd.Args; validate != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := validate(c, args); err != nil {
				var ue usageError
				if errors.As(err, &ue) {
					return err
				}
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		markArgErrorsAsUsage(sub)
	}
}
