package outbound_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cairnloop/outbound"
)

// drainSizes are the bulk sizes BenchmarkRateLimitDrain drains, from
// OUTBOUND_BENCH_DRAIN ("1500,20000"); 1,500 by default.
func drainSizes(b *testing.B) []int {
	spec := os.Getenv("OUTBOUND_BENCH_DRAIN")
	if spec == "" {
		return []int{1500}
	}
	var sizes []int
	for _, s := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 100 {
			b.Fatalf("OUTBOUND_BENCH_DRAIN: want sizes of at least 100, got %q", s)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// timedNotifier records when each message's call started, by this
// process's clock.
type timedNotifier struct {
	mu    sync.Mutex
	calls map[uuid.UUID]time.Time
	all   []time.Time
}

func (n *timedNotifier) OnOutboundTriggered(_ context.Context, msg *outbound.Message) error {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.calls[msg.ID]; !ok {
		n.calls[msg.ID] = now
	}
	n.all = append(n.all, now)
	return nil
}

func (n *timedNotifier) callOf(id uuid.UUID) (time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	at, ok := n.calls[id]
	return at, ok
}

func (n *timedNotifier) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.calls)
}

// BenchmarkRateLimitDrain drains a bulk through a key at 50 a second, burst
// 50, over 1 and 2 processes (clients with pools and River clients of their
// own on one schema), and measures what issue "A limit that keeps priority
// and never idles" asks: the drain against its ideal ((n - burst) / rate),
// the whole seconds with no call while the bulk was due, five priority-1
// follow-ups triggered mid-drain (each one's latency from its Trigger to its
// call), a bulk of 20 triggered 3s in (its completion), and the backends
// seen waiting on a lock (pg_stat_activity sampled every 100ms). With
// OUTBOUND_BENCH_LOCKS set, it prints to stderr what waits on which lock,
// the key's parked messages each 100ms, and the calls of each second.
//
//	OUTBOUND_BENCH_DRAIN=1500,20000 go test -run '^$' -bench RateLimitDrain -benchtime 1x -timeout 60m .
func BenchmarkRateLimitDrain(b *testing.B) {
	for _, n := range drainSizes(b) {
		for _, processes := range []int{1, 2} {
			b.Run(fmt.Sprintf("n=%d/processes=%d", n, processes), func(b *testing.B) {
				for range b.N {
					drainKeyOnce(b, n, processes)
				}
			})
		}
	}
}

func drainKeyOnce(b *testing.B, n, processes int) {
	ctx := context.Background()
	limit := outbound.RateLimit{Limit: 50, Per: time.Second, Burst: 50}
	notifier := &timedNotifier{calls: map[uuid.UUID]time.Time{}}
	schema := migratedSchema(b)
	var client *outbound.Client
	for range processes {
		config := limitedConfig(notifier, limit)
		config.MaxBatchSize = n
		config.MaxWorkers = 100
		config.FetchPollInterval = time.Second
		config.FetchCooldown = 100 * time.Millisecond
		bundle := setup(b, working(), withConfig(config), onSchema(schema))
		if client == nil {
			client = bundle.client
		}
	}

	lockWaits := make(chan [2]float64, 1)
	sampleCtx, stopSampling := context.WithCancel(ctx)
	go func() {
		var peak, sum, samples float64
		ticker := time.NewTicker(100 * time.Millisecond)
		defer ticker.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				lockWaits <- [2]float64{peak, sum / max(samples, 1)}
				return
			case <-ticker.C:
				var waiting float64
				if err := testPool.QueryRow(sampleCtx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").Scan(&waiting); err == nil {
					peak, sum, samples = max(peak, waiting), sum+waiting, samples+1
				}
				if os.Getenv("OUTBOUND_BENCH_LOCKS") != "" {
					var parked, runningParked, fresh int
					_ = testPool.QueryRow(sampleCtx, "SELECT count(*) FILTER (WHERE m.rate_parked_at IS NOT NULL), count(*) FILTER (WHERE m.rate_parked_at IS NOT NULL AND j.state = 'running'), count(*) FILTER (WHERE m.rate_key IS NULL) FROM "+table(schema, "messages")+" m JOIN "+table(schema, "river_job")+" j ON j.id = m.job_id WHERE m.status = 'pending'").Scan(&parked, &runningParked, &fresh)
					fmt.Fprintf(os.Stderr, "STATE %s parked=%d running=%d fresh=%d waiters=%v\n", time.Now().Format("04:05.0"), parked, runningParked, fresh, waiting)
				}
				if os.Getenv("OUTBOUND_BENCH_LOCKS") != "" && waiting > 3 {
					rows, _ := testPool.Query(sampleCtx, "SELECT l.locktype || ' ' || coalesce(l.relation::regclass::text, '') || ' ' || l.mode, coalesce((SELECT left(regexp_replace(b.query, '\\s+', ' ', 'g'), 100) FROM pg_stat_activity b WHERE b.pid = (pg_blocking_pids(l.pid))[1]), ''), count(*) FROM pg_locks l WHERE NOT l.granted GROUP BY 1, 2")
					for rows.Next() {
						var ev, q string
						var c int
						_ = rows.Scan(&ev, &q, &c)
						fmt.Fprintf(os.Stderr, "LOCK %s %d %s\n", ev, c, q)
					}
					rows.Close()
				}
			}
		}
	}()

	ideal := time.Duration(float64(n-limit.Burst) / float64(limit.Limit) * float64(time.Second))
	triggered := time.Now()
	bulk, err := client.BulkTrigger(ctx, conversations(n), &outbound.BulkTriggerOpts{TemplateID: "bulk", RenderedBody: "body"})
	if err != nil {
		b.Fatal(err)
	}

	// The bulk of 20, 3s in; five follow-ups spread over the drain.
	type mark struct {
		ids []uuid.UUID
		at  time.Time
	}
	var small mark
	var followUps []mark
	plan := []time.Duration{3 * time.Second}
	for i := range 5 {
		plan = append(plan, ideal*time.Duration(2*i+1)/10)
	}
	slices.Sort(plan)
	smallDone := false
	for i, due := range plan {
		time.Sleep(time.Until(triggered.Add(due)))
		if due == 3*time.Second && !smallDone {
			smallDone = true
			res, err := client.BulkTrigger(ctx, conversations(20), &outbound.BulkTriggerOpts{TemplateID: "small", RenderedBody: "body"})
			if err != nil {
				b.Fatal(err)
			}
			small = mark{ids: messageIDs(res.Messages), at: time.Now()}
			continue
		}
		res, err := client.Trigger(ctx, int64(1_000_000+i), &outbound.TriggerOpts{TemplateID: "follow-up"})
		if err != nil {
			b.Fatal(err)
		}
		followUps = append(followUps, mark{ids: []uuid.UUID{res.Message.ID}, at: time.Now()})
	}
	want := n + 20 + len(followUps)
	deadline := time.Now().Add(3*ideal + time.Minute)
	for notifier.count() < want {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages called by the deadline", notifier.count(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopSampling()
	waits := <-lockWaits

	// The drain: the bulk's first call to its last.
	var bulkCalls []time.Time
	for _, m := range bulk.Messages {
		at, _ := notifier.callOf(m.ID)
		bulkCalls = append(bulkCalls, at)
	}
	slices.SortFunc(bulkCalls, func(x, y time.Time) int { return x.Compare(y) })
	first, last := bulkCalls[0], bulkCalls[len(bulkCalls)-1]
	drain := last.Sub(first)

	// Whole seconds from the first call with no call at all, while the
	// bulk was due; and the fewest calls in a whole second.
	notifier.mu.Lock()
	all := slices.Clone(notifier.all)
	notifier.mu.Unlock()
	seconds := int(drain / time.Second)
	perSecond := make([]int, seconds+1)
	for _, at := range all {
		if s := int(at.Sub(first) / time.Second); s >= 0 && s < len(perSecond) {
			perSecond[s]++
		}
	}
	if os.Getenv("OUTBOUND_BENCH_LOCKS") != "" {
		fmt.Fprintln(os.Stderr, "PERSECOND", perSecond)
	}
	idle, fewest := 0, n
	for s := 0; s < seconds; s++ { // the last, partial second is left out
		if perSecond[s] == 0 {
			idle++
		}
		fewest = min(fewest, perSecond[s])
	}

	var latencies []float64
	for _, f := range followUps {
		at, _ := notifier.callOf(f.ids[0])
		latencies = append(latencies, at.Sub(f.at).Seconds())
	}
	var smallLast time.Time
	for _, id := range small.ids {
		at, _ := notifier.callOf(id)
		if at.After(smallLast) {
			smallLast = at
		}
	}

	b.ReportMetric(drain.Seconds(), "drain_s")
	b.ReportMetric(drain.Seconds()/ideal.Seconds(), "drain/ideal")
	b.ReportMetric(first.Sub(triggered).Seconds(), "first_call_s")
	b.ReportMetric(float64(idle), "idle_seconds")
	b.ReportMetric(float64(fewest), "fewest_calls/s")
	b.ReportMetric(slices.Max(latencies), "followup_max_s")
	b.ReportMetric(median(latencies), "followup_median_s")
	b.ReportMetric(smallLast.Sub(small.at).Seconds(), "small_bulk_s")
	b.ReportMetric(waits[0], "lock_waiters_peak")
	b.ReportMetric(waits[1], "lock_waiters_mean")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
