// The Console's flow map page (docs/ui.md). Reads GET /ui/flowmap with a reader token and draws
// it with cytoscape. Every string from the Console (names, tags, rules, DNS names: what enforcers
// reported) goes into the page as text (textContent), never as markup.
'use strict';

(function () {
  // Edge colours by class (style.css has the same for the legend).
  const COLORS = { accepted: '#2e9d4f', observed: '#f0a202', rejected: '#d62d20' };
  const NODE_COLORS = { pu: '#3b6fb6', external: '#7a7f87' };
  const TOKEN_KEY = 'segwire.console.token';

  const $ = (id) => document.getElementById(id);
  let cy = null;
  let data = null;

  // #token=...&window=86400 (or since=...&until=..., RFC 3339 or unix seconds): for bookmarks and
  // automation. The token is moved to session storage and removed from the address bar at once.
  let hash = new URLSearchParams();
  function readHash() {
    hash = new URLSearchParams(location.hash.slice(1));
    if (!hash.get('token')) return false;
    sessionStorage.setItem(TOKEN_KEY, hash.get('token'));
    hash.delete('token');
    const rest = hash.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
    return true;
  }
  readHash();

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function status(text, isError) {
    $('status').textContent = text;
    $('status').className = isError ? 'error' : '';
  }

  function summary(state, attrs) {
    const s = $('graph-summary');
    for (const k of Object.keys(s.dataset)) delete s.dataset[k];
    s.dataset.state = state;
    for (const [k, v] of Object.entries(attrs || {})) s.dataset[k] = String(v);
    s.textContent = state;
  }

  function showLogin(message) {
    $('main').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    summary('login', { message: message || '' });
  }

  // The window as unix seconds: a relative one ends now.
  function windowRange() {
    const sel = $('window').value;
    if (sel === 'custom') {
      const since = Date.parse($('since').value);
      const until = Date.parse($('until').value);
      if (isNaN(since) || isNaN(until)) throw new Error('custom window: give both times');
      return { since: Math.floor(since / 1000), until: Math.ceil(until / 1000) };
    }
    const now = Math.floor(Date.now() / 1000) + 1;
    return { since: now - Number(sel), until: now };
  }

  function query() {
    if (hash.get('since') || hash.get('until')) {
      const q = new URLSearchParams();
      if (hash.get('since')) q.set('since', hash.get('since'));
      if (hash.get('until')) q.set('until', hash.get('until'));
      return q;
    }
    const r = windowRange();
    return new URLSearchParams({ since: String(r.since), until: String(r.until) });
  }

  async function load() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return showLogin('');
    $('login').hidden = true;
    $('main').hidden = false;
    if (window.segwireCytoscapeMissing || typeof window.cytoscape !== 'function') {
      status('cytoscape is missing: run tools/setup (it fetches it with npm), then ninja', true);
      return summary('error', { message: 'cytoscape missing' });
    }
    let q;
    try {
      q = query();
    } catch (e) {
      status(e.message, true);
      return summary('error', { message: e.message });
    }
    status('loading…');
    summary('loading');
    let res;
    try {
      res = await fetch('/ui/flowmap?' + q.toString(), {
        headers: { Authorization: 'Bearer ' + token },
        cache: 'no-store',
      });
    } catch (e) {
      status('the Console does not answer: ' + e.message, true);
      return summary('error', { message: e.message });
    }
    let body = null;
    try {
      body = await res.json();
    } catch (e) {
      body = { error: 'not JSON (HTTP ' + res.status + ')' };
    }
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      return showLogin('The Console refused the token: ' + body.error);
    }
    if (!res.ok) {
      status('HTTP ' + res.status + ': ' + body.error, true);
      return summary('error', { status: res.status, message: body.error });
    }
    data = body;
    render();
  }

  function edgeLabel(e) {
    return e.service;
  }

  function render() {
    const elements = [];
    for (const n of data.nodes) {
      elements.push({ group: 'nodes', data: { id: n.id, label: n.name, kind: n.kind, known: n.known } });
    }
    for (const e of data.edges) {
      elements.push({
        group: 'edges',
        classes: e.class,
        data: { id: e.id, source: e.source, target: e.target, label: edgeLabel(e), cls: e.class },
      });
    }
    if (cy) cy.destroy();
    cy = window.cytoscape({
      container: $('graph'),
      elements: elements,
      wheelSensitivity: 0.3,
      style: [
        {
          selector: 'node',
          style: {
            label: 'data(label)',
            'background-color': NODE_COLORS.pu,
            shape: 'round-rectangle',
            width: 46,
            height: 30,
            color: '#1d2330',
            'font-size': 12,
            'text-valign': 'bottom',
            'text-margin-y': 4,
          },
        },
        { selector: 'node[kind = "external"]', style: { 'background-color': NODE_COLORS.external, shape: 'diamond', width: 40, height: 40 } },
        { selector: 'node[!known]', style: { 'border-width': 2, 'border-style': 'dashed', 'border-color': '#1d2330' } },
        {
          selector: 'edge',
          style: {
            width: 3,
            'curve-style': 'bezier',
            'target-arrow-shape': 'triangle',
            label: 'data(label)',
            'font-size': 10,
            'text-rotation': 'autorotate',
            'text-background-color': '#ffffff',
            'text-background-opacity': 0.85,
            'text-background-padding': 2,
          },
        },
        { selector: 'edge.accepted', style: { 'line-color': COLORS.accepted, 'target-arrow-color': COLORS.accepted } },
        { selector: 'edge.observed', style: { 'line-color': COLORS.observed, 'target-arrow-color': COLORS.observed, 'line-style': 'dashed' } },
        { selector: 'edge.rejected', style: { 'line-color': COLORS.rejected, 'target-arrow-color': COLORS.rejected } },
        { selector: ':selected', style: { 'overlay-color': '#1d2330', 'overlay-opacity': 0.15 } },
      ],
    });
    cy.on('tap', 'edge', (evt) => showEdge(evt.target.id()));
    cy.on('tap', 'node', (evt) => showNode(evt.target.id()));
    const layout = cy.layout({
      name: 'breadthfirst',
      directed: true,
      spacingFactor: 1.3,
      padding: 30,
      animate: false,
    });
    layout.one('layoutstop', () => {
      cy.fit(undefined, 30);
      writeModel();
    });
    layout.run();
    renderDns(null);
    const cut = data.truncated ? ' (only the busiest edges)' : '';
    status(data.nodes.length + ' nodes, ' + data.edges.length + ' edges, ' + data.flows +
           ' flows, ' + data.dnsLookups + ' DNS lookups from ' + data.since + ' to ' + data.until + cut);
  }

  // What cytoscape holds after the layout, read from its model (not from the JSON), into the DOM.
  function writeModel() {
    const list = $('graph-model');
    list.replaceChildren();
    cy.nodes().forEach((n) => {
      const li = el('li', n.data('label'));
      li.dataset.node = n.id();
      li.dataset.kind = n.data('kind');
      list.appendChild(li);
    });
    const counts = { accepted: 0, observed: 0, rejected: 0 };
    cy.edges().forEach((e) => {
      const li = el('li', e.source().data('label') + ' -> ' + e.target().data('label') + ' ' + e.data('label'));
      li.dataset.edge = e.id();
      li.dataset.source = e.source().data('label');
      li.dataset.target = e.target().data('label');
      li.dataset.service = e.data('label');
      li.dataset.class = e.data('cls');
      li.dataset.lineColor = e.style('line-color');
      list.appendChild(li);
      counts[e.data('cls')] += 1;
    });
    summary('rendered', {
      nodes: cy.nodes().length,
      edges: cy.edges().length,
      acceptedEdges: counts.accepted,
      observedEdges: counts.observed,
      rejectedEdges: counts.rejected,
      since: data.since,
      until: data.until,
    });
  }

  function table(rows) {
    const t = el('table');
    for (const [k, v] of rows) {
      const tr = el('tr');
      tr.appendChild(el('th', k));
      const td = el('td');
      if (v instanceof Node) td.appendChild(v);
      else td.textContent = Array.isArray(v) ? (v.length ? v.join(', ') : '–') : String(v);
      tr.appendChild(td);
      t.appendChild(tr);
    }
    return t;
  }

  function nodeName(id) {
    const n = data.nodes.find((x) => x.id === id);
    return n ? n.name : id;
  }

  function details(title, content) {
    const d = $('details');
    d.replaceChildren(el('h2', 'Details'), el('h3', title), content);
  }

  function showEdge(id) {
    const e = data.edges.find((x) => x.id === id);
    if (!e) return;
    details(nodeName(e.source) + ' → ' + nodeName(e.target) + ' ' + e.service, table([
      ['class', el('span', e.class, 'pill ' + e.class)],
      ['accepted', e.accepted],
      ['rejected', e.rejected],
      ['observed', e.observed + (e.observedRejected ? ' (' + e.observedRejected + ' would be rejected)' : '')],
      ['policies', e.policies],
      ['rules', e.rules],
      ['observed policies', e.observedPolicies],
      ['drop reasons', e.reasons],
      ['packets', e.packets],
      ['bytes', e.bytes],
      ['enforcers', e.enforcers],
      ['first', e.first],
      ['last', e.last],
    ]));
  }

  function showNode(id) {
    const n = data.nodes.find((x) => x.id === id);
    if (!n) return;
    const rows = [
      ['kind', n.kind === 'pu' ? 'processing unit' : 'external network'],
      ['ID', n.ID || '–'],
      ['known to the Console', n.known ? 'yes' : 'no'],
      ['tags', n.tags],
    ];
    if (n.addresses) rows.push(['addresses', n.addresses]);
    details(n.name, table(rows));
    renderDns(id);
  }

  function renderDns(selected) {
    const box = $('dns-list');
    box.replaceChildren();
    if (!data.dns.length) {
      box.appendChild(el('p', 'No DNS lookups in this window.', 'hint'));
      return;
    }
    for (const pu of data.dns) {
      const section = el('section');
      section.dataset.node = pu.node;
      section.appendChild(el('h3', pu.name));
      const t = el('table');
      const head = el('tr');
      for (const h of ['name', 'action', 'count', 'resolved']) head.appendChild(el('th', h));
      t.appendChild(head);
      for (const l of pu.lookups) {
        const tr = el('tr');
        if (selected === pu.node) tr.className = 'selected';
        tr.appendChild(el('td', l.name));
        tr.appendChild(el('td', l.action + (l.reason ? ' (' + l.reason + ')' : '')));
        tr.appendChild(el('td', l.count, 'num'));
        tr.appendChild(el('td', l.resolvedIPs.join(', ') || '–'));
        t.appendChild(tr);
      }
      section.appendChild(t);
      box.appendChild(section);
    }
  }

  function init() {
    const w = hash.get('window');
    if (w && [...$('window').options].some((o) => o.value === w)) $('window').value = w;
    $('window').addEventListener('change', () => {
      $('custom').hidden = $('window').value !== 'custom';
      if ($('window').value !== 'custom') load();
    });
    for (const id of ['since', 'until']) $(id).addEventListener('change', () => {
      if ($('since').value && $('until').value) load();
    });
    $('refresh').addEventListener('click', () => {
      hash.delete('since');
      hash.delete('until');
      load();
    });
    $('logout').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin('');
    });
    $('login-form').addEventListener('submit', (evt) => {
      evt.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $('token-input').value.trim());
      $('token-input').value = '';
      load();
    });
    // A link with a token opened in a tab that shows the page already.
    window.addEventListener('hashchange', () => {
      if (readHash()) load();
    });
    load();
  }

  // For automation (tests, screenshots): the live cytoscape instance, e.g.
  // segwireFlowMap.cy.$('edge.rejected')[0].emit('tap') shows that edge's details.
  window.segwireFlowMap = { get cy() { return cy; } };

  init();
})();
