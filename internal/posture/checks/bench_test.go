package checks

import (
	"bytes"

	"testing"

	"github.com/kustode/kustode/internal/manifest"
	"github.com/kustode/kustode/internal/posture"
	"github.com/kustode/kustode/internal/testgen"
)

// benchScan loads n synthetic objects from one YAML stream and runs every
// check on them: the whole of `kustode scan` but output.
func benchScan(b *testing.B, n int) {
	var buf bytes.Buffer
	if err := testgen.Write(&buf, n); err != nil {
		b.Fatal(err)
	}
	all, err := All(Options{})
	if err != nil {
		b.Fatal(err)
	}
	engine, err := posture.NewEngine(all)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		objs, errs := manifest.Load([]string{manifest.Stdin}, bytes.NewReader(buf.Bytes()))
		if len(errs) > 0 || len(objs) != n {
			b.Fatalf("loaded %d of %d objects: %v", len(objs), n, errs)
		}
		findings, errs := engine.Run(objs)
		if len(errs) > 0 || len(findings) == 0 {
			b.Fatalf("%d findings, errors %v", len(findings), errs)
		}
	}
	b.ReportMetric(float64(n), "objects/op")
}

func BenchmarkScan1k(b *testing.B)  { benchScan(b, 1000) }
func BenchmarkScan10k(b *testing.B) { benchScan(b, 10000) }
