package detect

import (
	"slices"
	"testing"

	"github.com/google/cel-go/cel"
)

func TestImageRegistryAndRepository(t *testing.T) {
	env, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	env, err = env.Extend(cel.Variable("image", cel.StringType))
	if err != nil {
		t.Fatal(err)
	}
	ast, iss := env.Compile("[imageRegistry(image), imageRepository(image)]")
	if iss.Err() != nil {
		t.Fatal(iss.Err())
	}
	prog, err := env.Program(ast)
	if err != nil {
		t.Fatal(err)
	}
	const digest = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct{ image, registry, repository string }{
		{"nginx", "docker.io", "docker.io/library/nginx"},
		{"nginx:1.27", "docker.io", "docker.io/library/nginx"},
		{"nginx" + digest, "docker.io", "docker.io/library/nginx"},
		{"library/nginx:1", "docker.io", "docker.io/library/nginx"},
		{"bitnami/kubectl:1.33", "docker.io", "docker.io/bitnami/kubectl"},
		{"docker.io/nginx", "docker.io", "docker.io/library/nginx"},
		{"index.docker.io/library/nginx", "docker.io", "docker.io/library/nginx"},
		{"ghcr.io/a/b:1", "ghcr.io", "ghcr.io/a/b"},
		{"GHCR.io/a/b", "ghcr.io", "ghcr.io/a/b"},
		{"localhost:5000/x", "localhost:5000", "localhost:5000/x"},
		{"localhost:5000/x:dev", "localhost:5000", "localhost:5000/x"},
		{"localhost/x", "localhost", "localhost/x"},
		{"Registry/x", "registry", "registry/x"}, // an upper-case first component is a host
		{"registry.k8s.io/pause" + digest, "registry.k8s.io", "registry.k8s.io/pause"},
		{"registry.k8s.io/pause:3.10" + digest, "registry.k8s.io", "registry.k8s.io/pause"},
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/web:4.2.0", "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/web"},
		{"[fd00::1]:5000/app", "[fd00::1]:5000", "[fd00::1]:5000/app"},
		{"", "", ""},
	} {
		t.Run(tc.image, func(t *testing.T) {
			if got := imageRegistry(tc.image); got != tc.registry {
				t.Errorf("imageRegistry(%q) = %q, want %q", tc.image, got, tc.registry)
			}
			if got := imageRepository(tc.image); got != tc.repository {
				t.Errorf("imageRepository(%q) = %q, want %q", tc.image, got, tc.repository)
			}
			out, _, err := prog.Eval(map[string]any{"image": tc.image})
			if err != nil {
				t.Fatal(err)
			}
			got, err := out.ConvertToNative(stringSliceType)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{tc.registry, tc.repository}; !slices.Equal(got.([]string), want) {
				t.Errorf("in CEL: %v, want %v", got, want)
			}
		})
	}
}
