package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// How far the rounds' noise moves a ratio. A run of several rounds reports,
// per library, the median of its rounds, and compares the best of ours
// with the best peer by those medians. On a shared machine one round of a
// library can be 20 % off another, so a ratio near its target says little
// without its spread: the report gives a 95 % bootstrap interval beside
// it. The rounds are drawn again with replacement (bootstrapDraws times,
// from a fixed seed, so the same results give the same report), every
// library keeping its figure of each drawn round: a round where the whole
// machine was slow stays one round for every library, as it was measured.
// Each draw recomputes the medians and the ratio exactly as the report
// does, the best of ours and the best peer included; the interval runs
// from the 2.5th to the 97.5th percentile of the draws' ratios.

// bootstrapDraws is how many times the rounds are drawn again.
const bootstrapDraws = 4000

// minIntervalRounds is the fewest rounds an interval is given for: below
// it every draw repeats one of very few rounds, and the percentiles say
// nothing.
const minIntervalRounds = 3

// ratioInterval returns the 95 % bootstrap interval of the ratio of the
// best of ours to the best peer by f (higher is better when high), over
// the rounds of one scenario's rows, ignoring failed rows; ok is false
// with fewer than minIntervalRounds rounds, or when ours or every peer
// has no figure in most draws.
func ratioInterval[T any](rows []T, round func(T) int, lib func(T) string, failed func(T) bool, f func(T) float64, high bool) (lo, hi float64, ok bool) {
	var (
		rounds []int
		libs   []string
	)
	fig := map[int]map[string]float64{} // round → library → figure
	for _, r := range rows {
		if failed(r) {
			continue
		}
		n, l := round(r), lib(r)
		if fig[n] == nil {
			fig[n] = map[string]float64{}
			rounds = append(rounds, n)
		}
		if !slices.Contains(libs, l) {
			libs = append(libs, l)
		}
		fig[n][l] = f(r)
	}
	if len(rounds) < minIntervalRounds {
		return 0, 0, false
	}
	better := func(a, b float64) bool { return (high && a > b) || (!high && a < b) }
	rng := rand.New(rand.NewPCG(1, 2))
	drawn := make([]int, len(rounds))
	vals := make([]float64, 0, len(rounds))
	ratios := make([]float64, 0, bootstrapDraws)
	for range bootstrapDraws {
		for i := range drawn {
			drawn[i] = rounds[rng.IntN(len(rounds))]
		}
		var us, peer float64
		var okUs, okPeer bool
		for _, l := range libs {
			vals = vals[:0]
			for _, n := range drawn {
				if v, there := fig[n][l]; there {
					vals = append(vals, v)
				}
			}
			if len(vals) == 0 {
				continue
			}
			m := median(vals)
			if isOurs(l) {
				if !okUs || better(m, us) {
					us, okUs = m, true
				}
			} else if !okPeer || better(m, peer) {
				peer, okPeer = m, true
			}
		}
		if okUs && okPeer && peer != 0 {
			ratios = append(ratios, us/peer)
		}
	}
	if len(ratios) < bootstrapDraws/2 {
		return 0, 0, false
	}
	slices.Sort(ratios)
	return percentile(ratios, 0.025), percentile(ratios, 0.975), true
}

// percentile returns the p-quantile (0 ≤ p ≤ 1) of sorted, by nearest
// rank.
func percentile(sorted []float64, p float64) float64 {
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// intervalNote is ", 95 % interval LO–HI" for ratioInterval's answer, to
// follow a ratio in the report, or "" when there is no interval.
func intervalNote[T any](rows []T, round func(T) int, lib func(T) string, failed func(T) bool, f func(T) float64, high bool) string {
	lo, hi, ok := ratioInterval(rows, round, lib, failed, f, high)
	if !ok {
		return ""
	}
	return fmt.Sprintf(", 95 %% interval %.2f–%.2f", lo, hi)
}

// echoInterval is intervalNote over echo or compression rows.
func echoInterval(rows []EchoResult, f func(EchoResult) float64, high bool) string {
	return intervalNote(rows, func(r EchoResult) int { return r.Round }, func(r EchoResult) string { return r.Lib },
		func(r EchoResult) bool { return r.Error != "" }, f, high)
}
