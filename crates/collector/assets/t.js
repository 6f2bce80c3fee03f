/* Tributary tracker: <script async src="https://HOST/t.js" data-key="trb_..."></script>
   or tributary.init({key, host}). Calls pushed to a window.tributary array before it loads
   are replayed. Posts the native envelope to /v1/events. */
(function (w, d, n) {
  'use strict';
  var me = d.currentScript, cfg = null, queue = [], timer = 0, mem = {};
  var MAX = 20, EVERY = 2000, IDLE = 18e5, KEEP = 100;

  function uuid() {
    var c = w.crypto, b = new Uint8Array(16), h = '', i;
    // randomUUID exists only in secure contexts (https, localhost).
    if (c && c.randomUUID) return c.randomUUID();
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (i = 0; i < 16; i++) b[i] = Math.random() * 256;
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    for (i = 0; i < 16; i++) h += (b[i] + 256).toString(16).slice(1);
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' +
      h.slice(16, 20) + '-' + h.slice(20);
  }

  // Storage throws when blocked (privacy modes, sandboxed frames): fall back to memory.
  function get(s, k) { try { return w[s].getItem(k); } catch (e) { return mem[k]; } }
  function set(s, k, v) { try { w[s].setItem(k, v); } catch (e) { mem[k] = v; } }

  // First-party cookie, so the id survives across tabs and visits for a year.
  function anonId() {
    var m = d.cookie.match(/(?:^|;\s*)trb_aid=([\w-]{1,64})/), id = m ? m[1] : uuid();
    d.cookie = 'trb_aid=' + id + '; Max-Age=31536000; Path=/; SameSite=Lax' +
      (location.protocol == 'https:' ? '; Secure' : '');
    return id;
  }
  var aid = anonId(), uid = get('localStorage', 'trb_uid');

  // A session ends after 30 minutes without an event in this tab.
  function session() {
    var now = Date.now(), v = (get('sessionStorage', 'trb_sid') || '').split('|');
    var id = v[0] && now - v[1] < IDLE ? v[0] : uuid();
    set('sessionStorage', 'trb_sid', id + '|' + now);
    return id;
  }

  function send(type, props) {
    var l = location, q = new URLSearchParams(l.search), c, e;
    ['source', 'medium', 'campaign', 'term', 'content'].forEach(function (k) {
      var v = q.get('utm_' + k);
      if (v) (c = c || {})[k == 'campaign' ? 'name' : k] = v;
    });
    e = {
      event_id: uuid(), event_type: type, anonymous_id: aid, session_id: session(),
      ts: new Date().toISOString(),
      context: {
        page: { url: l.href, path: l.pathname, title: d.title, referrer: d.referrer || undefined },
        locale: n.language, campaign: c, library: { name: 'tributary.js', version: '1' }
      },
      properties: props && typeof props == 'object' ? props : {}
    };
    if (uid) e.user_id = uid;
    if (queue.length < KEEP) queue.push(e);
    if (queue.length >= MAX) flush();
    else if (!timer) timer = setTimeout(flush, EVERY);
  }

  // Failed batches go back to the queue (bounded); event_id lets dedup drop a resend.
  function retry(b) {
    queue = b.concat(queue).slice(0, KEEP);
    if (!timer) timer = setTimeout(flush, EVERY * 5);
  }

  function post(url, b) {
    // text/plain keeps the request CORS-simple: no preflight round trip.
    fetch(url, { method: 'POST', body: JSON.stringify(b), keepalive: true,
      headers: { 'Content-Type': 'text/plain' } })
      .then(function (r) { if (r.status > 499 || r.status == 429) retry(b); },
        function () { retry(b); });
  }

  function flush(hidden) {
    clearTimeout(timer);
    timer = 0;
    if (!cfg) return;
    var url = cfg.host + '/v1/events?key=' + encodeURIComponent(cfg.key), b, now;
    while (queue.length) {
      b = queue.splice(0, MAX);
      now = new Date().toISOString();
      b.forEach(function (e) { e.sent_at = now; });
      // A beacon outlives the page; it sends a string as text/plain and cannot set headers,
      // hence the key in the URL.
      if (!(hidden && n.sendBeacon && n.sendBeacon(url, JSON.stringify(b)))) post(url, b);
    }
  }

  var api = {
    init: function (o) {
      if (cfg || !o || !o.key) return;
      // Default host: where this script came from, i.e. the collector.
      var host = o.host || (me && me.src ? new URL(me.src).origin : '');
      cfg = { key: o.key, host: host.replace(/\/+$/, '') };
      api.page();
    },
    page: function (props) { send('page', props); },
    track: function (name, props) { send('track:' + name, props); },
    identify: function (id, traits) {
      if (id == null || id === '') return;
      uid = String(id);
      set('localStorage', 'trb_uid', uid);
      send('identify', traits);
    },
    flush: function () { flush(); }
  };

  d.addEventListener('visibilitychange', function () {
    if (d.visibilityState == 'hidden') flush(1);
  });
  w.addEventListener('pagehide', function () { flush(1); });

  var pending = w.tributary;
  w.tributary = api;
  if (me && me.getAttribute('data-key')) {
    api.init({ key: me.getAttribute('data-key'), host: me.getAttribute('data-host') });
  }
  if (Array.isArray(pending)) {
    pending.forEach(function (call) {
      if (api[call[0]]) api[call[0]].apply(api, call.slice(1));
    });
  }
})(window, document, navigator);
