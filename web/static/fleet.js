/*
 * fleetwire live fleet page.
 *
 * Signs in over the REST API (user/auth), loads the user's trackers
 * (tracker/list) and their states (tracker/get_states), then follows
 * state_batch events over the Atmosphere endpoint with atmosphere.js and
 * draws them on an offline map and in a table. Plain ES2017, no build step.
 * The topic bridge console is bridge.js; it hears of the session through
 * the document's "fleetwire:session" event.
 */
(function () {
  'use strict';

  var HASH_KEY = 'fleetwire.hash';
  var TRANSPORT_KEY = 'fleetwire.transport';
  var SUBSCRIPTION_URL = location.origin + '/v2/event/subscription';
  var SVG_NS = 'http://www.w3.org/2000/svg';
  // Error codes after which the session hash is of no more use.
  var AUTH_ERRORS = { 3: true, 4: true, 7: true, 11: true };
  var TRANSPORTS = ['websocket', 'long-polling', 'streaming', 'sse'];

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    setAttrs(e, attrs);
    if (text != null) e.textContent = text;
    return e;
  }

  function svg(tag, attrs) {
    var e = document.createElementNS(SVG_NS, tag);
    setAttrs(e, attrs);
    return e;
  }

  function setAttrs(e, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (k) {
      if (attrs[k] != null) e.setAttribute(k, attrs[k]);
    });
  }

  // ---------------------------------------------------------------- API

  function ApiError(code, description) {
    this.name = 'ApiError';
    this.code = code;
    this.message = description || ('error ' + code);
  }
  ApiError.prototype = Object.create(Error.prototype);

  async function api(action, params) {
    var resp;
    try {
      resp = await fetch('/v2/' + action, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
        body: JSON.stringify(params || {}),
        credentials: 'same-origin',
        cache: 'no-store'
      });
    } catch (e) {
      throw new ApiError(0, 'cannot reach the server (' + e.message + ')');
    }
    var body = null;
    try {
      body = await resp.json();
    } catch (e) {
      throw new ApiError(resp.status, 'unexpected answer from the server (HTTP ' + resp.status + ')');
    }
    if (!body || body.success !== true) {
      var st = (body && body.status) || {};
      throw new ApiError(st.code || resp.status, st.description || ('HTTP ' + resp.status));
    }
    return body;
  }

  // -------------------------------------------------------------- model

  var app = {
    hash: null,
    trackers: new Map(),   // tracker id -> entry
    bySource: new Map(),   // source id -> tracker id
    selected: null,        // tracker id shown in #details
    socket: null,
    generation: 0,         // bumped on every (re)subscription and sign-out
    transport: '',
    conn: 'closed',
    messages: 0,
    userTime: '',
    reloadTimer: 0,
    timeZone: 'UTC',       // the user's, for the track API's dates
    trail: null            // { trackerId, live, points: [{lat, lng, w}] } on the map
  };

  function entryOf(t) {
    return {
      id: t.id,
      label: t.label || ('#' + t.id),
      sourceId: t.source ? t.source.id : null,
      tracker: t,
      state: null,
      blocked: !!(t.source && t.source.blocked),
      removed: false,
      row: null,
      dot: null,
      // Map animation: world coordinates drawn now, and where they head.
      pos: null,
      from: null,
      to: null,
      t0: 0
    };
  }

  function locationOf(state) {
    var loc = state && state.gps && state.gps.location;
    if (!loc || typeof loc.lat !== 'number' || typeof loc.lng !== 'number') return null;
    return loc;
  }

  // ---------------------------------------------------------- sign in/out

  function showLogin(message) {
    $('fleet-view').hidden = true;
    $('login-view').hidden = false;
    $('signout').hidden = true;
    document.body.classList.remove('signed-in');
    var err = $('login-error');
    err.textContent = message || '';
    err.hidden = !message;
    app.conn = 'closed';
    var st = $('status');
    st.className = 'badge closed';
    st.dataset.state = 'closed';
    st.dataset.transport = '';
    st.textContent = 'signed out';
    $('clock').textContent = '';
    $('password').value = '';
    $('signin').disabled = false;
    $('login').focus();
  }

  function showFleet() {
    $('login-view').hidden = true;
    $('fleet-view').hidden = false;
    $('signout').hidden = false;
    document.body.classList.add('signed-in');
    mapView.resize();
  }

  async function signIn(ev) {
    ev.preventDefault();
    var login = $('login').value.trim();
    var password = $('password').value;
    var err = $('login-error');
    err.hidden = true;
    $('signin').disabled = true;
    try {
      var body = await api('user/auth', { login: login, password: password });
      if (!body.hash) throw new ApiError(0, 'the server sent no session hash');
      app.hash = body.hash;
      sessionStorage.setItem(HASH_KEY, body.hash);
      $('password').value = '';
      await start();
    } catch (e) {
      err.textContent = describe(e);
      err.hidden = false;
    } finally {
      $('signin').disabled = false;
    }
  }

  function describe(e) {
    if (e instanceof ApiError && e.code) return e.message + ' (code ' + e.code + ')';
    return e && e.message ? e.message : String(e);
  }

  // signOut ends the session; serverSide tells whether to ask the server
  // to close it too (not when the server already did).
  function signOut(message, serverSide) {
    var hash = app.hash;
    closeSocket();
    app.hash = null;
    sessionStorage.removeItem(HASH_KEY);
    if (serverSide && hash) api('user/logout', { hash: hash }).catch(function () {});
    clearFleet();
    showLogin(message);
    announceSession();
  }

  // ------------------------------------------------------------ loading

  async function start() {
    showError('');
    var info = await api('user/get_info', { hash: app.hash });
    if (info.user_info && info.user_info.time_zone) app.timeZone = info.user_info.time_zone;
    await loadTrackers();
    showFleet();
    await loadStates();
    mapView.fit(true);
    subscribe();
    announceSession();
  }

  // announceSession tells the page's other parts (the bridge console) of
  // the session hash, or null once signed out.
  function announceSession() {
    document.dispatchEvent(new CustomEvent('fleetwire:session', { detail: { hash: app.hash } }));
  }

  async function loadTrackers() {
    var body = await api('tracker/list', { hash: app.hash });
    var list = Array.isArray(body.list) ? body.list : [];
    var seen = new Set();
    list.forEach(function (t) {
      seen.add(t.id);
      var e = app.trackers.get(t.id);
      if (!e) {
        e = entryOf(t);
        app.trackers.set(t.id, e);
      } else {
        e.tracker = t;
        e.label = t.label || ('#' + t.id);
        e.sourceId = t.source ? t.source.id : null;
        e.blocked = !!(t.source && t.source.blocked);
        e.removed = false;
      }
      if (e.sourceId != null) app.bySource.set(e.sourceId, t.id);
    });
    app.trackers.forEach(function (e, id) {
      if (!seen.has(id)) removeEntry(e);
    });
    renderTable();
  }

  async function loadStates(ids) {
    ids = ids || Array.from(app.trackers.keys());
    if (ids.length === 0) return;
    for (var i = 0; i < ids.length; i += 2000) {
      var body = await api('tracker/get_states', {
        hash: app.hash,
        trackers: ids.slice(i, i + 2000),
        list_blocked: true,
        allow_not_exist: true
      });
      if (body.user_time) app.userTime = body.user_time;
      var states = body.states || {};
      Object.keys(states).forEach(function (id) {
        var e = app.trackers.get(Number(id));
        if (e) applyState(e, states[id], true);
      });
      (body.blocked || []).forEach(function (id) {
        var e = app.trackers.get(id);
        if (e) { e.blocked = true; updateEntry(e); }
      });
    }
  }

  // A state for a source this page does not know means the tracker list
  // changed: fetch it again, once for a burst of such states.
  function scheduleReload() {
    if (app.reloadTimer) return;
    var gen = app.generation;
    app.reloadTimer = setTimeout(async function () {
      app.reloadTimer = 0;
      if (gen !== app.generation || !app.hash) return;
      try {
        var before = new Set(app.trackers.keys());
        await loadTrackers();
        var added = Array.from(app.trackers.keys()).filter(function (id) { return !before.has(id); });
        await loadStates(added);
        mapView.fit(false);
      } catch (e) {
        handleFailure(e);
      }
    }, 1500);
  }

  function handleFailure(e) {
    if (e instanceof ApiError && AUTH_ERRORS[e.code]) {
      signOut('Your session has ended: ' + e.message, false);
      return;
    }
    showError(describe(e));
  }

  function clearFleet() {
    app.trackers.forEach(function (e) { if (e.dot) e.dot.remove(); });
    app.trackers.clear();
    app.bySource.clear();
    app.selected = null;
    app.messages = 0;
    $('trackers').tBodies[0].textContent = '';
    renderDetails();
    mapView.fit(true);
  }

  function removeEntry(e) {
    if (e.row) e.row.remove();
    if (e.dot) e.dot.remove();
    app.trackers.delete(e.id);
    if (e.sourceId != null && app.bySource.get(e.sourceId) === e.id) app.bySource.delete(e.sourceId);
    if (app.selected === e.id) { app.selected = null; renderDetails(); }
  }

  // ---------------------------------------------------------- live events

  function subscribe() {
    closeSocket();
    var gen = ++app.generation;
    var transport = $('transport').value;
    app.transport = transport;
    setConn('connecting', transport);

    function live(fn) {
      return function () {
        if (gen !== app.generation) return;
        fn.apply(null, arguments);
      };
    }

    // sentFor is the tracking id the subscription was last sent for;
    // resync is set while a lost connection has not been followed by a new
    // subscription.
    var sentFor = null;
    var resync = false;
    var probing = false;
    var lastProbe = 0;
    var restartAt = 0;

    function uuid() {
      var id = app.socket && app.socket.getUUID();
      return id && id !== '0' ? String(id) : null;
    }

    function sendSubscribe() {
      if (!app.socket || !app.hash) return;
      sentFor = uuid();
      resync = false;
      app.socket.push(JSON.stringify({
        action: 'subscribe',
        hash: app.hash,
        requests: [{ type: 'state_batch', target: { type: 'all' }, rate_limit: '1s', format: 'full' }]
      }));
    }

    app.socket = atmosphere.subscribe({
      url: SUBSCRIPTION_URL,
      // Binds the event session to this page: a tracking id alone (from a
      // log, or another machine) does not give it away.
      headers: { 'X-Fleetwire-Resume': resumeSecret() },
      contentType: 'application/json',
      transport: transport,
      fallbackTransport: 'long-polling',
      trackMessageLength: true,
      enableProtocol: true,
      reconnectInterval: 1000,
      maxReconnectOnClose: 1000,
      timeout: 300000,
      onOpen: live(function (r) {
        setConn('open', r.transport);
        if (sentFor === null || sentFor !== uuid()) sendSubscribe();
      }),
      onReopen: live(function (req, r) {
        setConn('open', (r && r.transport) || req.transport);
        // The server keeps the session across reconnects, but it may have
        // expired (or the server restarted) meanwhile: subscribing again
        // is harmless and brings a fresh snapshot of every tracker.
        if (resync || sentFor !== uuid()) sendSubscribe();
      }),
      onReconnect: live(function (req, r) {
        resync = true;
        setConn('reconnecting', (r && r.transport) || req.transport);
      }),
      onMessage: live(function (r) { onMessage(r.responseBody); }),
      onClose: live(function (r) {
        resync = true;
        setConn('closed', r.transport);
      }),
      onError: live(function (r) {
        resync = true;
        setConn('closed', r.transport);
        showError('Connection error' + (r.reasonPhrase ? ': ' + r.reasonPhrase : '') + (r.status ? ' (HTTP ' + r.status + ')' : ''));
      }),
      onTransportFailure: live(function (reason, req) {
        setConn('connecting', req.fallbackTransport);
        note(transport + ' is not available (' + reason + '), falling back to ' + req.fallbackTransport);
      }),
      onFailureToReconnect: live(function (req, r) {
        resync = true;
        setConn('closed', (r && r.transport) || req.transport);
        showError('Could not reconnect to the event stream.');
      }),
      onClientTimeout: live(function () {
        // No traffic for the whole timeout: start over.
        subscribe();
      })
    });

    // atmosphere.js opens a long-polling connection only when a poll
    // answers, and a browser shows a held poll's response only once its
    // body starts, so with nothing to deliver onOpen would wait for the
    // first heartbeat or the poll timeout. Subscribe as soon as the
    // handshake has given the connection its tracking id instead; the
    // answer to that completes the poll and opens the connection.
    //
    // For the same reason a long-poll that reconnects to a restarted
    // server can sit unopened until the poll timeout, and a connection
    // that gave up stays closed: once the server answers the REST API
    // again and the connection has not reopened within a few seconds,
    // start over with a new one.
    var watch = setInterval(function () {
      if (gen !== app.generation) { clearInterval(watch); return; }
      if (app.conn === 'open') { restartAt = 0; return; }
      var id = uuid();
      if (app.conn === 'connecting' && id && id !== sentFor) {
        sendSubscribe();
        return;
      }
      if (!resync) return;
      if (restartAt && Date.now() >= restartAt) {
        subscribe();
        return;
      }
      if (!restartAt && !probing && Date.now() - lastProbe > 2000) {
        probing = true;
        lastProbe = Date.now();
        api('user/get_info', { hash: app.hash }).then(function () {
          if (gen === app.generation && app.conn !== 'open' && !restartAt) restartAt = Date.now() + 3000;
        }, function (e) {
          if (gen === app.generation && e instanceof ApiError && AUTH_ERRORS[e.code]) handleFailure(e);
        }).then(function () { probing = false; });
      }
    }, 200);
  }

  // resumeSecret is this page's random secret binding its event sessions.
  function resumeSecret() {
    if (!app.resumeSecret) {
      var b = new Uint8Array(16);
      crypto.getRandomValues(b);
      app.resumeSecret = Array.prototype.map.call(b, function (x) { return ('0' + x.toString(16)).slice(-2); }).join('');
    }
    return app.resumeSecret;
  }

  function closeSocket() {
    app.generation++;
    if (app.reloadTimer) { clearTimeout(app.reloadTimer); app.reloadTimer = 0; }
    if (app.socket) {
      app.socket = null;
      try { atmosphere.unsubscribeUrl(SUBSCRIPTION_URL); } catch (e) { /* already closed */ }
    }
  }

  function onMessage(body) {
    if (typeof body !== 'string') return;
    body = body.trim();
    if (body === '' || body === 'X') return;
    var msg;
    try {
      msg = JSON.parse(body);
    } catch (e) {
      note('ignored a message that is not JSON: ' + body.slice(0, 80));
      return;
    }
    app.messages++;
    if (msg.user_time) app.userTime = msg.user_time;
    switch (msg.type) {
      case 'event':
        onEvent(msg);
        break;
      case 'error':
        onServerError(msg);
        break;
      case 'response':
        onResponse(msg);
        break;
    }
    renderStatus();
  }

  function onEvent(msg) {
    switch (msg.event) {
      case 'state_batch':
        (Array.isArray(msg.data) ? msg.data : []).forEach(onState);
        break;
      case 'state':
        onState(msg.data);
        break;
      case 'lifecycle':
        onLifecycle(msg.data || {});
        break;
      case 'logout':
        signOut('Signed out by the server: ' + (typeof msg.data === 'string' ? msg.data : 'session closed'), false);
        break;
    }
  }

  function onState(state) {
    if (!state || state.source_id == null) return;
    var id = app.bySource.get(state.source_id);
    var e = id != null && app.trackers.get(id);
    if (!e) {
      scheduleReload();
      return;
    }
    applyState(e, state, false);
  }

  function onLifecycle(d) {
    var id = app.bySource.get(d.source_id);
    var e = id != null && app.trackers.get(id);
    if (!e) {
      scheduleReload();
      return;
    }
    switch (d.lifecycle_event) {
      case 'block':
        e.blocked = true;
        break;
      case 'unblock':
        e.blocked = false;
        break;
      case 'corrupt':
        e.removed = true;
        break;
    }
    updateEntry(e);
    mapView.touch(e);
    if (app.selected === e.id) renderDetails();
    if (d.lifecycle_event === 'unblock') loadStates([e.id]).catch(handleFailure);
  }

  function onServerError(msg) {
    var st = msg.status || {};
    if (st.code === 4 && msg.action == null) {
      // The reset notice: the server could not resume this page's event
      // session (it expired, or the server restarted without it). Start
      // over with a new one; the sign-in still holds.
      note('event session not resumed; subscribing again');
      subscribe();
      return;
    }
    if (AUTH_ERRORS[st.code]) {
      signOut('Your session has ended: ' + (st.description || 'code ' + st.code), false);
      return;
    }
    showError('Server error' + (msg.action ? ' on ' + msg.action : '') + ': ' +
      (st.description || 'unknown') + (st.code ? ' (code ' + st.code + ')' : ''));
  }

  function onResponse(msg) {
    var data = msg.data || {};
    var failed = Object.keys(data).filter(function (k) { return data[k] && data[k].success === false; });
    if (failed.length) {
      var st = data[failed[0]].status || {};
      showError('Subscription to ' + failed.join(', ') + ' refused: ' + (st.description || 'code ' + st.code));
    } else {
      showError('');
    }
  }

  // ------------------------------------------------------------ updates

  function applyState(e, state, initial) {
    e.state = state;
    var loc = locationOf(state);
    if (loc) {
      var w = mercator(loc.lat, loc.lng);
      if (!e.pos || initial) {
        e.pos = w; e.from = w; e.to = w; e.t0 = 0;
      } else if (w.x !== e.to.x || w.y !== e.to.y) {
        e.from = e.pos; e.to = w; e.t0 = performance.now();
      }
    }
    updateEntry(e);
    if (loc) extendTrail(e, loc);
    mapView.touch(e);
    if (app.selected === e.id) renderDetails();
  }

  function connectionOf(e) {
    return (e.state && e.state.connection_status) || 'unknown';
  }

  function movementOf(e) {
    return (e.state && e.state.movement_status) || 'unknown';
  }

  function isOffline(e) {
    var c = connectionOf(e);
    return c === 'offline' || c === 'just_registered' || c === 'unknown';
  }

  function fmtCoord(v) {
    return typeof v === 'number' ? v.toFixed(6) : '—';
  }

  // ------------------------------------------------------------ table

  function renderTable() {
    var tbody = $('trackers').tBodies[0];
    var entries = Array.from(app.trackers.values());
    entries.sort(function (a, b) {
      return a.label.localeCompare(b.label, undefined, { numeric: true }) || a.id - b.id;
    });
    entries.forEach(function (e) {
      if (!e.row) e.row = makeRow(e);
      tbody.appendChild(e.row);
      updateEntry(e);
    });
    $('empty').hidden = entries.length > 0;
  }

  function makeRow(e) {
    var tr = el('tr', { 'data-tracker-id': e.id, 'data-source-id': e.sourceId, tabindex: '0' });
    ['label', 'connection', 'movement', 'speed', 'lat', 'lng', 'updated'].forEach(function (c) {
      tr.appendChild(el('td', { class: c }));
    });
    tr.addEventListener('click', function () { select(e.id, false); });
    tr.addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); select(e.id, false); }
    });
    return tr;
  }

  function updateEntry(e) {
    var tr = e.row;
    if (!tr) return;
    var s = e.state;
    var loc = locationOf(s);
    var c = tr.cells;
    c[0].textContent = e.label;
    c[1].textContent = e.blocked ? 'blocked' : connectionOf(e).replace(/_/g, ' ');
    c[2].textContent = movementOf(e);
    c[3].textContent = s && s.gps && typeof s.gps.speed === 'number' ? String(s.gps.speed) : '—';
    c[4].textContent = fmtCoord(loc && loc.lat);
    c[5].textContent = fmtCoord(loc && loc.lng);
    c[6].textContent = (s && s.last_update) || 'never';
    tr.dataset.connection = connectionOf(e);
    tr.dataset.movement = movementOf(e);
    if (loc) {
      tr.dataset.lat = String(loc.lat);
      tr.dataset.lng = String(loc.lng);
    } else {
      delete tr.dataset.lat;
      delete tr.dataset.lng;
    }
    tr.classList.toggle('blocked', e.blocked);
    tr.classList.toggle('removed', e.removed);
    tr.classList.toggle('offline', isOffline(e));
    tr.classList.toggle('selected', app.selected === e.id);
    if (s && tr.dataset.lastUpdate !== String(s.last_update)) {
      if (tr.dataset.lastUpdate !== undefined) flash(tr);
      tr.dataset.lastUpdate = String(s.last_update);
    }
  }

  function flash(tr) {
    tr.classList.remove('flash');
    void tr.offsetWidth; // restart the animation
    tr.classList.add('flash');
  }

  // ---------------------------------------------------------- details

  function select(id, fromMap) {
    app.selected = app.selected === id && fromMap ? null : id;
    app.trackers.forEach(function (e) {
      if (e.row) e.row.classList.toggle('selected', app.selected === e.id);
      if (e.dot) e.dot.classList.toggle('selected', app.selected === e.id);
    });
    var e = app.trackers.get(app.selected);
    if (e && e.row && fromMap) e.row.scrollIntoView({ block: 'nearest' });
    if (app.trail && app.trail.trackerId !== app.selected) clearTrail();
    renderDetails();
  }

  // protocolOf is the protocol the device reports over: what the
  // Teltonika and GT06 listeners record in the state, else the tracker's
  // model.
  function protocolOf(e) {
    var add = e.state && e.state.additional;
    if (add && add.protocol && add.protocol.value) return add.protocol.value;
    var src = (e.tracker && e.tracker.source) || {};
    return src.model || null;
  }

  // renderDetails builds the panel when the selected tracker changes and
  // refreshes its fields and state on every update; the trail controls
  // keep what the user chose.
  function renderDetails() {
    var box = $('details');
    var e = app.selected != null && app.trackers.get(app.selected);
    if (!e) {
      box.textContent = '';
      box.hidden = true;
      delete box.dataset.trackerId;
      return;
    }
    box.hidden = false;
    if (box.dataset.trackerId !== String(e.id)) buildDetails(box, e);
    box.querySelector('.details-head h2').textContent = e.label;

    var s = e.state || {};
    var gps = s.gps || {};
    var loc = locationOf(s);
    var t = e.tracker || {};
    var src = t.source || {};
    var rows = [
      ['Tracker id', e.id],
      ['Source id', e.sourceId],
      ['Device id', src.device_id],
      ['Model', src.model],
      ['Protocol', protocolOf(e)],
      ['Status', e.removed ? 'removed' : e.blocked ? 'blocked' : 'active'],
      ['Connection', s.connection_status],
      ['Movement', s.movement_status],
      ['Latitude', loc ? loc.lat : null],
      ['Longitude', loc ? loc.lng : null],
      ['Speed', gps.speed != null ? gps.speed + ' km/h' : null],
      ['Heading', gps.heading != null ? gps.heading + '°' : null],
      ['Altitude', gps.alt != null ? gps.alt + ' m' : null],
      ['GPS signal', gps.signal_level != null ? gps.signal_level + ' %' : null],
      ['GPS updated', gps.updated],
      ['Battery', s.battery_level != null ? s.battery_level + ' %' : null],
      ['Ignition', s.ignition != null ? (s.ignition ? 'on' : 'off') : null],
      ['GSM', s.gsm ? [s.gsm.network_name, s.gsm.signal_level != null ? s.gsm.signal_level + ' %' : null].filter(Boolean).join(', ') : null],
      ['Last packet', s.last_update]
    ];
    var dl = box.querySelector('dl.fields');
    dl.textContent = '';
    rows.forEach(function (r) {
      if (r[1] == null || r[1] === '') return;
      dl.appendChild(el('dt', null, r[0]));
      dl.appendChild(el('dd', { 'data-field': r[0].toLowerCase().replace(/ /g, '_') }, String(r[1])));
    });
    box.querySelector('pre.state-json').textContent = e.state ? JSON.stringify(e.state, null, 2) : 'no state yet';
  }

  function buildDetails(box, e) {
    box.textContent = '';
    box.dataset.trackerId = String(e.id);
    var head = el('div', { class: 'details-head' });
    head.appendChild(el('h2', null, e.label));
    var close = el('button', { type: 'button', class: 'close', 'aria-label': 'Close' }, '×');
    close.addEventListener('click', function () { select(null, false); });
    head.appendChild(close);
    box.appendChild(head);
    box.appendChild(el('dl', { class: 'fields' }));
    box.appendChild(el('h3', null, 'Trail'));
    box.appendChild(trailForm(e));
    box.appendChild(el('h3', null, 'State'));
    box.appendChild(el('pre', { class: 'state-json' }));
  }

  // ------------------------------------------------------------ trail

  // userDate formats ms since the epoch as the API's date/time in the
  // user's time zone.
  function userDate(ms) {
    var parts = {};
    new Intl.DateTimeFormat('en-CA', {
      timeZone: app.timeZone, hourCycle: 'h23',
      year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit'
    }).formatToParts(new Date(ms)).forEach(function (p) { parts[p.type] = p.value; });
    return parts.year + '-' + parts.month + '-' + parts.day + ' ' + parts.hour + ':' + parts.minute + ':' + parts.second;
  }

  // fromLocalInput turns a datetime-local value (the user's wall clock)
  // into the API's format.
  function fromLocalInput(v) {
    if (!v) return '';
    v = v.replace('T', ' ');
    return v.length === 16 ? v + ':00' : v;
  }

  function trailForm(e) {
    var form = el('form', { class: 'trail' });
    var period = el('select', { class: 'trail-period', 'aria-label': 'Trail period' });
    [['1', 'last hour'], ['6', 'last 6 hours'], ['24', 'last 24 hours'], ['168', 'last 7 days'], ['custom', 'from … to']].forEach(function (o) {
      period.appendChild(el('option', { value: o[0] }, o[1]));
    });
    period.value = '24';
    var custom = el('span', { class: 'trail-custom' });
    custom.hidden = true;
    var now = Date.now();
    var from = el('input', { type: 'datetime-local', class: 'trail-from', step: '1', 'aria-label': 'From' });
    var to = el('input', { type: 'datetime-local', class: 'trail-to', step: '1', 'aria-label': 'To' });
    from.value = userDate(now - 24 * 3600e3).replace(' ', 'T');
    to.value = userDate(now).replace(' ', 'T');
    custom.appendChild(from);
    custom.appendChild(to);
    var show = el('button', { type: 'submit', class: 'trail-show' }, 'Show trail');
    var clear = el('button', { type: 'button', class: 'trail-clear' }, 'Clear');
    var info = el('p', { class: 'trail-info muted', role: 'status' });
    [period, custom, show, clear, info].forEach(function (n) { form.appendChild(n); });
    period.addEventListener('change', function () { custom.hidden = period.value !== 'custom'; });
    clear.addEventListener('click', function () { clearTrail(); info.textContent = ''; });
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var live = period.value !== 'custom';
      var range = live
        ? { from: userDate(Date.now() - Number(period.value) * 3600e3), to: userDate(Date.now() + 60e3) }
        : { from: fromLocalInput(from.value), to: fromLocalInput(to.value) };
      loadTrail(e.id, range, live, info);
    });
    return form;
  }

  async function loadTrail(id, range, live, info) {
    info.textContent = 'loading…';
    info.classList.remove('error');
    try {
      var body = await api('track/read', {
        hash: app.hash, tracker_id: id, from: range.from, to: range.to, simplify: true, point_limit: 2000
      });
      if (app.selected !== id) return;
      var list = Array.isArray(body.list) ? body.list : [];
      app.trail = {
        trackerId: id,
        live: live,
        points: list.map(function (p) { return { lat: p.lat, lng: p.lng, w: mercator(p.lat, p.lng) }; })
      };
      var km = list.length ? list[list.length - 1].mileage : 0;
      info.textContent = list.length
        ? list.length + ' points, ' + km.toFixed(1) + ' km, ' + list[0].get_time + ' – ' + list[list.length - 1].get_time +
          (body.limit_exceeded ? ' (older points are no longer kept)' : '')
        : 'no positions in ' + range.from + ' – ' + range.to;
      info.dataset.points = String(list.length);
      mapView.fitTrail();
    } catch (err) {
      info.textContent = describe(err);
      info.classList.add('error');
    }
  }

  // extendTrail adds a live position to the trail of the last hours.
  function extendTrail(e, loc) {
    var tr = app.trail;
    if (!tr || !tr.live || tr.trackerId !== e.id) return;
    var last = tr.points[tr.points.length - 1];
    if (last && last.lat === loc.lat && last.lng === loc.lng) return;
    tr.points.push({ lat: loc.lat, lng: loc.lng, w: mercator(loc.lat, loc.lng) });
  }

  function clearTrail() {
    app.trail = null;
    mapView.touch({});
  }

  // ------------------------------------------------------------- status

  function setConn(state, transport) {
    app.conn = state;
    if (transport) app.transport = transport;
    renderStatus();
  }

  function renderStatus() {
    var st = $('status');
    if (!app.hash) return;
    st.className = 'badge ' + app.conn;
    st.dataset.state = app.conn;
    st.dataset.transport = app.transport;
    st.textContent = app.transport + ' · ' + app.conn;
    st.title = app.messages + ' messages received';
    $('clock').textContent = app.userTime ? 'server time ' + app.userTime : '';
  }

  function showError(text) {
    var e = $('error');
    e.textContent = text;
    e.hidden = !text;
  }

  function note(text) {
    var n = $('note');
    n.textContent = text;
    n.hidden = !text;
  }

  // --------------------------------------------------------------- map

  var MAX_LAT = 85.05112878;

  // mercator maps lat/lng to Web Mercator world coordinates in [0, 1].
  function mercator(lat, lng) {
    var phi = Math.max(-MAX_LAT, Math.min(MAX_LAT, lat)) * Math.PI / 180;
    return {
      x: (lng + 180) / 360,
      y: (1 - Math.log(Math.tan(phi) + 1 / Math.cos(phi)) / Math.PI) / 2
    };
  }

  function latOf(y) {
    return Math.atan(Math.sinh(Math.PI * (1 - 2 * y))) * 180 / Math.PI;
  }

  function lngOf(x) {
    return x * 360 - 180;
  }

  // niceStep picks a 1-2-5 step near span/target.
  function niceStep(span, target) {
    var raw = span / target;
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  }

  function decimalsOf(step) {
    return Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  }

  var TILE_URL = (function () {
    if (typeof window.FLEETWIRE_TILES === 'string' && window.FLEETWIRE_TILES) return window.FLEETWIRE_TILES;
    var m = document.querySelector('meta[name="fleetwire-tiles"]');
    var v = m && m.getAttribute('content');
    if (v) window.FLEETWIRE_TILES = v;
    return v || '';
  })();

  var mapView = (function () {
    var root = $('map');
    var gTiles = svg('g', { class: 'tiles' });
    var gGrid = svg('g', { class: 'grid' });
    var gTrail = svg('g', { class: 'trail' });
    var gDots = svg('g', { class: 'dots' });
    var empty = svg('text', { class: 'map-empty', 'text-anchor': 'middle' });
    var attribution = svg('text', { class: 'attribution', 'text-anchor': 'end' });
    root.appendChild(gTiles);
    root.appendChild(gGrid);
    root.appendChild(gTrail);
    root.appendChild(gDots);
    root.appendChild(empty);
    root.appendChild(attribution);

    var W = 800, H = 400;
    var view = { cx: 0.5, cy: 0.5, s: 400 };   // what is drawn
    var target = { cx: 0.5, cy: 0.5, s: 400 }; // where the view heads
    var frame = 0;
    var tiles = new Map();
    var tileZoom = -1;
    var MOVE_MS = 700;

    function toScreen(p) {
      return { x: (p.x - view.cx) * view.s + W / 2, y: (p.y - view.cy) * view.s + H / 2 };
    }

    function bounds() {
      var b = null;
      app.trackers.forEach(function (e) {
        if (!e.to || e.removed) return;
        if (!b) b = { x0: e.to.x, x1: e.to.x, y0: e.to.y, y1: e.to.y };
        b.x0 = Math.min(b.x0, e.to.x); b.x1 = Math.max(b.x1, e.to.x);
        b.y0 = Math.min(b.y0, e.to.y); b.y1 = Math.max(b.y1, e.to.y);
      });
      return b;
    }

    // fit aims the view at the trackers' bounding box; now jumps there.
    function fit(now) {
      var b = bounds();
      var t;
      if (!b) {
        t = { cx: 0.5, cy: 0.5, s: Math.min(W, H * 1.6) };
      } else {
        var minSpan = 0.00005; // about 2 km at the equator
        var dx = Math.max(b.x1 - b.x0, minSpan), dy = Math.max(b.y1 - b.y0, minSpan);
        var pad = 48;
        var s = Math.min((W - 2 * pad) / dx, (H - 2 * pad) / dy);
        t = { cx: (b.x0 + b.x1) / 2, cy: (b.y0 + b.y1) / 2, s: Math.min(s, 256 * Math.pow(2, 19)) };
      }
      target = t;
      if (now) view = { cx: t.cx, cy: t.cy, s: t.s };
      schedule();
    }

    // touch notes that a tracker changed: refit when it left the view
    // (or the margin around it), redraw in any case.
    function touch(e) {
      if (e.to) {
        var p = { x: (e.to.x - target.cx) * target.s + W / 2, y: (e.to.y - target.cy) * target.s + H / 2 };
        if (p.x < 24 || p.y < 24 || p.x > W - 24 || p.y > H - 24) fit(false);
      }
      schedule();
    }

    function resize() {
      var r = root.getBoundingClientRect();
      if (r.width < 10 || r.height < 10) return;
      W = Math.round(r.width); H = Math.round(r.height);
      root.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
      fit(true);
    }

    function schedule() {
      if (!frame) frame = requestAnimationFrame(draw);
    }

    function ease(t) { return t < 0 ? 0 : t > 1 ? 1 : 1 - Math.pow(1 - t, 3); }

    function draw(now) {
      frame = 0;
      var busy = false;
      // Ease the view towards its target (zoom in log space).
      var k = 0.2;
      var ls = Math.log(view.s), lt = Math.log(target.s);
      if (Math.abs(ls - lt) > 1e-3 || Math.abs(view.cx - target.cx) * view.s > 0.5 || Math.abs(view.cy - target.cy) * view.s > 0.5) {
        view = {
          cx: view.cx + (target.cx - view.cx) * k,
          cy: view.cy + (target.cy - view.cy) * k,
          s: Math.exp(ls + (lt - ls) * k)
        };
        busy = true;
      } else {
        view = { cx: target.cx, cy: target.cy, s: target.s };
      }
      drawTiles();
      drawGrid();
      drawTrail();
      var shown = 0;
      app.trackers.forEach(function (e) {
        if (!e.to || e.removed) {
          if (e.dot) { e.dot.remove(); e.dot = null; }
          return;
        }
        if (e.t0) {
          var f = ease((now - e.t0) / MOVE_MS);
          e.pos = { x: e.from.x + (e.to.x - e.from.x) * f, y: e.from.y + (e.to.y - e.from.y) * f };
          if (f >= 1) { e.pos = e.to; e.t0 = 0; } else busy = true;
        }
        drawDot(e);
        shown++;
      });
      empty.setAttribute('x', W / 2);
      empty.setAttribute('y', H / 2);
      empty.textContent = shown ? '' : (app.trackers.size ? 'No tracker has reported a position yet' : 'No trackers');
      if (busy) schedule();
    }

    function drawDot(e) {
      var g = e.dot;
      if (!g) {
        g = svg('g', { class: 'tracker', 'data-tracker-id': e.id, tabindex: '0' });
        g.appendChild(svg('path', { class: 'heading', d: 'M0,-17 L5,-8 L-5,-8 Z' }));
        g.appendChild(svg('circle', { class: 'halo', r: 12 }));
        g.appendChild(svg('circle', { class: 'body', r: 6 }));
        var label = svg('text', { class: 'label', x: 10, y: 4 });
        g.appendChild(label);
        g.appendChild(svg('title'));
        g.addEventListener('click', function () { select(e.id, true); });
        g.addEventListener('keydown', function (ev) { if (ev.key === 'Enter') select(e.id, true); });
        gDots.appendChild(g);
        e.dot = g;
      }
      var p = toScreen(e.pos);
      g.setAttribute('transform', 'translate(' + p.x.toFixed(1) + ',' + p.y.toFixed(1) + ')');
      var s = e.state || {};
      var gps = s.gps || {};
      var loc = locationOf(s);
      var cls = 'tracker ' + movementOf(e) + (isOffline(e) ? ' offline' : '') +
        (e.blocked ? ' blocked' : '') + (app.selected === e.id ? ' selected' : '');
      if (g.getAttribute('class') !== cls) g.setAttribute('class', cls);
      if (loc) {
        g.dataset.lat = String(loc.lat);
        g.dataset.lng = String(loc.lng);
      }
      var arrow = g.firstChild;
      var heading = typeof gps.heading === 'number' ? gps.heading : 0;
      arrow.setAttribute('transform', 'rotate(' + heading + ')');
      arrow.setAttribute('visibility', movementOf(e) === 'moving' || gps.speed > 0 ? 'visible' : 'hidden');
      var text = g.childNodes[3];
      if (text.textContent !== e.label) text.textContent = e.label;
      g.lastChild.textContent = e.label + ' — ' + movementOf(e) + ', ' + connectionOf(e) +
        (gps.speed != null ? ', ' + gps.speed + ' km/h' : '');
    }

    // fitTrail aims the view at the trail and its tracker.
    function fitTrail() {
      var tr = app.trail;
      if (!tr || tr.points.length === 0) { schedule(); return; }
      var b = { x0: 1, x1: 0, y0: 1, y1: 0 };
      tr.points.forEach(function (p) {
        b.x0 = Math.min(b.x0, p.w.x); b.x1 = Math.max(b.x1, p.w.x);
        b.y0 = Math.min(b.y0, p.w.y); b.y1 = Math.max(b.y1, p.w.y);
      });
      var dx = Math.max(b.x1 - b.x0, 0.000005), dy = Math.max(b.y1 - b.y0, 0.000005);
      var pad = 56; // clear of the legend and the grid labels
      target = {
        cx: (b.x0 + b.x1) / 2, cy: (b.y0 + b.y1) / 2,
        s: Math.min((W - 2 * pad) / dx, (H - 2 * pad) / dy, 256 * Math.pow(2, 19))
      };
      schedule();
    }

    function drawTrail() {
      var tr = app.trail;
      if (!tr || tr.points.length === 0) {
        gTrail.textContent = '';
        return;
      }
      var line = gTrail.querySelector('polyline');
      if (!line || line.dataset.trackerId !== String(tr.trackerId)) {
        gTrail.textContent = '';
        line = svg('polyline', { class: 'trail', 'data-tracker-id': tr.trackerId });
        gTrail.appendChild(line);
        gTrail.appendChild(svg('circle', { class: 'trail-start', r: 5 }));
        gTrail.appendChild(svg('circle', { class: 'trail-end', r: 4 }));
      }
      var pts = tr.points.map(function (p) { var q = toScreen(p.w); return q.x.toFixed(1) + ',' + q.y.toFixed(1); });
      line.setAttribute('points', pts.join(' '));
      line.dataset.points = String(tr.points.length);
      var a = toScreen(tr.points[0].w), z = toScreen(tr.points[tr.points.length - 1].w);
      setAttrs(gTrail.querySelector('.trail-start'), { cx: a.x.toFixed(1), cy: a.y.toFixed(1) });
      setAttrs(gTrail.querySelector('.trail-end'), { cx: z.x.toFixed(1), cy: z.y.toFixed(1) });
    }

    function drawGrid() {
      gGrid.textContent = '';
      var x0 = view.cx - W / 2 / view.s, x1 = view.cx + W / 2 / view.s;
      var y0 = Math.max(0, view.cy - H / 2 / view.s), y1 = Math.min(1, view.cy + H / 2 / view.s);
      var lng0 = Math.max(-180, lngOf(x0)), lng1 = Math.min(180, lngOf(x1));
      var lat0 = latOf(y1), lat1 = latOf(y0);
      var lngStep = Math.min(niceStep(lng1 - lng0, W / 120), 60);
      var latStep = Math.min(niceStep(Math.max(lat1 - lat0, 1e-9), H / 80), 30);
      var lngDec = decimalsOf(lngStep), latDec = decimalsOf(latStep);
      var i, v, p;
      for (i = Math.ceil(lng0 / lngStep); i * lngStep <= lng1; i++) {
        v = i * lngStep;
        p = toScreen({ x: (v + 180) / 360, y: 0 });
        gGrid.appendChild(svg('line', { x1: p.x, x2: p.x, y1: 0, y2: H }));
        var t = svg('text', { x: p.x + 3, y: H - 4, class: 'lng' });
        t.textContent = fmtDeg(v, lngDec, 'E', 'W');
        gGrid.appendChild(t);
      }
      for (i = Math.ceil(lat0 / latStep); i * latStep <= lat1; i++) {
        v = i * latStep;
        if (Math.abs(v) > MAX_LAT) continue;
        p = toScreen(mercator(v, 0));
        gGrid.appendChild(svg('line', { x1: 0, x2: W, y1: p.y, y2: p.y }));
        var u = svg('text', { x: 4, y: p.y - 3, class: 'lat' });
        u.textContent = fmtDeg(v, latDec, 'N', 'S');
        gGrid.appendChild(u);
      }
    }

    function fmtDeg(v, dec, pos, neg) {
      if (Math.abs(v) < 1e-12) return '0°';
      return Math.abs(v).toFixed(dec) + '°' + (v > 0 ? pos : neg);
    }

    function tileHref(z, x, y) {
      var subs = 'abc';
      return TILE_URL.replace('{z}', z).replace('{x}', x).replace('{y}', y)
        .replace('{s}', subs[(x + y) % 3]).replace('{r}', '');
    }

    function drawTiles() {
      if (!TILE_URL) return;
      var z = Math.max(0, Math.min(19, Math.round(Math.log2(view.s / 256))));
      var n = Math.pow(2, z);
      var size = view.s / n;
      var tx0 = Math.floor((view.cx - W / 2 / view.s) * n), tx1 = Math.floor((view.cx + W / 2 / view.s) * n);
      var ty0 = Math.max(0, Math.floor((view.cy - H / 2 / view.s) * n)), ty1 = Math.min(n - 1, Math.floor((view.cy + H / 2 / view.s) * n));
      var want = new Set();
      for (var tx = tx0; tx <= tx1; tx++) {
        for (var ty = ty0; ty <= ty1; ty++) {
          var wx = ((tx % n) + n) % n;
          var key = z + '/' + tx + '/' + ty;
          want.add(key);
          var img = tiles.get(key);
          if (!img) {
            img = svg('image', { href: tileHref(z, wx, ty), preserveAspectRatio: 'none' });
            tiles.set(key, img);
            gTiles.appendChild(img);
          }
          var p = toScreen({ x: tx / n, y: ty / n });
          img.setAttribute('x', p.x.toFixed(1));
          img.setAttribute('y', p.y.toFixed(1));
          img.setAttribute('width', (size + 0.5).toFixed(1));
          img.setAttribute('height', (size + 0.5).toFixed(1));
        }
      }
      // Keep the previous zoom's tiles under the new ones until the view
      // settles, then drop whatever is not needed.
      var settled = view.s === target.s && view.cx === target.cx && view.cy === target.cy;
      tiles.forEach(function (img, key) {
        if (want.has(key)) return;
        if (settled || Number(key.split('/')[0]) === z) {
          img.remove();
          tiles.delete(key);
        } else {
          var parts = key.split('/');
          var oz = Number(parts[0]), on = Math.pow(2, oz), os = view.s / on;
          var q = toScreen({ x: Number(parts[1]) / on, y: Number(parts[2]) / on });
          img.setAttribute('x', q.x.toFixed(1));
          img.setAttribute('y', q.y.toFixed(1));
          img.setAttribute('width', (os + 0.5).toFixed(1));
          img.setAttribute('height', (os + 0.5).toFixed(1));
        }
      });
      tileZoom = z;
      attribution.setAttribute('x', W - 4);
      attribution.setAttribute('y', H - 18);
      attribution.textContent = /openstreetmap/i.test(TILE_URL) ? '© OpenStreetMap contributors' : 'Tiles: ' + hostOf(TILE_URL);
    }

    function hostOf(u) {
      var m = /^[a-z]+:\/\/([^/]+)/i.exec(u);
      return m ? m[1] : u;
    }

    if (typeof ResizeObserver === 'function') {
      new ResizeObserver(function () { resize(); }).observe(root);
    } else {
      window.addEventListener('resize', resize);
    }

    return { fit: fit, fitTrail: fitTrail, touch: touch, resize: resize, tileZoom: function () { return tileZoom; } };
  })();

  // -------------------------------------------------------------- boot

  function init() {
    var sel = $('transport');
    var saved = sessionStorage.getItem(TRANSPORT_KEY);
    if (saved && TRANSPORTS.indexOf(saved) >= 0) sel.value = saved;
    sel.addEventListener('change', function () {
      sessionStorage.setItem(TRANSPORT_KEY, sel.value);
      note('');
      if (app.hash && !$('fleet-view').hidden) subscribe();
    });
    $('login-form').addEventListener('submit', signIn);
    $('signout').addEventListener('click', function () { signOut('', true); });
    $('fit').addEventListener('click', function () { mapView.fit(false); });

    app.hash = sessionStorage.getItem(HASH_KEY);
    if (!app.hash) {
      showLogin('');
      return;
    }
    start().catch(function (e) {
      if (e instanceof ApiError && AUTH_ERRORS[e.code]) {
        signOut('', false);
      } else {
        showFleet();
        showError(describe(e));
      }
    });
  }

  init();
})();
