package manifest

import (
	"bytes"
	"testing"

	"github.com/kustode/kustode/internal/testgen"
)

// BenchmarkLoad10k reads 10,000 synthetic objects (about 15 MB of YAML)
// from one stream: splitting, YAML decoding and naming every object.
func BenchmarkLoad10k(b *testing.B) {
	var buf bytes.Buffer
	if err := testgen.Write(&buf, 10000); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		objs, errs := Load([]string{Stdin}, bytes.NewReader(buf.Bytes()))
		if len(errs) > 0 || len(objs) != 10000 {
			b.Fatalf("loaded %d objects: %v", len(objs), errs)
		}
	}
}
