package broker

import (
	"context"
	"errors"
	"log/slog"

	"github.com/mochi-mqtt/server/v2/packets"
)

// refusalsAtDebug passes the broker's log on, except that mochi's warning
// for every client refused at connect (bad username or password) goes
// out at debug level: a flood of refused clients must not flood the log.
// The auth hook logs each refusal, with its reason, at debug too.
type refusalsAtDebug struct{ slog.Handler }

func (h refusalsAtDebug) Handle(ctx context.Context, r slog.Record) error {
	if r.Level != slog.LevelWarn || !isRefusal(r) {
		return h.Handler.Handle(ctx, r)
	}
	if !h.Handler.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	d := slog.NewRecord(r.Time, slog.LevelDebug, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool { d.AddAttrs(a); return true })
	return h.Handler.Handle(ctx, d)
}

func (h refusalsAtDebug) WithAttrs(as []slog.Attr) slog.Handler {
	return refusalsAtDebug{h.Handler.WithAttrs(as)}
}

func (h refusalsAtDebug) WithGroup(name string) slog.Handler {
	return refusalsAtDebug{h.Handler.WithGroup(name)}
}

// isRefusal reports whether r carries a connect refusal as its error.
func isRefusal(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && errors.Is(err, packets.ErrBadUsernameOrPassword) {
			found = true
		}
		return !found
	})
	return found
}
