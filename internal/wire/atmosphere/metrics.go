package atmosphere

import "github.com/fleetwire/fleetwire/internal/metrics"

// Transport names, as the clients send them in X-Atmosphere-Transport.
const (
	tWebSocket   = "websocket"
	tLongPolling = "long-polling"
	tStreaming   = "streaming"
	tSSE         = "sse"
	tJSONP       = "jsonp"
	tPolling     = "polling"
	tClose       = "close"
)

var (
	mConnections = map[string]*metrics.Gauge{}
	mSessions    = metrics.Default.NewGauge("fleetwire_atmosphere_sessions",
		"Atmosphere sessions alive, attached or within their grace period.", "")
	mReplayed = metrics.Default.NewCounter("fleetwire_atmosphere_replayed_total",
		"Messages re-sent from the replay ring after a client acknowledged fewer than were written.", "")
	mResets = metrics.Default.NewCounter("fleetwire_atmosphere_session_resets_total",
		"Sessions opened anew because the client's tracking id could not be honoured (unknown, expired or not admitted).", "")
	mRefused = metrics.Default.NewCounter("fleetwire_atmosphere_sessions_refused_total",
		"New sessions refused because their address had too many alive.", "")
	mResumed = metrics.Default.NewCounter("fleetwire_atmosphere_sessions_resumed_total",
		"Sessions taken over from another node.", "")
)

func init() {
	for _, t := range []string{tWebSocket, tLongPolling, tStreaming, tSSE, tJSONP, tPolling} {
		mConnections[t] = metrics.Default.NewGauge("fleetwire_connections",
			"Client connections currently attached, by transport.", `transport="`+t+`"`)
	}
}

// connGauge returns the gauge of transport t.
func connGauge(t string) *metrics.Gauge {
	if g := mConnections[t]; g != nil {
		return g
	}
	return mConnections[tPolling]
}
