package delivery

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// A dispatcher hands a rate-limited key's free slots to its parked
// messages, most urgent first. Each process runs one per key it limits,
// from the key's first parked message (or Start) until the key has had
// none for dispatchIdleExit; dispatchers of several processes take turns on
// the key's row, each counting the slots the others released.
//
// It sleeps until the key's next slot comes free by the database's clock
// (the statement returns a duration, never a time), so that a process whose
// clock is skewed releases on time.
type dispatcher struct {
	e    *Executor
	lim  messageLimit
	kick chan struct{}
}

const (
	// dispatchMaxSleep bounds a dispatcher's sleep while messages are
	// parked, so that what other processes change (a pause lifted, slots
	// freed by a limit loosened in a new deploy) is seen within it.
	dispatchMaxSleep = time.Second
	// dispatchRetry is how soon a dispatcher looks again when slots were
	// free but the parked messages' jobs were still running (their parking
	// not yet recorded by River). After a database error it waits
	// dispatchMaxSleep.
	dispatchRetry = 20 * time.Millisecond
	// dispatchIdleExit is how long a dispatcher runs with nothing parked.
	dispatchIdleExit = time.Minute
	// dispatchErrorExit is how long a dispatcher goes on after its
	// statements began to fail, as when its pool was closed.
	dispatchErrorExit = time.Minute
)

// dispatched is what one release found.
type dispatched struct {
	released int64
	// parked: messages of the key remain parked.
	parked bool
	// next is how long until the next slot beyond those released comes
	// free; zero or less when one is free now.
	next time.Duration
}

// Kick makes the key's dispatcher look at once, starting it when it does
// not run. A key without a limit has none, and neither has a process whose
// River client does not work the queue (no Start, ConfigureRiver or
// AddWorkers): it could not fetch the jobs a dispatcher wakes.
func (e *Executor) Kick(key string) {
	if d := e.dispatcherOf(key); d != nil {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
}

// ensureDispatcher starts the key's dispatcher when it does not run, as
// Kick does, but makes a running one look no sooner than it would. A claim
// that takes a slot calls it: a bulk whose messages beyond the burst parked
// at their trigger has its first claims take slots, and the dispatcher they
// start releases the rest.
func (e *Executor) ensureDispatcher(key string) { e.dispatcherOf(key) }

// dispatcherOf returns the key's dispatcher, started if it did not run;
// nil when the key has no limit, or this process does not dispatch.
func (e *Executor) dispatcherOf(key string) *dispatcher {
	lim := e.limitOf(key)
	if !lim.limited {
		return nil
	}
	e.dispatchMu.Lock()
	defer e.dispatchMu.Unlock()
	if !e.dispatchEnabled || e.dispatchStopped {
		return nil
	}
	d, ok := e.dispatchers[key]
	if !ok {
		if e.dispatchers == nil {
			e.dispatchers = map[string]*dispatcher{}
			e.dispatchCtx, e.dispatchCancel = context.WithCancel(context.Background())
		}
		d = &dispatcher{e: e, lim: lim, kick: make(chan struct{}, 1)}
		e.dispatchers[key] = d
		e.dispatchWG.Add(1)
		go d.run(e.dispatchCtx)
	}
	return d
}

// KickAll kicks the dispatcher of every limited key: the periodic
// reconcile does, so that a key whose parked messages were left by
// processes that stopped is dispatched again.
func (e *Executor) KickAll() {
	for key := range e.RateLimits {
		e.Kick(key)
	}
}

// EnableDispatch lets parked messages start this process's dispatchers:
// the client calls it once a River client works the queue.
func (e *Executor) EnableDispatch() {
	e.dispatchMu.Lock()
	e.dispatchEnabled = true
	e.dispatchMu.Unlock()
}

// StartDispatchers enables dispatch, lets dispatchers run again after
// StopDispatchers, and kicks every limited key's: Start calls it.
func (e *Executor) StartDispatchers() {
	e.dispatchMu.Lock()
	e.dispatchEnabled, e.dispatchStopped = true, false
	e.dispatchMu.Unlock()
	e.KickAll()
}

// StopDispatchers stops the dispatchers and waits for them. Kick starts no
// more until StartDispatchers.
func (e *Executor) StopDispatchers() {
	e.dispatchMu.Lock()
	e.dispatchStopped = true
	cancel := e.dispatchCancel
	e.dispatchers, e.dispatchCancel = nil, nil
	e.dispatchMu.Unlock()
	if cancel != nil {
		cancel()
	}
	e.dispatchWG.Wait()
}

// run releases the key's slots until it has been idle for dispatchIdleExit.
func (d *dispatcher) run(ctx context.Context) {
	defer d.e.dispatchWG.Done()
	var idleSince, failingSince time.Time
	for {
		r, err := d.dispatch(ctx)
		var sleep time.Duration
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if failingSince.IsZero() {
				failingSince = time.Now()
				d.e.Logger.Warn("outbound: release rate-limited messages", slog.String("error", err.Error()))
			}
			if time.Since(failingSince) > dispatchErrorExit && d.exit() {
				return
			}
			sleep = dispatchMaxSleep
		case !r.parked && r.released == 0:
			failingSince = time.Time{}
			if idleSince.IsZero() {
				idleSince = time.Now()
			}
			if time.Since(idleSince) > dispatchIdleExit && d.exit() {
				return
			}
			sleep = dispatchMaxSleep
		case r.next <= 0:
			failingSince, idleSince = time.Time{}, time.Time{}
			sleep = dispatchRetry
		default:
			failingSince, idleSince = time.Time{}, time.Time{}
			sleep = min(r.next, dispatchMaxSleep)
		}
		timer := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-d.kick:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// exit removes the dispatcher from its key, unless a kick came since its
// last look, and reports whether it did.
func (d *dispatcher) exit() bool {
	d.e.dispatchMu.Lock()
	defer d.e.dispatchMu.Unlock()
	select {
	case <-d.kick:
		return false
	default:
	}
	if d.e.dispatchers[d.lim.key] == d {
		delete(d.e.dispatchers, d.lim.key)
	}
	return true
}

// dispatch runs one release.
func (d *dispatcher) dispatch(ctx context.Context) (dispatched, error) {
	e := d.e
	args := limitArgs(d.lim)
	args["burst"] = d.lim.limit.Burst
	// Parked messages whose jobs River has not yet snoozed are passed
	// over: look at enough beyond the burst to find releasable ones.
	args["candidates"] = 2*d.lim.limit.Burst + 64
	args["horizon_secs"] = e.ReleaseHorizon.Seconds()
	args["channel"] = e.RiverSchema + ".river_insert"
	args["payload"] = `{"queue": "` + e.Queue + `"}`
	args["notify"] = !e.PollOnly
	var (
		r        dispatched
		next     float64
		notified int64
	)
	ctx, cancel := context.WithTimeout(ctx, RecordTimeout)
	defer cancel()
	// A bulk parked at its trigger may be the key's first messages: no
	// claim has created its row yet.
	if err := e.ensureRateLimitRow(ctx, d.lim); err != nil {
		return r, err
	}
	// One round trip, one implicit transaction: the first statement locks
	// the key's row, so that the release, whose snapshot is taken after,
	// counts every slot the dispatcher before it released.
	batch := &pgx.Batch{}
	batch.Queue(e.Queries.LockRateLimit, pgx.NamedArgs{"key": d.lim.key})
	batch.Queue(e.Queries.DispatchKey, args).QueryRow(func(row pgx.Row) error {
		return row.Scan(&r.released, &r.parked, &next, &notified)
	})
	err := e.Pool.SendBatch(ctx, batch).Close()
	if err == pgx.ErrNoRows {
		// The key's row was deleted since this process created it: the
		// next look creates it again.
		e.rateLimitRows.Delete(d.lim.key)
		return dispatched{parked: true, next: dispatchRetry}, nil
	}
	r.next = time.Duration(next * float64(time.Second))
	return r, err
}
