package outboundui

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"

	"github.com/cairnloop/outbound"
)

// HandlerOpts configures NewHandler.
type HandlerOpts struct {
	// Client is the outbound client whose messages and envelopes are shown.
	// Required.
	Client *outbound.Client

	// Prefix is the path the handler is mounted under, such as
	// "/outbound/ui": it starts with a slash and does not end with one. The
	// host routes Prefix+"/" and everything below it to the handler. Empty
	// means the handler is mounted at the root.
	Prefix string

	// Logger receives the errors the pages answer with a 500. Defaults to
	// slog.Default().
	Logger *slog.Logger

	// CrossOriginProtection guards the buttons' POSTs (cancel, lift a
	// pause). Defaults to
	// http.NewCrossOriginProtection(), which refuses a request that a
	// browser marks as coming from another origin. Set one to trust other
	// origins or to exempt paths.
	CrossOriginProtection *http.CrossOriginProtection

	// Actor names who is cancelling, from the request, for the cancels the
	// dashboard's buttons make: it is kept on the rows they end and given to
	// the Auditor (outbound.CancelOpts.Actor). Set it to the user the host
	// authenticated, such as the user name of HTTP basic auth. Nil records
	// cancels without an actor.
	Actor func(r *http.Request) string

	// RiverUIPrefix, when set, is where River's UI is mounted (such as
	// "/riverui"): a message's page then links its delivery job there.
	RiverUIPrefix string
}

// prefixPattern is what a Prefix may hold: path segments of unreserved
// characters, so that it can be placed in a route pattern and a link as is.
var prefixPattern = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)*$`)

// NewHandler returns the dashboard's http.Handler. Bad options are an
// *outbound.InvalidArgumentError naming the field, as the library's are.
func NewHandler(opts *HandlerOpts) (http.Handler, error) {
	if opts == nil || opts.Client == nil {
		return nil, &outbound.InvalidArgumentError{Field: "HandlerOpts.Client", Reason: "is required"}
	}
	for _, p := range []struct{ field, value string }{
		{"HandlerOpts.Prefix", opts.Prefix},
		{"HandlerOpts.RiverUIPrefix", opts.RiverUIPrefix},
	} {
		if !prefixPattern.MatchString(p.value) {
			return nil, &outbound.InvalidArgumentError{Field: p.field,
				Reason: fmt.Sprintf("must be empty or a path such as /outbound/ui (letters, digits, ._~-, no trailing slash), got %q", p.value)}
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	h := &handler{
		client:  opts.Client,
		actor:   opts.Actor,
		logger:  logger,
		links:   links{prefix: opts.Prefix, riverUI: opts.RiverUIPrefix},
		routes:  http.NewServeMux(),
		assetID: assetVersion(),
	}
	h.register()

	protection := opts.CrossOriginProtection
	if protection == nil {
		protection = http.NewCrossOriginProtection()
		protection.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.renderError(w, r, http.StatusForbidden, "This request came from another site, so it was refused. Use the dashboard's own buttons.")
		}))
	}
	return withHeaders(protection.Handler(h)), nil
}

// withHeaders sets the headers every answer carries, refusals included.
func withHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header := w.Header()
		// No script, no frame, no foreign origin: the pages need none.
		header.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		header.Set("X-Content-Type-Options", "nosniff")
		header.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// handler serves the dashboard's pages.
type handler struct {
	client  *outbound.Client
	actor   func(r *http.Request) string
	logger  *slog.Logger
	links   links
	routes  *http.ServeMux
	assetID string
}

// register routes every page under the prefix.
func (h *handler) register() {
	p := h.links.prefix
	h.routes.HandleFunc("GET "+p+"/{$}", h.page(h.envelopesPage))
	h.routes.HandleFunc("GET "+p+"/envelopes/{id}", h.page(h.envelopePage))
	h.routes.HandleFunc("POST "+p+"/envelopes/{id}/cancel", h.page(h.cancelEnvelope))
	h.routes.HandleFunc("GET "+p+"/messages", h.page(h.messagesPage))
	h.routes.HandleFunc("GET "+p+"/messages/{id}", h.page(h.messagePage))
	h.routes.HandleFunc("POST "+p+"/messages/{id}/cancel", h.page(h.cancelMessage))
	h.routes.HandleFunc("GET "+p+rateLimitsPath, h.page(h.rateLimitsPage))
	h.routes.HandleFunc("POST "+p+rateLimitsPath+"/lift", h.page(h.liftPause))
	h.routes.HandleFunc("GET "+p+"/static/outboundui.css", h.static)
}

// page adapts a page, which returns its error rather than answering it, to
// an http.HandlerFunc: an error is answered once, here, by fail.
func (h *handler) page(serve func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := serve(w, r); err != nil {
			h.fail(w, r, err)
		}
	}
}

// ServeHTTP routes. A path or a method with no route gets the dashboard's
// own error page, with Allow on a 405, rather than the mux's plain text.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := h.routes.Handler(r); pattern == "" && r.URL.Path != h.links.prefix {
		h.noRoute(w, r)
		return
	}
	if r.URL.Path == h.links.prefix && h.links.prefix != "" {
		http.Redirect(w, r, h.links.envelopes(nil), http.StatusMovedPermanently)
		return
	}
	h.routes.ServeHTTP(w, r)
}

// noRoute answers a request no route takes: 405 with Allow when the path has
// routes for other methods, else 404.
func (h *handler) noRoute(w http.ResponseWriter, r *http.Request) {
	probe := &headerRecorder{header: http.Header{}}
	handler, _ := h.routes.Handler(r)
	handler.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.header.Get("Allow"))
		h.renderError(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed here; use %s.", r.Method, probe.header.Get("Allow")))
		return
	}
	h.renderError(w, r, http.StatusNotFound, "There is no such page.")
}

// headerRecorder keeps the status and headers a handler writes, and drops its
// body: noRoute asks the mux what it would have answered.
type headerRecorder struct {
	header http.Header
	status int
}

func (r *headerRecorder) Header() http.Header         { return r.header }
func (r *headerRecorder) Write(p []byte) (int, error) { return len(p), nil }
func (r *headerRecorder) WriteHeader(status int)      { r.status = status }

// fail answers err with the page and status it calls for. Errors the operator
// can act on say what is wrong; anything else is logged and answered 500.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var argErr *outbound.InvalidArgumentError
	switch {
	case errors.As(err, &argErr):
		h.renderError(w, r, http.StatusBadRequest, fmt.Sprintf("The %s %s.", fieldLabel(argErr.Field), argErr.Reason))
	case errors.Is(err, errBadRequest):
		h.renderError(w, r, http.StatusBadRequest, err.Error())
	case errors.Is(err, outbound.ErrNotFound):
		h.renderError(w, r, http.StatusNotFound, "There is no such message or envelope; it may have been pruned.")
	case errors.Is(err, outbound.ErrNotCancellable):
		h.renderError(w, r, http.StatusConflict, "It can no longer be cancelled: it is being delivered, was delivered, or was refused.")
	default:
		h.logger.ErrorContext(r.Context(), "outboundui: request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		h.renderError(w, r, http.StatusInternalServerError, "Something went wrong on the server; it has been logged.")
	}
}

// errBadRequest marks the dashboard's own refusals of a request, whose
// message is written for the operator.
var errBadRequest = errors.New("bad request")

// badRequest returns an error of errBadRequest whose text is msg alone.
func badRequest(msg string) error { return &badRequestError{msg} }

type badRequestError struct{ msg string }

func (e *badRequestError) Error() string        { return e.msg }
func (e *badRequestError) Is(target error) bool { return target == errBadRequest }

// fieldLabel names a library field as the dashboard's forms do.
func fieldLabel(field string) string {
	switch field {
	case "ListMessagesParams.ConversationID":
		return "conversation"
	case "ListMessagesParams.Status", "ListEnvelopesParams.Status":
		return "status filter"
	case "ListEnvelopesParams.Outcome":
		return "outcome filter"
	case "message list cursor", "envelope list cursor", "ListMessagesParams.After", "ListEnvelopesParams.After":
		return "page link"
	}
	return field
}
