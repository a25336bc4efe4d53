package outboundui

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cairnloop/outbound"
)

// rateLimitRow is one configured key on the rate limits page.
type rateLimitRow struct {
	State  outbound.RateLimitState
	Limits string
	// Paused: the key is paused, until PausedUntil.
	Paused      bool
	PausedUntil time.Time
}

type rateLimitsData struct {
	Rows     []rateLimitRow
	LiftHref string
	Flash    string
}

// rateLimitsPage lists the client's configured rate limit keys: their
// limits, pause and waiting messages, with a button to lift a pause.
func (h *handler) rateLimitsPage(w http.ResponseWriter, r *http.Request) error {
	states, err := h.client.RateLimitStates(r.Context())
	if err != nil {
		return err
	}
	data := &rateLimitsData{LiftHref: h.links.liftPause()}
	for _, s := range states {
		row := rateLimitRow{State: s, Limits: limitsText(s.Limit), Paused: !s.PausedUntil.IsZero(), PausedUntil: s.PausedUntil}
		data.Rows = append(data.Rows, row)
	}
	switch r.URL.Query().Get("lifted") {
	case "yes":
		data.Flash = fmt.Sprintf("Lifted the pause of %q.", r.URL.Query().Get("key"))
	case "no":
		data.Flash = fmt.Sprintf("%q was not paused.", r.URL.Query().Get("key"))
	}
	h.render(w, r, "ratelimits", "Rate limits", "ratelimits", data)
	return nil
}

// liftPause lifts a key's pause, then sends the browser back to the rate
// limits page (POST, redirect, GET), saying whether there was one.
func (h *handler) liftPause(w http.ResponseWriter, r *http.Request) error {
	if err := confirmedAs(w, r, "Tick the box to confirm lifting the pause."); err != nil {
		return err
	}
	key := r.PostForm.Get("key")
	lifted, err := h.client.LiftRateLimitPause(r.Context(), key)
	if err != nil {
		return err
	}
	answer := "no"
	if lifted {
		answer = "yes"
	}
	http.Redirect(w, r, h.links.rateLimits(url.Values{"lifted": {answer}, "key": {key}}), http.StatusSeeOther)
	return nil
}

// limitsText says a key's limits: "50 per 1s (burst 50), 10000 in any 24h0m0s".
func limitsText(l outbound.RateLimit) string {
	parts := []string{fmt.Sprintf("%d per %s (burst %d)", l.Limit, l.Per, l.Burst)}
	for _, w := range l.Also {
		parts = append(parts, fmt.Sprintf("%d in any %s", w.Limit, w.Per))
	}
	return strings.Join(parts, ", ")
}
