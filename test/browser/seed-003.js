// Seed 003's topic bridge client, as its text gives it: only the closing
// braces the text lost are put back. bridge-console.cjs evaluates it in
// the fleet page, as a user pasting it into the browser console would,
// then calls wsConnect(url) and websocket.send(...) as the seed says.
var websocket;

var wsConnect = function(wsUri) {
  try {
    websocket = WebSocket.connect(wsUri);
    websocket.onopen = function(evt) { onOpen(evt) };
    websocket.onclose = function(evt) { onClose(evt) };
    websocket.onmessage = function(evt) { onMessage(evt) };
    websocket.onerror = function(evt) { onError(evt) };
  } catch (e) {
  }
}

// After connecting the initialization message is sent:
function onOpen(evt) {
  websocket.send('["clown.talk/-/config/set", {}]\n');
}

function onClose(evt) {
  // What should happen when closing the connection
}

function onMessage(evt) {
  var rawData = JSON.parse(evt.data);
  var topic = rawData[0];
  var payload = rawData[1];
  console.log(rawData, topic ,payload);
}

function onError(evt) {
  console.log("Error: " + evt.data);
}
