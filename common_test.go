package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/testdb"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	return testdb.Main(m, 40, func(pool *pgxpool.Pool, url string) { testPool, testDatabaseURL = pool, url })
}

// newSchemaName returns a schema name unique to this run and test process.
func newSchemaName() string { return testdb.SchemaName("obt") }

// migratedSchema migrates a new schema for one test and drops it when the test
// ends.
func migratedSchema(tb testing.TB) string {
	tb.Helper()
	return testdb.Migrate(tb, testPool, "obt")
}

func dropSchema(tb testing.TB, schema string) {
	_, err := testPool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	require.NoError(tb, err)
}

type testBundle struct {
	client *outbound.Client
	schema string
	// audit stores events in the schema's audit_events table. The client
	// uses it only when made by setupAudited.
	audit *outbound.TableAuditor
}

// setup makes a client on a schema of its own. config may be nil; its Schema
// is set by setup.
func setup(tb testing.TB, config *outbound.Config) *testBundle {
	tb.Helper()
	return setupWith(tb, config, false)
}

// setupAudited is setup with the schema's TableAuditor as Config.Auditor.
func setupAudited(tb testing.TB, config *outbound.Config) *testBundle {
	tb.Helper()
	return setupWith(tb, config, true)
}

func setupWith(tb testing.TB, config *outbound.Config, audited bool) *testBundle {
	tb.Helper()
	schema := migratedSchema(tb)
	audit, err := outbound.NewTableAuditor(testPool, schema)
	require.NoError(tb, err)
	if config == nil {
		config = &outbound.Config{}
	}
	config.Schema = schema
	if audited {
		config.Auditor = audit
	}
	client, err := outbound.New(testPool, config)
	require.NoError(tb, err)
	return &testBundle{client: client, schema: schema, audit: audit}
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
	ScheduledAt time.Time
}

func jobByID(tb testing.TB, schema string, id int64) *jobRow {
	tb.Helper()
	var j jobRow
	require.NoError(tb, testPool.QueryRow(context.Background(),
		"SELECT id, kind, queue, state::text, args, max_attempts, scheduled_at FROM "+table(schema, "river_job")+" WHERE id = $1", id).
		Scan(&j.ID, &j.Kind, &j.Queue, &j.State, &j.Args, &j.MaxAttempts, &j.ScheduledAt))
	return &j
}

// exampleDatabaseURL is the database runnable examples connect to: the
// harness's throwaway cluster, or DATABASE_URL.
func exampleDatabaseURL() string { return testDatabaseURL }

// exampleSchema returns a schema of the example's own, so examples run side by
// side with tests; an application would use the default schema.
func exampleSchema() string { return newSchemaName() }

// dropExampleSchema removes an example's schema.
func dropExampleSchema(pool *pgxpool.Pool, schema string) {
	if _, err := pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		panic(err)
	}
}

// failingAuditor fails every event, as an audit store that is down would.
var failingAuditor = outbound.AuditorFunc(func(context.Context, pgx.Tx, outbound.AuditEvent) error {
	return errors.New("audit store down")
})

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// setupWorking is setup on a pool of the test's own, with the embedded worker
// started; the worker is stopped when the test ends. A test's worker and
// River's listener hold connections for as long as they run, so each gets its
// own pool rather than crowding the shared one.
func setupWorking(tb testing.TB, config *outbound.Config) *testBundle {
	tb.Helper()
	return setupWorkingOn(tb, migratedSchema(tb), config)
}

// setupWorkingOn is setupWorking on a schema that is already migrated.
func setupWorkingOn(tb testing.TB, schema string, config *outbound.Config) *testBundle {
	tb.Helper()
	if config == nil {
		config = &outbound.Config{}
	}
	config.Schema = schema
	if config.MaxWorkers == 0 {
		config.MaxWorkers = 4
	}
	if config.RetryPolicy == nil {
		config.RetryPolicy = fixedRetry(50 * time.Millisecond)
	}
	pool := newTestPool(tb, int32(config.MaxWorkers)+6)
	client, err := outbound.New(pool, config)
	require.NoError(tb, err)
	audit, err := outbound.NewTableAuditor(pool, schema)
	require.NoError(tb, err)
	require.NoError(tb, client.Start(context.Background()))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(tb, client.Stop(ctx))
	})
	return &testBundle{client: client, schema: schema, audit: audit}
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
	require.Eventually(tb, func() bool { return g.InFlight() >= n }, 60*time.Second, 5*time.Millisecond,
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
	}, 60*time.Second, 20*time.Millisecond)
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
