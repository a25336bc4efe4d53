package sqltext

import (
	"strconv"

	"github.com/jackc/pgx/v5"
)

// migrationTableColumns is the version table's definition, shared by
// Migrate's statement and the one each migration carries.
const migrationTableColumns = ` (
	version integer PRIMARY KEY,
	name text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// RecordVersionUp is what each migration's up SQL ends with: it records the
// version in outbound_migration, which a client's schema check reads, so
// that a host applying the migrations with its own tool gets a schema the
// client accepts. It runs with search_path at the library's schema, as the
// migration does. name is a migration's name, [a-z0-9_]+ by its file's.
func RecordVersionUp(version int, name string) string {
	return "\n\n-- Recorded for the client's schema check.\nCREATE TABLE IF NOT EXISTS outbound_migration" + migrationTableColumns + ";\n" +
		"INSERT INTO outbound_migration (version, name) VALUES (" + strconv.Itoa(version) + ", '" + name + "') ON CONFLICT (version) DO NOTHING;\n"
}

// RecordVersionDown is what each migration's down SQL ends with: it forgets
// the version.
func RecordVersionDown(version int) string {
	return "\n\n-- Recorded for the client's schema check.\nDELETE FROM outbound_migration WHERE version = " + strconv.Itoa(version) + ";\n"
}

// CreateMigrationTable creates the table of applied library versions unless
// it exists.
func CreateMigrationTable(schema string) string {
	return `CREATE TABLE IF NOT EXISTS ` + MigrationTable(schema) + migrationTableColumns
}

// SelectMigrationVersions reads the applied library versions.
func SelectMigrationVersions(schema string) string {
	return `SELECT version FROM ` + MigrationTable(schema)
}

// RecordRiverSchema records the installation's River schema. $1 schema name.
func RecordRiverSchema(schema string) string {
	return `INSERT INTO ` + pgx.Identifier{schema, "installation"}.Sanitize() + ` (river_schema) VALUES ($1)
ON CONFLICT (singleton) DO UPDATE SET river_schema = excluded.river_schema, updated_at = now()
WHERE installation.river_schema <> excluded.river_schema`
}

// SelectRecordedRiverSchema reads the installation's River schema: one row,
// NULL when none is recorded.
func SelectRecordedRiverSchema(schema string) string {
	return `SELECT (SELECT river_schema FROM ` + pgx.Identifier{schema, "installation"}.Sanitize() + `)`
}

// TakeMigrationLock takes the advisory lock that migrations of one schema
// take turns on, until the transaction ends: its key is a hash of the
// schema's name. $1 the schema's name, $2 the hash's seed.
const TakeMigrationLock = `SELECT pg_advisory_xact_lock(hashtextextended($1, $2))`

// SelectRiverInSearchPath finds the schema of the river_job table that the
// connection's search_path resolves, or NULL when it resolves none.
const SelectRiverInSearchPath = `SELECT (SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.oid = to_regclass('river_job'))`

// SchemaExists reports whether a schema exists. $1 its name.
const SchemaExists = `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`

// TableExists reports whether a table exists. $1 its quoted, schema-qualified
// name.
const TableExists = `SELECT to_regclass($1) IS NOT NULL`

// MigrationTable is the quoted, schema-qualified name of the version table,
// for TableExists.
func MigrationTable(schema string) string {
	return pgx.Identifier{schema, "outbound_migration"}.Sanitize()
}

// CreateSchema creates a schema unless it exists.
func CreateSchema(schema string) string {
	return `CREATE SCHEMA IF NOT EXISTS ` + pgx.Identifier{schema}.Sanitize()
}

// DropSchema drops a schema and everything in it, for the tests' harness.
func DropSchema(schema string) string {
	return `DROP SCHEMA IF EXISTS ` + pgx.Identifier{schema}.Sanitize() + ` CASCADE`
}

// SetLocalSearchPath points search_path at a schema until the transaction
// ends, for a migration's unqualified names.
func SetLocalSearchPath(schema string) string {
	return `SET LOCAL search_path TO ` + pgx.Identifier{schema}.Sanitize()
}
