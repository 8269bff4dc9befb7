// Package config owns the configuration of `kustode serve`: the schema
// (Config), its defaults (Default), the YAML file (Load), the flags and
// environment variables that mirror every setting (Bind, Flags.Resolve) and
// the checks that run before anything starts (Validate).
//
// One table, Settings, drives all of it: each Setting names its YAML key,
// flag and environment variable, so the file, the command line, the
// environment and docs/config.md cannot disagree. The precedence is:
// explicitly set flag > environment variable > file > default.
//
// Errors are written for the person who edits the file: every problem at
// once, each naming the setting by its YAML path, the bad value (never a
// secret: files are named, never read out) and the fix; file problems carry
// file:line:col.
//
// The package holds values and checks them; it does not open clients,
// listeners or stores. Consumers (internal/daemon) take what they need from
// Config and pass plain values to the leaves, which never import config.
package config

//go:generate go run ../../hack/genconfigdocs -out ../../docs/config.md
