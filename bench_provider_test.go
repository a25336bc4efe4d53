package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnloop/outbound"
)

// provider is a stand-in for an SMS or email API with a rate limit: a token
// bucket of rate calls a second and burst tokens, which answers a call
// beyond it "429 Too Many Requests" with "Retry-After: 1". It counts every
// call, and the calls it accepted in each second of wall-clock time.
type provider struct {
	rate, burst float64

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	calls      int
	refused    int
	first      time.Time
	lastOK     time.Time
	acceptedIn map[int64]int // by Unix second
	calledIn   map[int64]int
}

func newProvider(rate, burst float64) *provider {
	return &provider{rate: rate, burst: burst, tokens: burst, acceptedIn: map[int64]int{}, calledIn: map[int64]int{}}
}

func (p *provider) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	now := time.Now()
	if p.last.IsZero() {
		p.last, p.first = now, now
	}
	p.tokens = min(p.burst, p.tokens+now.Sub(p.last).Seconds()*p.rate)
	p.last = now
	p.calls++
	p.calledIn[now.Unix()]++
	ok := p.tokens >= 1
	if ok {
		p.tokens--
		p.acceptedIn[now.Unix()]++
		p.lastOK = now
	} else {
		p.refused++
	}
	p.mu.Unlock()
	if !ok {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// providerNotifier calls the provider at url for each message. A 429 is
// RateLimited(Retry-After) when the worker has a rate limit, as a host with
// one would write it, and RetryAfter(Retry-After) otherwise, as a host
// without one must.
func newProviderNotifier(url string, rateLimited bool) outbound.Notifier {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
	return outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
		req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(msg.ID.String()))
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			seconds, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			err := errors.New(resp.Status)
			if rateLimited {
				return outbound.RateLimited(time.Duration(seconds)*time.Second, err)
			}
			return outbound.RetryAfter(time.Duration(seconds)*time.Second, err)
		case resp.StatusCode >= 300:
			return errors.New(resp.Status)
		}
		return nil
	})
}

// parseTestRateLimit reads LIMIT/PER, such as 100/1s.
func parseTestRateLimit(s string) (outbound.RateLimit, error) {
	limit, per, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(limit)
	d, err2 := time.ParseDuration(per)
	if !ok || err != nil || err2 != nil {
		return outbound.RateLimit{}, fmt.Errorf("rate limit %q: want LIMIT/PER such as 100/1s", s)
	}
	return outbound.RateLimit{Limit: n, Per: d}, nil
}

// BenchmarkProviderDrain drains a backlog of 1,500 messages through a
// provider that accepts 100 calls a second (burst 100) and answers the rest
// 429 with Retry-After: 1, with two worker processes at the default Config.
// impl=rate_limits gives them RateLimits of 100 a second and a Notifier that
// returns RateLimited on a 429; impl=retry_after has no limit, and a
// Notifier that returns RetryAfter, the best a host could do before. One op
// is one whole drain: run it with -benchtime 1x.
func BenchmarkProviderDrain(b *testing.B) {
	const (
		backlog = 1500
		rate    = 100
	)
	for _, impl := range []string{"rate_limits", "retry_after"} {
		b.Run(fmt.Sprintf("backlog=%d/impl=%s", backlog, impl), func(b *testing.B) {
			var last drainResult
			for b.Loop() {
				last = drainOnce(b, backlog, rate, impl == "rate_limits")
			}
			ideal := float64(backlog) / rate
			b.ReportMetric(last.drain.Seconds(), "drain-s")
			b.ReportMetric(last.drain.Seconds()/ideal, "drain/ideal")
			b.ReportMetric(float64(last.calls)/backlog, "calls/msg")
			b.ReportMetric(float64(last.refused), "429s")
			b.ReportMetric(float64(last.maxAttempts), "max-attempts")
			b.ReportMetric(float64(last.maxAcceptedPerSecond), "max-accepted/s")
			b.ReportMetric(float64(last.maxCalledPerSecond), "max-calls/s")
			b.ReportMetric(0, "ns/op") // one drain; the metrics above say it
			b.Logf("accepted per second: %v", last.acceptedPerSecond)
		})
	}
}

type drainResult struct {
	drain                                    time.Duration
	calls, refused, maxAttempts              int
	maxAcceptedPerSecond, maxCalledPerSecond int
	acceptedPerSecond                        []int
}

// drainOnce seeds the backlog, starts a provider and two worker processes,
// and waits until every message is sent.
func drainOnce(b *testing.B, backlog, rate int, rateLimited bool) drainResult {
	b.StopTimer()
	ctx := context.Background()
	schema := migratedSchema(b)
	seeder, err := outbound.New(testPool, &outbound.Config{Schema: schema, MaxBatchSize: backlog})
	require.NoError(b, err)
	ids := make([]int64, backlog)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	_, err = seeder.BulkTrigger(ctx, ids, &outbound.BulkTriggerOpts{TemplateID: "sms", RenderedBody: "Your code is 123456."})
	require.NoError(b, err)

	p := newProvider(float64(rate), float64(rate))
	server := httptest.NewServer(p)
	defer server.Close()
	env := []string{workerProviderURLEnv + "=" + server.URL}
	if rateLimited {
		env = append(env, fmt.Sprintf("%s=%d/1s", workerRateLimitEnv, rate))
	}
	b.StartTimer()
	workers := []*workerProcess{startWorkerProcess(b, schema, env...), startWorkerProcess(b, schema, env...)}
	messages := table(schema, "messages")
	require.Eventually(b, func() bool {
		var unsent int
		require.NoError(b, testPool.QueryRow(ctx, "SELECT count(*) FROM "+messages+" WHERE status <> 'sent'").Scan(&unsent))
		return unsent == 0
	}, 10*time.Minute, 20*time.Millisecond)
	b.StopTimer()
	for _, w := range workers {
		w.stop(b)
	}

	var res drainResult
	require.NoError(b, testPool.QueryRow(ctx, "SELECT max(attempts) FROM "+messages).Scan(&res.maxAttempts))
	p.mu.Lock()
	defer p.mu.Unlock()
	res.drain = p.lastOK.Sub(p.first)
	res.calls, res.refused = p.calls, p.refused
	seconds := make([]int64, 0, len(p.acceptedIn))
	for s := range p.calledIn {
		seconds = append(seconds, s)
	}
	slices.Sort(seconds)
	for _, s := range seconds {
		res.acceptedPerSecond = append(res.acceptedPerSecond, p.acceptedIn[s])
		res.maxAcceptedPerSecond = max(res.maxAcceptedPerSecond, p.acceptedIn[s])
		res.maxCalledPerSecond = max(res.maxCalledPerSecond, p.calledIn[s])
	}
	b.StartTimer()
	return res
}
