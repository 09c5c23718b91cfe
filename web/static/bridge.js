/*
 * fleetwire topic bridge console.
 *
 * While signed in and opened, the console holds a plain WebSocket to the
 * topic bridge (/bridge?hash=...), sends the config frame a Clown.Hub
 * client sends, lists the frames as they arrive, sends frames typed into
 * its field and shows every relay it hears of ("…relay/<id>" with
 * {"state": bool}) as a toggle that writes "<topic>/set".
 *
 * It also defines WebSocket.connect(url), which seed 003's client calls,
 * so that snippet runs as written in the browser console of this page.
 */
(function () {
  'use strict';

  if (typeof WebSocket.connect !== 'function') {
    WebSocket.connect = function (url, protocols) { return new WebSocket(url, protocols); };
  }

  var CONFIG_TOPIC = 'clown.talk/-/config/set';
  var MAX_FRAMES = 200;
  var RETRY_MS = 3000;
  var RELAY = /(^|\/)relay\/[^/]+$/;

  var con = {
    hash: null,
    ws: null,
    retry: 0,
    relays: new Map() // topic -> toggle input
  };

  function $(id) { return document.getElementById(id); }

  function setStatus(state, text) {
    var st = $('bridge-status');
    st.className = 'badge ' + state;
    st.dataset.state = state;
    st.textContent = text || state;
  }

  function log(dir, text) {
    var list = $('bridge-frames');
    var li = document.createElement('li');
    li.className = dir;
    li.dataset.dir = dir;
    li.textContent = text;
    list.appendChild(li);
    while (list.children.length > MAX_FRAMES) list.removeChild(list.firstChild);
    list.scrollTop = list.scrollHeight;
  }

  function send(text) {
    if (!con.ws || con.ws.readyState !== WebSocket.OPEN) {
      log('note', 'not connected: ' + text);
      return false;
    }
    con.ws.send(text);
    log('out', text);
    return true;
  }

  function url() {
    var scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    return scheme + location.host + '/bridge?hash=' + encodeURIComponent(con.hash);
  }

  function open() {
    clearTimeout(con.retry);
    if (!con.hash || !$('bridge-console').open || con.ws) return;
    setStatus('connecting');
    var ws = new WebSocket(url());
    con.ws = ws;
    ws.onopen = function () {
      if (con.ws !== ws) return;
      setStatus('open');
      send(JSON.stringify([CONFIG_TOPIC, {}]));
    };
    ws.onmessage = function (ev) {
      if (con.ws !== ws) return;
      log('in', ev.data);
      var frame;
      try { frame = JSON.parse(ev.data); } catch (e) { return; }
      if (Array.isArray(frame) && frame.length === 2) onFrame(frame[0], frame[1]);
    };
    ws.onclose = function (ev) {
      if (con.ws !== ws) return;
      con.ws = null;
      setStatus('closed', ev.code === 1008 ? 'session ended' : 'closed');
      log('note', 'closed (' + ev.code + (ev.reason ? ' ' + ev.reason : '') + ')');
      if (con.hash && ev.code !== 1008) con.retry = setTimeout(open, RETRY_MS);
    };
  }

  function close() {
    clearTimeout(con.retry);
    var ws = con.ws;
    con.ws = null;
    if (ws) ws.close(1000);
    setStatus('closed');
  }

  function onFrame(topic, payload) {
    if (typeof topic !== 'string') return;
    if (topic === CONFIG_TOPIC.replace(/\/set$/, '') && payload) {
      $('bridge-node').textContent = payload.node || 'none';
      return;
    }
    if (RELAY.test(topic) && payload && typeof payload.state === 'boolean') relay(topic, payload.state);
  }

  // relay shows the relay's reported state, adding its toggle the first
  // time it reports.
  function relay(topic, on) {
    var input = con.relays.get(topic);
    if (!input) {
      var label = document.createElement('label');
      label.className = 'relay';
      input = document.createElement('input');
      input.type = 'checkbox';
      input.setAttribute('role', 'switch');
      input.dataset.topic = topic;
      input.addEventListener('change', function () {
        // The toggle shows what the relay reports, not what was asked.
        var want = input.checked;
        input.checked = !want;
        send(JSON.stringify([topic + '/set', { state: want }]));
      });
      label.appendChild(input);
      label.appendChild(document.createTextNode(' ' + topic));
      $('bridge-relays').appendChild(label);
      con.relays.set(topic, input);
    }
    input.checked = on;
    input.dataset.state = String(on);
  }

  function onSession(ev) {
    var hash = ev.detail && ev.detail.hash;
    if (hash === con.hash) return;
    close();
    con.hash = hash || null;
    con.relays.clear();
    $('bridge-relays').textContent = '';
    $('bridge-frames').textContent = '';
    $('bridge-node').textContent = '–';
    open();
  }

  function init() {
    document.addEventListener('fleetwire:session', onSession);
    $('bridge-console').addEventListener('toggle', function () {
      if ($('bridge-console').open) open(); else close();
    });
    $('bridge-send').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var field = $('bridge-frame');
      var text = field.value.trim();
      if (!text) return;
      try {
        var frame = JSON.parse(text);
        if (!Array.isArray(frame) || frame.length !== 2 || typeof frame[0] !== 'string') throw new Error('not ["topic", payload]');
      } catch (e) {
        log('note', 'not a frame (' + e.message + '): ' + text);
        return;
      }
      if (send(text)) field.value = '';
    });
  }

  // The page loads this script before fleet.js, at the end of the body:
  // the console's elements exist and no session was announced yet.
  init();
})();
