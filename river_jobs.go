package outbound

import (
	"context"

	"github.com/cairnloop/outbound/internal/dbutil"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// deleteUnusedJobs deletes the delivery jobs that this transaction inserted
// for messages that turned out to be duplicates.
//
// The three functions of this file are the library's only writes to River's
// tables outside River's API (outboundtest's Worker has the others), each
// one statement for many jobs, or for a job together with its message. Their
// statements are pinned to sqltext.RiverVersion.
func (c *Client) deleteUnusedJobs(ctx context.Context, tx pgx.Tx, jobIDs []int64) error {
	_, err := tx.Exec(ctx, c.queries.DeleteUnusedJobs, jobIDs)
	return err
}

// cancelJobs cancels delivery jobs that are not running or finalized, as
// River's JobCancel does for them: each job of jobIDs that is the delivery
// job of the message at the same index of messageIDs.
func (c *Client) cancelJobs(ctx context.Context, tx pgx.Tx, jobIDs []int64, messageIDs []string) error {
	_, err := tx.Exec(ctx, c.queries.CancelJobs, jobIDs, messageIDs)
	return err
}

// recordSentCompleteJob records a message sent, if claimID still holds it,
// and completes its running job in the same statement, as
// river.JobCompleteTx would. It reports whether the message was recorded.
func (c *Client) recordSentCompleteJob(ctx context.Context, messageID, claimID uuid.UUID, jobID int64) (bool, error) {
	var recorded bool
	err := c.pool.QueryRow(ctx, c.queries.RecordSentCompleteJob, dbutil.PgUUID(messageID), dbutil.PgUUID(claimID), jobID).Scan(&recorded)
	return recorded, err
}
