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

// The two kinds of item the dashboard pages: envelopes and messages.
const (
	envelopesPath = "/envelopes"
	messagesPath  = "/messages"
	// rateLimitsPath is the page of the client's rate limit keys.
	rateLimitsPath = "/ratelimits"
)

// envelopes is the list of envelopes, the dashboard's home page.
func (l links) envelopes(query url.Values) string { return withQuery(l.prefix+"/", query) }

// rateLimits is the page of rate limit keys.
func (l links) rateLimits(query url.Values) string { return withQuery(l.prefix+rateLimitsPath, query) }

// liftPause is where the rate limits page's lift buttons post.
func (l links) liftPause() string { return l.prefix + rateLimitsPath + "/lift" }

// messages is the list of messages.
func (l links) messages(query url.Values) string { return withQuery(l.prefix+messagesPath, query) }

func (l links) envelope(id uuid.UUID, query url.Values) string {
	return l.item(envelopesPath, id, query)
}
func (l links) message(id uuid.UUID, query url.Values) string { return l.item(messagesPath, id, query) }
func (l links) cancelEnvelope(id uuid.UUID) string            { return l.item(envelopesPath, id, nil) + "/cancel" }
func (l links) cancelMessage(id uuid.UUID) string             { return l.item(messagesPath, id, nil) + "/cancel" }

// item is the page of one envelope or message.
func (l links) item(kind string, id uuid.UUID, query url.Values) string {
	return withQuery(l.prefix+kind+"/"+id.String(), query)
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
