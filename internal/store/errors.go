package store

import "errors"

// ErrNotFound is returned, possibly wrapped, by lookups and updates of a
// record by ID (Alert, AckAlert, ExpireException) when no record has that ID.
// Callers test it with errors.Is.
var ErrNotFound = errors.New("store: not found")
