package main

import (
	"bytes"
	"strconv"
)

var (
	keySourceID = []byte(`"source_id":`)
	keyLat      = []byte(`"lat":`)
)

// scanStates walks the states in an event frame without decoding it: it
// counts the "source_id" keys (one per state) and hands each "lat" value to
// fn. Anything it cannot parse is skipped; it never fails.
func scanStates(frame []byte, fn func(lat float64)) (states int) {
	states = bytes.Count(frame, keySourceID)
	rest := frame
	for {
		i := bytes.Index(rest, keyLat)
		if i < 0 {
			return states
		}
		rest = rest[i+len(keyLat):]
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r') {
			rest = rest[1:]
		}
		j := 0
		for j < len(rest) && isNumByte(rest[j]) {
			j++
		}
		if j == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(string(rest[:j]), 64); err == nil && fn != nil {
			fn(v)
		}
		rest = rest[j:]
	}
}

func isNumByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// fleetFrame classifies one server frame of the Atmosphere event API.
type frameKind int

const (
	frameOther frameKind = iota
	frameHeartbeat
	frameHandshake
	frameResponse
	frameError
	frameState // state or state_batch event
	frameEvent // any other event (lifecycle, logout, ...)
)

var (
	typeResponse = []byte(`"type":"response"`)
	typeError    = []byte(`"type":"error"`)
	typeEvent    = []byte(`"type":"event"`)
	eventState   = []byte(`"event":"state`)
)

// classifyFleet tells what an Atmosphere frame is. The server writes compact
// JSON, so the key-value pairs are matched as written.
func classifyFleet(frame []byte) frameKind {
	t := bytes.TrimSpace(frame)
	if len(t) == 0 {
		return frameOther
	}
	if t[0] != '{' {
		if bytes.Equal(t, []byte("X")) {
			return frameHeartbeat
		}
		if bytes.Count(t, []byte("|")) >= 3 {
			return frameHandshake
		}
		return frameOther
	}
	switch {
	case bytes.Contains(t, typeEvent):
		if bytes.Contains(t, eventState) {
			return frameState
		}
		return frameEvent
	case bytes.Contains(t, typeResponse):
		return frameResponse
	case bytes.Contains(t, typeError):
		return frameError
	}
	return frameOther
}
