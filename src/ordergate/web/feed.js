// The live order feed, newest first: time, order id, door, strategy, instrument, side, status, outcome.

import { el, formatTime, renderSoon, shortList } from './dom.js';

export function outcomeText(order) {
  if (order.status !== 'ACCEPTED') return order.reason || '';
  return order.applied.map((effect) => `${effect.user} ${effect.action.toLowerCase()}`);
}

// The door an order came through (api, legacy, hook, fix, gateway), with its origin when no strategy
// sent it (an admin's flatten, the square-off); orders stored before doors were recorded have none.
export function doorText(order) {
  const door = order.door || '';
  if (!order.origin || order.origin === 'strategy') return door;
  return door ? `${door} · ${order.origin}` : order.origin;
}

export class Feed {
  constructor(table, empty, limit = 100) {
    this.body = table.tBodies[0];
    this.empty = empty;
    this.limit = limit;
    this.orders = [];
    this.fresh = new Set();
  }

  load(orders) {
    this.orders = orders.slice(-this.limit).reverse();
    this.fresh.clear();
    renderSoon(this);
  }

  apply(order) {
    if (this.orders.some((shown) => shown.order_id === order.order_id)) return; // already in the snapshot
    this.orders.unshift(order);
    if (this.orders.length > this.limit) this.orders.length = this.limit;
    this.fresh.add(order.order_id);
    renderSoon(this);
  }

  render() {
    const rows = this.orders.map((order) => {
      const outcome = outcomeText(order);
      const full = Array.isArray(outcome) ? outcome.join(', ') : outcome;
      const shown = Array.isArray(outcome) ? shortList(outcome, 3) : outcome;
      return el(
        'tr',
        { className: this.fresh.has(order.order_id) ? 'fresh' : null, dataset: { orderId: order.order_id } },
        el('td', {}, formatTime(order.received_at)),
        el('td', {}, `#${order.order_id}`),
        el('td', { className: 'door', title: order.actor ? `sent by ${order.actor}` : '' }, doorText(order)),
        el('td', {}, order.strategy),
        el('td', {}, order.instrument),
        el('td', {}, order.side),
        el('td', {}, el('span', { className: `status ${order.status}` }, order.status)),
        el('td', { className: 'outcome', title: full }, shown),
      );
    });
    this.fresh.clear();
    this.body.replaceChildren(...rows);
    this.empty.hidden = rows.length > 0;
  }
}
