// The counter tiles: orders, accepted, rejected by reason, open positions, users, strategies.

import { el, formatNumber, renderSoon } from './dom.js';

export class Counters {
  constructor(root, reasons) {
    this.root = root;
    this.reasons = reasons;
    this.stats = null;
    this.rate = 0;
  }

  load(stats) {
    this.stats = structuredClone(stats);
    renderSoon(this);
  }

  apply(order) {
    const stats = this.stats;
    if (!stats) return;
    stats.orders += 1;
    stats.by_side[order.side] = (stats.by_side[order.side] || 0) + 1;
    if (order.status === 'ACCEPTED') {
      stats.accepted += 1;
    } else {
      stats.rejected += 1;
      stats.rejected_by_reason[order.reason] = (stats.rejected_by_reason[order.reason] || 0) + 1;
    }
    for (const effect of order.applied) stats.open_positions += effect.action === 'OPENED' ? 1 : -1;
    stats.last_order_id = Math.max(stats.last_order_id, order.order_id);
    renderSoon(this);
  }

  setRate(rate) {
    if (rate !== this.rate) {
      this.rate = rate;
      renderSoon(this);
    }
  }

  set(name, text) {
    const node = this.root.querySelector(`[data-counter="${name}"]`);
    if (node && node.textContent !== text) node.textContent = text;
  }

  render() {
    const stats = this.stats;
    if (!stats) return;
    for (const name of ['orders', 'accepted', 'rejected', 'open_positions', 'users', 'strategies']) {
      this.set(name, formatNumber(stats[name]));
    }
    this.set('rate', `${this.rate.toFixed(1)} orders/s`);
    this.set('sides', `BUY ${formatNumber(stats.by_side.BUY || 0)} · SELL ${formatNumber(stats.by_side.SELL || 0)}`);
    this.set('instruments', `${formatNumber(stats.instruments)} instruments`);
    const rows = Object.entries(stats.rejected_by_reason)
      .filter(([, count]) => count > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([reason, count]) => el('li', { dataset: { reason } }, el('span', {}, reason), el('span', {}, formatNumber(count))));
    this.reasons.replaceChildren(...rows);
  }
}
