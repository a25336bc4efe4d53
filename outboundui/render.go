package outboundui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages holds one template set per page: the layout, the shared partials,
// and the page's own "content".
var pages = func() map[string]*template.Template {
	funcs := template.FuncMap{
		// when is a time as the pages show it, in UTC to the second.
		"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		// iso is a time for a <time datetime> attribute.
		"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		// statusLabel is a message's or an envelope's status in words.
		"statusLabel": statusLabel,
		// duration is a wait, to the second.
		"duration": func(d time.Duration) string { return max(d.Round(time.Second), time.Second).String() },
		// body is a body as read, and its whole length in bytes.
		"body": func(text string, bytes int) bodyPreview { return bodyPreview{Text: text, Bytes: bytes} },
	}
	out := map[string]*template.Template{}
	for _, name := range []string{"envelopes", "envelope", "messages", "message", "ratelimits", "error"} {
		out[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS,
			"templates/layout.html", "templates/partials.html", "templates/"+name+".html"))
	}
	return out
}()

// layout is what every page's frame needs, around the page's own data.
type layout struct {
	Title      string
	Section    string
	Stylesheet string
	Envelopes  string
	Messages   string
	RateLimits string
	Page       any
}

// render writes a page. The page is rendered into a buffer first, so that a
// template error is a clean 500 rather than half a page.
func (h *handler) render(w http.ResponseWriter, r *http.Request, name, title, section string, page any) {
	h.renderStatus(w, r, http.StatusOK, name, title, section, page)
}

func (h *handler) renderStatus(w http.ResponseWriter, r *http.Request, status int, name, title, section string, page any) {
	var buf bytes.Buffer
	err := pages[name].Execute(&buf, &layout{
		Title:      title,
		Section:    section,
		Stylesheet: h.links.stylesheet(h.assetID),
		Envelopes:  h.links.envelopes(nil),
		Messages:   h.links.messages(nil),
		RateLimits: h.links.rateLimits(nil),
		Page:       page,
	})
	if err != nil {
		h.logger.ErrorContext(r.Context(), "outboundui: render failed", slog.String("page", name), slog.String("error", err.Error()))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// The pages show live state: never serve one from a cache.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// statusLabel says a status in the operator's words; the stored value
// otherwise.
func statusLabel(status any) string {
	switch s := fmt.Sprint(status); s {
	case "delivering":
		return "in flight"
	case "refused_cap_exceeded":
		return "refused: over the cap"
	default:
		return strings.ReplaceAll(s, "_", " ")
	}
}

// bodyPreview is a body as a page read it, at most bodyPreviewBytes of it,
// and the whole body's length.
type bodyPreview struct {
	Text  string
	Bytes int
}

type errorData struct {
	Status  int
	Reason  string
	Message string
}

// renderError writes the error page: the status, and what went wrong in
// words for the operator.
func (h *handler) renderError(w http.ResponseWriter, r *http.Request, status int, message string) {
	h.renderStatus(w, r, status, "error", http.StatusText(status), "", &errorData{Status: status, Reason: http.StatusText(status), Message: message})
}
