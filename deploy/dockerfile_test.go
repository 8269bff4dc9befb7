package deploy

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// dockerfile is the image's recipe, at the repository's root.
const dockerfile = "../Dockerfile"

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	op   string // FROM, RUN, ...
	args string
}

func readDockerfile(t *testing.T) []instruction {
	t.Helper()
	raw, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur *instruction
	for i, l := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(l)
		if cur == nil && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		cont := strings.HasSuffix(trimmed, `\`)
		trimmed = strings.TrimSuffix(trimmed, `\`)
		if cur == nil {
			op, args, _ := strings.Cut(trimmed, " ")
			out = append(out, instruction{line: i + 1, op: strings.ToUpper(op), args: strings.TrimSpace(args)})
			cur = &out[len(out)-1]
		} else if !strings.HasPrefix(trimmed, "#") {
			cur.args += " " + trimmed
		}
		if !cont {
			cur = nil
		}
	}
	return out
}

// The image as the issue asks for it: multi-stage, a static binary, a
// distroless (or scratch) final stage, a non-root user. No container engine
// runs here, so the image itself is not built; what can be is: the build
// stage's command, run as the Dockerfile runs it, must give a static binary
// that runs on an image without libc.
func TestDockerfile(t *testing.T) {
	ins := readDockerfile(t)
	var stages []int // index of each FROM
	for i, in := range ins {
		if in.op == "FROM" {
			stages = append(stages, i)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("%s: %d stages, want a build stage and a runtime stage", dockerfile, len(stages))
	}
	final := ins[stages[len(stages)-1]:]
	base := strings.Fields(final[0].args)[0]
	if !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
		t.Errorf("%s:%d: final stage FROM %s, want distroless static or scratch", dockerfile, final[0].line, base)
	}
	var user, entry string
	var copied bool
	for _, in := range final {
		switch in.op {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entry = in.args
		case "COPY":
			copied = copied || strings.Contains(in.args, "--from=build /out/kustode")
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" || strings.Trim(uid, "0123456789") != "" {
		t.Errorf("%s: final stage USER %q, want a numeric non-root user (PSS restricted checks runAsNonRoot by UID)", dockerfile, user)
	}
	if !strings.HasPrefix(entry, "[") {
		t.Errorf("%s: ENTRYPOINT %q, want the exec form (there is no shell in the image)", dockerfile, entry)
	}
	if !copied {
		t.Errorf("%s: the final stage does not copy /out/kustode from the build stage", dockerfile)
	}

	// The build stage's go build, with its environment and flags.
	i := slices.IndexFunc(ins, func(in instruction) bool { return in.op == "RUN" && strings.Contains(in.args, "go build") })
	if i < 0 || i > stages[len(stages)-1] {
		t.Fatalf("%s: no RUN go build in the build stage", dockerfile)
	}
	words := shellWords(regexp.MustCompile(`--mount=\S+`).ReplaceAllString(ins[i].args, ""))
	env := []string{"GOOS=" + runtime.GOOS, "GOARCH=" + runtime.GOARCH}
	for len(words) > 0 && strings.Contains(words[0], "=") {
		if !strings.HasPrefix(words[0], "GOOS=") && !strings.HasPrefix(words[0], "GOARCH=") {
			env = append(env, words[0])
		}
		words = words[1:]
	}
	if !slices.Contains(env, "CGO_ENABLED=0") {
		t.Errorf("%s:%d: go build without CGO_ENABLED=0: the binary would need libc, which distroless static lacks", dockerfile, ins[i].line)
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("%s:%d: want `go build ...` after the environment, got %q", dockerfile, ins[i].line, words)
	}
	out := filepath.Join(t.TempDir(), "kustode")
	args := slices.Clone(words[2:])
	for j, a := range args {
		a = strings.NewReplacer("${VERSION}", "9.9.9-dockerfile-test", "${COMMIT}", "0123abc").Replace(a)
		if j > 0 && args[j-1] == "-o" {
			a = out
		}
		args[j] = a
	}
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s:%d: go build %s: %v\n%s", dockerfile, ins[i].line, strings.Join(args, " "), err, b)
	}

	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary asks for a dynamic loader: it is not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links %v: it is not static", libs)
	}
	b, err := exec.Command(out, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("%s version: %v", out, err)
	}
	var v struct {
		Version string `json:"version"`
		Commit  string `json:"commit"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Version != "9.9.9-dockerfile-test" || v.Commit != "0123abc" {
		t.Errorf("version -o json = %s (%v): want the build arguments VERSION and COMMIT stamped in", b, err)
	}
}

// shellWords splits a command line as sh would for the Dockerfile's RUN
// lines: on blanks, with double-quoted words kept whole.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	in, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}
