package outbound

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/jackc/pgx/v5"
)

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
	// schema and riverSchema are Config.Schema and Config.RiverSchema;
	// queries reads the installation record in schema; pool serves
	// checkRiver, which reads the record each time.
	schema, riverSchema string
	queries             *sqltext.Queries
	pool                querier
}

// check fails with ErrSchemaMismatch unless the library's schema is
// migrated to exactly the version this library knows and River's tables
// exist. It runs on the first call that touches the database, through q, so
// that a call inside a caller's transaction needs no second connection.
func (s *schemaState) check(ctx context.Context, q querier) error {
	if s.checked.Load() {
		return nil
	}
	var hasVersions, hasInstallation, hasRiverJobs bool
	if err := q.QueryRow(ctx, sqltext.SchemaTables,
		pgx.Identifier{s.schema, "outbound_migration"}.Sanitize(),
		pgx.Identifier{s.schema, "installation"}.Sanitize(),
		pgx.Identifier{s.riverSchema, "river_job"}.Sanitize(),
	).Scan(&hasVersions, &hasInstallation, &hasRiverJobs); err != nil {
		return fmt.Errorf("outbound: check schema: %w", err)
	}
	if !hasVersions {
		return schemaMismatch(s.schema, "has no outbound tables: run outbound.Migrate (or apply outbound.Migrations) for it")
	}
	latest := latestMigrationVersion()
	var version int
	if hasInstallation {
		if err := q.QueryRow(ctx, s.queries.SchemaState).Scan(&version, new(*string)); err != nil {
			return fmt.Errorf("outbound: check schema: %w", err)
		}
	}
	switch {
	case !hasInstallation || version < latest:
		return schemaMismatch(s.schema, "is migrated to an older version than this library's %d: run outbound.Migrate", latest)
	case version > latest:
		return schemaMismatch(s.schema, "was migrated to version %d by a newer version of the library, which this one (up to version %d) cannot use: upgrade the library", version, latest)
	case !hasRiverJobs:
		return schemaMismatch(s.riverSchema, "has no River tables (Config.RiverSchema): run outbound.Migrate with MigrateOpts.RiverSchema %q", s.riverSchema)
	}
	s.checked.Store(true)
	return nil
}

// checkRiver fails with ErrSchemaMismatch when Migrate recorded another
// River schema than Config.RiverSchema: the messages' delivery jobs are
// there, and a client looking in its own River schema would take them for
// gone. It reads the record each time, so that a Migrate that moves River
// takes effect without a restart. No record (tables applied by a host's own
// tool) passes.
func (s *schemaState) checkRiver(ctx context.Context) error {
	var (
		version     int
		riverSchema *string
	)
	if err := s.pool.QueryRow(ctx, s.queries.SchemaState).Scan(&version, &riverSchema); err != nil {
		return fmt.Errorf("outbound: check River schema: %w", err)
	}
	if riverSchema != nil && *riverSchema != s.riverSchema {
		return schemaMismatch(s.schema, "records River schema %q, but Config.RiverSchema is %q: the delivery jobs of these messages are not in the client's River schema, so Reconcile refuses to settle them; fix Config.RiverSchema, or run outbound.Migrate with MigrateOpts.RiverSchema %q if River moved",
			*riverSchema, s.riverSchema, s.riverSchema)
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
