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

	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// migrationFS holds the library's versioned SQL, NNN_name.up.sql and
// NNN_name.down.sql. The files use unqualified names; they run with
// search_path set to the target schema. They are the one place SQL lives
// outside internal/sqltext: hosts apply them with tools of their own
// (Migrations), so they stay plain files, and TestRulesMatchSchema checks
// what they make against sqltext's rules.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLockSeed seeds the hash of a schema's name that keys the advisory
// lock its migrations take turns on, so that processes migrating one schema
// at the same time take turns instead of racing on CREATE TABLE, while those
// migrating other schemas (other tenants', parallel tests') go on beside
// them. It is a constant ("outbound" in ASCII) so that every process agrees
// on the keys, and so that they are unlikely to meet another application's.
const migrateLockSeed int64 = 0x6f7574626f756e64

// MigrateOpts configures Migrate and MigrateDown. A nil *MigrateOpts means
// defaults.
type MigrateOpts struct {
	// Schema is where the library's tables live. Defaults to DefaultSchema.
	Schema string

	// RiverSchema is where River's tables live, and Migrate records it as
	// the installation's River schema. Defaults to the one already recorded
	// for Schema, so that a process that leaves it empty never moves a
	// River schema that another recorded; on a schema with none recorded,
	// to Schema. Set it to move the record.
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
// that apply them with their own migration tool. Each runs with search_path
// at the library's schema. Each Up ends by recording its version in the
// outbound_migration table, and each Down by forgetting it, since a client
// checks that table before its first call: the files in migrations/ are the
// same SQL without that record.
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
			mig.Up = string(sql) + sqltext.RecordVersionUp(version, m[2])
		} else {
			mig.Down = string(sql) + sqltext.RecordVersionDown(version)
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
// opts.RiverSchema fully up to date, creating the schemas when missing, and
// records opts.RiverSchema as the installation's River schema. With
// opts.RiverSchema empty it keeps the River schema already recorded, and
// migrates River's tables there. It is idempotent, and safe to call from
// several processes at once: migrations of one schema take turns on a
// Postgres advisory lock of that schema's own (River's, of the River schema),
// so migrations of other schemas never wait for them.
//
// On a schema with no River schema recorded, opts.RiverSchema empty means
// River's tables go beside the library's, in opts.Schema. When River's tables
// already exist in the connection's search_path (where a host's own River
// lives, in public by default), that would make a second River beside the
// host's, so Migrate refuses with ErrInvalidArgument, naming the schema it
// found: set RiverSchema to it to share the host's River, or to opts.Schema
// for a River of the library's own.
//
// It needs one pool connection at a time, holds nothing between its
// transactions (its lock is transaction-scoped), and so also works on a pool
// with MaxConns 1 and through PgBouncer in transaction pooling mode. A role
// without CREATE on the database can run it once the schemas exist. A schema
// migrated by a newer version of the library is ErrSchemaMismatch.
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
		return invalidArgument("pool", "must not be nil")
	}
	if opts == nil {
		opts = &MigrateOpts{}
	}
	schema := cmp.Or(opts.Schema, DefaultSchema)
	if err := validateSchemaName("MigrateOpts.Schema", schema); err != nil {
		return err
	}
	if opts.RiverSchema != "" {
		if err := validateSchemaName("MigrateOpts.RiverSchema", opts.RiverSchema); err != nil {
			return err
		}
	}
	migrations, err := Migrations()
	if err != nil {
		return err
	}
	if opts.TargetVersion < 0 || (opts.TargetVersion > 0 && !slices.ContainsFunc(migrations, func(m Migration) bool { return m.Version == opts.TargetVersion })) {
		return invalidArgument("MigrateOpts.TargetVersion", "%d is not a migration version", opts.TargetVersion)
	}
	if !up {
		return lockedTx(ctx, pool, schema, func(tx pgx.Tx) error {
			return applyDown(ctx, tx, schema, migrations, opts.TargetVersion)
		})
	}

	var riverSchema string
	if err := lockedTx(ctx, pool, schema, func(tx pgx.Tx) (err error) {
		riverSchema, err = applyUp(ctx, tx, schema, opts.RiverSchema, migrations)
		return err
	}); err != nil {
		return err
	}
	return migrateRiver(ctx, pool, riverSchema, cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)))
}

// lockedTx runs fn in a transaction on one pool connection, holding the
// migration lock of schema until the transaction ends. The lock is
// transaction-scoped so that nothing outlives the transaction: a session lock
// would need a connection held across several transactions, and through
// PgBouncer's transaction pooling it could be left on a server connection
// that another client gets next.
func lockedTx(ctx context.Context, pool *pgxpool.Pool, schema string, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, sqltext.TakeMigrationLock, schema, migrateLockSeed); err != nil {
			return fmt.Errorf("outbound: migrate: take the advisory lock of schema %s: %w", schema, err)
		}
		return fn(tx)
	})
}

// migrateRiver creates the River schema when missing and applies River's
// pending migrations one version per transaction, as River's own Migrate does
// (some of its versions need the one before committed), each under the
// migration lock of the River schema. River's Migrate would run them on
// connections of its own while this process holds none, which is fine, but
// without the lock two processes would race on the same version; and since
// the lock is the River schema's, library schemas that share one River take
// turns on it, and those with Rivers of their own do not.
func migrateRiver(ctx context.Context, pool *pgxpool.Pool, riverSchema string, logger *slog.Logger) error {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: riverSchema, Logger: logger})
	if err != nil {
		return fmt.Errorf("outbound: migrate river: %w", err)
	}
	for {
		applied := 0
		if err := lockedTx(ctx, pool, riverSchema, func(tx pgx.Tx) error {
			if err := createSchemaIfMissing(ctx, tx, riverSchema); err != nil {
				return err
			}
			// MigrateTx is deprecated because several versions in one
			// transaction can fail; it is called for one version at a time.
			//lint:ignore SA1019 one version per transaction, as Migrate does
			res, err := migrator.MigrateTx(ctx, tx, rivermigrate.DirectionUp, &rivermigrate.MigrateOpts{MaxSteps: 1})
			if err != nil {
				return err
			}
			applied = len(res.Versions)
			return nil
		}); err != nil {
			return fmt.Errorf("outbound: migrate river: %w", err)
		}
		if applied == 0 {
			return nil
		}
	}
}

// applyUp creates the library's schema when missing, applies every pending
// library migration, and records the installation's River schema, all in tx.
// It returns the River schema recorded: riverSchema when given; else the one
// recorded before, or schema when there is none, unless a River already in
// the connection's search_path makes the choice the caller's (see Migrate).
func applyUp(ctx context.Context, tx pgx.Tx, schema, riverSchema string, migrations []Migration) (string, error) {
	// Read before the migrations set search_path to schema.
	var hostRiver string
	if riverSchema == "" {
		var err error
		if hostRiver, err = riverInSearchPath(ctx, tx, schema); err != nil {
			return "", err
		}
	}
	if err := createSchemaIfMissing(ctx, tx, schema); err != nil {
		return "", err
	}
	applied, err := appliedVersions(ctx, tx, schema)
	if err != nil {
		return "", err
	}
	if err := refuseNewerVersions(schema, applied, migrations); err != nil {
		return "", err
	}
	for _, m := range migrations {
		if applied[m.Version] {
			continue
		}
		// The migration's SQL records its version itself.
		if err := execMigration(ctx, tx, schema, m.Up); err != nil {
			return "", fmt.Errorf("outbound: migrate: apply %03d_%s up: %w", m.Version, m.Name, err)
		}
	}
	if riverSchema == "" {
		// Another process may have recorded River's schema on purpose; one
		// that was not told where River is must not move it.
		var recorded *string
		if err := tx.QueryRow(ctx, sqltext.SelectRecordedRiverSchema(schema)).Scan(&recorded); err != nil {
			return "", fmt.Errorf("outbound: migrate: read recorded river schema: %w", err)
		}
		switch {
		case recorded != nil:
			riverSchema = *recorded
		case hostRiver != "":
			return "", invalidArgument("MigrateOpts.RiverSchema",
				"must be set: River's tables already exist in schema %q, in the connection's search_path, where a host's own River lives; "+
					"set RiverSchema to %q to deliver with that River, or to %q for a River of the library's own beside its tables",
				hostRiver, hostRiver, schema)
		default:
			riverSchema = schema
		}
	}
	if _, err := tx.Exec(ctx, sqltext.RecordRiverSchema(schema), riverSchema); err != nil {
		return "", fmt.Errorf("outbound: migrate: record river schema: %w", err)
	}
	return riverSchema, nil
}

// riverInSearchPath returns the schema of the River tables that the
// connection's search_path finds, where a host's own River lives by default,
// or "" when there are none, when they are schema's own, or when they are a
// River the library made for another of its schemas (one whose installation
// records itself as its River schema). No other schema is looked at.
func riverInSearchPath(ctx context.Context, tx pgx.Tx, schema string) (string, error) {
	var found *string
	if err := tx.QueryRow(ctx, sqltext.SelectRiverInSearchPath).Scan(&found); err != nil {
		return "", fmt.Errorf("outbound: migrate: look for River's tables in the search_path: %w", err)
	}
	if found == nil || *found == schema {
		return "", nil
	}
	var hasInstallation bool
	if err := tx.QueryRow(ctx, sqltext.TableExists, pgx.Identifier{*found, "installation"}.Sanitize()).Scan(&hasInstallation); err != nil {
		return "", fmt.Errorf("outbound: migrate: look for an installation in schema %s: %w", *found, err)
	}
	if hasInstallation {
		var recorded *string
		if err := tx.QueryRow(ctx, sqltext.SelectRecordedRiverSchema(*found)).Scan(&recorded); err != nil {
			return "", fmt.Errorf("outbound: migrate: read the river schema recorded in schema %s: %w", *found, err)
		}
		if recorded != nil && *recorded == *found {
			return "", nil
		}
	}
	return *found, nil
}

// createSchemaIfMissing creates a schema unless it exists. CREATE SCHEMA IF
// NOT EXISTS would not do: PostgreSQL checks the CREATE privilege on the
// database before it looks, so a role that owns an existing schema but may
// not create new ones would be refused.
func createSchemaIfMissing(ctx context.Context, tx pgx.Tx, schema string) error {
	var exists bool
	if err := tx.QueryRow(ctx, sqltext.SchemaExists, schema).Scan(&exists); err != nil {
		return fmt.Errorf("outbound: migrate: look for schema %s: %w", schema, err)
	}
	if exists {
		return nil
	}
	if _, err := tx.Exec(ctx, sqltext.CreateSchema(schema)); err != nil {
		return fmt.Errorf("outbound: migrate: create schema %s: %w", schema, err)
	}
	return nil
}

// refuseNewerVersions fails when the schema holds a version this library
// does not know: a newer library migrated it, and this one must not touch it.
func refuseNewerVersions(schema string, applied map[int]bool, migrations []Migration) error {
	latest := migrations[len(migrations)-1].Version
	for v := range applied {
		if v > latest {
			return schemaMismatch(schema, "was migrated to version %d by a newer version of the library, which this one (up to version %d) cannot use: upgrade the library", v, latest)
		}
	}
	return nil
}

// applyDown reverts applied migrations above target, newest first, in tx.
func applyDown(ctx context.Context, tx pgx.Tx, schema string, migrations []Migration, target int) error {
	var exists bool
	if err := tx.QueryRow(ctx, sqltext.TableExists, sqltext.MigrationTable(schema)).Scan(&exists); err != nil {
		return fmt.Errorf("outbound: migrate down: %w", err)
	}
	if !exists {
		return nil
	}
	applied, err := appliedVersions(ctx, tx, schema)
	if err != nil {
		return err
	}
	if err := refuseNewerVersions(schema, applied, migrations); err != nil {
		return err
	}
	for _, m := range slices.Backward(migrations) {
		if m.Version <= target || !applied[m.Version] {
			continue
		}
		// The migration's SQL forgets its version itself.
		if err := execMigration(ctx, tx, schema, m.Down); err != nil {
			return fmt.Errorf("outbound: migrate: apply %03d_%s down: %w", m.Version, m.Name, err)
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, tx pgx.Tx, schema string) (map[int]bool, error) {
	if _, err := tx.Exec(ctx, sqltext.CreateMigrationTable(schema)); err != nil {
		return nil, fmt.Errorf("outbound: migrate: create version table: %w", err)
	}
	rows, err := tx.Query(ctx, sqltext.SelectMigrationVersions(schema))
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
	if _, err := tx.Exec(ctx, sqltext.SetLocalSearchPath(schema)); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, sql)
	return err
}
