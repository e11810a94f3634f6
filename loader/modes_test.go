package loader

import (
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
)

func TestResolveModes(t *testing.T) {
	nstest.RequireRoot(t)
	best, err := ResolveMode("auto") // TCX where the kernel has it
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		want    string
		modes   Modes
		wantErr bool
	}{
		{want: "auto", modes: Modes{Parent: best, Endpoint: ModeTC, Live: best}},
		{want: "tc", modes: Modes{Parent: ModeTC, Endpoint: ModeTC, Live: ModeTC}},
		{want: "tcx", modes: Modes{Parent: ModeTCX, Endpoint: ModeTCX, Live: ModeTCX}, wantErr: best != ModeTCX},
		{want: "bogus", wantErr: true},
		{want: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ResolveModes(tt.want)
		if (err != nil) != tt.wantErr || (err == nil && got != tt.modes) {
			t.Errorf("ResolveModes(%q) = %+v, %v; want %+v (error: %v)", tt.want, got, err, tt.modes, tt.wantErr)
		}
	}
}
