package outbound

import (
	"cmp"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// migrationFS holds the library's versioned SQL, NNN_name.up.sql and
// NNN_name.down.sql. The files use unqualified names; they run with
// search_path set to the target schema.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLockKey is the advisory lock Migrate holds so that processes migrating
// at the same time take turns instead of racing on CREATE TABLE. It is a
// constant ("outbound" in ASCII) so that every process agrees on it.
const migrateLockKey int64 = 0x6f7574626f756e64

// MigrateOpts configures Migrate and MigrateDown. A nil *MigrateOpts means
// defaults.
type MigrateOpts struct {
	// Schema is where the library's tables live. Defaults to DefaultSchema.
	Schema string

	// RiverSchema is where River's tables live. Defaults to Schema.
	RiverSchema string

	// TargetVersion, for MigrateDown only, is the version to go down to.
	// Defaults to 0: every library migration is reverted. Migrate always goes
	// fully up.
	TargetVersion int

	// Logger receives River's migration log lines. Defaults to a logger that
	// discards them.
	Logger *slog.Logger
}

// Migration is one version of the library's schema.
type Migration struct {
	Version int
	Name    string
	Up      string
	Down    string
}

var migrationFileRE = regexp.MustCompile(`^(\d{3})_([a-z0-9_]+)\.(up|down)\.sql$`)

// Migrations returns the library's migrations in version order, for hosts
// that apply them with their own migration tool.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("outbound: read migrations: %w", err)
	}
	byVersion := map[int]*Migration{}
	for _, entry := range entries {
		m := migrationFileRE.FindStringSubmatch(entry.Name())
		if m == nil {
			return nil, fmt.Errorf("outbound: migration file %q is not named NNN_name.up.sql or NNN_name.down.sql", entry.Name())
		}
		version, _ := strconv.Atoi(m[1])
		sql, err := fs.ReadFile(migrationFS, path.Join("migrations", entry.Name()))
		if err != nil {
			return nil, fmt.Errorf("outbound: read migration %s: %w", entry.Name(), err)
		}
		mig := byVersion[version]
		if mig == nil {
			mig = &Migration{Version: version, Name: m[2]}
			byVersion[version] = mig
		}
		if m[3] == "up" {
			mig.Up = string(sql)
		} else {
			mig.Down = string(sql)
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, mig := range byVersion {
		if mig.Up == "" || mig.Down == "" {
			return nil, fmt.Errorf("outbound: migration %03d_%s lacks its up or down file", mig.Version, mig.Name)
		}
		out = append(out, *mig)
	}
	slices.SortFunc(out, func(a, b Migration) int { return cmp.Compare(a.Version, b.Version) })
	return out, nil
}

// Migrate brings the library's tables in opts.Schema and River's tables in
// opts.RiverSchema fully up to date, creating the schemas when missing. It is
// idempotent, and safe to call from several processes at once: they take turns
// on a Postgres advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool, opts *MigrateOpts) error {
	return migrate(ctx, pool, opts, true)
}

// MigrateDown reverts the library's migrations down to opts.TargetVersion
// (default 0: all of them, dropping the library's tables). River's tables are
// left alone: they may serve other jobs; remove them with rivermigrate.
func MigrateDown(ctx context.Context, pool *pgxpool.Pool, opts *MigrateOpts) error {
	return migrate(ctx, pool, opts, false)
}

func migrate(ctx context.Context, pool *pgxpool.Pool, opts *MigrateOpts, up bool) error {
	if pool == nil {
		return fmt.Errorf("%w: pool must not be nil", ErrInvalidArgument)
	}
	if opts == nil {
		opts = &MigrateOpts{}
	}
	schema := cmp.Or(opts.Schema, DefaultSchema)
	riverSchema := cmp.Or(opts.RiverSchema, schema)
	if err := validateSchemaName("MigrateOpts.Schema", schema); err != nil {
		return err
	}
	if err := validateSchemaName("MigrateOpts.RiverSchema", riverSchema); err != nil {
		return err
	}
	migrations, err := Migrations()
	if err != nil {
		return err
	}
	if opts.TargetVersion < 0 || (opts.TargetVersion > 0 && !slices.ContainsFunc(migrations, func(m Migration) bool { return m.Version == opts.TargetVersion })) {
		return fmt.Errorf("%w: MigrateOpts.TargetVersion %d is not a migration version", ErrInvalidArgument, opts.TargetVersion)
	}

	// A session-level lock on one connection spans the library's migration
	// transaction and River's own per-version transactions on other
	// connections.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("outbound: migrate: acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return fmt.Errorf("outbound: migrate: take advisory lock: %w", err)
	}
	defer func() {
		// Unlock with a fresh context: the caller's may be done, and a lock
		// left on a pooled connection would block every later Migrate.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockKey); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()

	if up {
		if err := applyUp(ctx, conn.Conn(), schema, riverSchema, migrations); err != nil {
			return err
		}
		migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{
			Schema: riverSchema,
			Logger: cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		})
		if err != nil {
			return fmt.Errorf("outbound: migrate river: %w", err)
		}
		if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
			return fmt.Errorf("outbound: migrate river: %w", err)
		}
		return nil
	}
	return applyDown(ctx, conn.Conn(), schema, migrations, opts.TargetVersion)
}

// applyUp applies every pending library migration in one transaction.
func applyUp(ctx context.Context, conn *pgx.Conn, schema, riverSchema string, migrations []Migration) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, s := range []string{schema, riverSchema} {
			if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{s}.Sanitize()); err != nil {
				return fmt.Errorf("outbound: migrate: create schema %s: %w", s, err)
			}
		}
		applied, err := appliedVersions(ctx, tx, schema)
		if err != nil {
			return err
		}
		for _, m := range migrations {
			if applied[m.Version] {
				continue
			}
			if err := execMigration(ctx, tx, schema, m.Up); err != nil {
				return fmt.Errorf("outbound: migrate: apply %03d_%s up: %w", m.Version, m.Name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema, "outbound_migration"}.Sanitize()+" (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
				return fmt.Errorf("outbound: migrate: record version %d: %w", m.Version, err)
			}
		}
		return nil
	})
}

// applyDown reverts applied migrations above target, newest first, in one
// transaction.
func applyDown(ctx context.Context, conn *pgx.Conn, schema string, migrations []Migration, target int) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{schema, "outbound_migration"}.Sanitize()).Scan(&exists); err != nil {
			return fmt.Errorf("outbound: migrate down: %w", err)
		}
		if !exists {
			return nil
		}
		applied, err := appliedVersions(ctx, tx, schema)
		if err != nil {
			return err
		}
		for _, m := range slices.Backward(migrations) {
			if m.Version <= target || !applied[m.Version] {
				continue
			}
			if err := execMigration(ctx, tx, schema, m.Down); err != nil {
				return fmt.Errorf("outbound: migrate: apply %03d_%s down: %w", m.Version, m.Name, err)
			}
			if _, err := tx.Exec(ctx, "DELETE FROM "+pgx.Identifier{schema, "outbound_migration"}.Sanitize()+" WHERE version = $1", m.Version); err != nil {
				return fmt.Errorf("outbound: migrate: forget version %d: %w", m.Version, err)
			}
		}
		return nil
	})
}

func appliedVersions(ctx context.Context, tx pgx.Tx, schema string) (map[int]bool, error) {
	table := pgx.Identifier{schema, "outbound_migration"}.Sanitize()
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+table+` (
		version integer PRIMARY KEY,
		name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return nil, fmt.Errorf("outbound: migrate: create version table: %w", err)
	}
	rows, err := tx.Query(ctx, "SELECT version FROM "+table)
	if err != nil {
		return nil, fmt.Errorf("outbound: migrate: read versions: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("outbound: migrate: read versions: %w", err)
	}
	applied := make(map[int]bool, len(versions))
	for _, v := range versions {
		applied[v] = true
	}
	return applied, nil
}

// execMigration runs one file's SQL with search_path pointing at the schema;
// SET LOCAL ends with the transaction, so the pooled connection keeps its own.
func execMigration(ctx context.Context, tx pgx.Tx, schema, sql string) error {
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, sql)
	return err
}
