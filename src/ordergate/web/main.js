// The ordergate dashboard. State comes from a snapshot (GET /v1/stats, /v1/positions,
// /v1/strategies, the latest /v1/orders) and is then kept current by the event stream
// (GET /v1/events): every committed order updates the counters, the chart, the feed and the grid.
//
// Consistency: the snapshot is taken after the stream is open. /v1/stats names the stream position
// its counters are complete up to (position = P, an event token); positions are read after it, so
// they include at least P. Events up to P are ignored and later ones applied in stream order, which
// gives exactly the state after the newest event whatever the timing. Tokens, not order ids, are
// compared: on PostgreSQL ids do not follow commit order, the stream's tokens do. Every (re)connection, and every "resync" event, takes a
// fresh snapshot. The browser's EventSource reconnects by itself (sending Last-Event-ID); if it
// gives up, the dashboard opens a new one.
//
// A viewer key bound to one user gets 403 from /v1/stats and /metrics (they count every user): the
// page then shows that user's orders, positions and strategies, hides the panels that count every
// user and says so (body[data-view=user]), and takes the last order it reflects from the user's own
// latest orders, read before the positions. It does not retry the refused figures.
//
// The Risk panel (risk.js) is not on the stream: it reads the limits and the controls with each
// snapshot and polls them while live. It offers the flatten only to a key that may change controls.

import {
  after,
  apiKey,
  eventsUrl,
  getAllPages,
  getJSON,
  latestOrders,
  mayChangeControls,
  setApiKey,
  streamPosition,
  whenRefused,
} from './api.js';
import { ThroughputChart } from './chart.js';
import { Counters } from './counters.js';
import { renderSoon } from './dom.js';
import { Feed } from './feed.js';
import { OrderForm } from './orderform.js';
import { PositionsGrid } from './positions.js';
import { RiskPanel } from './risk.js';
import { StrategiesTable } from './strategies.js';

const RECONNECT_MS = 2000;
const FEED_SIZE = 100;

class Dashboard {
  constructor() {
    const $ = (selector) => document.querySelector(selector);
    this.counters = new Counters($('.counters'), $('#reasons'));
    this.chart = new ThroughputChart($('#throughput'), $('#throughput-summary'));
    this.feed = new Feed($('#feed'), $('#feed-empty'), FEED_SIZE);
    this.positions = new PositionsGrid($('#positions-grid'), $('#positions-empty'), $('#positions-summary'), $('#position-filter'));
    this.strategies = new StrategiesTable($('#strategies'));
    this.form = new OrderForm($('#order-form'), $('#decision'), $('#strategy-names'), $('#instrument-names'));
    this.risk = new RiskPanel($('#risk'));
    this.adminOf = new Map(); // API key -> whether it may change controls (asked once per key)
    this.connectionLabel = $('#connection');
    this.banner = $('#offline-banner');
    this.scope = $('#scope');
    this.applied = [0, 0]; // the stream position of the last order reflected on the page
    this.pending = null; // events that arrive while a snapshot loads
    this.generation = 0;
    this.source = null;
    this.reconnectTimer = null;
    this.keyForm = $('#key-form');
    this.keyInput = $('#api-key');
    this.keyBanner = $('#key-banner');
    this.userViewBanner = $('#user-view-banner');
  }

  // Whether the page shows the whole gateway (stats given) or one user's view (stats refused).
  setView(stats) {
    const view = stats ? 'all' : 'user';
    document.body.dataset.view = view;
    this.userViewBanner.hidden = view !== 'user';
  }

  // /v1/stats, or null for a key that may see one user's data only (403 with that key).
  async loadStats() {
    try {
      return await getJSON('v1/stats', { expected: [403] });
    } catch (error) {
      if (error.status === 403) return null;
      throw error;
    }
  }

  start() {
    this.keyInput.value = apiKey();
    this.keyForm.addEventListener('submit', (event) => {
      event.preventDefault();
      setApiKey(this.keyInput.value.trim());
      this.keyBanner.hidden = true;
      this.connect();
    });
    whenRefused(() => {
      this.keyBanner.hidden = false;
    });
    this.connect();
    this.risk.start(() => document.body.dataset.connection === 'live');
    setInterval(() => {
      this.counters.setRate(this.chart.rate(10));
      renderSoon(this.chart);
    }, 1000);
    window.addEventListener('resize', () => renderSoon(this.chart));
  }

  setConnection(state) {
    document.body.dataset.connection = state;
    const labels = { live: 'Live', connecting: 'Connecting…', disconnected: 'Disconnected — reconnecting…' };
    this.connectionLabel.textContent = labels[state];
    this.banner.hidden = state !== 'disconnected';
  }

  connect() {
    clearTimeout(this.reconnectTimer); // a new key while a reconnect waits: one stream, not two
    if (this.source) this.source.close();
    const source = new EventSource(eventsUrl());
    this.source = source;
    source.addEventListener('open', () => {
      this.setConnection('live');
      this.reload();
    });
    source.addEventListener('order', (event) => this.onOrder(JSON.parse(event.data), event.lastEventId));
    source.addEventListener('resync', () => this.reload());
    source.addEventListener('error', () => {
      if (this.source !== source) return;
      this.setConnection('disconnected');
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        // EventSource hides the status; a quick probe tells a refused key from a gateway that is down
        getJSON('v1/controls').catch(() => {});
        this.reconnectTimer = setTimeout(() => this.connect(), RECONNECT_MS);
      }
    });
  }

  onOrder(order, token) {
    const position = streamPosition(token);
    if (this.pending) this.pending.push([order, position]);
    else this.apply(order, position);
  }

  apply(order, position) {
    if (!after(position, this.applied)) return;
    this.applied = position;
    this.counters.apply(order);
    this.chart.apply(order);
    this.feed.apply(order);
    this.positions.apply(order);
    this.risk.onOrder(order);
  }

  // Whether to offer the flatten: a key bound to one user is a viewer's; with no key the reads went
  // through, so auth is off and the gateway takes a flatten from anyone; any other key is asked once.
  async mayFlatten(stats) {
    if (!stats) return false;
    const key = apiKey();
    if (!key) return true;
    if (!this.adminOf.has(key)) this.adminOf.set(key, mayChangeControls());
    return this.adminOf.get(key);
  }

  async reload() {
    const generation = ++this.generation;
    this.pending = [];
    try {
      const stats = await this.loadStats();
      const own = stats ? null : await latestOrders(FEED_SIZE);
      const last = stats ? stats.last_order_id : own.reduce((top, order) => Math.max(top, order.order_id), 0);
      const [positions, strategies, recent] = await Promise.all([
        getAllPages('v1/positions'),
        getAllPages('v1/strategies', { maxPages: 20 }),
        own ? { items: own } : getJSON(`v1/orders?after=${Math.max(0, last - FEED_SIZE)}&limit=${FEED_SIZE}`),
      ]);
      if (generation !== this.generation) return;
      this.setView(stats);
      if (stats) {
        this.scope.textContent = `${stats.scope} scope`;
        this.counters.load(stats);
        this.chart.load(stats.throughput);
      }
      this.feed.load(recent.items.filter((order) => order.order_id <= last));
      this.positions.load(positions.items, positions.complete);
      this.strategies.load(strategies.items, strategies.complete);
      this.form.setStrategies(strategies.items);
      this.risk.setStrategies(strategies.items);
      this.risk.refresh();
      this.mayFlatten(stats).then((may) => {
        if (generation === this.generation) this.risk.setMayFlatten(may);
      });
      this.applied = stats ? streamPosition(stats.position) : [0, last];
      const pending = this.pending;
      this.pending = null;
      for (const [order, position] of pending) this.apply(order, position);
      renderSoon(this.chart);
    } catch (error) {
      if (generation !== this.generation) return;
      const pending = this.pending || [];
      this.pending = null;
      for (const [order, position] of pending) this.apply(order, position);
      console.warn('could not load the gateway state; retrying', error);
      setTimeout(() => {
        if (generation === this.generation && this.source && this.source.readyState === EventSource.OPEN) this.reload();
      }, RECONNECT_MS);
    }
  }
}

new Dashboard().start();
