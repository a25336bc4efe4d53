package outbound_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/testdb"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// testPool is the pool every test and example shares; each test gets a schema
// of its own. It is set once by TestMain.
var testPool *pgxpool.Pool

// testDatabaseURL is the URL testPool connects to.
var testDatabaseURL string

func TestMain(m *testing.M) {
	if schema := os.Getenv(workerSchemaEnv); schema != "" {
		os.Exit(runWorkerProcess(schema))
	}
	os.Exit(runTests(m))
}

// runTests runs the tests on the shared harness, with a pool large enough
// for the concurrent tests.
func runTests(m *testing.M) int {
	// Each test schema has a River of its own beside the library's tables.
	migrate := func(ctx context.Context, pool *pgxpool.Pool, schema string) error {
		return outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema, RiverSchema: schema})
	}
	return testdb.Main(m, 40, migrate, func(pool *pgxpool.Pool, url string) { testPool, testDatabaseURL = pool, url })
}

// newSchemaName returns a schema name unique to this run and test process.
func newSchemaName() string { return testdb.SchemaName("obt") }

// migratedSchema returns a migrated schema of the test's own: a new one, or
// one an earlier test left, emptied (see testdb.Migrate).
func migratedSchema(tb testing.TB) string {
	tb.Helper()
	return testdb.Migrate(tb, testPool, "obt")
}

// migratedSchemas migrates the library's tables and River's into two new
// schemas, dropped when the test ends, and returns their names.
func migratedSchemas(tb testing.TB) (schema, riverSchema string) {
	tb.Helper()
	schema, riverSchema = newSchemaName(), newSchemaName()
	tb.Cleanup(func() { dropSchema(schema); dropSchema(riverSchema) })
	require.NoError(tb, outbound.Migrate(context.Background(), testPool, &outbound.MigrateOpts{Schema: schema, RiverSchema: riverSchema}))
	return schema, riverSchema
}

// dropSchema drops a schema a test made by hand.
func dropSchema(schema string) { testdb.Drop(testPool, schema) }

// testBundle is what setup made for one test.
type testBundle struct {
	client *outbound.Client
	schema string
	// pool is the client's pool: testPool, or the test's own when working.
	pool *pgxpool.Pool
	// audit stores events in the schema's audit_events table. The client
	// uses it only under the audited option.
	audit *outbound.TableAuditor
	// factory seeds rows in the schema.
	factory *factory
}

// setupOptions are what setup's options set.
type setupOptions struct {
	config  *outbound.Config
	schema  string
	audited bool
	working bool
}

// setupOption changes how setup makes a test's client.
type setupOption func(*setupOptions)

// withConfig has the client made from config, whose Schema setup sets.
func withConfig(config *outbound.Config) setupOption {
	return func(o *setupOptions) {
		if config != nil {
			o.config = config
		}
	}
}

// audited has the schema's TableAuditor as Config.Auditor.
func audited() setupOption { return func(o *setupOptions) { o.audited = true } }

// working starts the embedded worker, on a pool of the test's own, and stops
// it when the test ends. A test's worker and River's listener hold
// connections for as long as they run, so each gets its own pool rather than
// crowding the shared one. MaxWorkers defaults to 4 and RetryPolicy to a
// fixed 50ms, so that tests of retries are quick.
func working() setupOption { return func(o *setupOptions) { o.working = true } }

// onSchema uses a schema that is already migrated instead of a new one.
func onSchema(schema string) setupOption { return func(o *setupOptions) { o.schema = schema } }

// setup makes a client on a schema of its own, migrated for the test and
// dropped when it ends.
func setup(tb testing.TB, opts ...setupOption) *testBundle {
	tb.Helper()
	o := &setupOptions{config: &outbound.Config{}}
	for _, opt := range opts {
		opt(o)
	}
	if o.schema == "" {
		o.schema = migratedSchema(tb)
	}
	config := o.config
	config.Schema = o.schema
	pool := testPool
	if o.working {
		if config.MaxWorkers == 0 {
			config.MaxWorkers = 4
		}
		if config.RetryPolicy == nil {
			config.RetryPolicy = fixedRetry(50 * time.Millisecond)
		}
		pool = newTestPool(tb, int32(config.MaxWorkers)+6)
	}
	audit, err := outbound.NewTableAuditor(pool, o.schema)
	require.NoError(tb, err)
	if o.audited {
		config.Auditor = audit
	}
	client, err := outbound.New(pool, config)
	require.NoError(tb, err)
	if o.working {
		require.NoError(tb, client.Start(context.Background()))
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(tb, client.Stop(ctx))
		})
	}
	return &testBundle{client: client, schema: o.schema, pool: pool, audit: audit, factory: newFactory(o.schema)}
}

// mustTrigger is client.Trigger, failing the test on an error.
func mustTrigger(ctx context.Context, tb testing.TB, client *outbound.Client, conversationID int64, opts *outbound.TriggerOpts) *outbound.TriggerResult {
	tb.Helper()
	res, err := client.Trigger(ctx, conversationID, opts)
	require.NoError(tb, err)
	return res
}

// mustSubscribe is client.Subscribe, failing the test on an error; the
// subscription ends with the test.
func mustSubscribe(tb testing.TB, client *outbound.Client, kinds ...outbound.EventKind) <-chan *outbound.Event {
	tb.Helper()
	events, unsubscribe, err := client.Subscribe(kinds...)
	require.NoError(tb, err)
	tb.Cleanup(unsubscribe)
	return events
}

// mustBulkTrigger is client.BulkTrigger, failing the test on an error.
func mustBulkTrigger(ctx context.Context, tb testing.TB, client *outbound.Client, conversationIDs []int64, opts *outbound.BulkTriggerOpts) *outbound.BulkTriggerResult {
	tb.Helper()
	res, err := client.BulkTrigger(ctx, conversationIDs, opts)
	require.NoError(tb, err)
	return res
}

// table returns the quoted, schema-qualified name of a table.
func table(schema, name string) string {
	return pgx.Identifier{schema, name}.Sanitize()
}

// countRows counts the rows of one table of the schema.
func countRows(tb testing.TB, schema, name string) int {
	tb.Helper()
	var n int
	require.NoError(tb, testPool.QueryRow(context.Background(), "SELECT count(*) FROM "+table(schema, name)).Scan(&n))
	return n
}

// rowCounts reports the rows of every table the library writes.
type rowCounts struct{ Envelopes, Messages, Jobs, AuditEvents int }

func countAll(tb testing.TB, schema string) rowCounts {
	tb.Helper()
	return rowCounts{
		Envelopes:   countRows(tb, schema, "bulk_envelopes"),
		Messages:    countRows(tb, schema, "messages"),
		Jobs:        countRows(tb, schema, "river_job"),
		AuditEvents: countRows(tb, schema, "audit_events"),
	}
}

// jobRow is the part of a River job the tests look at.
type jobRow struct {
	ID          int64
	Kind        string
	Queue       string
	State       string
	Args        map[string]any
	MaxAttempts int
	Priority    int
	ScheduledAt time.Time
	Attempt     int
}

func jobByID(tb testing.TB, schema string, id int64) *jobRow {
	tb.Helper()
	var j jobRow
	require.NoError(tb, testPool.QueryRow(context.Background(),
		"SELECT id, kind, queue, state::text, args, max_attempts, priority, scheduled_at, attempt FROM "+table(schema, "river_job")+" WHERE id = $1", id).
		Scan(&j.ID, &j.Kind, &j.Queue, &j.State, &j.Args, &j.MaxAttempts, &j.Priority, &j.ScheduledAt, &j.Attempt))
	return &j
}

// exampleDatabaseURL is the database runnable examples connect to: the
// harness's throwaway cluster, or DATABASE_URL.
func exampleDatabaseURL() string { return testDatabaseURL }

// exampleSchema returns a schema of the example's own, so examples run side by
// side with tests; an application would use the default schema.
func exampleSchema() string { return newSchemaName() }

// dropExampleSchema removes an example's schema.
func dropExampleSchema(pool *pgxpool.Pool, schema string) { testdb.Drop(pool, schema) }

// failingAuditor fails every event, as an audit store that is down would.
var failingAuditor = outbound.AuditorFunc(func(context.Context, pgx.Tx, outbound.AuditEvent) error {
	return errors.New("audit store down")
})

// ctxT is a test's context, cancelled when the test ends. It has no
// deadline of its own: how long a call may take is the behaviour of a few
// tests, which set their own, and on a loaded machine a fixed deadline here
// failed tests that were only slow (parallel subtests wait for a slot under
// their parent's context). A hang is go test's -timeout to catch, with every
// goroutine's stack.
// waitCeiling bounds a wait for behaviour against a hang: a broken build
// hits it, a busy machine never does. A wait ends when what it waits for
// happens; no verdict depends on how soon.
const waitCeiling = 3 * time.Minute

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	return ctx
}

// newTestPool connects a pool of the test's own, closed when the test ends.
// configure, if given, changes the pool's config first.
func newTestPool(tb testing.TB, maxConns int32, configure ...func(*pgxpool.Config)) *pgxpool.Pool {
	tb.Helper()
	config, err := pgxpool.ParseConfig(testDatabaseURL)
	require.NoError(tb, err)
	config.MaxConns = maxConns
	for _, fn := range configure {
		fn(config)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), config)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	return pool
}

// fixedRetry retries after a fixed delay, so tests of retries are quick.
type fixedRetry time.Duration

func (d fixedRetry) NextRetry(*rivertype.JobRow) time.Time { return time.Now().Add(time.Duration(d)) }

// notifierCall is one call a recordingNotifier received.
type notifierCall struct {
	Message outbound.Message
	At      time.Time
}

// recordingNotifier records every call and answers with fn, or nil when fn
// is nil.
type recordingNotifier struct {
	mu    sync.Mutex
	calls []notifierCall
	fn    func(ctx context.Context, msg *outbound.Message) error
}

func (n *recordingNotifier) OnOutboundTriggered(ctx context.Context, msg *outbound.Message) error {
	n.mu.Lock()
	n.calls = append(n.calls, notifierCall{Message: *msg, At: time.Now()})
	n.mu.Unlock()
	if n.fn == nil {
		return nil
	}
	return n.fn(ctx, msg)
}

// Calls returns a copy of the calls so far.
func (n *recordingNotifier) Calls() []notifierCall {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.calls)
}

// callsFor returns the calls for one message.
func (n *recordingNotifier) callsFor(id uuid.UUID) []notifierCall {
	var out []notifierCall
	for _, c := range n.Calls() {
		if c.Message.ID == id {
			out = append(out, c)
		}
	}
	return out
}

// withApplicationName names a pool's connections, so that a test can find
// them in pg_stat_activity.
func withApplicationName(name string) func(*pgxpool.Config) {
	return func(c *pgxpool.Config) { c.ConnConfig.RuntimeParams["application_name"] = name }
}

// gateNotifier blocks every call until the gate opens, and keeps count of the
// calls in flight, for all messages and for each one.
type gateNotifier struct {
	open   chan struct{}
	result func(ctx context.Context, msg *outbound.Message) error

	mu       sync.Mutex
	calls    map[uuid.UUID]int
	inFlight map[uuid.UUID]int
	total    int
	maxTotal int
	maxOneID int
	opened   bool
}

// newGateNotifier returns a closed gate; result, if not nil, is what each
// call returns once let through.
func newGateNotifier(result func(ctx context.Context, msg *outbound.Message) error) *gateNotifier {
	return &gateNotifier{
		open:     make(chan struct{}),
		result:   result,
		calls:    map[uuid.UUID]int{},
		inFlight: map[uuid.UUID]int{},
	}
}

func (g *gateNotifier) OnOutboundTriggered(ctx context.Context, msg *outbound.Message) error {
	g.mu.Lock()
	g.calls[msg.ID]++
	g.inFlight[msg.ID]++
	g.total++
	g.maxTotal = max(g.maxTotal, g.total)
	g.maxOneID = max(g.maxOneID, g.inFlight[msg.ID])
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.inFlight[msg.ID]--
		g.total--
		g.mu.Unlock()
	}()
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	if g.result != nil {
		return g.result(ctx, msg)
	}
	return nil
}

// Open lets every call through, now and from now on. It may be called more
// than once.
func (g *gateNotifier) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.opened {
		g.opened = true
		close(g.open)
	}
}

// InFlight is the number of calls waiting at the gate.
func (g *gateNotifier) InFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

// MaxInFlight is the most calls that ever waited at once, in all and for any
// one message.
func (g *gateNotifier) MaxInFlight() (all, oneMessage int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.maxTotal, g.maxOneID
}

// CallsFor is the number of calls made for one message.
func (g *gateNotifier) CallsFor(id uuid.UUID) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[id]
}

// waitInFlight waits until n calls are waiting at the gate.
func (g *gateNotifier) waitInFlight(tb testing.TB, n int) {
	tb.Helper()
	require.Eventually(tb, func() bool { return g.InFlight() >= n }, waitCeiling, 5*time.Millisecond,
		"%d notifier calls in flight, want %d", g.InFlight(), n)
}

// waitForStatus waits until every message has one of the statuses, and
// returns the messages as they then are.
func waitForStatus(tb testing.TB, client *outbound.Client, ids []uuid.UUID, statuses ...outbound.MessageStatus) []*outbound.Message {
	tb.Helper()
	var msgs []*outbound.Message
	require.EventuallyWithT(tb, func(c *assert.CollectT) {
		msgs = msgs[:0]
		for _, id := range ids {
			msg, err := client.Message(context.Background(), id)
			require.NoError(c, err)
			require.Contains(c, statuses, msg.Status, "message %s", id)
			msgs = append(msgs, msg)
		}
	}, waitCeiling, 20*time.Millisecond)
	return msgs
}

func messageIDs(msgs []*outbound.Message) []uuid.UUID {
	ids := make([]uuid.UUID, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

// failFirstUpdateTo makes the first update of a message to the status fail,
// as a connection lost while recording it would; later updates go through.
// A sequence counts the attempts because, unlike a row, it keeps counting
// across the failed transaction's rollback.
func failFirstUpdateTo(tb testing.TB, schema string, status outbound.MessageStatus) {
	tb.Helper()
	sequence := table(schema, "fail_first_"+string(status)+"_seq")
	function := table(schema, "fail_first_"+string(status))
	_, err := testPool.Exec(context.Background(), fmt.Sprintf(`
CREATE SEQUENCE %[1]s;
CREATE FUNCTION %[2]s() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.status = %[4]s AND nextval('%[1]s') = 1 THEN
		RAISE EXCEPTION 'injected failure recording %%', NEW.status;
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER fail_first_update BEFORE UPDATE ON %[3]s FOR EACH ROW EXECUTE FUNCTION %[2]s();`,
		sequence, function, table(schema, "messages"), quoteLiteral(string(status))))
	require.NoError(tb, err)
}

// quoteLiteral quotes a string as an SQL literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// conversations returns n distinct conversation ids, out of numeric order so
// that tests see input order kept rather than sorted.
func conversations(n int) []int64 {
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(1000 + (i*7919)%(n*10+1))
	}
	return ids
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// statementCounter counts every statement pgx sends: queries, batch entries
// and COPYs. River's insert NOTIFY is counted apart: River sends it at most
// once per call and rate-limits it by time, so whether a given call sends it
// depends on the clock, not on N.
type statementCounter struct{ n, notifies atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "name: PGNotifyMany") {
		c.notifies.Add(1)
		return ctx
	}
	c.n.Add(1)
	return ctx
}
func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (c *statementCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	c.n.Add(1)
}
func (c *statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
func (c *statementCounter) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *statementCounter) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

// A worker process is this test binary started again with these variables
// set: TestMain sees them and runs runWorkerProcess instead of the tests.
const (
	workerSchemaEnv      = "OUTBOUND_TEST_WORKER_SCHEMA"
	workerDatabaseURLEnv = "OUTBOUND_TEST_WORKER_DATABASE_URL"
	// workerNotifyTimeoutEnv, when set, is the worker's NotifyTimeout; the
	// worker then fetches as soon as a worker is free, so that a kill lands
	// mid-delivery. Everything else, RescueStuckJobsAfter and the retry
	// policy included, stays at the defaults.
	workerNotifyTimeoutEnv = "OUTBOUND_TEST_WORKER_NOTIFY_TIMEOUT"
	// workerNotifyDelayEnv is how long each notifier call sleeps.
	workerNotifyDelayEnv = "OUTBOUND_TEST_WORKER_NOTIFY_DELAY"
	// workerRescueAfterEnv, when set, is the worker's
	// RescueStuckJobsAfter, for go test -short's shorter kill test.
	workerRescueAfterEnv = "OUTBOUND_TEST_WORKER_RESCUE_AFTER"
	// workerDebugLogEnv, when set, has the worker log at debug level, River's
	// elector and maintenance services included, to its stderr.
	workerDebugLogEnv = "OUTBOUND_TEST_WORKER_DEBUG_LOG"
	// workerProviderURLEnv, when set, has the worker's notifier call a
	// provider over HTTP instead (see providerNotifier), with MaxWorkers
	// and every other setting at its default.
	workerProviderURLEnv = "OUTBOUND_TEST_WORKER_PROVIDER_URL"
	// workerRateLimitEnv, with workerProviderURLEnv, is the worker's
	// RateLimits for the key "", as LIMIT/PER such as 100/1s; unset, none.
	workerRateLimitEnv = "OUTBOUND_TEST_WORKER_RATE_LIMIT"
	// workerKillAtCallEnv, when set to N, has the worker's notifier kill
	// its own process with SIGKILL inside its Nth call, once the call is
	// recorded: a crash between a provider's call and the record of its
	// result, made to happen rather than hoped for.
	workerKillAtCallEnv = "OUTBOUND_TEST_WORKER_KILL_AT_CALL"
)

// runWorkerProcess works deliveries of one schema until SIGTERM or SIGINT.
// Its notifier records each call in the schema's test_deliveries table, with
// the process id, then sleeps a little so that deliveries overlap. It prints
// "ready" once it works.
func runWorkerProcess(schema string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "worker process:", err)
		return 1
	}
	poolConfig, err := pgxpool.ParseConfig(os.Getenv(workerDatabaseURLEnv))
	if err != nil {
		return fail(err)
	}
	// Four deliveries, River's listener, and the notifier's own inserts; or,
	// calling a provider, MaxWorkers' default of 100 deliveries, whose claims
	// and records are short.
	poolConfig.MaxConns = 10
	if os.Getenv(workerProviderURLEnv) != "" {
		poolConfig.MaxConns = 20
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), poolConfig)
	if err != nil {
		return fail(err)
	}
	defer pool.Close()
	pid := os.Getpid()
	insert := "INSERT INTO " + table(schema, "test_deliveries") +
		" (message_id, conversation_id, attempt, pid) VALUES ($1, $2, $3, $4)"
	delay := 5 * time.Millisecond
	if d, err := time.ParseDuration(os.Getenv(workerNotifyDelayEnv)); err == nil {
		delay = d
	}
	killAt, _ := strconv.ParseInt(os.Getenv(workerKillAtCallEnv), 10, 64)
	var calls atomic.Int64
	config := &outbound.Config{
		Schema:     schema,
		MaxWorkers: 4,
		Notifier: outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
			if _, err := pool.Exec(ctx, insert, msg.ID, msg.ConversationID, msg.Attempts, pid); err != nil {
				return err
			}
			if calls.Add(1) == killAt {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				select {} // the signal lands before this call can return
			}
			time.Sleep(delay)
			return nil
		}),
	}
	if timeout, err := time.ParseDuration(os.Getenv(workerNotifyTimeoutEnv)); err == nil {
		config.NotifyTimeout = timeout
		// Fetch as soon as a worker is free, so that the workers are busy
		// and a kill lands mid-delivery rather than between fetches.
		config.FetchCooldown = time.Millisecond
	}
	if rescue, err := time.ParseDuration(os.Getenv(workerRescueAfterEnv)); err == nil {
		config.RescueStuckJobsAfter = rescue
	}
	if provider := os.Getenv(workerProviderURLEnv); provider != "" {
		config = &outbound.Config{Schema: schema, Notifier: newProviderNotifier(provider, os.Getenv(workerRateLimitEnv) != "")}
		if limit := os.Getenv(workerRateLimitEnv); limit != "" {
			l, err := parseTestRateLimit(limit)
			if err != nil {
				return fail(err)
			}
			config.RateLimits = map[string]outbound.RateLimit{"": l}
		}
	}
	if os.Getenv(workerDebugLogEnv) != "" {
		config.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	client, err := outbound.New(pool, config)
	if err != nil {
		return fail(err)
	}
	if err := client.Start(context.Background()); err != nil {
		return fail(err)
	}
	fmt.Println("ready")
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Stop(stopCtx); err != nil {
		return fail(err)
	}
	return 0
}

// factory seeds rows in one schema, as River's testfactory does: in states
// a test needs but the public API reaches only by waiting, or in numbers it
// would take too long to write one call at a time. Each method takes the
// calling test's tb, so that a failure fails that test.
type factory struct{ schema string }

func newFactory(schema string) *factory { return &factory{schema: schema} }

// setStatus sets a message's status, and its metadata's copy, as the worker
// would have left it: a sent message gets sent_at.
func (f *factory) setStatus(tb testing.TB, id uuid.UUID, status outbound.MessageStatus) {
	tb.Helper()
	f.ageMessage(tb, id, status, 0)
}

// ageMessage sets a message's status and moves its sent_at and updated_at
// back by age, as if it had reached that status that long ago.
func (f *factory) ageMessage(tb testing.TB, id uuid.UUID, status outbound.MessageStatus, age time.Duration) {
	tb.Helper()
	tag, err := testPool.Exec(context.Background(), `UPDATE `+table(f.schema, "messages")+`
SET status = $2, updated_at = now() - make_interval(secs => $3),
	sent_at = CASE WHEN $2 = 'sent' THEN now() - make_interval(secs => $3) END,
	metadata = jsonb_set(metadata, '{status}', to_jsonb($2::text))
WHERE id = $1`, id, string(status), age.Seconds())
	require.NoError(tb, err)
	require.EqualValues(tb, 1, tag.RowsAffected())
}

// setLastError sets a message's last error, as a failed attempt would.
func (f *factory) setLastError(tb testing.TB, id uuid.UUID, lastError string) {
	tb.Helper()
	tag, err := testPool.Exec(context.Background(), "UPDATE "+table(f.schema, "messages")+" SET last_error = $2 WHERE id = $1", id, lastError)
	require.NoError(tb, err)
	require.EqualValues(tb, 1, tag.RowsAffected())
}

// abandonClaim leaves a message in flight under a claim that has run out,
// as a worker that died mid-attempt would, and with a cancel requested when
// cancelRequested, as CancelEnvelope leaves a message it found in flight.
func (f *factory) abandonClaim(tb testing.TB, id uuid.UUID, cancelRequested bool) {
	tb.Helper()
	f.setStatus(tb, id, outbound.MessageStatusDelivering)
	tag, err := testPool.Exec(context.Background(), `UPDATE `+table(f.schema, "messages")+`
SET attempts = 1, claim_id = gen_random_uuid(), claimed_until = now() - interval '1 second',
	cancel_requested_at = CASE WHEN $2 THEN now() END
WHERE id = $1`, id, cancelRequested)
	require.NoError(tb, err)
	require.EqualValues(tb, 1, tag.RowsAffected())
}

// backdateMessage makes a message look as if it had been made, and had
// reached the status, age ago: its UUIDv7 id gets that time, as the library
// would have given it then. It returns the new id.
func (f *factory) backdateMessage(tb testing.TB, id uuid.UUID, status outbound.MessageStatus, age time.Duration) uuid.UUID {
	tb.Helper()
	f.ageMessage(tb, id, status, age)
	var newID uuid.UUID
	require.NoError(tb, testPool.QueryRow(context.Background(), `UPDATE `+table(f.schema, "messages")+`
SET id = $3, created_at = now() - make_interval(secs => $2)
WHERE id = $1 RETURNING id`, id, age.Seconds(), uuidV7At(time.Now().Add(-age))).Scan(&newID))
	return newID
}

// backdateEnvelope moves an envelope's requested_at back by age.
func (f *factory) backdateEnvelope(tb testing.TB, id uuid.UUID, age time.Duration) {
	tb.Helper()
	tag, err := testPool.Exec(context.Background(), "UPDATE "+table(f.schema, "bulk_envelopes")+
		" SET requested_at = now() - make_interval(secs => $2) WHERE id = $1", id, age.Seconds())
	require.NoError(tb, err)
	require.EqualValues(tb, 1, tag.RowsAffected())
}

// setJobState sets River jobs' state, finalized now when the state is
// final, as an operator acting in River's UI would.
func (f *factory) setJobState(tb testing.TB, state rivertype.JobState, jobIDs ...int64) {
	tb.Helper()
	tag, err := testPool.Exec(context.Background(), "UPDATE "+table(f.schema, "river_job")+`
SET state = $2::text::`+table(f.schema, "river_job_state")+`,
	finalized_at = CASE WHEN $2::text IN ('cancelled', 'completed', 'discarded') THEN now() END
WHERE id = ANY($1)`, jobIDs, string(state))
	require.NoError(tb, err)
	require.EqualValues(tb, len(jobIDs), tag.RowsAffected())
}

// messageRow is a message for insertMessages. Zero fields get the defaults
// noted, or the column's.
type messageRow struct {
	// ID defaults to a UUIDv7 of CreatedAt, as the library would have made.
	ID             uuid.UUID
	ConversationID int64
	TemplateID     string                 // "t"
	Content        string                 // "body"
	Status         outbound.MessageStatus // pending
	BulkEnvelopeID *uuid.UUID
	JobID          *int64
	// CreatedAt defaults to now; UpdatedAt to CreatedAt; SentAt, for a sent
	// message, to UpdatedAt.
	CreatedAt time.Time
	UpdatedAt time.Time
	SentAt    *time.Time
}

// insertMessages inserts messages in one statement and returns their ids.
// They have no River job unless JobID names one.
func (f *factory) insertMessages(tb testing.TB, rows []messageRow) []uuid.UUID {
	tb.Helper()
	now := time.Now()
	ids := make([]uuid.UUID, len(rows))
	for i := range rows {
		r := &rows[i]
		r.TemplateID = cmp.Or(r.TemplateID, "t")
		r.Content = cmp.Or(r.Content, "body")
		r.Status = cmp.Or(r.Status, outbound.MessageStatusPending)
		r.CreatedAt = cmp.Or(r.CreatedAt, now)
		r.UpdatedAt = cmp.Or(r.UpdatedAt, r.CreatedAt)
		if r.SentAt == nil && r.Status == outbound.MessageStatusSent {
			r.SentAt = &r.UpdatedAt
		}
		if r.ID == uuid.Nil {
			r.ID = uuidV7At(r.CreatedAt)
		}
		ids[i] = r.ID
	}
	// Arrays, which pgx sends in binary: a seed of 100,000 rows takes as
	// long as the server's insert, not as long as encoding it.
	var (
		pgIDs, envelopes                = make([]pgtype.UUID, len(rows)), make([]pgtype.UUID, len(rows))
		conversationIDs                 = make([]int64, len(rows))
		templates, contents, statuses   = make([]string, len(rows)), make([]string, len(rows)), make([]string, len(rows))
		jobIDs                          = make([]*int64, len(rows))
		createdAts, updatedAts, sentAts = make([]time.Time, len(rows)), make([]time.Time, len(rows)), make([]*time.Time, len(rows))
	)
	for i, r := range rows {
		pgIDs[i] = pgtype.UUID{Bytes: r.ID, Valid: true}
		if r.BulkEnvelopeID != nil {
			envelopes[i] = pgtype.UUID{Bytes: *r.BulkEnvelopeID, Valid: true}
		}
		conversationIDs[i], templates[i], contents[i], statuses[i] = r.ConversationID, r.TemplateID, r.Content, string(r.Status)
		jobIDs[i], createdAts[i], updatedAts[i], sentAts[i] = r.JobID, r.CreatedAt, r.UpdatedAt, r.SentAt
	}
	_, err := testPool.Exec(context.Background(), `INSERT INTO `+table(f.schema, "messages")+`
	(id, conversation_id, template_id, content, status, bulk_envelope_id, job_id, created_at, updated_at, sent_at, metadata)
SELECT id, conversation_id, template_id, content, status, bulk_envelope_id, job_id, created_at, updated_at, sent_at,
	jsonb_build_object('template_id', template_id, 'status', status, 'bulk_envelope_id', bulk_envelope_id)
FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::bigint[],
	$8::timestamptz[], $9::timestamptz[], $10::timestamptz[])
	AS r(id, conversation_id, template_id, content, status, bulk_envelope_id, job_id, created_at, updated_at, sent_at)`,
		pgIDs, conversationIDs, templates, contents, statuses, envelopes, jobIDs, createdAts, updatedAts, sentAts)
	require.NoError(tb, err)
	return ids
}

// envelopeRow is an envelope for insertEnvelopes. Zero fields get the
// defaults noted.
type envelopeRow struct {
	ID         uuid.UUID `json:"id"`          // a new UUIDv7
	TemplateID string    `json:"template_id"` // "t"
	// Recipients default to one conversation, 1.
	Recipients  []int64                 `json:"recipient_conversation_ids"`
	Status      outbound.EnvelopeStatus `json:"status"`       // submitted
	RequestedAt time.Time               `json:"requested_at"` // now
}

// insertEnvelopes inserts envelopes, with no messages, in one statement and
// returns their ids.
func (f *factory) insertEnvelopes(tb testing.TB, rows []envelopeRow) []uuid.UUID {
	tb.Helper()
	now := time.Now()
	ids := make([]uuid.UUID, len(rows))
	for i := range rows {
		r := &rows[i]
		if r.ID == uuid.Nil {
			r.ID = uuid.Must(uuid.NewV7())
		}
		r.TemplateID = cmp.Or(r.TemplateID, "t")
		if r.Recipients == nil {
			r.Recipients = []int64{1}
		}
		r.Status = cmp.Or(r.Status, outbound.EnvelopeStatusSubmitted)
		r.RequestedAt = cmp.Or(r.RequestedAt, now)
		ids[i] = r.ID
	}
	// The rows go as one JSON array, which jsonb_to_recordset reads back:
	// unnest would flatten the recipients' arrays.
	data, err := json.Marshal(rows)
	require.NoError(tb, err)
	_, err = testPool.Exec(context.Background(), `INSERT INTO `+table(f.schema, "bulk_envelopes")+`
	(id, template_id, recipient_conversation_ids, status, requested_at, rendered_body, count, effective_cap)
SELECT id, template_id, recipient_conversation_ids, status, requested_at, 'body', cardinality(recipient_conversation_ids), 25
FROM jsonb_to_recordset($1::text::jsonb)
	AS r(id uuid, template_id text, recipient_conversation_ids bigint[], status text, requested_at timestamptz)`, string(data))
	require.NoError(tb, err)
	return ids
}

// uuidV7At returns a UUIDv7 whose time is at, as the library would have made
// at that time.
func uuidV7At(at time.Time) uuid.UUID {
	id := uuid.Must(uuid.NewV7())
	ms := uint64(at.UnixMilli())
	for i := range 6 {
		id[i] = byte(ms >> (40 - 8*i))
	}
	return id
}

type telemetryProviders struct {
	tracer *sdktrace.TracerProvider
	meter  *sdkmetric.MeterProvider
	spans  *tracetest.SpanRecorder
}

// newTelemetryRecorder returns a manual metric reader and in-memory providers.
func newTelemetryRecorder() (*sdkmetric.ManualReader, *telemetryProviders) {
	reader := sdkmetric.NewManualReader()
	spans := tracetest.NewSpanRecorder()
	return reader, &telemetryProviders{
		tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
		meter:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
		spans:  spans,
	}
}

func collect(t *testing.T, reader *sdkmetric.ManualReader) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	return rm
}

// findMetrics returns every recorded metric with the given name. A
// callback's error, such as the outbound.message.backlog gauge's on a client whose
// schema is not migrated, is logged: it leaves the other metrics collected.
func findMetrics(t *testing.T, reader *sdkmetric.ManualReader, name string) []metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Logf("collect: %v", err)
	}
	var found []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				found = append(found, m)
			}
		}
	}
	return found
}

// spanAttrs returns a span's attributes as text, by key.
func spanAttrs(s sdktrace.ReadOnlySpan) map[string]string {
	out := map[string]string{}
	for _, kv := range s.Attributes() {
		out[string(kv.Key)] = kv.Value.String()
	}
	return out
}

// metricAttributeSets returns the attribute set of every data point of m.
func metricAttributeSets(t *testing.T, m metricdata.Metrics) []attribute.Set {
	t.Helper()
	var sets []attribute.Set
	switch data := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, dp := range data.DataPoints {
			sets = append(sets, dp.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, dp := range data.DataPoints {
			sets = append(sets, dp.Attributes)
		}
	case metricdata.Gauge[int64]:
		for _, dp := range data.DataPoints {
			sets = append(sets, dp.Attributes)
		}
	case metricdata.Gauge[float64]:
		for _, dp := range data.DataPoints {
			sets = append(sets, dp.Attributes)
		}
	default:
		t.Fatalf("metric %s has unexpected type %T", m.Name, m.Data)
	}
	return sets
}

// pointKeys says how the sums below key a metric's data points.
type pointKeys int

const (
	// byOutcome keys each point by its outcome attribute.
	byOutcome pointKeys = iota
	// byOutcomeReason keys each point by "outcome/reason", or by its
	// outcome alone when it has no reason.
	byOutcomeReason
)

func (k pointKeys) of(attrs attribute.Set) string {
	o, _ := attrs.Value("outcome")
	key := o.AsString()
	if r, ok := attrs.Value("reason"); ok && k == byOutcomeReason {
		key += "/" + r.AsString()
	}
	return key
}

// requirePointSums checks, for each metric named in want, its sums by key.
func requirePointSums(t *testing.T, reader *sdkmetric.ManualReader, keys pointKeys, want map[string]map[string]int64) {
	t.Helper()
	for name, sums := range want {
		require.Equal(t, sums, pointSums(t, reader, name, keys), name)
	}
}

// pointSums sums a metric's data points by key: an int64 counter's values,
// or a histogram's counts.
func pointSums(t *testing.T, reader *sdkmetric.ManualReader, name string, keys pointKeys) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, m := range findMetrics(t, reader, name) {
		switch data := m.Data.(type) {
		case metricdata.Sum[int64]:
			for _, dp := range data.DataPoints {
				out[keys.of(dp.Attributes)] += dp.Value
			}
		case metricdata.Histogram[float64]:
			for _, dp := range data.DataPoints {
				out[keys.of(dp.Attributes)] += int64(dp.Count)
			}
		default:
			t.Fatalf("metric %s is neither an int64 counter nor a float64 histogram: %T", name, m.Data)
		}
	}
	return out
}

// deliveryCounts sums outbound.delivery.attempts by "outcome/reason", checking
// that those are each point's only attributes.
func deliveryCounts(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	for _, m := range findMetrics(t, reader, "outbound.delivery.attempts") {
		for _, set := range metricAttributeSets(t, m) {
			var keys []string
			for _, kv := range set.ToSlice() {
				keys = append(keys, string(kv.Key))
			}
			require.ElementsMatch(t, []string{"outcome", "reason"}, keys, "the only attributes")
		}
	}
	return pointSums(t, reader, "outbound.delivery.attempts", byOutcomeReason)
}

// histogramBounds returns the bucket bounds of every point of a histogram.
func histogramBounds(t *testing.T, reader *sdkmetric.ManualReader, name string) [][]float64 {
	t.Helper()
	var bounds [][]float64
	for _, m := range findMetrics(t, reader, name) {
		require.Equal(t, "s", m.Unit, name)
		h, ok := m.Data.(metricdata.Histogram[float64])
		require.True(t, ok, "%s is a float64 histogram", name)
		for _, dp := range h.DataPoints {
			bounds = append(bounds, dp.Bounds)
		}
	}
	return bounds
}

// gaugeByStatus reads outbound.message.backlog by status.
func gaugeByStatus(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, m := range findMetrics(t, reader, "outbound.message.backlog") {
		require.Equal(t, "{message}", m.Unit)
		gauge, ok := m.Data.(metricdata.Gauge[int64])
		require.True(t, ok, "outbound.message.backlog is an int64 gauge, got %T", m.Data)
		for _, dp := range gauge.DataPoints {
			require.Equal(t, 1, dp.Attributes.Len(), "status is the only attribute")
			s, _ := dp.Attributes.Value("status")
			out[s.AsString()] = dp.Value
		}
	}
	return out
}
