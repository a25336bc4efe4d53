//go:build browser

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// screenshotPath is where TestBrowser saves its screenshot of the envelopes
// page; by default a temporary directory. The README's image is made with
//
//	go test -tags browser -run TestBrowser ./examples/httpservice -screenshot ../../docs/outboundui-envelopes.png
var screenshotPath = flag.String("screenshot", "", "where to save the envelopes page's screenshot (PNG)")

// TestBrowser drives Debian's Chromium, headless, against the example service
// on a throwaway database: the dashboard with JavaScript off (progress, then a
// cancel through its button), River's UI with JavaScript on, and a request
// without credentials.
func TestBrowser(t *testing.T) {
	svc := startService(t, &options{addr: "127.0.0.1:0", creds: testCreds})
	api := &apiClient{t: t, base: svc.base, creds: testCreds}

	// Three recipients delivered now; five an hour from now, one of them
	// cancelled; and one bulk refused for its size.
	var delivered, later bulkResponse
	api.do("POST", "/outbound/bulk", `{"conversation_ids": [101, 102, 103], "template_id": "outage-over", "rendered_body": "We are back up.", "actor": "agent:7"}`, nil, http.StatusCreated, &delivered)
	require.Eventually(t, func() bool {
		var env envelopeResponse
		api.do("GET", "/outbound/envelopes/"+delivered.Envelope.ID.String(), "", nil, http.StatusOK, &env)
		return env.Progress.Sent == 3
	}, waitCeiling, 50*time.Millisecond)
	api.do("POST", "/outbound/bulk", `{"conversation_ids": [201, 202, 203, 204, 205], "template_id": "survey", "rendered_body": "How did we do?", "actor": "agent:9", "schedule_in_seconds": 3600}`, nil, http.StatusCreated, &later)
	api.do("POST", "/outbound/messages/"+later.Messages[0].ID.String()+"/cancel", "", nil, http.StatusOK, &struct{ Message *messageJSON }{})
	ids := make([]string, 40)
	for i := range ids {
		ids[i] = strconv.Itoa(300 + i)
	}
	var refused struct{ Error errorBody }
	api.do("POST", "/outbound/bulk", `{"conversation_ids": [`+strings.Join(ids, ",")+`], "template_id": "everyone", "rendered_body": "Hello all."}`, nil, http.StatusUnprocessableEntity, &refused)

	browser := newBrowser(t)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(testCreds.username+":"+testCreds.password))

	t.Run("Dashboard", func(t *testing.T) {
		ctx := newTab(t, browser)
		// The dashboard needs no script: run it with JavaScript off.
		call(t, ctx, network.Enable, network.EnableParams{})
		call(t, ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
		call(t, ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		require.NoError(t, chromedp.Do(ctx,
			chromedp.EmulateViewport(1280, 860),
			chromedp.Navigate(svc.base+"/outbound/ui/"),
			chromedp.WaitVisible(chromedp.CSS(`table.envelopes`)),
		))
		laterRow := `tr[data-envelope="` + later.Envelope.ID.String() + `"]`
		deliveredRow := `tr[data-envelope="` + delivered.Envelope.ID.String() + `"]`
		require.Equal(t, map[string]string{"sent": "0", "pending": "4", "delivering": "0", "failed": "0", "discarded": "0", "cancelled": "1"}, legend(t, ctx, laterRow))
		require.Equal(t, map[string]string{"sent": "3", "pending": "0", "delivering": "0", "failed": "0", "discarded": "0", "cancelled": "0"}, legend(t, ctx, deliveredRow))
		label, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(laterRow+` svg.bar`), "aria-label"))
		require.NoError(t, err)
		require.Equal(t, "0 sent, 4 pending, 0 in flight, 0 failed, 0 discarded, 1 cancelled, of 5 messages", label.Value)
		refusedText, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`tr[data-envelope="`+refused.Error.EnvelopeID.String()+`"] .refused`)))
		require.NoError(t, err)
		require.Equal(t, "Refused: batch_size 40 exceeds cap 25", refusedText)

		// The README's screenshot, before the cancel.
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		img, err := png.Decode(bytes.NewReader(shot))
		require.NoError(t, err, "the screenshot is a PNG")
		require.Equal(t, 1280, img.Bounds().Dx())
		path := *screenshotPath
		if path == "" {
			path = filepath.Join(t.TempDir(), "outboundui-envelopes.png")
		}
		require.NoError(t, os.WriteFile(path, shot, 0o644))
		t.Logf("screenshot: %s (%d bytes)", path, len(shot))

		// Follow the link to the envelope, tick the box, press the button.
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Click(chromedp.CSS(laterRow+` td:first-child a`)),
			chromedp.WaitVisible(chromedp.CSS(`form.cancel`)),
			chromedp.Click(chromedp.CSS(`#confirm-cancel`)),
			chromedp.Click(chromedp.CSS(`form.cancel button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS(`p.flash`)),
		))
		flash, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`p.flash`)))
		require.NoError(t, err)
		require.Equal(t, "Cancelled 4 messages.", flash)
		require.Equal(t, map[string]string{"sent": "0", "pending": "0", "delivering": "0", "failed": "0", "discarded": "0", "cancelled": "5"}, legend(t, ctx, "main"))
		cancelledRows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('tr[data-status="cancelled"]').length`))
		require.NoError(t, err)
		require.Equal(t, 5, cancelledRows, "every recipient's row says cancelled")
		formsLeft, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('form.cancel').length`))
		require.NoError(t, err)
		require.Zero(t, formsLeft, "nothing is left to cancel")
		// The cancel is the signed-in user's, and the envelope's outcome
		// says it is over.
		facts, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`dl.facts`)))
		require.NoError(t, err)
		require.Regexp(t, `Cancelled\s+\S+ \S+ UTC by `+testCreds.username, facts)
		require.Contains(t, facts, "Outcome\ncancelled")

		// Back on the envelopes page, the bar shows the cancellations.
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(svc.base+"/outbound/ui/"),
			chromedp.WaitVisible(chromedp.CSS(`table.envelopes`)),
		))
		require.Equal(t, "5", legend(t, ctx, laterRow)["cancelled"])
		outcome, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(laterRow+` .outcome-cancelled`)))
		require.NoError(t, err)
		require.Equal(t, "cancelled", outcome)
	})

	t.Run("RiverUI", func(t *testing.T) {
		ctx := newTab(t, browser)
		call(t, ctx, network.Enable, network.EnableParams{})
		call(t, ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(svc.base+"/riverui/jobs?state=completed")))
		// River's UI is a script app: wait for it to list the delivery jobs
		// of the outbound queue.
		listed, err := chromedp.Run(ctx, chromedp.Poll[bool](
			`document.body.innerText.includes("outbound_delivery")`, chromedp.WithPollingTimeout(60*time.Second)))
		require.NoError(t, err)
		require.True(t, listed)
		text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		require.NoError(t, err)
		require.GreaterOrEqual(t, strings.Count(text, "outbound_delivery"), 3, "the three delivered jobs are listed: %s", text)
		require.GreaterOrEqual(t, strings.Count(text, "\noutbound\n"), 3, "each in the outbound queue: %s", text)
		for _, m := range delivered.Messages {
			require.Contains(t, text, `"message_id":"`+m.ID.String()+`"`, "the job of message %s is listed", m.ID)
		}
	})

	t.Run("WithoutCredentials", func(t *testing.T) {
		for _, path := range []string{"/outbound/ui/", "/riverui/"} {
			ctx := newTab(t, browser)
			call(t, ctx, network.Enable, network.EnableParams{})
			// Headless Chromium gives up on the challenge, so the page load
			// fails; the response it got is read off the network events.
			responses := chromedp.Events(ctx, network.ResponseReceivedExtraInfo)
			err := chromedp.Do(ctx, chromedp.Navigate(svc.base+path))
			require.ErrorContains(t, err, "ERR_INVALID_AUTH_CREDENTIALS", path)
			seen := false
			for ev, err := range responses {
				require.NoError(t, err, path)
				seen = true
				require.Equal(t, int64(http.StatusUnauthorized), ev.StatusCode, path)
				require.Contains(t, fmt.Sprint(ev.Headers), `Basic realm="outbound"`, path)
				break
			}
			require.True(t, seen, "%s: a response was received", path)
		}
	})
}

// call runs one protocol command in the tab.
func call[P, R any](t *testing.T, ctx context.Context, cmd cdp.Command[P, R], params P) {
	t.Helper()
	_, err := chromedp.Call(ctx, cmd, params)
	require.NoError(t, err, cmd.Method)
}

// legend reads the progress bar legend under the element selector matches:
// each status's count as the page writes it.
func legend(t *testing.T, ctx context.Context, selector string) map[string]string {
	t.Helper()
	counts, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`Object.fromEntries([...document.querySelector(`+
		strconv.Quote(selector)+`).querySelectorAll('.legend li[data-status]')].map(li => [li.dataset.status, li.querySelector('.count').textContent]))`))
	require.NoError(t, err)
	return counts
}

// newBrowser starts Chromium, headless, with a profile of its own, and none
// of the background traffic this machine's closed network refuses.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	execPath, err := exec.LookPath("chromium")
	require.NoError(t, err, "Debian's chromium package is needed (.ci/run installs it)")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := context.WithTimeout(allocCtx, 3*time.Minute)
	t.Cleanup(cancel)
	browser, cancelBrowser := chromedp.NewContext(ctx)
	t.Cleanup(cancelBrowser)
	require.NoError(t, chromedp.Do(browser), "start Chromium")
	return browser
}

// newTab opens a tab of its own in browser, closed when the test ends.
func newTab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	return ctx
}
