package sqltext

import "github.com/jackc/pgx/v5"

// CreateMigrationTable creates the table of applied library versions unless
// it exists.
func CreateMigrationTable(schema string) string {
	return `CREATE TABLE IF NOT EXISTS ` + pgx.Identifier{schema, "outbound_migration"}.Sanitize() + ` (
	version integer PRIMARY KEY,
	name text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`
}

// SelectMigrationVersions reads the applied library versions.
func SelectMigrationVersions(schema string) string {
	return `SELECT version FROM ` + pgx.Identifier{schema, "outbound_migration"}.Sanitize()
}

// RecordMigration records one applied version. $1 version, $2 name.
func RecordMigration(schema string) string {
	return `INSERT INTO ` + pgx.Identifier{schema, "outbound_migration"}.Sanitize() + ` (version, name) VALUES ($1, $2)`
}

// ForgetMigration forgets one reverted version. $1 version.
func ForgetMigration(schema string) string {
	return `DELETE FROM ` + pgx.Identifier{schema, "outbound_migration"}.Sanitize() + ` WHERE version = $1`
}

// RecordRiverSchema records the installation's River schema. $1 schema name.
func RecordRiverSchema(schema string) string {
	return `INSERT INTO ` + pgx.Identifier{schema, "installation"}.Sanitize() + ` (river_schema) VALUES ($1)
ON CONFLICT (singleton) DO UPDATE SET river_schema = excluded.river_schema, updated_at = now()
WHERE installation.river_schema <> excluded.river_schema`
}
