// Command httpservice is a net/http service that embeds the outbound library:
// a JSON API to trigger, inspect and cancel outbound messages, the outbound
// dashboard under /outbound/ui/, River's web UI under /riverui/, and
// OpenTelemetry metrics for Prometheus on /metrics.
//
//	go run ./examples/httpservice            # listens on 127.0.0.1:8080
//	UI_USERNAME=ops UI_PASSWORD=s3cret ADDR=:9000 go run ./examples/httpservice
//
// The API and both UIs sit behind HTTP basic auth with the credentials in
// UI_USERNAME and UI_PASSWORD. Without them the service serves on a loopback
// address only, and refuses to start on any other. It answers only requests
// whose Host is in ALLOWED_HOSTS (comma-separated), by default the loopback
// names and the host of ADDR. See the README's security section.
//
// OUTBOUND_RATE_LIMIT limits how fast deliveries start, across every process
// of the service: LIMIT/PER or LIMIT/PER/BURST, such as 100/1s or 10/1s/5.
//
// With DATABASE_URL unset it starts a throwaway PostgreSQL from the machine's
// server binaries; with it set, it migrates and uses that database (schema
// "cairnloop"). SIGINT or SIGTERM shuts it down gracefully: the listener
// closes, requests in flight finish, running deliveries finish.
//
// The API:
//
//	POST /conversations/{id}/outbound      trigger one message
//	POST /outbound/bulk                    bulk trigger; Idempotency-Key header = envelope id
//	GET  /outbound/envelopes               list envelopes (?status=, ?outcome=, ?limit=, ?after=)
//	GET  /outbound/envelopes/{id}          one envelope with its progress
//	POST /outbound/envelopes/{id}/cancel   cancel an envelope's undelivered messages
//	GET  /outbound/messages                list messages (?conversation_id=, ?envelope_id=, ?status=, ?limit=, ?after=)
//	GET  /outbound/messages/{id}           one message
//	POST /outbound/messages/{id}/cancel    cancel one undelivered message
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/devpg"
	"github.com/cairnloop/outbound/outboundui"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	otelprometheus "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"riverqueue.com/riverui"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	addr := cmp.Or(os.Getenv("ADDR"), "127.0.0.1:8080")
	opts := &options{
		addr:     addr,
		creds:    credentials{username: os.Getenv("UI_USERNAME"), password: os.Getenv("UI_PASSWORD")},
		hosts:    allowedHosts(os.Getenv("ALLOWED_HOSTS"), addr),
		timeouts: defaultTimeouts,
	}
	rateLimits, err := parseRateLimit(os.Getenv("OUTBOUND_RATE_LIMIT"))
	if err != nil {
		log.Fatal(err)
	}
	opts.rateLimits = rateLimits
	err = run(ctx, opts, logger, func(url string) { logger.Info("listening", slog.String("url", url)) })
	if err != nil {
		log.Fatal(err)
	}
}

// options are the service's settings, from the environment.
type options struct {
	// addr is where to listen (ADDR).
	addr string
	// creds guard the API and both UIs (UI_USERNAME, UI_PASSWORD).
	creds credentials
	// hosts are the Host names served (ALLOWED_HOSTS); nil means
	// allowedHosts' default for addr.
	hosts []string
	// timeouts are the HTTP server's; zero fields mean defaultTimeouts'.
	timeouts timeouts
	// rateLimits limit deliveries (OUTBOUND_RATE_LIMIT).
	rateLimits map[string]outbound.RateLimit
}

// run serves until ctx is cancelled, then shuts down gracefully. ready is
// called with the service's base URL once it accepts connections.
func run(ctx context.Context, opts *options, logger *slog.Logger, ready func(baseURL string)) error {
	if err := checkUIAccess(opts.addr, opts.creds); err != nil {
		return err
	}
	if !opts.creds.set() {
		logger.Warn("serving the API, River's UI and the outbound dashboard without credentials, on loopback only; set UI_USERNAME and UI_PASSWORD to require them")
	} else {
		logger.Info("the API, River's UI and the outbound dashboard require the credentials in UI_USERNAME and UI_PASSWORD")
	}
	hosts := opts.hosts
	if hosts == nil {
		hosts = allowedHosts("", opts.addr)
	}
	url, stopDB, err := devpg.URLOrStart(ctx)
	if err != nil {
		return err
	}
	defer stopDB()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	// The service runs no River of its own, so the library's River lives
	// beside its tables, in its default schema.
	if err := outbound.Migrate(ctx, pool, &outbound.MigrateOpts{RiverSchema: outbound.DefaultSchema}); err != nil {
		return err
	}

	// Metrics: the library's OpenTelemetry instruments, read by Prometheus.
	registry := prometheus.NewRegistry()
	exporter, err := otelprometheus.New(otelprometheus.WithRegisterer(registry))
	if err != nil {
		return err
	}
	meterProvider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer meterProvider.Shutdown(context.WithoutCancel(ctx))

	client, err := outbound.New(pool, &outbound.Config{
		MeterProvider: meterProvider,
		Logger:        logger,
		Notifier:      logNotifier(logger),
		RateLimits:    opts.rateLimits,
	})
	if err != nil {
		return err
	}
	// Messages that will not be delivered are worth a warning, which an
	// alert can watch for. Subscribed before Start, so that none is missed.
	undelivered, unsubscribe, err := client.Subscribe(outbound.EventKindMessageDiscarded,
		outbound.EventKindMessageCancelled, outbound.EventKindMessageUnconfirmed)
	if err != nil {
		return err
	}
	defer unsubscribe()
	go warnUndelivered(logger, undelivered)
	// The worker outlives ctx so that shutdown can stop it gracefully.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := client.Stop(stopCtx); err != nil {
			logger.Error("stopping the delivery worker", slog.String("error", err.Error()))
		}
	}()

	// River's UI reads River's tables through a client of its own; this one
	// only reads and never works jobs.
	uiRiver, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: outbound.DefaultSchema, Logger: logger})
	if err != nil {
		return err
	}
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(uiRiver, nil),
		Logger:    logger,
		Prefix:    "/riverui",
	})
	if err != nil {
		return err
	}
	uiCtx, stopUI := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUI()
	if err := ui.Start(uiCtx); err != nil {
		return err
	}

	// The outbound dashboard links each message's job to River's UI.
	dashboard, err := outboundui.NewHandler(&outboundui.HandlerOpts{
		Client:        client,
		Prefix:        "/outbound/ui",
		Logger:        logger,
		RiverUIPrefix: "/riverui",
		// Cancels are recorded as the authenticated user's.
		Actor: actor,
	})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	api := newAPI(client, logger)
	protection := crossOriginProtection(api)
	api.register(mux, func(h http.Handler) http.Handler { return basicAuth(opts.creds, protection.Handler(h)) })
	// River's UI cancels, retries and deletes jobs with POSTs of its own.
	mux.Handle("/riverui/", basicAuth(opts.creds, protection.Handler(ui)))
	mux.Handle("/outbound/ui/", basicAuth(opts.creds, dashboard))
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))

	listener, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return err
	}
	t := opts.timeouts
	t.readHeader, t.read = cmp.Or(t.readHeader, defaultTimeouts.readHeader), cmp.Or(t.read, defaultTimeouts.read)
	t.write, t.idle = cmp.Or(t.write, defaultTimeouts.write), cmp.Or(t.idle, defaultTimeouts.idle)
	server := newServer(hostAllowList(hosts, api.jsonRoutes(mux)), t)
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	ready("http://" + listener.Addr().String())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// warnUndelivered logs each message that ends without being delivered, until
// the subscription ends. Events are best-effort; the dashboard's and the
// API's message lists, read from the rows, have every one.
func warnUndelivered(logger *slog.Logger, events <-chan *outbound.Event) {
	for ev := range events {
		logger.Warn("outbound message not delivered",
			slog.String("outcome", string(ev.Kind)),
			slog.String("reason", string(ev.Reason)),
			slog.String("message_id", ev.MessageID.String()),
			slog.Int64("conversation_id", ev.ConversationID),
			slog.String("template_id", ev.TemplateID),
			slog.Int("attempts", ev.Attempts))
	}
}

// logNotifier stands in for a real provider (email, SMS, chat): it logs each
// delivery. A real one passes msg.ID to the provider as an idempotency key.
func logNotifier(logger *slog.Logger) outbound.Notifier {
	return outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
		attrs := []any{
			slog.String("message_id", msg.ID.String()),
			slog.Int64("conversation_id", msg.ConversationID),
			slog.String("template_id", msg.TemplateID),
			slog.Int("attempt", msg.Attempts),
		}
		// A real SMS provider is given the phone number from the message's
		// data, and the body, or the template rendered, when there is none.
		// The log shows only the number's end: it is personal data.
		if phone, ok := msg.Data["phone"].(string); ok && len(phone) > 4 {
			attrs = append(attrs, slog.String("phone_ending", phone[len(phone)-4:]))
		}
		if !msg.Rendered {
			attrs = append(attrs, slog.String("render", "by template"))
		}
		logger.InfoContext(ctx, "delivering outbound message", attrs...)
		return nil
	})
}
