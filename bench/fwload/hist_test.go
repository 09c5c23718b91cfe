package main

import (
	"testing"
	"time"
)

func TestBucketsCoverValues(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<20; v += 1 + v/64 {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucket of %d is %d, below the bucket %d of a smaller value", v, b, prev)
		}
		prev = b
		if up := bucketUpper(b); up < v {
			t.Fatalf("bucket %d of %d has upper bound %d", b, v, up)
		}
		if b > 0 && bucketUpper(b-1) >= v {
			t.Fatalf("value %d also fits bucket %d (upper %d)", v, b-1, bucketUpper(b-1))
		}
	}
}

func TestQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	check := func(q float64, want time.Duration) {
		t.Helper()
		got := h.Quantile(q)
		if got < want || float64(got) > float64(want)*1.07 {
			t.Fatalf("q%.3f = %v, want %v within 7%%", q, got, want)
		}
	}
	check(0.5, 500*time.Millisecond)
	check(0.99, 990*time.Millisecond)
	check(0.999, 999*time.Millisecond)
	if h.Count() != 1000 || h.Max() != time.Second {
		t.Fatalf("count %d max %v", h.Count(), h.Max())
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 {
		t.Fatal("empty histogram has a quantile")
	}
}
