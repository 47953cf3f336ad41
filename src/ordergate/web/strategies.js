// Strategies with their subscribers and the instruments they trade.

import { el, renderSoon, shortList } from './dom.js';

export class StrategiesTable {
  constructor(table) {
    this.body = table.tBodies[0];
    this.strategies = [];
  }

  load(strategies) {
    this.strategies = [...strategies].sort((a, b) => a.strategy.localeCompare(b.strategy));
    renderSoon(this);
  }

  render() {
    this.body.replaceChildren(...this.strategies.map((s) => el(
      'tr',
      { dataset: { strategy: s.strategy } },
      el('th', { scope: 'row' }, s.strategy),
      el('td', { className: 'wrap', title: s.subscribers.join(', ') },
        `${s.subscribers.length} · ${shortList(s.subscribers, 6)}`),
      el('td', { className: 'wrap', title: s.instruments.join(', ') }, shortList(s.instruments, 12)),
    )));
  }
}
