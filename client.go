package outbound

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cairnloop/outbound/internal/dbutil"
	"github.com/cairnloop/outbound/internal/delivery"
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/cairnloop/outbound/internal/telemetry"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// Client triggers outbound messages. It is safe for concurrent use.
type Client struct {
	pool         *pgxpool.Pool
	config       *Config
	queries      *sqltext.Queries
	river        *river.Client[pgx.Tx]
	telemetry    *telemetry.Telemetry
	maxBatchSize atomic.Int64
	schema       schemaState
	statusGauge  *telemetry.BacklogGauge
	// subscriptions are the subscribers to final outcomes (Subscribe).
	subscriptions subscriptions
	// delivery makes the delivery attempts of the worker's jobs.
	delivery *delivery.Executor
}

// New returns a Client writing to the tables that Migrate created in
// config.Schema and enqueuing River jobs in config.RiverSchema. A nil config
// means defaults. Errors match ErrInvalidArgument and name the bad field.
//
// New registers the backlog gauges' callback with
// Config.MeterProvider, which keeps it for the provider's life: make one
// Client per pool and keep it, as with River's client, rather than one per
// request.
func New(pool *pgxpool.Pool, config *Config) (*Client, error) {
	if pool == nil {
		return nil, invalidArgument("pool", "must not be nil")
	}
	cfg := config.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Client{
		pool:      pool,
		config:    cfg,
		queries:   sqltext.New(cfg.Schema, cfg.RiverSchema),
		telemetry: telemetry.New(cfg.TracerProvider, cfg.MeterProvider),
	}
	c.delivery = &delivery.Executor{
		Pool:          pool,
		Queries:       c.queries,
		Notifier:      cfg.Notifier,
		NotifyTimeout: cfg.NotifyTimeout,
		ClaimLength:   claimLength(cfg),
		RateLimits:    cfg.RateLimits,
		RateLimitKey:  cfg.RateLimitKey,
		Logger:        cfg.Logger,
		Telemetry:     c.telemetry,
		WithTx:        c.withTx,
		OnFinal:       c.publishFinal,

		MaxRateLimitedPause: cfg.MaxRateLimitedPause,
		Queue:               cfg.Queue,
		RiverSchema:         cfg.RiverSchema,
		PollOnly:            cfg.PollOnly,
		// A released job is fetched within a poll, or at once when River
		// listens: a second past the poll is ample.
		ReleaseHorizon: cfg.FetchPollInterval + time.Second,
	}
	// One River client both enqueues delivery jobs in callers' transactions
	// and, once Start is called, works them. Until then it only inserts.
	workers := river.NewWorkers()
	if err := c.addWorkers(workers); err != nil {
		return nil, fmt.Errorf("outbound: river workers: %w", err)
	}
	riverClient, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema:            cfg.RiverSchema,
		Logger:            cfg.Logger,
		Queues:            map[string]river.QueueConfig{cfg.Queue: {MaxWorkers: cfg.MaxWorkers}},
		Workers:           workers,
		PeriodicJobs:      c.PeriodicJobs(),
		FetchCooldown:     cfg.FetchCooldown,
		FetchPollInterval: cfg.FetchPollInterval,
		PollOnly:          cfg.PollOnly,
		// River rescues a job still running after this long and runs it
		// again; validate keeps that clear of the claim's length, and River
		// wants it no shorter than JobTimeout, which the delivery worker
		// overrides anyway.
		RescueStuckJobsAfter: cfg.RescueStuckJobsAfter,
		JobTimeout:           claimLength(cfg),
		Test:                 river.TestConfig{Time: cfg.riverTime},
	})
	if err != nil {
		return nil, fmt.Errorf("outbound: river client: %w", err)
	}
	c.river = riverClient
	c.subscriptions.logger = cfg.Logger
	c.subscriptions.dropped = c.telemetry.RecordDroppedEvent
	c.statusGauge = c.telemetry.ObserveBacklog(gaugedStatuses, c.readBacklog)
	c.maxBatchSize.Store(int64(cfg.MaxBatchSize))
	return c, nil
}

// MaxBatchSize returns the BulkTrigger cap in force.
func (c *Client) MaxBatchSize() int { return int(c.maxBatchSize.Load()) }

// SetMaxBatchSize changes the BulkTrigger cap without a restart; calls that
// start afterwards see the new cap. n must be at least 1.
func (c *Client) SetMaxBatchSize(n int) error {
	if n < 1 {
		return invalidArgument("max batch size", "must be at least 1, got %d", n)
	}
	c.maxBatchSize.Store(int64(n))
	return nil
}

// Message returns the message with the given id, or ErrNotFound.
func (c *Client) Message(ctx context.Context, id uuid.UUID) (*Message, error) {
	return c.message(ctx, c.pool, id)
}

// MessageTx is Message inside the caller's transaction, as River's
// JobGetTx is: it sees a message that tx has triggered and not yet committed.
func (c *Client) MessageTx(ctx context.Context, tx pgx.Tx, id uuid.UUID) (*Message, error) {
	if tx == nil {
		return nil, invalidArgument("tx", "must not be nil")
	}
	return c.message(ctx, tx, id)
}

func (c *Client) message(ctx context.Context, q querier, id uuid.UUID) (*Message, error) {
	if err := c.checkSchema(ctx, q); err != nil {
		return nil, err
	}
	msg, err := dbutil.ScanMessage(q.QueryRow(ctx, c.queries.SelectMessage, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: message %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("outbound: read message: %w", err)
	}
	return msg, nil
}

// MessagePreview returns the message with the given id, as Message does, but
// with at most the first maxContentBytes bytes of its Content, cut back to a
// whole character; ContentBytes says how long the whole Content is. It reads
// a message to show, such as on a dashboard, without reading a body that may
// be Config.MaxContentBytes long. maxContentBytes must be positive.
func (c *Client) MessagePreview(ctx context.Context, id uuid.UUID, maxContentBytes int) (*Message, error) {
	if maxContentBytes <= 0 || maxContentBytes > maxMaxContentBytes {
		return nil, invalidArgument("maxContentBytes", "must be between 1 and %d, got %d", maxMaxContentBytes, maxContentBytes)
	}
	if err := c.checkSchema(ctx, c.pool); err != nil {
		return nil, err
	}
	// left() counts characters, each one to four bytes: reading as many
	// characters as bytes wanted reads at most four times the bytes.
	msg, err := dbutil.ScanMessage(c.pool.QueryRow(ctx, c.queries.SelectMessagePreview, id, maxContentBytes))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: message %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("outbound: read message: %w", err)
	}
	msg.Content = cutToBytes(msg.Content, maxContentBytes)
	return msg, nil
}

// cutToBytes returns s cut to at most n bytes, ending at a whole character.
func cutToBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// auditor is the call's own Auditor if it gave one, else the config's.
func (c *Client) auditor(override Auditor) Auditor {
	if override != nil {
		return override
	}
	return c.config.Auditor
}

// inTx runs fn in a transaction of its own when callerTx is nil, or else under
// a savepoint of callerTx, so that an error undoes fn's writes either way.
func (c *Client) inTx(ctx context.Context, callerTx pgx.Tx, fn func(tx pgx.Tx) error) error {
	if callerTx == nil {
		return c.withTx(ctx, fn)
	}
	savepoint, err := callerTx.Begin(ctx)
	if err != nil {
		return fmt.Errorf("outbound: savepoint: %w", err)
	}
	if err := c.checkSchemaThen(ctx, savepoint, fn); err != nil {
		_ = savepoint.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := savepoint.Commit(ctx); err != nil {
		return fmt.Errorf("outbound: release savepoint: %w", err)
	}
	return nil
}

// withTx runs fn in a transaction of its own on the pool, committing when fn
// returns nil and rolling back otherwise.
func (c *Client) withTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := dbutil.BeginTx(ctx, c.pool)
	if err != nil {
		return fmt.Errorf("outbound: begin: %w", err)
	}
	// Rollback after a commit is a no-op; on any error path it undoes all.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := c.checkSchemaThen(ctx, tx, fn); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("outbound: commit: %w", err)
	}
	return nil
}

// checkSchemaThen runs fn in tx once the schema check has passed.
func (c *Client) checkSchemaThen(ctx context.Context, tx pgx.Tx, fn func(tx pgx.Tx) error) error {
	if err := c.checkSchema(ctx, tx); err != nil {
		return err
	}
	return fn(tx)
}

// querier is what reads go through: the pool, or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// schemaState remembers a schema check that passed, so that it runs once per
// Client. A check that fails is not remembered: the next call checks again,
// and succeeds once an operator has run Migrate.
type schemaState struct {
	checked atomic.Bool
}

// checkSchema fails with ErrSchemaMismatch unless the library's schema is
// migrated to exactly the version this library knows and River's tables
// exist. It runs on the first call that touches the database, through q, so
// that a call inside a caller's transaction needs no second connection.
func (c *Client) checkSchema(ctx context.Context, q querier) error {
	if c.schema.checked.Load() {
		return nil
	}
	cfg := c.config
	var hasVersions, hasInstallation, hasRiverJobs bool
	if err := q.QueryRow(ctx, sqltext.SchemaTables,
		pgx.Identifier{cfg.Schema, "outbound_migration"}.Sanitize(),
		pgx.Identifier{cfg.Schema, "installation"}.Sanitize(),
		pgx.Identifier{cfg.RiverSchema, "river_job"}.Sanitize(),
	).Scan(&hasVersions, &hasInstallation, &hasRiverJobs); err != nil {
		return fmt.Errorf("outbound: check schema: %w", err)
	}
	if !hasVersions {
		return schemaMismatch(cfg.Schema, "has no outbound tables: run outbound.Migrate (or apply outbound.Migrations) for it")
	}
	latest := latestMigrationVersion()
	var version int
	if hasInstallation {
		if err := q.QueryRow(ctx, c.queries.SchemaState).Scan(&version, new(*string)); err != nil {
			return fmt.Errorf("outbound: check schema: %w", err)
		}
	}
	switch {
	case !hasInstallation || version < latest:
		return schemaMismatch(cfg.Schema, "is migrated to an older version than this library's %d: run outbound.Migrate", latest)
	case version > latest:
		return schemaMismatch(cfg.Schema, "was migrated to version %d by a newer version of the library, which this one (up to version %d) cannot use: upgrade the library", version, latest)
	case !hasRiverJobs:
		return schemaMismatch(cfg.RiverSchema, "has no River tables (Config.RiverSchema): run outbound.Migrate with MigrateOpts.RiverSchema %q", cfg.RiverSchema)
	}
	c.schema.checked.Store(true)
	return nil
}

// checkRiverSchema fails with ErrSchemaMismatch when Migrate recorded another
// River schema than Config.RiverSchema: the messages' delivery jobs are
// there, and a client looking in its own River schema would take them for
// gone. It reads the record each time, so that a Migrate that moves River
// takes effect without a restart. No record (tables applied by a host's own
// tool) passes.
func (c *Client) checkRiverSchema(ctx context.Context) error {
	var (
		version     int
		riverSchema *string
	)
	if err := c.pool.QueryRow(ctx, c.queries.SchemaState).Scan(&version, &riverSchema); err != nil {
		return fmt.Errorf("outbound: check River schema: %w", err)
	}
	if riverSchema != nil && *riverSchema != c.config.RiverSchema {
		return schemaMismatch(c.config.Schema, "records River schema %q, but Config.RiverSchema is %q: the delivery jobs of these messages are not in the client's River schema, so Reconcile refuses to settle them; fix Config.RiverSchema, or run outbound.Migrate with MigrateOpts.RiverSchema %q if River moved",
			*riverSchema, c.config.RiverSchema, c.config.RiverSchema)
	}
	return nil
}

// latestMigrationVersion is the newest version of the embedded migrations.
func latestMigrationVersion() int {
	migrations, err := Migrations()
	if err != nil || len(migrations) == 0 {
		// The embedded files are checked by tests; this cannot happen in a
		// build that passed them.
		panic(fmt.Sprintf("outbound: embedded migrations: %v", err))
	}
	return migrations[len(migrations)-1].Version
}

// StatusGaugeMinInterval is the shortest time between two queries of the
// backlog gauges.
//
// Deprecated: it pins an internal bound that a caller cannot act on
// (telemetry.BacklogMinInterval, 5s, is what the gauges use); it is no
// longer part of the API and will be removed.
const StatusGaugeMinInterval = telemetry.BacklogMinInterval

// gaugedStatuses are the statuses outbound.message.backlog reports: those of
// messages awaiting a result, whose counts are the backlog, in the order of
// CountAwaitingByStatus's columns.
var gaugedStatuses = awaitingStatuses

// readBacklog counts the messages awaiting a result by status, in the order
// of gaugedStatuses, and reads the oldest pending message's age, with one
// query over the awaiting_result index.
func (c *Client) readBacklog(ctx context.Context) (*telemetry.Backlog, error) {
	if err := c.checkSchema(ctx, c.pool); err != nil {
		return nil, err
	}
	b := &telemetry.Backlog{Counts: make([]int64, len(gaugedStatuses))}
	if err := c.pool.QueryRow(ctx, c.queries.CountAwaitingByStatus).Scan(&b.Counts[0], &b.Counts[1], &b.Counts[2], &b.OldestPendingAge, &b.RateLimited); err != nil {
		return nil, err
	}
	return b, nil
}
