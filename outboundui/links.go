package outboundui

import (
	"net/url"
	"strconv"

	"github.com/google/uuid"
)

// links builds the dashboard's URLs under its prefix. Every link a page holds
// comes from here, so that a page never pastes a path together itself.
type links struct {
	prefix  string
	riverUI string
}

// withQuery returns path with the non-empty values of query.
func withQuery(path string, query url.Values) string {
	for k, v := range query {
		if len(v) == 0 || v[0] == "" {
			delete(query, k)
		}
	}
	if len(query) == 0 {
		return path
	}
	return path + "?" + query.Encode()
}

func (l links) envelopes(query url.Values) string {
	return withQuery(l.prefix+"/", query)
}

func (l links) envelope(id uuid.UUID, query url.Values) string {
	return withQuery(l.prefix+"/envelopes/"+id.String(), query)
}

func (l links) cancelEnvelope(id uuid.UUID) string {
	return l.prefix + "/envelopes/" + id.String() + "/cancel"
}

func (l links) messages(query url.Values) string {
	return withQuery(l.prefix+"/messages", query)
}

func (l links) message(id uuid.UUID, query url.Values) string {
	return withQuery(l.prefix+"/messages/"+id.String(), query)
}

func (l links) cancelMessage(id uuid.UUID) string {
	return l.prefix + "/messages/" + id.String() + "/cancel"
}

func (l links) stylesheet(version string) string {
	return l.prefix + "/static/outboundui.css?v=" + version
}

// riverJob is the job's page in River's UI, or "" when none is mounted.
func (l links) riverJob(jobID int64) string {
	if l.riverUI == "" || jobID == 0 {
		return ""
	}
	return l.riverUI + "/jobs/" + strconv.FormatInt(jobID, 10)
}
