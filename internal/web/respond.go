package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"

	"github.com/kustode/kustode/internal/store"
)

// errorBody is the JSON of every error answer. Parameter or Field name the
// query parameter or body field at fault, for clients that point at it.
type errorBody struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter,omitempty"`
	Field     string `json:"field,omitempty"`
}

// badRequest is a client error about one query parameter or body field.
type badRequest struct {
	parameter, field string
	msg              string
}

func (e *badRequest) Error() string { return e.msg }

func paramError(name, format string, args ...any) error {
	return &badRequest{parameter: name, msg: fmt.Sprintf("parameter %q: ", name) + fmt.Sprintf(format, args...)}
}

func fieldError(name, format string, args ...any) error {
	return &badRequest{field: name, msg: fmt.Sprintf("field %q: ", name) + fmt.Sprintf(format, args...)}
}

// notFound is an error naming what was not found.
type notFound struct{ what string }

func (e *notFound) Error() string { return e.what + " not found" }

// fail answers a handler's error: 400 for a bad request, 404 for an unknown
// ID, 413 for a body too large, and 500 with a generic message for anything
// else, whose details only go to the log.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, u User, err error) {
	var (
		bad     *badRequest
		missing *notFound
		tooBig  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &bad):
		writeErrorBody(w, http.StatusBadRequest, errorBody{Error: bad.msg, Parameter: bad.parameter, Field: bad.field})
	case errors.As(err, &missing):
		writeError(w, http.StatusNotFound, "%s", missing.Error())
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "request body larger than %d bytes", tooBig.Limit)
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		s.log.Debug("api request canceled", "route", r.Pattern, "user", u.Name, "err", err)
		writeInternal(w)
	default:
		s.log.Error("api request failed", "route", r.Pattern, "user", u.Name, "err", err)
		writeInternal(w)
	}
}

// lookupError turns the store's ErrNotFound for what into a notFound.
func lookupError(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return &notFound{what: what}
	}
	return err
}

// reply answers v as JSON with status code. Encoding fails only for a
// bug (a value that cannot marshal); that is logged and answered 500.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, u User, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("api encode response", "route", r.Pattern, "user", u.Name, "err", err)
		writeInternal(w)
		return
	}
	writeBody(w, code, b)
}

func writeBody(w http.ResponseWriter, code int, b []byte) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n')) // a failed write means the client went away
	return code
}

// writeErrorBody answers an error body with status code and returns code.
func writeErrorBody(w http.ResponseWriter, code int, e errorBody) int {
	b, err := json.Marshal(e) // strings only: cannot fail
	if err != nil {
		return writeInternal(w)
	}
	return writeBody(w, code, b)
}

// writeError answers {"error": message} with status code and returns code.
func writeError(w http.ResponseWriter, code int, format string, args ...any) int {
	return writeErrorBody(w, code, errorBody{Error: fmt.Sprintf(format, args...)})
}

// writeInternal answers 500 without details: those go to the log only.
func writeInternal(w http.ResponseWriter) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte(`{"error":"internal error, see the kustode log"}` + "\n"))
	return http.StatusInternalServerError
}

// writeText answers a plain text body with status code and returns code.
func writeText(w http.ResponseWriter, code int, body string) int {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body + "\n"))
	return code
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// statusText returns the code label of a status ("200").
func statusText(code int) string {
	switch code {
	case http.StatusOK:
		return "200"
	case http.StatusUnauthorized:
		return "401"
	}
	return strconv.Itoa(code)
}
