// Package sqltext holds every SQL statement the outbound library runs against
// its own tables. Statements are parameterised; the only text spliced in is the
// schema name, validated by the caller and quoted here with
// pgx.Identifier.Sanitize.
//
// The rules that SQL and Go share are stated once, in rules.go: which
// statuses hold a dedup key, await a result or may be claimed, the stand-in
// for a missing envelope id, and the column lists. The statements are
// generated from them, the library's Go code reads them, and the tests check
// the migrations' generated columns, constraints and indexes against them.
package sqltext

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// SchemaTables reports whether the tables a client needs exist: $1 the
// library's version table, $2 its installation table, $3 River's job table,
// each a quoted, schema-qualified name.
const SchemaTables = `SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL, to_regclass($3) IS NOT NULL`

// Queries is the library's SQL for one schema, grouped by the table each
// statement writes (or reads, for a read).
type Queries struct {
	Messages
	MessageClaims
	Envelopes
	AuditEvents

	// RiverJobs are the statements that write River's tables.
	RiverJobs

	// RateLimits are the statements of the rate limits shared by every
	// process.
	RateLimits

	// SchemaState reads the newest applied library version and the River
	// schema Migrate recorded (NULL if none).
	SchemaState string
}

// New returns the queries for the library's schema and River's schema, both
// validated by the caller. Statements name the schemas {s} and {rs}, and
// the shared rules of rules.go by {nil}, {mcols}, {mcols_no_content},
// {ecols}, {ecols_no_body}, {undelivered} and {keyfree}.
func New(schema, riverSchema string) *Queries {
	s := pgx.Identifier{schema}.Sanitize()
	rs := pgx.Identifier{riverSchema}.Sanitize()
	r := strings.NewReplacer("{s}", s, "{rs}", rs, "{nil}", NilEnvelopeKey,
		"{mcols}", MessageColumns, "{mcols_no_content}", MessageColumnsWithoutContent, "{ecols}", EnvelopeColumns, "{ecols_no_body}", EnvelopeColumnsWithoutBody,
		"{undelivered}", inList(UndeliveredStatuses), "{keyfree}", inList(Without(Statuses, LiveStatuses)))
	return &Queries{
		Messages:      newMessages(r),
		MessageClaims: newMessageClaims(r),
		Envelopes:     newEnvelopes(r),
		AuditEvents:   newAuditEvents(r),
		RiverJobs:     newRiverJobs(r),
		RateLimits:    newRateLimits(r),

		SchemaState: r.Replace(`
SELECT (SELECT coalesce(max(version), 0) FROM {s}.outbound_migration),
	(SELECT river_schema FROM {s}.installation)`),
	}
}
