package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
)

// Format is a shape of saved audit records that Read recognises.
type Format string

// The formats Read recognises. Read decides per record, so one input may mix
// them (a SIEM export does).
const (
	// FormatEvent is an audit.k8s.io Event as the API server's log
	// backend writes it, one per line or as a JSON document.
	FormatEvent Format = "event"
	// FormatEventList is the events of an audit.k8s.io EventList, as the
	// webhook backend posts them.
	FormatEventList Format = "eventlist"
	// FormatGKE is a Cloud Audit Logs LogEntry of GKE (protoPayload with
	// serviceName k8s.io), mapped to an Event.
	FormatGKE Format = "gke"
	// FormatAKS is an Azure Monitor diagnostic record of category
	// kube-audit or kube-audit-admin (properties.log holds the Event), as
	// exported to a storage account or an event hub.
	FormatAKS Format = "aks"
	// FormatEKS is an EKS control-plane log event from CloudWatch Logs:
	// an export line "TIMESTAMP {event}", an object with "@message" or
	// "message", the output of aws logs filter-log-events, or a
	// subscription payload with logEvents.
	FormatEKS Format = "eks"
)

// ReadOptions configure Read. The zero value is usable.
type ReadOptions struct {
	// Source names the input in errors and logs, such as a file name.
	// Empty means "-".
	Source string
	// BatchSize is the most events handed to the Sink at once. Zero means
	// DefaultBatchSize.
	BatchSize int
	// MaxRecordBytes bounds one line, or one record of a multi-line
	// document: longer ones are skipped as malformed. A document's record
	// is held in memory whole before it is checked, so this bounds the
	// memory of JSON lines only. Zero means DefaultMaxLineBytes.
	MaxRecordBytes int
	// MaxErrors is how many RecordErrors ReadResult keeps; all are counted
	// and logged. Zero means 100.
	MaxErrors int
	// Logger receives each malformed record. Nil discards.
	Logger *slog.Logger
}

// ReadResult says what Read read.
type ReadResult struct {
	// Events is the number of events the Sink accepted, and Formats the
	// same number by the format they came in.
	Events  int
	Formats map[Format]int
	// Malformed is the number of records skipped, Errors the first of
	// them (ReadOptions.MaxErrors).
	Malformed int
	Errors    []*RecordError
	// Compressed reports input that starts as gzip does.
	Compressed bool
}

// Read reads saved audit records from r and hands the events to sink in
// batches, in input order. It recognises, without being told:
//
//   - gzip compression (by its magic bytes), of any of the following;
//   - JSON lines, each an Event, an EventList or any record of the formats
//     below (lines may carry a leading timestamp, as CloudWatch exports do);
//   - JSON documents, pretty-printed or not, one after another or in a
//     top-level array (gcloud logging read --format=json).
//
// A record that is not an audit event is counted, logged with Source and its
// line (or, in a multi-line document, its record index) and skipped; reading
// goes on. In a multi-line document a JSON syntax error ends the input,
// because where the next record starts cannot be known.
//
// Read returns an error only when it cannot go on: r fails, gzip data is
// corrupt, the Sink refuses a batch, or ctx is done. The result counts what
// was read until then. Read does not close r.
func Read(ctx context.Context, r io.Reader, sink Sink, opts ReadOptions) (ReadResult, error) {
	if opts.Source == "" {
		opts.Source = "-"
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = DefaultMaxLineBytes
	}
	if opts.MaxErrors <= 0 {
		opts.MaxErrors = 100
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	rd := &replay{opts: opts, sink: sink, res: ReadResult{Formats: map[Format]int{}}}
	err := rd.run(ctx, r)
	if err == nil {
		err = rd.flush(ctx)
	}
	if err != nil {
		return rd.res, fmt.Errorf("read audit events from %s: %w", opts.Source, err)
	}
	return rd.res, nil
}

type replay struct {
	opts    ReadOptions
	sink    Sink
	res     ReadResult
	batch   []Event
	formats []Format // format of each event in batch
}

// loc is where a record was read.
type loc struct {
	line, record, item int
}

func (rd *replay) run(ctx context.Context, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		rd.res.Compressed = true
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		defer func() { _ = zr.Close() }()
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	lr := &lineReader{r: br, max: rd.opts.MaxRecordBytes}

	// The first one or two non-blank lines tell JSON lines from a
	// multi-line document: a line that is a complete JSON value, or one
	// that is not JSON at all, means lines; "[" or two incomplete lines
	// mean a document.
	type headLine struct {
		readLine
		no int
	}
	var head []headLine
	lineMode, array := true, false
	for nonBlank, decided := 0, false; !decided; {
		l, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		l.data = slices.Clone(l.data)
		head = append(head, headLine{l, lr.line})
		t := bytes.TrimSpace(l.data)
		if len(t) == 0 && !l.tooLong {
			continue
		}
		nonBlank++
		switch {
		case l.tooLong || isRecordLine(t):
			decided = true
		case nonBlank == 1 && t[0] == '[':
			lineMode, array, decided = false, true, true
		case nonBlank == 1 && t[0] != '{':
			decided = true // not JSON: lines, each reported
		case nonBlank == 2:
			lineMode, decided = false, true
		}
	}
	if !lineMode {
		var doc bytes.Buffer
		for _, h := range head {
			doc.Write(h.data)
			doc.WriteByte('\n')
		}
		return rd.document(ctx, io.MultiReader(&doc, br), array)
	}
	for _, h := range head {
		if err := rd.line(ctx, h.data, h.tooLong, h.no); err != nil {
			return err
		}
	}
	for {
		l, err := lr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := rd.line(ctx, l.data, l.tooLong, lr.line); err != nil {
			return err
		}
	}
}

// isRecordLine reports whether a line holds a complete JSON value, perhaps
// after a CloudWatch export timestamp.
func isRecordLine(t []byte) bool {
	if rest, ok := cutTimestamp(t); ok {
		t = rest
	}
	return len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(t)
}

func (rd *replay) line(ctx context.Context, data []byte, tooLong bool, lineNo int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	at := loc{line: lineNo}
	if tooLong {
		rd.bad(at, fmt.Errorf("line longer than %d bytes", rd.opts.MaxRecordBytes))
		return nil
	}
	t := bytes.TrimSpace(data)
	if len(t) == 0 {
		return nil
	}
	if rest, ok := cutTimestamp(t); ok {
		return rd.message(ctx, rest, at, FormatEKS)
	}
	return rd.record(ctx, t, at)
}

// document reads JSON values one after another, multi-line or not. If
// array is set the input starts with a top-level array, whose elements are
// read one at a time so that a large export is never held whole.
func (rd *replay) document(ctx context.Context, r io.Reader, array bool) error {
	dec := json.NewDecoder(r)
	record := 0
	next := func() (json.RawMessage, error) {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		return raw, err
	}
	handle := func(raw json.RawMessage) error {
		if len(raw) > rd.opts.MaxRecordBytes {
			record++
			rd.bad(loc{record: record}, fmt.Errorf("record longer than %d bytes", rd.opts.MaxRecordBytes))
			return nil
		}
		if raw[0] == '[' {
			return rd.array(ctx, raw, &record)
		}
		record++
		return rd.record(ctx, raw, loc{record: record})
	}
	if array {
		if _, err := dec.Token(); err != nil {
			return rd.documentError(err, record+1)
		}
		for dec.More() {
			raw, err := next()
			if err != nil {
				return rd.documentError(err, record+1)
			}
			record++
			if len(raw) > rd.opts.MaxRecordBytes {
				rd.bad(loc{record: record}, fmt.Errorf("record longer than %d bytes", rd.opts.MaxRecordBytes))
				continue
			}
			if err := rd.record(ctx, raw, loc{record: record}); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return rd.documentError(err, record+1)
		}
	}
	for {
		raw, err := next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return rd.documentError(err, record+1)
		}
		if err := handle(raw); err != nil {
			return err
		}
	}
}

// documentError reports invalid JSON in a document as a malformed record
// and ends the document; it returns other errors (reading, gzip).
func (rd *replay) documentError(err error, record int) error {
	if errors.Is(err, io.EOF) { // inside an unclosed array
		err = io.ErrUnexpectedEOF
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) || errors.Is(err, io.ErrUnexpectedEOF) {
		rd.bad(loc{record: record}, fmt.Errorf("invalid JSON, the rest of the input is not read: %w", err))
		return nil
	}
	return err
}

func (rd *replay) array(ctx context.Context, raw json.RawMessage, record *int) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // [
		return err
	}
	for dec.More() {
		var elem json.RawMessage
		if err := dec.Decode(&elem); err != nil {
			return err // cannot happen: raw is valid JSON
		}
		*record++
		if err := rd.record(ctx, elem, loc{record: *record}); err != nil {
			return err
		}
	}
	return nil
}

// record handles one JSON value of any recognised format.
func (rd *replay) record(ctx context.Context, data []byte, at loc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Most records are plain events: decode them in one pass, and look at
	// the record's shape only when that fails.
	if e, ok := plainEvent(data); ok {
		return rd.add(ctx, e, FormatEvent)
	}
	p, err := probeRecord(data)
	if err != nil {
		rd.bad(at, err)
		return nil
	}
	switch {
	case p.isArray:
		return rd.each(ctx, data, at, func(elem []byte, at loc) error { return rd.record(ctx, elem, at) })
	case p.protoPayload:
		var e Event
		if err := decodeGKE(data, &e); err != nil {
			rd.bad(at, err)
			return nil
		}
		return rd.add(ctx, e, FormatGKE)
	case p.records != nil:
		// Azure event hub and storage exports: {"records":[...]}.
		return rd.each(ctx, p.records, at, func(elem []byte, at loc) error { return rd.record(ctx, elem, at) })
	case p.category != "" || p.properties != nil:
		return rd.aks(ctx, p, at)
	case p.logEvents != nil:
		if p.messageType == "CONTROL_MESSAGE" {
			return nil // CloudWatch's own subscription check
		}
		return rd.each(ctx, p.logEvents, at, rd.cloudWatchEvent(ctx))
	case p.events != nil && p.kind == "":
		return rd.each(ctx, p.events, at, rd.cloudWatchEvent(ctx))
	case p.atMessage != nil:
		return rd.message(ctx, p.atMessage, at, FormatEKS)
	case p.kind == "EventList" || p.kind == "" && p.items != nil:
		return rd.eventList(ctx, data, at)
	case p.kind == "Event" || p.kind == "" && p.eventish:
		return rd.event(ctx, data, at, FormatEvent)
	case p.kind == "" && p.message != nil:
		return rd.message(ctx, p.message, at, FormatEKS)
	case p.kindRaw != nil:
		rd.bad(at, fmt.Errorf("not an audit event: kind is %s", truncate(p.kindRaw, 40)))
		return nil
	default:
		rd.bad(at, fmt.Errorf("not an audit record: no kind, protoPayload, category or message among its fields (%s)", strings.Join(p.keys, ", ")))
		return nil
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// each calls fn for every element of a JSON array, numbering them as items
// of the record at.
func (rd *replay) each(ctx context.Context, array []byte, at loc, fn func(elem []byte, at loc) error) error {
	var elems []json.RawMessage
	if err := json.Unmarshal(array, &elems); err != nil {
		rd.bad(at, fmt.Errorf("expected an array: %w", err))
		return nil
	}
	for i, elem := range elems {
		if err := ctx.Err(); err != nil {
			return err
		}
		sub := at
		if at.item == 0 {
			sub.item = i + 1
		}
		if err := fn(elem, sub); err != nil {
			return err
		}
	}
	return nil
}

func (rd *replay) event(ctx context.Context, data []byte, at loc, f Format) error {
	var e Event
	err := DecodeEvent(data, &e)
	if err == nil {
		err = checkEvent(&e)
	}
	if err != nil {
		rd.bad(at, err)
		return nil
	}
	return rd.add(ctx, e, f)
}

func (rd *replay) eventList(ctx context.Context, data []byte, at loc) error {
	var events []Event
	err := decodeEventList(data,
		func(e *Event) { events = append(events, *e) },
		func(i int, err error) {
			sub := at
			sub.item = i + 1
			rd.bad(sub, err)
		})
	if err != nil {
		rd.bad(at, err)
		return nil
	}
	for _, e := range events {
		if err := rd.add(ctx, e, FormatEventList); err != nil {
			return err
		}
	}
	return nil
}

// message decodes an event carried as a JSON string or object, as
// CloudWatch and Azure wrap them.
func (rd *replay) message(ctx context.Context, raw []byte, at loc, f Format) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			rd.bad(at, fmt.Errorf("message: %w", err))
			return nil
		}
		raw = []byte(strings.TrimSpace(s))
	}
	if len(raw) == 0 || raw[0] != '{' {
		rd.bad(at, fmt.Errorf("%s record: message is not an audit event: %s", f, truncate(raw, 60)))
		return nil
	}
	return rd.event(ctx, raw, at, f)
}

func (rd *replay) cloudWatchEvent(ctx context.Context) func(elem []byte, at loc) error {
	return func(elem []byte, at loc) error {
		var ev struct {
			Message json.RawMessage `json:"message"`
		}
		err := json.Unmarshal(elem, &ev)
		if err == nil && ev.Message == nil {
			err = errors.New("no message")
		}
		if err != nil {
			rd.bad(at, fmt.Errorf("CloudWatch log event: %w", err))
			return nil
		}
		return rd.message(ctx, ev.Message, at, FormatEKS)
	}
}

func (rd *replay) aks(ctx context.Context, p probe, at loc) error {
	if c := strings.ToLower(p.category); c != "kube-audit" && c != "kube-audit-admin" {
		rd.bad(at, fmt.Errorf("not a Kubernetes audit record: Azure log category %q (want kube-audit or kube-audit-admin)", p.category))
		return nil
	}
	props := p.properties
	if len(props) > 0 && props[0] == '"' {
		// Some exports carry properties as a JSON string.
		var s string
		if err := json.Unmarshal(props, &s); err == nil {
			props = []byte(s)
		}
	}
	var pr struct {
		Log json.RawMessage `json:"log"`
	}
	err := json.Unmarshal(props, &pr)
	if err == nil && pr.Log == nil {
		err = errors.New("no properties.log")
	}
	if err != nil {
		rd.bad(at, fmt.Errorf("kube-audit record from Azure: %w", err))
		return nil
	}
	return rd.message(ctx, pr.Log, at, FormatAKS)
}

func (rd *replay) add(ctx context.Context, e Event, f Format) error {
	rd.batch = append(rd.batch, e)
	rd.formats = append(rd.formats, f)
	if len(rd.batch) >= rd.opts.BatchSize {
		return rd.flush(ctx)
	}
	return nil
}

func (rd *replay) flush(ctx context.Context) error {
	if len(rd.batch) == 0 {
		return nil
	}
	if err := rd.sink.Receive(ctx, rd.batch); err != nil {
		return fmt.Errorf("deliver %d events: %w", len(rd.batch), err)
	}
	rd.res.Events += len(rd.batch)
	for _, f := range rd.formats {
		rd.res.Formats[f]++
	}
	clear(rd.batch)
	rd.batch, rd.formats = rd.batch[:0], rd.formats[:0]
	return nil
}

func (rd *replay) bad(at loc, err error) {
	rd.res.Malformed++
	rerr := &RecordError{Source: rd.opts.Source, Line: at.line, Record: at.record, Item: at.item, Err: err}
	if len(rd.res.Errors) < rd.opts.MaxErrors {
		rd.res.Errors = append(rd.res.Errors, rerr)
	}
	rd.opts.Logger.Warn("audit replay: skipped malformed record", "error", rerr)
}

// cutTimestamp removes the timestamp CloudWatch Logs exports put before
// each message ("2023-04-01T12:00:00.000Z {...}").
func cutTimestamp(t []byte) ([]byte, bool) {
	if len(t) < 12 || !isDigits(t[:4]) || t[4] != '-' {
		return nil, false
	}
	i := bytes.IndexByte(t, '{')
	if i < 10 || i > 48 {
		return nil, false
	}
	prefix := bytes.TrimSpace(t[:i])
	if len(prefix) == i || len(prefix) < 10 {
		return nil, false // no space before the message
	}
	for _, c := range prefix {
		if !isTimestampByte(c) {
			return nil, false
		}
	}
	return t[i:], true
}

func isTimestampByte(c byte) bool {
	switch c {
	case '-', ':', '.', 'T', 'Z', '+', ' ':
		return true
	}
	return c >= '0' && c <= '9'
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// plainEvent decodes data if it is an audit event with no field of another
// format's wrapping.
func plainEvent(data []byte) (Event, bool) {
	d := decoder{data: data}
	d.ws()
	var e Event
	if d.peek() != '{' || d.event(&e) != nil || d.end() != nil || d.wrapped || checkEvent(&e) != nil {
		return Event{}, false
	}
	return e, true
}

// probe is what the top-level fields of a record say about its format.
type probe struct {
	isArray      bool
	kind         string
	kindRaw      []byte // kind when it is not a string
	category     string
	messageType  string
	protoPayload bool
	eventish     bool
	properties   []byte
	atMessage    []byte
	message      []byte
	logEvents    []byte
	events       []byte
	items        []byte
	records      []byte
	keys         []string // the first few field names, for errors
}

// probeRecord reads a record's top-level fields, validating its JSON.
func probeRecord(data []byte) (probe, error) {
	var p probe
	d := decoder{data: data}
	d.ws()
	if d.peek() == '[' {
		if err := d.skip(); err != nil {
			return p, err
		}
		p.isArray = true
		return p, d.end()
	}
	if d.peek() != '{' {
		if err := d.skip(); err != nil {
			return p, err
		}
		return p, errors.New("not an audit record: not a JSON object")
	}
	if err := d.openObject(""); err != nil {
		return p, err
	}
	for first := true; ; first = false {
		key, done, err := d.nextKey(first)
		if err != nil {
			return p, err
		}
		if done {
			break
		}
		if len(p.keys) < 8 {
			p.keys = append(p.keys, string(key))
		}
		raw, err := d.raw()
		if err != nil {
			return p, err
		}
		switch string(key) {
		case "kind":
			if !jsonString(raw, &p.kind) {
				p.kindRaw = raw
			}
		case "category":
			jsonString(raw, &p.category)
		case "messageType":
			jsonString(raw, &p.messageType)
		case "protoPayload":
			p.protoPayload = true
		case "properties":
			p.properties = raw
		case "@message":
			p.atMessage = raw
		case "message":
			p.message = raw
		case "logEvents":
			p.logEvents = raw
		case "events":
			p.events = raw
		case "items":
			p.items = raw
		case "records":
			p.records = raw
		case "auditID", "verb", "stage", "requestURI", "level", "objectRef", "user", "sourceIPs":
			p.eventish = true
		}
	}
	if p.kindRaw != nil || p.kind != "" && p.kind != "Event" && p.kind != "EventList" {
		if p.kindRaw == nil {
			p.kindRaw, _ = json.Marshal(p.kind)
		}
		p.kind = "?"
	}
	return p, d.end()
}

// jsonString decodes raw into *s if it is a JSON string.
func jsonString(raw []byte, s *string) bool {
	if len(raw) == 0 || raw[0] != '"' {
		return false
	}
	return json.Unmarshal(raw, s) == nil
}

// lineReader reads lines of at most max bytes; longer ones are skipped to
// their end and reported as tooLong.
type lineReader struct {
	r    *bufio.Reader
	max  int
	line int // number of the last line returned
	buf  []byte
}

type readLine struct {
	data    []byte // valid until the next call
	tooLong bool
}

func (lr *lineReader) next() (readLine, error) {
	lr.buf = lr.buf[:0]
	tooLong := false
	for {
		chunk, err := lr.r.ReadSlice('\n')
		if !tooLong {
			if len(lr.buf)+len(chunk) > lr.max+1 {
				tooLong = true
				lr.buf = lr.buf[:0]
			} else {
				lr.buf = append(lr.buf, chunk...)
			}
		}
		switch {
		case err == nil:
			lr.line++
			return readLine{data: bytes.TrimSuffix(lr.buf, []byte("\n")), tooLong: tooLong}, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(lr.buf) == 0 && !tooLong {
				return readLine{}, io.EOF
			}
			lr.line++
			return readLine{data: lr.buf, tooLong: tooLong}, nil
		default:
			return readLine{}, err
		}
	}
}
