// Package cli owns kustode's command line: commands, flags, help text, output
// formats and exit codes. It holds no security logic; each command parses its
// flags, calls the package that does the work and renders the result.
//
// Exit codes are part of the interface that CI pipelines depend on:
//
//	0  success (and, for commands that judge, nothing at or above the threshold)
//	1  the command worked and found what it was asked to fail on
//	2  usage error: unknown command or flag, invalid flag value
//	3  the command could not do its work (unreadable input, unreachable cluster)
package cli
