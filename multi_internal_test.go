package outbound

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
)

func TestJobIDsByMessage(t *testing.T) {
	t.Parallel()

	ids := []uuid.UUID{uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())}
	job := func(jobID int64, messageID uuid.UUID) *rivertype.JobInsertResult {
		args, err := json.Marshal(DeliveryArgs{MessageID: messageID, ConversationID: 1, TemplateID: "t"})
		require.NoError(t, err)
		return &rivertype.JobInsertResult{Job: &rivertype.JobRow{ID: jobID, EncodedArgs: args}}
	}

	t.Run("InOrder", func(t *testing.T) {
		t.Parallel()
		got, err := jobIDsByMessage([]*rivertype.JobInsertResult{job(10, ids[0]), job(11, ids[1]), job(12, ids[2])}, ids)
		require.NoError(t, err)
		require.Equal(t, []int64{10, 11, 12}, got)
	})

	t.Run("OutOfOrder", func(t *testing.T) {
		t.Parallel()
		got, err := jobIDsByMessage([]*rivertype.JobInsertResult{job(12, ids[2]), job(10, ids[0]), job(11, ids[1])}, ids)
		require.NoError(t, err)
		require.Equal(t, []int64{10, 11, 12}, got)
	})

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		_, err := jobIDsByMessage([]*rivertype.JobInsertResult{job(10, ids[0]), job(11, ids[1]), job(13, uuid.Must(uuid.NewV7()))}, ids)
		require.ErrorContains(t, err, ids[2].String())
		_, err = jobIDsByMessage([]*rivertype.JobInsertResult{job(10, ids[0])}, ids)
		require.ErrorContains(t, err, "1 jobs for 3 messages")
	})
}
