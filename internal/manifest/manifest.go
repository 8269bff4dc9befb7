package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"sigs.k8s.io/yaml"

	"github.com/kustode/kustode/internal/finding"
	"github.com/kustode/kustode/internal/kube"
)

// MaxFileSize is the largest file Load reads. Larger files are refused with
// an error rather than read into memory.
const MaxFileSize = 256 << 20

// Stdin is the path that means standard input.
const Stdin = "-"

// Object is one Kubernetes object read from a manifest.
type Object = kube.Object

// InputError is a document or file that could not be read. Its message
// starts with file:line.
type InputError struct {
	Source finding.Source
	Err    error
}

func (e *InputError) Error() string {
	if loc := e.Source.String(); loc != "" {
		return loc + ": " + e.Err.Error()
	}
	return e.Err.Error()
}

func (e *InputError) Unwrap() error { return e.Err }

// Load reads every path: a file, a directory (recursively: *.yaml, *.yml,
// *.json; hidden directories skipped) or Stdin. It returns the objects in
// input order and one InputError per document or file that failed.
//
// Files are read and split into documents one after another; documents are
// decoded in parallel on every CPU, which is where the time goes.
func Load(paths []string, stdin io.Reader) ([]Object, []error) {
	// Each job is a document to decode or an error already known; results
	// are assembled in job order so output is deterministic.
	type job struct {
		src  finding.Source
		data []byte
		err  error
	}
	var jobs []job
	addFile := func(file string, data []byte) {
		docs, err := documents(file, data)
		if err != nil {
			jobs = append(jobs, job{err: err})
		}
		for _, d := range docs {
			jobs = append(jobs, job{src: finding.Source{File: file, Line: d.line}, data: d.data})
		}
	}
	for _, p := range paths {
		if p == Stdin {
			data, err := io.ReadAll(io.LimitReader(stdin, MaxFileSize+1))
			if err != nil {
				jobs = append(jobs, job{err: &InputError{Source: finding.Source{File: "<stdin>"}, Err: err}})
				continue
			}
			addFile("<stdin>", data)
			continue
		}
		files, kustomizations, err := expand(p)
		if err != nil {
			jobs = append(jobs, job{err: &InputError{Source: finding.Source{File: p}, Err: err}})
			continue
		}
		for _, dir := range kustomizations {
			src := finding.Source{File: filepath.Join(dir, "kustomization.yaml")}
			docs, err := kustomize(dir)
			if err != nil {
				jobs = append(jobs, job{err: &InputError{Source: src, Err: err}})
				continue
			}
			for _, d := range docs {
				jobs = append(jobs, job{src: src, data: d})
			}
		}
		for _, f := range files {
			data, err := readFile(f)
			if err != nil {
				jobs = append(jobs, job{err: &InputError{Source: finding.Source{File: f}, Err: err}})
				continue
			}
			addFile(f, data)
		}
	}

	type result struct {
		objs []Object
		err  error
	}
	results := make([]result, len(jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(len(jobs), 1)) {
		wg.Go(func() {
			var fp fastParser
			for {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) {
					return
				}
				if jobs[i].err != nil {
					results[i].err = jobs[i].err
					continue
				}
				results[i].objs, results[i].err = decodeDocument(jobs[i].src, jobs[i].data, &fp)
			}
		})
	}
	wg.Wait()

	var objs []Object
	var errs []error
	for _, r := range results {
		objs = append(objs, r.objs...)
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	return objs, errs
}

// expand returns path itself for a file, or the manifest files under a
// directory in lexical order. A directory holding a kustomization file is
// returned in kustomizations instead, and its files are not read one by one:
// they are the kustomization's inputs, not objects as such.
func expand(path string) (files, kustomizations []string, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !fi.IsDir() {
		return []string{path}, nil, nil
	}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != path && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			if isKustomization(p) {
				kustomizations = append(kustomizations, p)
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	return files, kustomizations, err
}

func readFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("file is %d MiB, over the %d MiB limit: split it", fi.Size()>>20, MaxFileSize>>20)
	}
	return os.ReadFile(path) //nolint:gosec // reading the files the user named is the point
}

// documents refuses oversized and binary input and splits the rest into
// YAML documents.
func documents(file string, data []byte) ([]document, error) {
	if len(data) > MaxFileSize {
		return nil, &InputError{Source: finding.Source{File: file}, Err: fmt.Errorf("input is over the %d MiB limit: split it", MaxFileSize>>20)}
	}
	head := data[:min(len(data), 8000)]
	if bytes.IndexByte(head, 0) >= 0 {
		return nil, &InputError{Source: finding.Source{File: file}, Err: errors.New("binary file, not YAML or JSON: remove it from the input")}
	}
	return splitDocuments(data), nil
}

type document struct {
	data []byte
	line int // 1-based line of the document's first content line
}

// splitDocuments splits a YAML stream on "---" separator lines. Documents
// holding only comments and blank lines are dropped.
func splitDocuments(data []byte) []document {
	var docs []document
	start, startLine, line := 0, 1, 1
	flush := func(end int) {
		chunk := data[start:end]
		if first, ok := firstContentLine(chunk); ok {
			docs = append(docs, document{data: chunk, line: startLine + first})
		}
	}
	for i := 0; i < len(data); {
		j := bytes.IndexByte(data[i:], '\n')
		next := len(data)
		if j >= 0 {
			next = i + j + 1
		}
		l := bytes.TrimRight(data[i:next], "\r\n")
		if isSeparator(l) {
			flush(i)
			start, startLine = next, line+1
		}
		i = next
		line++
	}
	flush(len(data))
	return docs
}

// isSeparator reports whether a line separates YAML documents: "---"
// optionally followed by a space and content such as a comment.
func isSeparator(l []byte) bool {
	if !bytes.HasPrefix(l, []byte("---")) {
		return false
	}
	rest := l[3:]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t'
}

// firstContentLine returns the 0-based index of the first line that is
// neither blank nor a comment, and whether there is one.
func firstContentLine(chunk []byte) (int, bool) {
	n := 0
	for len(chunk) > 0 {
		j := bytes.IndexByte(chunk, '\n')
		l := chunk
		if j >= 0 {
			l, chunk = chunk[:j], chunk[j+1:]
		} else {
			chunk = nil
		}
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("...")) {
			return n, true
		}
		n++
	}
	return 0, false
}

// header is the part of every object Load reads to name it.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Namespace    string            `json:"namespace"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"metadata"`
	Items []json.RawMessage `json:"items"`
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// decodeDocument decodes one YAML document: through fp's fast path where it
// can, otherwise (and for every error) through sigs.k8s.io/yaml. A nil fp
// means the slow path only.
func decodeDocument(src finding.Source, data []byte, fp *fastParser) ([]Object, error) {
	var objs []Object
	var err error
	if root, js, ok := fp.convert(data); ok {
		raw := bytes.Clone(js)
		if h, ok := fp.header(root); ok {
			objs, err = fromHeader(src, &h, raw)
		} else {
			objs, err = decodeJSON(src, raw)
		}
	} else {
		raw, yerr := yaml.YAMLToJSON(data)
		if yerr != nil {
			return nil, &InputError{Source: src, Err: yamlError(src, data, yerr)}
		}
		objs, err = decodeJSON(src, raw)
	}
	if err != nil {
		return objs, &InputError{Source: src, Err: err}
	}
	return objs, nil
}

// decodeJSON decodes one object, or the items of a List. Its errors carry no
// location; decodeDocument adds it.
func decodeJSON(src finding.Source, raw []byte) ([]Object, error) {
	trimmed := bytes.TrimSpace(raw)
	if bytes.Equal(trimmed, []byte("null")) || len(trimmed) == 0 {
		return nil, nil
	}
	if trimmed[0] != '{' {
		return nil, errors.New("document is not a mapping: a Kubernetes object starts with apiVersion and kind")
	}
	var h header
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	if h.Kind == "" || h.APIVersion == "" {
		return nil, errors.New("not a Kubernetes object: apiVersion and kind are required")
	}
	if strings.HasSuffix(h.Kind, "List") && h.Items != nil {
		var objs []Object
		var errs []error
		for i, item := range h.Items {
			o, err := decodeJSON(src, item)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s item %d: %w", h.Kind, i, err))
			}
			objs = append(objs, o...)
		}
		return objs, errors.Join(errs...)
	}
	return fromHeader(src, &h, raw)
}

// fromHeader returns the object a document's header names.
func fromHeader(src finding.Source, h *header, raw []byte) ([]Object, error) {
	if h.Kind == "" || h.APIVersion == "" {
		return nil, errors.New("not a Kubernetes object: apiVersion and kind are required")
	}
	name := h.Metadata.Name
	if name == "" {
		name = h.Metadata.GenerateName
	}
	return []Object{{
		Ref: finding.ObjectRef{
			APIVersion: h.APIVersion,
			Kind:       h.Kind,
			Namespace:  h.Metadata.Namespace,
			Name:       name,
		},
		Source:      src,
		Labels:      h.Metadata.Labels,
		Annotations: h.Metadata.Annotations,
		Raw:         raw,
	}}, nil
}

// yamlError rewrites a YAML parser error: its line number is made absolute
// in the file, and an unrendered template gets advice.
func yamlError(src finding.Source, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	msg = yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, convErr := strconv.Atoi(m[len("line "):])
		if convErr != nil {
			return m
		}
		// The document's first content line is src.Line; the parser counts
		// from the first line of the chunk, which may hold comments.
		first, _ := firstContentLine(data)
		return fmt.Sprintf("line %d", src.Line-first+n-1)
	})
	if bytes.Contains(data, []byte("{{")) {
		return fmt.Errorf("invalid YAML (%s): this looks like an unrendered Helm or Go template; render it first, e.g. `helm template CHART | kustode scan -`", msg)
	}
	return fmt.Errorf("invalid YAML: %s", msg)
}

// Location returns where the failing input is.
func (e *InputError) Location() finding.Source { return e.Source }
