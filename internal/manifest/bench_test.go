package manifest

import (
	"bytes"
	"testing"

	"sigs.k8s.io/yaml"

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

// BenchmarkConvert turns 1,000 synthetic documents into JSON, through the
// fast path and through sigs.k8s.io/yaml, which it replaces where it can.
func BenchmarkConvert(b *testing.B) {
	var buf bytes.Buffer
	if err := testgen.Write(&buf, 1000); err != nil {
		b.Fatal(err)
	}
	docs := splitDocuments(buf.Bytes())
	b.Run("fast", func(b *testing.B) {
		var fp fastParser
		b.SetBytes(int64(buf.Len()))
		b.ReportAllocs()
		for b.Loop() {
			for _, d := range docs {
				if _, _, ok := fp.convert(d.data); !ok {
					b.Fatalf("fast path gave up on\n%s", d.data)
				}
			}
		}
	})
	b.Run("sigs.k8s.io/yaml", func(b *testing.B) {
		b.SetBytes(int64(buf.Len()))
		b.ReportAllocs()
		for b.Loop() {
			for _, d := range docs {
				if _, err := yaml.YAMLToJSON(d.data); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
