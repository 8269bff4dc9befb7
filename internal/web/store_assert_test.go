package web

import "github.com/kustode/kustode/internal/store"

// *store.Store is the production Store.
var _ Store = (*store.Store)(nil)
