// Package bridge is the topic bridge: a WebSocket endpoint where every
// frame is a JSON array ["topic/path", payload]. Clients read what devices
// publish and write commands to them, over one shared MQTT connection.
package bridge
