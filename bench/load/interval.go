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
//
// The compression scenario's ratio of a library's run with the extension
// to its run without (on ÷ off) gets the same interval from the same
// draws: the library's two runs of a round ran one after the other, so a
// drawn round brings both (onOffInterval), and a slow moment of the
// machine weighs on both sides of the ratio as it did when measured.

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
	better := func(a, b float64) bool { return (high && a > b) || (!high && a < b) }
	var vals []float64
	return bootstrap(rounds, func(drawn []int) (float64, bool) {
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
		if !okUs || !okPeer || peer == 0 {
			return 0, false
		}
		return us / peer, true
	})
}

// bootstrap draws rounds again with replacement, bootstrapDraws times from
// a fixed seed, and returns the 2.5th and 97.5th percentiles of what stat
// gives for the draws (stat returns false for a draw it has no figure
// for); ok is false with fewer than minIntervalRounds rounds, or when
// stat has no figure for half the draws or more.
func bootstrap(rounds []int, stat func(drawn []int) (float64, bool)) (lo, hi float64, ok bool) {
	if len(rounds) < minIntervalRounds {
		return 0, 0, false
	}
	rng := rand.New(rand.NewPCG(1, 2))
	drawn := make([]int, len(rounds))
	figs := make([]float64, 0, bootstrapDraws)
	for range bootstrapDraws {
		for i := range drawn {
			drawn[i] = rounds[rng.IntN(len(rounds))]
		}
		if v, ok := stat(drawn); ok {
			figs = append(figs, v)
		}
	}
	if len(figs) < bootstrapDraws/2 {
		return 0, 0, false
	}
	slices.Sort(figs)
	return percentile(figs, 0.025), percentile(figs, 0.975), true
}

// percentile returns the p-quantile (0 ≤ p ≤ 1) of sorted, by nearest
// rank.
func percentile(sorted []float64, p float64) float64 {
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// rowKind says how the report reads one kind of result row: its library,
// whether it failed, and its round.
type rowKind[T any] struct {
	lib    func(T) string
	failed func(T) bool
	round  func(T) int
}

// The kinds of rows the report compares.
var (
	echoKind = rowKind[EchoResult]{func(r EchoResult) string { return r.Lib }, func(r EchoResult) bool { return r.Error != "" }, func(r EchoResult) int { return r.Round }}
	bcKind   = rowKind[BCResult]{func(r BCResult) string { return r.Lib }, func(r BCResult) bool { return r.Error != "" }, func(r BCResult) int { return r.Round }}
	hsKind   = rowKind[HSResult]{func(r HSResult) string { return r.Lib }, func(r HSResult) bool { return r.Error != "" }, func(r HSResult) int { return r.Round }}
	idleKind = rowKind[IdleResult]{func(r IdleResult) string { return r.Lib }, func(r IdleResult) bool { return r.Error != "" }, func(r IdleResult) int { return r.Round }}
)

// compare returns the best of ours and the best peer among rows (the
// rounds' medians) by f, higher being better when high, and the ratio's
// interval over raw (the rounds themselves) as ", 95 % interval LO–HI",
// or "" when there is none; ok is false unless both sides have a row.
func (k rowKind[T]) compare(rows, raw []T, f func(T) float64, high bool) (us, peer T, interval string, ok bool) {
	us, peer, okUs, okPeer := best(rows, k.lib, k.failed, f, high)
	if !okUs || !okPeer {
		return us, peer, "", false
	}
	if lo, hi, ok := ratioInterval(raw, k.round, k.lib, k.failed, f, high); ok {
		interval = intervalText(lo, hi)
	}
	return us, peer, interval, true
}

// intervalText is an interval as the report writes it after a ratio.
func intervalText(lo, hi float64) string { return fmt.Sprintf(", 95 %% interval %.2f–%.2f", lo, hi) }

// onOffInterval returns the 95 % bootstrap interval of one library's
// ratio of its median f with the extension offered to its median without,
// over on and off, its rows of one compression scenario in each mode
// (every round, failed rows ignored): a drawn round brings the library's
// figures of both runs of that round, and each draw takes the medians of
// each mode and their ratio as the report does. ok is false with fewer
// than minIntervalRounds rounds, or when either mode has no figure, or
// off's median is 0, in most draws.
func onOffInterval(on, off []EchoResult, f func(EchoResult) float64) (lo, hi float64, ok bool) {
	var rounds []int
	fig := [2]map[int]float64{{}, {}} // on, off: round → figure
	for i, rows := range [2][]EchoResult{on, off} {
		for _, r := range rows {
			if r.Error != "" {
				continue
			}
			if !slices.Contains(rounds, r.Round) {
				rounds = append(rounds, r.Round)
			}
			fig[i][r.Round] = f(r)
		}
	}
	var vals []float64
	med := func(m map[int]float64, drawn []int) (float64, bool) {
		vals = vals[:0]
		for _, n := range drawn {
			if v, there := m[n]; there {
				vals = append(vals, v)
			}
		}
		return median(vals), len(vals) > 0
	}
	return bootstrap(rounds, func(drawn []int) (float64, bool) {
		a, okA := med(fig[0], drawn)
		b, okB := med(fig[1], drawn)
		if !okA || !okB || b == 0 {
			return 0, false
		}
		return a / b, true
	})
}
