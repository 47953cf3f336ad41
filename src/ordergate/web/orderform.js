// The "Send an order" form: POST /v1/orders and show the decision the order got.

import { describeError, postJSON } from './api.js';
import { el } from './dom.js';

export class OrderForm {
  constructor(form, output, strategyList, instrumentList) {
    this.form = form;
    this.output = output;
    this.strategyList = strategyList;
    this.instrumentList = instrumentList;
    this.instrumentsByStrategy = new Map();
    this.strategy = form.elements.strategy;
    this.instrument = form.elements.instrument;
    this.side = form.elements.side;
    this.button = form.querySelector('button');
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.send();
    });
    this.strategy.addEventListener('input', () => this.fillInstruments());
  }

  setStrategies(strategies) {
    this.instrumentsByStrategy = new Map(strategies.map((s) => [s.strategy, s.instruments]));
    this.strategyList.replaceChildren(...strategies.map((s) => el('option', { value: s.strategy })));
    this.fillInstruments();
  }

  fillInstruments() {
    const own = this.instrumentsByStrategy.get(this.strategy.value.trim());
    const names = own || [...new Set([...this.instrumentsByStrategy.values()].flat())].sort();
    this.instrumentList.replaceChildren(...names.map((name) => el('option', { value: name })));
  }

  show(kind, headline, details = []) {
    this.output.className = kind;
    this.output.replaceChildren(
      el('strong', {}, headline),
      ...(details.length ? [el('ul', { className: 'details' }, ...details.map((line) => el('li', {}, line)))] : []),
    );
  }

  async send() {
    const order = {
      strategy: this.strategy.value.trim(),
      instrument: this.instrument.value.trim(),
      side: this.side.value,
      client_order_id: `dashboard-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`,
    };
    this.button.disabled = true;
    try {
      const answer = await postJSON('v1/orders', order);
      if (answer.ok) {
        const decision = answer.body;
        const details = [
          ...decision.applied.map((e) => `${e.user}: ${e.action} (position of ${e.position_strategy})`),
          ...decision.rejected_for.map((r) => `${r.user}: ${r.reason}`),
        ];
        const headline = decision.status === 'ACCEPTED'
          ? `ACCEPTED · order #${decision.order_id}`
          : `REJECTED · order #${decision.order_id} · ${decision.reason}`;
        this.show(decision.status === 'ACCEPTED' ? 'accepted' : 'rejected', headline, details);
      } else if (answer.status === 503) {
        this.show('error', `Not stored, try again: ${describeError(answer.status, answer.body)}`);
      } else {
        this.show('error', `Not sent: ${describeError(answer.status, answer.body)}`);
      }
    } catch (error) {
      this.show('error', 'No answer from the gateway (connection failed); check the feed before sending again.');
    } finally {
      this.button.disabled = false;
    }
  }
}
