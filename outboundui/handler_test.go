package outboundui_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/outboundtest"
	"github.com/cairnloop/outbound/outboundui"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
)

// prefix is where the tests mount the dashboard: not the root, so that every
// link is seen to carry it.
const prefix = "/ops/outbound"

// dashboard is a dashboard mounted on a host's mux, with the client it shows.
type dashboard struct {
	t      *testing.T
	client *outbound.Client
	config *outbound.Config
	mux    *http.ServeMux
}

func newDashboard(t *testing.T) *dashboard {
	t.Helper()
	return newDashboardWith(t, nil)
}

// newDashboardWith is newDashboard with a client whose config configure
// changes first.
func newDashboardWith(t *testing.T, configure func(*outbound.Config)) *dashboard {
	t.Helper()
	client, config := newClient(t, configure)
	ui, err := outboundui.NewHandler(&outboundui.HandlerOpts{Client: client, Prefix: prefix, RiverUIPrefix: "/riverui",
		// The user of basic auth, as the example service authenticates.
		Actor: func(r *http.Request) string { user, _, _ := r.BasicAuth(); return user }})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle(prefix+"/", ui)
	return &dashboard{t: t, client: client, config: config, mux: mux}
}

// do serves one request; a form is sent as a browser posts one.
func (d *dashboard) do(method, path string, form url.Values, header http.Header) *httptest.ResponseRecorder {
	d.t.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	d.mux.ServeHTTP(rec, req)
	return rec
}

// page GETs an HTML page, requires the status, and checks what every page
// must hold: the headers that keep script out, no script, labelled controls.
func (d *dashboard) page(path string, status int) string {
	d.t.Helper()
	rec := d.do("GET", path, nil, nil)
	require.Equal(d.t, status, rec.Code, "GET %s: %s", path, rec.Body)
	requireSafePage(d.t, rec)
	return rec.Body.String()
}

func requireSafePage(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	body := rec.Body.String()
	require.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
	require.Contains(t, rec.Header().Get("Content-Security-Policy"), "default-src 'none'")
	require.NotContains(t, rec.Header().Get("Content-Security-Policy"), "script-src")
	require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
	require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	require.NotContains(t, strings.ToLower(body), "<script", "no page has script")
	requireLabelled(t, body)
}

var (
	controlIDs = regexp.MustCompile(`<(?:input|select|textarea)\b[^>]*\bid="([^"]+)"`)
	controls   = regexp.MustCompile(`<(?:input|select|textarea)\b`)
)

// requireLabelled checks that every form control has an id and a <label> for
// it, so that a screen reader names each one.
func requireLabelled(t *testing.T, body string) {
	t.Helper()
	ids := controlIDs.FindAllStringSubmatch(body, -1)
	require.Len(t, ids, len(controls.FindAllString(body, -1)), "every control has an id")
	for _, id := range ids {
		require.Contains(t, body, `<label for="`+id[1]+`">`, "control %s has a label", id[1])
	}
}

var (
	legendItem = regexp.MustCompile(`<li class="(\w+)" data-status="\w+"><span class="swatch" aria-hidden="true"></span>([a-z ]+) <strong class="count">(\d+)</strong></li>`)
	legendAll  = regexp.MustCompile(`<li class="total">of <strong class="count">(\d+)</strong></li>`)
	barLabel   = regexp.MustCompile(`<svg class="bar"[^>]* role="img" aria-label="([^"]+)"`)
	barRects   = regexp.MustCompile(`<rect class="seg (\w+)" x="[0-9.e+-]+" y="0" width="([0-9.e+-]+)" height="4"><title>(\d+) [a-z ]+</title></rect>`)
)

// barCounts reads a progress bar's legend, the text beside its colours, and
// checks that the drawing agrees with it.
func barCounts(t *testing.T, html string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, m := range legendItem.FindAllStringSubmatch(html, -1) {
		counts[m[1]], _ = strconv.Atoi(m[3])
	}
	require.NotEmpty(t, counts, "a legend: %s", html)
	total := legendAll.FindStringSubmatch(html)
	require.NotNil(t, total)
	counts["total"], _ = strconv.Atoi(total[1])
	require.NotNil(t, barLabel.FindStringSubmatch(html), "the drawing has an accessible name")

	var width float64
	for _, m := range barRects.FindAllStringSubmatch(html, -1) {
		n, _ := strconv.Atoi(m[3])
		require.Equal(t, counts[m[1]], n, "segment %s", m[1])
		w, err := strconv.ParseFloat(m[2], 64)
		require.NoError(t, err)
		require.InDelta(t, 100*float64(n)/float64(counts["total"]), w, 0.001, "segment %s's width", m[1])
		width += w
	}
	if counts["total"] > 0 {
		require.InDelta(t, 100, width, 0.001, "the segments fill the bar")
	}
	return counts
}

// envelopeRow is the envelopes page's row for one envelope.
func envelopeRow(t *testing.T, page string, id uuid.UUID) string {
	t.Helper()
	start := strings.Index(page, `<tr data-envelope="`+id.String()+`">`)
	require.GreaterOrEqual(t, start, 0, "envelope %s is listed", id)
	end := strings.Index(page[start:], "</tr>")
	return page[start : start+end]
}

// deliverWith runs the real delivery worker on one message with a notifier
// that answers err.
func (d *dashboard) deliverWith(msg *outbound.Message, err error) {
	d.t.Helper()
	w := outboundtest.NewWorker(d.t, testPool, d.config, outbound.NotifierFunc(func(context.Context, *outbound.Message) error { return err }))
	_, deliverErr := w.Deliver(context.Background(), d.t, msg.ID)
	if err == nil {
		require.NoError(d.t, deliverErr)
	}
}

// ctxT is a test's context, cancelled when the test ends. It has no
// deadline of its own: how long a call may take is the behaviour of a few
// tests, which set their own, and on a loaded machine a fixed deadline here
// failed tests that were only slow (parallel subtests wait for a slot under
// their parent's context). A hang is go test's -timeout to catch, with every
// goroutine's stack.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

func TestEnvelopesPage(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	d := newDashboard(t)

	// Seven recipients, taken through every status by the real worker.
	res, err := d.client.BulkTrigger(ctx, []int64{1, 2, 3, 4, 5, 6, 7}, &outbound.BulkTriggerOpts{
		TemplateID: "outage", RenderedBody: "We are back <b>up</b>.", Actor: "agent:7",
	})
	require.NoError(t, err)
	d.deliverWith(res.Messages[0], nil)
	d.deliverWith(res.Messages[1], nil)
	d.deliverWith(res.Messages[2], errors.New("provider timeout"))
	d.deliverWith(res.Messages[3], outbound.Permanent(errors.New("address unknown")))
	require.NoError(t, d.client.CancelMessage(ctx, res.Messages[4].ID, nil))

	_, err = d.client.BulkTrigger(ctx, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "x"})
	require.NoError(t, err)
	over := make([]int64, 30)
	for i := range over {
		over[i] = int64(100 + i)
	}
	_, err = d.client.BulkTrigger(ctx, over, &outbound.BulkTriggerOpts{TemplateID: "too-many", RenderedBody: "x"})
	var tooLarge *outbound.BatchTooLargeError
	require.ErrorAs(t, err, &tooLarge)

	page := d.page(prefix+"/", http.StatusOK)
	require.Equal(t, 3, strings.Count(page, "<tr data-envelope="))
	require.Less(t, strings.Index(page, tooLarge.EnvelopeID.String()), strings.Index(page, res.Envelope.ID.String()), "newest first")

	row := envelopeRow(t, page, res.Envelope.ID)
	require.Equal(t, map[string]int{"sent": 2, "pending": 2, "delivering": 0, "failed": 1, "discarded": 1, "cancelled": 1, "total": 7}, barCounts(t, row))
	require.Contains(t, row, `aria-label="2 sent, 2 pending, 0 in flight, 1 failed, 1 discarded, 1 cancelled, of 7 messages"`)
	for _, want := range []string{"outage", "<td>7</td>", "agent:7", `<time datetime="`, `<span class="status outcome-in_progress">in progress</span>`, `href="` + prefix + "/envelopes/" + res.Envelope.ID.String() + `"`} {
		require.Contains(t, row, want)
	}

	refused := envelopeRow(t, page, tooLarge.EnvelopeID)
	require.Contains(t, refused, "Refused: batch_size 30 exceeds cap 25")
	require.Contains(t, refused, `<span class="status outcome-refused">refused</span>`)
	require.NotContains(t, refused, "<svg", "a refused envelope has no messages to draw")

	// The outcome filter.
	page = d.page(prefix+"/?outcome=refused", http.StatusOK)
	require.Equal(t, 1, strings.Count(page, "<tr data-envelope="))
	require.Contains(t, page, `<option value="refused" selected>`)
	require.Contains(t, page, "Bulk envelopes, newest first, refused only")
	page = d.page(prefix+"/?outcome=in_progress", http.StatusOK)
	require.Equal(t, 2, strings.Count(page, "<tr data-envelope="))
	require.Contains(t, d.page(prefix+"/?outcome=bogus", http.StatusBadRequest), "The outcome filter must be one of")
	require.Contains(t, d.page(prefix+"/?after=bogus", http.StatusBadRequest), "The page link")
}

func TestEnvelopesPaging(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	d := newDashboard(t)
	const n = 30
	ids := make(map[string]bool, n)
	for i := range n {
		res, err := d.client.BulkTrigger(ctx, []int64{int64(i + 1)}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		require.NoError(t, err)
		ids[res.Envelope.ID.String()] = true
	}
	rowID := regexp.MustCompile(`<tr data-envelope="([^"]+)">`)
	next := regexp.MustCompile(`<a href="([^"]+)" rel="next">`)

	seen := map[string]bool{}
	path, pages := prefix+"/", 0
	for path != "" {
		page := d.page(path, http.StatusOK)
		pages++
		for _, m := range rowID.FindAllStringSubmatch(page, -1) {
			require.False(t, seen[m[1]], "no envelope twice")
			seen[m[1]] = true
		}
		path = ""
		if m := next.FindStringSubmatch(page); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
			require.True(t, strings.HasPrefix(path, prefix+"/?after="), path)
		}
		if pages > 1 {
			require.Contains(t, page, `<a href="`+prefix+`/">Newest</a>`)
		}
	}
	require.Equal(t, 2, pages, "25 and then 5")
	require.Equal(t, ids, seen)
}

func TestEnvelopePageAndCancel(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	d := newDashboard(t)
	res, err := d.client.BulkTrigger(ctx, []int64{11, 12, 13, 14}, &outbound.BulkTriggerOpts{
		TemplateID: "outage", RenderedBody: "<script>alert(1)</script>", Actor: "agent:7",
	})
	require.NoError(t, err)
	d.deliverWith(res.Messages[0], nil)
	d.deliverWith(res.Messages[1], errors.New("provider said 503"))
	envelopePath := prefix + "/envelopes/" + res.Envelope.ID.String()

	page := d.page(envelopePath, http.StatusOK)
	require.Equal(t, map[string]int{"sent": 1, "pending": 2, "delivering": 0, "failed": 1, "discarded": 0, "cancelled": 0, "total": 4}, barCounts(t, page))
	require.Contains(t, page, "&lt;script&gt;alert(1)&lt;/script&gt;", "the body is escaped")
	require.Equal(t, 4, strings.Count(page, "<tr data-status="))
	failed := regexp.MustCompile(`(?s)<tr data-status="failed">.*?</tr>`).FindString(page)
	require.Contains(t, failed, "<td>12</td>")
	require.Contains(t, failed, "<td>1</td>", "one attempt")
	require.Contains(t, failed, "provider said 503", "the last error")
	require.Contains(t, page, `<form class="cancel" method="post" action="`+envelopePath+`/cancel">`)
	require.Contains(t, page, "Cancel the 3 messages not yet delivered")
	require.Contains(t, page, `<input type="checkbox" id="confirm-cancel" name="confirm" value="yes" required>`)

	// The messages' status filter.
	filtered := d.page(envelopePath+"?status=sent", http.StatusOK)
	require.Equal(t, 1, strings.Count(filtered, "<tr data-status="))
	require.Contains(t, filtered, `<tr data-status="sent">`)

	// An unconfirmed cancel is refused and cancels nothing.
	rec := d.do("POST", envelopePath+"/cancel", url.Values{}, http.Header{"Sec-Fetch-Site": {"same-origin"}})
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Contains(t, rec.Body.String(), "Tick the box")

	// A cross-site POST is refused, however it is marked, and cancels nothing.
	for name, header := range map[string]http.Header{
		"SecFetchSite": {"Sec-Fetch-Site": {"cross-site"}},
		"Origin":       {"Origin": {"https://evil.example"}},
	} {
		rec := d.do("POST", envelopePath+"/cancel", url.Values{"confirm": {"yes"}}, header)
		require.Equal(t, http.StatusForbidden, rec.Code, name)
		requireSafePage(t, rec)
		require.Contains(t, rec.Body.String(), "came from another site", name)
	}
	progress, err := d.client.EnvelopeProgress(ctx, res.Envelope.ID)
	require.NoError(t, err)
	require.Zero(t, progress.Cancelled)

	// The confirmed cancel: POST, redirect, GET. The cancel is recorded as
	// the authenticated user's.
	rec = d.do("POST", envelopePath+"/cancel", url.Values{"confirm": {"yes"}}, http.Header{"Sec-Fetch-Site": {"same-origin"}, "Authorization": {basicAuth("ana@ops", "pw")}})
	require.Equal(t, http.StatusSeeOther, rec.Code, rec.Body.String())
	require.Equal(t, envelopePath+"?cancelled=3", rec.Header().Get("Location"))
	page = d.page(rec.Header().Get("Location"), http.StatusOK)
	require.Contains(t, page, `<p class="flash" role="status">Cancelled 3 messages.</p>`)
	require.Equal(t, map[string]int{"sent": 1, "pending": 0, "delivering": 0, "failed": 0, "discarded": 0, "cancelled": 3, "total": 4}, barCounts(t, page))
	require.NotContains(t, page, `<form class="cancel"`, "nothing is left to cancel")
	env, err := d.client.Envelope(ctx, res.Envelope.ID)
	require.NoError(t, err)
	require.Equal(t, outbound.EnvelopeStatusSubmitted, env.Status, "one message was sent, so the envelope is not all cancelled")
	require.Equal(t, "ana@ops", env.CancelledBy)
	require.Regexp(t, `<dt>Cancelled</dt><dd><time datetime="[^"]+">[^<]+</time> by <span class="actor">ana@ops</span></dd>`, page)
	require.Contains(t, page, `<span class="status outcome-partly_cancelled">partly cancelled</span>`, "one sent, three cancelled")

	// A refused envelope cannot be cancelled: 409, said in words.
	over := make([]int64, 26)
	for i := range over {
		over[i] = int64(i + 1)
	}
	_, err = d.client.BulkTrigger(ctx, over, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
	var tooLarge *outbound.BatchTooLargeError
	require.ErrorAs(t, err, &tooLarge)
	rec = d.do("POST", prefix+"/envelopes/"+tooLarge.EnvelopeID.String()+"/cancel", url.Values{"confirm": {"yes"}}, nil)
	require.Equal(t, http.StatusConflict, rec.Code)
	require.Contains(t, rec.Body.String(), "can no longer be cancelled")
}

func TestMessagePages(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	d := newDashboard(t)
	one, err := d.client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery", Content: "Hello & welcome",
		Data: map[string]any{"phone": "+15550100", "note": "<b>vip</b>"}})
	require.NoError(t, err)
	sent, err := d.client.Trigger(ctx, 43, &outbound.TriggerOpts{TemplateID: "recovery"})
	require.NoError(t, err)
	d.deliverWith(sent.Message, nil)
	bulk, err := d.client.BulkTrigger(ctx, []int64{42, 44}, &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "b"})
	require.NoError(t, err)

	// The messages page, filtered by conversation.
	page := d.page(prefix+"/messages?conversation_id=42", http.StatusOK)
	require.Equal(t, 2, strings.Count(page, "<tr data-status="))
	require.Contains(t, page, `<input id="conversation-filter" name="conversation_id" type="text" inputmode="numeric" pattern="[0-9]*" value="42">`)
	require.Equal(t, 4, strings.Count(d.page(prefix+"/messages", http.StatusOK), "<tr data-status="))
	require.Contains(t, d.page(prefix+"/messages?conversation_id=x", http.StatusBadRequest), "The conversation must be a whole number")
	require.Contains(t, d.page(prefix+"/messages?conversation_id=-1", http.StatusBadRequest), "The conversation must be")

	// One message, with its envelope and its job in River's UI.
	messagePath := prefix + "/messages/" + bulk.Messages[0].ID.String()
	page = d.page(messagePath, http.StatusOK)
	require.Contains(t, page, `href="`+prefix+"/envelopes/"+bulk.Envelope.ID.String()+`"`)
	require.Contains(t, page, `href="/riverui/jobs/`+strconv.FormatInt(bulk.Messages[0].JobID, 10)+`"`)
	require.Contains(t, page, "Cancel message")
	onePage := d.page(prefix+"/messages/"+one.Message.ID.String(), http.StatusOK)
	require.Contains(t, onePage, "Hello &amp; welcome")
	require.Contains(t, onePage, "<pre class=\"data\">{\n  &#34;note&#34;: &#34;\\u003cb\\u003evip\\u003c/b\\u003e&#34;,\n  &#34;phone&#34;: &#34;&#43;15550100&#34;\n}</pre>", "the host data, escaped")
	require.NotContains(t, onePage, "A template reference")
	sentPage := d.page(prefix+"/messages/"+sent.Message.ID.String(), http.StatusOK)
	require.Contains(t, sentPage, "No host data.")
	require.Contains(t, sentPage, "A template reference, not a rendered body")

	rec := d.do("POST", messagePath+"/cancel", url.Values{"confirm": {"yes"}}, http.Header{"Authorization": {basicAuth("ana@ops", "pw")}})
	require.Equal(t, http.StatusSeeOther, rec.Code)
	page = d.page(rec.Header().Get("Location"), http.StatusOK)
	require.Contains(t, page, "Cancelled the message.")
	require.Contains(t, page, `by <span class="actor">ana@ops</span>`)
	cancelled, err := d.client.Message(ctx, bulk.Messages[0].ID)
	require.NoError(t, err)
	require.Equal(t, "ana@ops", cancelled.CancelledBy)
	require.Contains(t, page, `<span class="status status-cancelled">cancelled</span>`)
	require.NotContains(t, page, "Cancel message")

	// A sent message has no cancel button, and a POST to it is a 409.
	sentPath := prefix + "/messages/" + sent.Message.ID.String()
	require.NotContains(t, d.page(sentPath, http.StatusOK), "Cancel message")
	rec = d.do("POST", sentPath+"/cancel", url.Values{"confirm": {"yes"}}, nil)
	require.Equal(t, http.StatusConflict, rec.Code)

	// A message the provider refused for its rate waits, pending, and says
	// so on its page and in the list.
	limited, err := d.client.Trigger(ctx, 45, &outbound.TriggerOpts{TemplateID: "recovery"})
	require.NoError(t, err)
	d.deliverWith(limited.Message, outbound.RateLimited(time.Hour, errors.New("429 Too Many Requests")))
	page = d.page(prefix+"/messages/"+limited.Message.ID.String(), http.StatusOK)
	require.Regexp(t, `status-pending">pending</span> <span class="rate-wait">waiting for its rate limit until <time datetime="[^"]+">`, page)
	require.Contains(t, page, "Cancel message")
	require.Contains(t, d.page(prefix+"/messages?conversation_id=45", http.StatusOK), "waiting for its rate limit until")
	require.NotContains(t, d.page(sentPath, http.StatusOK), "waiting for its rate limit")
	require.Contains(t, page, "429 Too Many Requests (rate limited, paused for 1h0m0s)")

	// RetryAfter is a failed attempt, and reads as one: not a wait for a
	// rate limit.
	retried, err := d.client.Trigger(ctx, 46, &outbound.TriggerOpts{TemplateID: "recovery"})
	require.NoError(t, err)
	d.deliverWith(retried.Message, outbound.RetryAfter(time.Hour, errors.New("503 Service Unavailable")))
	page = d.page(prefix+"/messages/"+retried.Message.ID.String(), http.StatusOK)
	require.Contains(t, page, `status-failed">failed</span>`)
	require.Contains(t, page, "503 Service Unavailable (retry after 1h0m0s)")
	require.NotContains(t, page, "waiting for its rate limit")
}

// A page shows at most the first 64 KiB of a body, and says how long it is:
// a body may be MaxContentBytes long, and a page reads only what it shows.
func TestLongBodies(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	d := newDashboard(t)
	long := strings.Repeat("é", 60<<10) // 120 KiB
	one, err := d.client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t", Content: long})
	require.NoError(t, err)
	bulk, err := d.client.BulkTrigger(ctx, []int64{1}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: long})
	require.NoError(t, err)
	for _, path := range []string{prefix + "/messages/" + one.Message.ID.String(), prefix + "/envelopes/" + bulk.Envelope.ID.String()} {
		page := d.page(path, http.StatusOK)
		require.Contains(t, page, "Showing the first 65536 of 122880 bytes.", path)
		require.Equal(t, 32<<10, strings.Count(page, "é"), "%s: 64 KiB of two-byte characters", path)
	}
	// The lists show no body at all.
	for _, path := range []string{prefix + "/messages?conversation_id=1", prefix + "/", prefix + "/envelopes/" + bulk.Envelope.ID.String()} {
		page := d.page(path, http.StatusOK)
		if strings.Contains(path, "/envelopes/") {
			page = page[strings.Index(page, `id="messages"`):] // the envelope's recipients' table
		}
		require.NotContains(t, page, "é", path)
	}
}

// basicAuth is the Authorization header of HTTP basic auth.
func basicAuth(user, password string) string {
	req := httptest.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, password)
	return req.Header.Get("Authorization")
}

// A personalised bulk's envelope has no shared body; each recipient's
// message page shows its own body and data.
func TestPersonalisedEnvelope(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	d := newDashboard(t)
	res, err := d.client.BulkTrigger(ctx, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "resolved",
		Recipients: map[int64]outbound.BulkRecipient{
			1: {RenderedBody: "Hi Ana", Data: map[string]any{"phone": "+15550101"}},
			2: {RenderedBody: "Hi Bo", Data: map[string]any{"phone": "+15550102"}},
		}})
	require.NoError(t, err)
	require.Contains(t, d.page(prefix+"/envelopes/"+res.Envelope.ID.String(), http.StatusOK), "No shared body: each recipient has a body of its own")
	page := d.page(prefix+"/messages/"+res.Messages[1].ID.String(), http.StatusOK)
	require.Contains(t, page, `<pre class="body">Hi Bo</pre>`)
	require.Contains(t, page, "&#43;15550102")
}

func TestRoutesAndErrors(t *testing.T) {
	t.Parallel()
	d := newDashboard(t)
	unknown := uuid.NewString()
	for _, tc := range []struct {
		method, path string
		status       int
		want         string
	}{
		{"GET", prefix + "/envelopes/" + unknown, http.StatusNotFound, "no such message or envelope"},
		{"GET", prefix + "/messages/" + unknown, http.StatusNotFound, "no such message or envelope"},
		{"GET", prefix + "/envelopes/nope", http.StatusBadRequest, "&#34;nope&#34; is not a message or envelope id"},
		{"GET", prefix + "/nowhere", http.StatusNotFound, "no such page"},
		{"GET", prefix + "/static/other.css", http.StatusNotFound, "no such page"},
		{"PUT", prefix + "/envelopes/" + unknown + "/cancel", http.StatusMethodNotAllowed, "PUT is not allowed here; use POST."},
		{"GET", prefix + "/envelopes/" + unknown + "/cancel", http.StatusMethodNotAllowed, "use POST"},
		{"DELETE", prefix + "/", http.StatusMethodNotAllowed, "use GET, HEAD"},
	} {
		rec := d.do(tc.method, tc.path, nil, nil)
		require.Equal(t, tc.status, rec.Code, "%s %s", tc.method, tc.path)
		requireSafePage(t, rec)
		require.Contains(t, rec.Body.String(), tc.want, "%s %s", tc.method, tc.path)
		if tc.status == http.StatusMethodNotAllowed {
			require.NotEmpty(t, rec.Header().Get("Allow"))
		}
	}

	// The stylesheet, and the prefix without its slash.
	rec := d.do("GET", prefix+"/static/outboundui.css", nil, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "text/css; charset=utf-8", rec.Header().Get("Content-Type"))
	require.Contains(t, d.page(prefix+"/", http.StatusOK), `<link rel="stylesheet" href="`+prefix+`/static/outboundui.css?v=`)
	rec = d.do("GET", prefix, nil, nil)
	require.Contains(t, []int{http.StatusMovedPermanently, http.StatusTemporaryRedirect}, rec.Code)
	require.Equal(t, prefix+"/", rec.Header().Get("Location"))
}

func TestNewHandlerOptions(t *testing.T) {
	t.Parallel()
	client, _ := newClient(t, nil)
	for _, tc := range []struct {
		opts  *outboundui.HandlerOpts
		field string
	}{
		{nil, "HandlerOpts.Client"},
		{&outboundui.HandlerOpts{}, "HandlerOpts.Client"},
		{&outboundui.HandlerOpts{Client: client, Prefix: "outbound"}, "HandlerOpts.Prefix"},
		{&outboundui.HandlerOpts{Client: client, Prefix: "/outbound/"}, "HandlerOpts.Prefix"},
		{&outboundui.HandlerOpts{Client: client, Prefix: "/{id}"}, "HandlerOpts.Prefix"},
		{&outboundui.HandlerOpts{Client: client, Prefix: "/a b"}, "HandlerOpts.Prefix"},
		{&outboundui.HandlerOpts{Client: client, RiverUIPrefix: "riverui"}, "HandlerOpts.RiverUIPrefix"},
	} {
		_, err := outboundui.NewHandler(tc.opts)
		require.ErrorIs(t, err, outbound.ErrInvalidArgument)
		var argErr *outbound.InvalidArgumentError
		require.ErrorAs(t, err, &argErr, "the library's error type, as every option error is")
		require.Equal(t, tc.field, argErr.Field)
	}

	// Mounted at the root, the links have no prefix.
	ui, err := outboundui.NewHandler(&outboundui.HandlerOpts{Client: client})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	ui.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), `<a href="/messages">Messages</a>`)
	require.Contains(t, rec.Body.String(), "No envelopes.")
}

// TestRateLimitsPage shows each configured key, its limits, its waiting
// messages and its pause, whose button lifts it; an envelope held by its
// limit says when it is expected to finish.
func TestRateLimitsPage(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	d := newDashboardWith(t, func(c *outbound.Config) {
		c.RateLimits = map[string]outbound.RateLimit{"sms": {Limit: 1, Per: time.Hour, Also: []outbound.RateLimit{{Limit: 5, Per: 24 * time.Hour}}}}
		c.RateLimitKey = func(*outbound.Message) string { return "sms" }
	})
	res, err := d.client.BulkTrigger(ctx, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
	require.NoError(t, err)
	d.deliverWith(res.Messages[0], nil) // takes the hour's slot
	// Parked at its trigger, beyond the burst; its attempt parks it again:
	// no slot for an hour. Its job is snoozed, not failed.
	w := outboundtest.NewWorker(t, testPool, d.config, outbound.NotifierFunc(func(context.Context, *outbound.Message) error { return nil }))
	_, err = w.Deliver(ctx, t, res.Messages[1].ID)
	var snoozed *river.JobSnoozeError
	require.ErrorAs(t, err, &snoozed)
	m, err := d.client.Message(ctx, res.Messages[1].ID)
	require.NoError(t, err)
	require.Equal(t, outbound.MessageStatusPending, m.Status)
	require.False(t, m.RateLimitedUntil.IsZero(), "it waits for its limit")

	page := d.page(prefix+"/ratelimits", http.StatusOK)
	row := regexp.MustCompile(`(?s)<tr data-key="sms">.*?</tr>`).FindString(page)
	require.Contains(t, row, "1 per 1h0m0s (burst 1), 5 in any 24h0m0s")
	require.Contains(t, row, "<td>1</td>", "one message waits")
	require.NotContains(t, row, "Lift pause", "not paused")

	envelope := d.page(prefix+"/envelopes/"+res.Envelope.ID.String(), http.StatusOK)
	require.Contains(t, envelope, "Expected to finish</dt><dd class=\"eta\">in about 1h0m0s at its rate limits' pace: 1 message waits")

	// A provider's pause, as RateLimited would have left it.
	_, err = testPool.Exec(ctx, "UPDATE "+pgx.Identifier{d.config.Schema, "rate_limits"}.Sanitize()+" SET paused_until = now() + interval '10 minutes' WHERE key = 'sms'")
	require.NoError(t, err)
	page = d.page(prefix+"/ratelimits", http.StatusOK)
	require.Contains(t, page, `<form class="lift" method="post" action="`+prefix+`/ratelimits/lift">`)
	require.Contains(t, page, `<button type="submit" name="key" value="sms">Lift pause</button>`)

	// Unconfirmed, or from another site: refused, and the pause holds.
	rec := d.do("POST", prefix+"/ratelimits/lift", url.Values{"key": {"sms"}}, http.Header{"Sec-Fetch-Site": {"same-origin"}})
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Contains(t, rec.Body.String(), "Tick the box to confirm lifting the pause")
	rec = d.do("POST", prefix+"/ratelimits/lift", url.Values{"key": {"sms"}, "confirm": {"yes"}}, http.Header{"Sec-Fetch-Site": {"cross-site"}})
	require.Equal(t, http.StatusForbidden, rec.Code)
	states, err := d.client.RateLimitStates(ctx)
	require.NoError(t, err)
	require.False(t, states[0].PausedUntil.IsZero())

	// Lifted: POST, redirect, GET.
	rec = d.do("POST", prefix+"/ratelimits/lift", url.Values{"key": {"sms"}, "confirm": {"yes"}}, http.Header{"Sec-Fetch-Site": {"same-origin"}})
	require.Equal(t, http.StatusSeeOther, rec.Code, rec.Body.String())
	page = d.page(rec.Header().Get("Location"), http.StatusOK)
	require.Contains(t, page, `Lifted the pause of &#34;sms&#34;.`)
	require.NotContains(t, page, `<form class="lift"`)

	// A key that is not configured: 400, said in words.
	rec = d.do("POST", prefix+"/ratelimits/lift", url.Values{"key": {"email"}, "confirm": {"yes"}}, http.Header{"Sec-Fetch-Site": {"same-origin"}})
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Contains(t, rec.Body.String(), "is not a key of Config.RateLimits")
}
