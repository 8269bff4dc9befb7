package version

import "testing"

func TestKubernetesMinor(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "v0.37.2", want: "1.37"},
		{in: "v0.30.0-rc.1", want: "1.30"},
		{in: "0.31.1", want: "1.31"},
		{in: "v1.2.3", wantErr: true},
		{in: "v0", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := KubernetesMinor(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("KubernetesMinor(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("KubernetesMinor(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestGetFillsRuntimeFields(t *testing.T) {
	info := Get()
	if info.GoVersion == "" || info.Platform == "" || info.Version == "" {
		t.Errorf("Get() = %+v, want version, Go version and platform set", info)
	}
}
