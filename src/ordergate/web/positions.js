// Open positions as a users x instruments grid; a cell names the strategy (or strategies, in
// strategy scope) that opened the position. Kept exact from the order events: an OPENED effect adds
// (user, order strategy, instrument), a CLOSED effect removes (user, position strategy, instrument).

import { el, formatNumber, renderSoon } from './dom.js';

const MAX_ROWS = 100;
const MAX_COLUMNS = 40;
const SEP = '\u0001';

export class PositionsGrid {
  constructor(table, empty, summary, filter) {
    this.table = table;
    this.empty = empty;
    this.summary = summary;
    this.filter = filter;
    this.positions = new Map();
    this.complete = true;
    this.fresh = new Set();
    filter.addEventListener('input', () => renderSoon(this));
  }

  load(items, complete) {
    this.positions = new Map(items.map((p) => [[p.user, p.strategy, p.instrument].join(SEP), p]));
    this.complete = complete;
    renderSoon(this);
  }

  apply(order) {
    for (const effect of order.applied) {
      const key = [effect.user, effect.position_strategy, order.instrument].join(SEP);
      if (effect.action === 'OPENED') {
        this.positions.set(key, {
          user: effect.user,
          strategy: order.strategy,
          instrument: order.instrument,
          opened_order_id: order.order_id,
          opened_at: order.received_at,
        });
      } else {
        this.positions.delete(key);
      }
      this.fresh.add(effect.user + SEP + order.instrument);
    }
    if (order.applied.length) renderSoon(this);
  }

  render() {
    const needle = this.filter.value.trim().toLowerCase();
    const matching = [];
    for (const p of this.positions.values()) {
      if (!needle || [p.user, p.instrument, p.strategy].some((name) => name.toLowerCase().includes(needle))) {
        matching.push(p);
      }
    }
    const cells = new Map();
    const users = new Set();
    const instruments = new Set();
    for (const p of matching) {
      users.add(p.user);
      instruments.add(p.instrument);
      const key = p.user + SEP + p.instrument;
      if (!cells.has(key)) cells.set(key, []);
      cells.get(key).push(p);
    }
    const rows = [...users].sort((a, b) => a.localeCompare(b));
    const columns = [...instruments].sort((a, b) => a.localeCompare(b));
    const shownRows = rows.slice(0, MAX_ROWS);
    const shownColumns = columns.slice(0, MAX_COLUMNS);

    const head = el('tr', {}, el('th', { className: 'user', scope: 'col' }, 'User'),
      ...shownColumns.map((instrument) => el('th', { scope: 'col' }, instrument)));
    const body = shownRows.map((user) => el('tr', { dataset: { user } },
      el('th', { className: 'user', scope: 'row' }, user),
      ...shownColumns.map((instrument) => {
        const key = user + SEP + instrument;
        const held = cells.get(key);
        const className = [held ? 'held' : '', this.fresh.has(key) ? 'fresh' : ''].join(' ').trim() || null;
        const title = held
          ? held.map((p) => `${p.user} holds ${p.instrument}, opened by ${p.strategy} (order #${p.opened_order_id})`).join('\n')
          : null;
        return el('td', { className, title, dataset: { user, instrument } },
          held ? held.map((p) => p.strategy).sort().join(', ') : '');
      })));
    this.fresh.clear();
    this.table.tHead.replaceChildren(...(rows.length ? [head] : []));
    this.table.tBodies[0].replaceChildren(...body);

    this.empty.hidden = matching.length > 0;
    this.empty.textContent = this.positions.size ? 'No open position matches the filter.' : 'No open positions.';
    let text = `${formatNumber(matching.length)} of ${formatNumber(this.positions.size)} open · ` +
      `${formatNumber(rows.length)} users × ${formatNumber(columns.length)} instruments`;
    if (rows.length > MAX_ROWS || columns.length > MAX_COLUMNS) {
      text += ` (showing ${shownRows.length} × ${shownColumns.length}; filter to see more)`;
    }
    if (!this.complete) text += ' · too many positions to load all; use "ordergate positions"';
    this.summary.textContent = text;
  }
}
