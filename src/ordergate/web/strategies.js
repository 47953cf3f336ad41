// Strategies with their subscribers and the instruments they trade. The gateway pages them by
// name; the dashboard reads the first pages (20,000 strategies) and says so if there are more.

import { el, renderSoon, shortList } from './dom.js';

export class StrategiesTable {
  constructor(table) {
    this.body = table.tBodies[0];
    this.strategies = [];
    this.complete = true;
  }

  load(strategies, complete = true) {
    this.strategies = [...strategies].sort((a, b) => a.strategy.localeCompare(b.strategy));
    this.complete = complete;
    renderSoon(this);
  }

  render() {
    const more = this.complete ? [] : [el(
      'tr',
      { className: 'more' },
      el('td', { colSpan: 3 }, `… more strategies than the ${this.strategies.length} shown (GET /v1/strategies pages through all)`),
    )];
    this.body.replaceChildren(...this.strategies.map((s) => el(
      'tr',
      { dataset: { strategy: s.strategy } },
      el('th', { scope: 'row' }, s.strategy),
      el('td', { className: 'wrap', title: s.subscribers.join(', ') },
        `${s.subscribers.length} · ${shortList(s.subscribers, 6)}`),
      el('td', { className: 'wrap', title: s.instruments.join(', ') }, shortList(s.instruments, 12)),
    )), ...more);
  }
}
