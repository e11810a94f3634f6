package main

import (
	"slices"
	"time"
)

// samples are the repetitions of one measurement.
type samples []float64

func (s samples) sorted() []float64 {
	c := slices.Clone([]float64(s))
	slices.Sort(c)
	return c
}

// pct is the p-th percentile (nearest rank); 0 without samples.
func (s samples) pct(p float64) float64 {
	if len(s) == 0 {
		return 0
	}
	c := s.sorted()
	i := int(float64(len(c))*p/100+0.999999) - 1
	return c[min(max(i, 0), len(c)-1)]
}

// median is the middle value (the mean of the two middle ones for an even
// count).
func (s samples) median() float64 {
	if len(s) == 0 {
		return 0
	}
	c := s.sorted()
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

func (s samples) min() float64 {
	if len(s) == 0 {
		return 0
	}
	return slices.Min(s)
}

func (s samples) max() float64 {
	if len(s) == 0 {
		return 0
	}
	return slices.Max(s)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
