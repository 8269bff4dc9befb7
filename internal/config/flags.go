package config

import (
	"errors"
	"os"

	"github.com/spf13/pflag"
)

// configFlag names the configuration file; KUSTODE_CONFIG is its variable.
const configFlag = "config"

// Flags is the binder Bind returns: it holds what the command line set until
// Resolve merges it with the file and the environment.
type Flags struct {
	fs     *pflag.FlagSet
	config string
	// values receives the parsed flags; only flags the command line set
	// explicitly are taken from it.
	values Config
}

// Bind registers --config and one flag per setting on fs. Each flag's help
// names its default, its environment variable and its YAML key, so that
// --help teaches all three ways. A list flag may be repeated and each
// occurrence may hold comma-separated items; the command line's list
// replaces the file's and the environment's. Bind panics, as pflag does, if
// fs already has a flag of the same name.
func Bind(fs *pflag.FlagSet) *Flags {
	f := &Flags{fs: fs, values: Default()}
	fs.StringVar(&f.config, configFlag, "",
		"YAML configuration file (reference: docs/config.md); environment variables and flags override it [env "+envName(configFlag)+"]")
	for _, s := range settings {
		fl := fs.VarPF(s.value(&f.values), s.Flag, "", flagUsage(s))
		if s.Type() == "bool" {
			fl.NoOptDefVal = "true"
		}
	}
	return f
}

func flagUsage(s Setting) string {
	u := s.Usage
	if s.Type() == "strings" {
		u += " (repeat the flag or separate with commas)"
	}
	return u + " [env " + s.Env() + ", YAML " + s.Key + "]"
}

// Resolve builds the configuration `kustode serve` runs with, from lowest to
// highest precedence: Default(); the file named by --config, else by
// KUSTODE_CONFIG (none: no file); each setting's environment variable, looked
// up with lookupEnv (nil means os.LookupEnv); each flag the command line set
// explicitly. The result is then validated. Errors are all returned at once,
// each saying where the bad value came from (file:line:col, env NAME or
// flag --name). An environment variable that is set counts even when empty:
// it clears a string or list and is an error for a bool or a duration.
// Resolve may be called more than once; it reads the file each time.
func (f *Flags) Resolve(lookupEnv func(string) (string, bool)) (Config, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	c, at, err := f.resolve(lookupEnv)
	if err != nil {
		return Config{}, err
	}
	var errs []error
	for _, e := range c.validate() {
		if e.At == "" {
			e.At = at[e.Key]
		}
		if e.At == "" && e.near != "" {
			e.At = at[e.near]
		}
		errs = append(errs, e)
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// resolve is Resolve without Validate. at says where each setting that is
// not a default came from.
func (f *Flags) resolve(lookupEnv func(string) (string, bool)) (c Config, at map[string]string, err error) {
	c, at = Default(), map[string]string{}
	path := f.config
	if !f.fs.Changed(configFlag) {
		path, _ = lookupEnv(envName(configFlag))
	}
	if path != "" {
		if c, at, err = load(path); err != nil {
			return Config{}, nil, err
		}
	}
	var errs []error
	for _, s := range settings {
		if f.fs.Changed(s.Flag) {
			s.copyField(&c, &f.values)
			at[s.Key] = "flag --" + s.Flag
			continue
		}
		raw, ok := lookupEnv(s.Env())
		if !ok {
			continue
		}
		source := "env " + s.Env()
		if err := s.value(&c).replace(raw); err != nil {
			errs = append(errs, &FieldError{Key: s.Key, Problem: err.Error(), At: source})
			continue
		}
		at[s.Key] = source
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, nil, err
	}
	for _, s := range settings {
		if s.path {
			s.expandHome(&c) // the shell does not expand ~ after --flag= or in env
		}
	}
	return c, at, nil
}
