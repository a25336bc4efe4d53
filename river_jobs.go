package outbound

import (
	"context"

	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/jackc/pgx/v5"
)

// deleteUnusedJobs deletes the delivery jobs that this transaction inserted
// for messages that turned out to be duplicates.
//
// The two functions of this file, and delivery's record of a sent message
// (recordSentCompleteJob), are the library's only writes to River's
// tables outside River's API (outboundtest's Worker has the others), each
// one statement for many jobs, or for a job together with its message. Their
// statements are pinned to sqltext.RiverVersion.
func deleteUnusedJobs(ctx context.Context, tx pgx.Tx, queries *sqltext.Queries, jobIDs []int64) error {
	_, err := tx.Exec(ctx, queries.DeleteUnusedJobs, jobIDs)
	return err
}

// cancelJobs cancels delivery jobs that are not running or finalized, as
// River's JobCancel does for them: each job of jobIDs that is the delivery
// job of the message at the same index of messageIDs.
func cancelJobs(ctx context.Context, tx pgx.Tx, queries *sqltext.Queries, jobIDs []int64, messageIDs []string) error {
	_, err := tx.Exec(ctx, queries.CancelJobs, jobIDs, messageIDs)
	return err
}
