package outbound_test

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/stretchr/testify/require"
)

// deliveryHeapWorkers is how many deliveries BenchmarkDeliveryHeap holds in
// flight at once.
const deliveryHeapWorkers = 4

// BenchmarkDeliveryHeap measures what a delivery of a long body costs in
// memory: the heap its attempt holds while the Notifier runs (live-MiB/op,
// after a collection, less what was live before), and all it allocates from
// claim to record (alloc-B/op), per delivery. Four deliveries are in flight at
// once, each of a body boundedBodyBytes long; "rated" claims through a rate
// limit, whose attempt reads the message before its claim.
func BenchmarkDeliveryHeap(b *testing.B) {
	size := boundedBodyBytes(b)
	body := strings.Repeat("x", size)
	for _, rated := range []bool{false, true} {
		name := "plain"
		if rated {
			name = "rated"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			var (
				mu       sync.Mutex
				inFlight int
				allIn    = make(chan struct{})
				release  = make(chan struct{})
			)
			notifier := outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
				if len(msg.Content) != size {
					b.Errorf("the notifier got %d bytes of body, want %d", len(msg.Content), size)
				}
				mu.Lock()
				inFlight++
				if inFlight == deliveryHeapWorkers {
					close(allIn)
				}
				mu.Unlock()
				<-release
				return nil
			})
			config := &outbound.Config{Schema: migratedSchema(b), MaxWorkers: deliveryHeapWorkers, MaxContentBytes: size,
				Notifier: notifier, FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 10 * time.Millisecond}
			if rated {
				config.RateLimits = map[string]outbound.RateLimit{"": {Limit: 1000, Per: time.Second}}
			}
			pool := newTestPool(b, deliveryHeapWorkers+6)
			client, err := outbound.New(pool, config)
			require.NoError(b, err)
			require.NoError(b, client.Start(ctx))
			defer func() { require.NoError(b, client.Stop(ctx)) }()

			var live, allocated uint64
			var stats runtime.MemStats
			for i := range b.N {
				mu.Lock()
				inFlight, allIn, release = 0, make(chan struct{}), make(chan struct{})
				mu.Unlock()
				// Triggered in one transaction, so that no delivery starts
				// before the measure does: at its commit. The client's own
				// copy of each body is garbage by then.
				tx, err := pool.Begin(ctx)
				require.NoError(b, err)
				for j := range deliveryHeapWorkers {
					_, err := client.TriggerTx(ctx, tx, int64(i*deliveryHeapWorkers+j+1), &outbound.TriggerOpts{TemplateID: "t", Content: body})
					require.NoError(b, err)
				}
				collectMemStats(&stats)
				before, allocBefore := stats.HeapAlloc, stats.TotalAlloc
				require.NoError(b, tx.Commit(ctx))
				<-allIn
				collectMemStats(&stats)
				live += stats.HeapAlloc - min(before, stats.HeapAlloc)
				close(release)
				// Counted with a query of its own, which reads no body.
				require.Eventually(b, func() bool {
					var sent int
					require.NoError(b, testPool.QueryRow(ctx, "SELECT count(*) FROM "+table(config.Schema, "messages")+" WHERE status = 'sent'").Scan(&sent))
					return sent == (i+1)*deliveryHeapWorkers
				}, time.Minute, 10*time.Millisecond)
				runtime.ReadMemStats(&stats)
				allocated += stats.TotalAlloc - allocBefore
			}
			deliveries := float64(b.N * deliveryHeapWorkers)
			b.ReportMetric(float64(live)/deliveries/(1<<20), "live-MiB/op")
			b.ReportMetric(float64(allocated)/deliveries, "alloc-B/op")
		})
	}
}

// collectMemStats reads the memory statistics after two collections: the first
// moves pooled buffers (pgx keeps its large ones in a sync.Pool) to the
// pool's victim cache, the second frees them, so that the heap holds only
// what is in use.
func collectMemStats(stats *runtime.MemStats) {
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(stats)
}
