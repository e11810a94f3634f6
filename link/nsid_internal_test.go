package link

import "testing"

func TestBelow(t *testing.T) {
	for _, tt := range []struct{ id, want int }{
		{nsidTop - 1, nsidTop - 2},
		{nsidFloor + 1, nsidFloor},
		{nsidFloor, nsidTop - 1}, // not into the kernel's own
	} {
		if got := below(tt.id); got != tt.want {
			t.Errorf("below(%d) = %d; want %d", tt.id, got, tt.want)
		}
	}
}
