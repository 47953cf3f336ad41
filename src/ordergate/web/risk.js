// The Risk panel: the limits in force by level and target, the trading session, the controls that
// hold trading back (and whether the circuit breaker set them), and, for a key that may change
// controls, a flatten with a confirmation step.
//
// Limits and controls are not on the event stream: the panel reads GET /v1/risk/limits and
// GET /v1/controls with every snapshot, every few seconds while the stream is live, and soon after
// an order that may have moved them (a rejection can trip the breaker; a flatten can set a control).

import { describeError, getJSON, postJSON } from './api.js';
import { el, formatTime } from './dom.js';

// The time of a change; with its date when it was not today.
function formatWhen(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  const today = when.toDateString() === new Date().toDateString();
  return today ? formatTime(iso) : `${when.toLocaleDateString('en-CA')} ${formatTime(iso)}`;
}

export const REFRESH_MS = 3000;
const SOON_MS = 1000;

// The limits in the order the table shows them, with their column headings.
const LIMITS = [
  ['max_open_positions', 'Open positions'],
  ['max_opens_per_day', 'Opens per day'],
  ['max_orders_per_minute', 'Orders per minute'],
  ['cooldown_seconds', 'Cooldown (s)'],
  ['max_signal_age_seconds', 'Signal age (s)'],
  ['breaker', 'Breaker'],
];

export function describeBreaker(breaker) {
  if (!breaker) return '–';
  return `${breaker.max_rejects} rejects in ${breaker.window_seconds} s`;
}

export function describeSession(session) {
  if (!session) return 'No session: orders taken at any time.';
  const squareOff = session.square_off ? `, square-off at ${session.square_off}` : ', no square-off';
  return `Session: ${session.days.join(' ')} ${session.open}–${session.close} (${session.timezone})${squareOff}.`;
}

// The change that put a control in its present state: the newest change of that level and target.
// null when it fell out of the latest changes the gateway lists.
function lastChange(changes, level, target) {
  for (let index = changes.length - 1; index >= 0; index -= 1) {
    const change = changes[index];
    if (change.level === level && (change.target ?? null) === target) return change;
  }
  return null;
}

// Whether a change is the circuit breaker's (reason BREAKER, by "risk").
export function byBreaker(change) {
  return Boolean(change) && change.reason === 'BREAKER';
}

export class RiskPanel {
  constructor(root) {
    const $ = (selector) => root.querySelector(selector);
    this.root = root;
    this.session = $('#risk-session');
    this.fingerprint = $('#risk-fingerprint');
    this.limitsBody = $('#risk-limits tbody');
    this.limitsEmpty = $('#risk-limits-empty');
    this.controlsBody = $('#risk-controls tbody');
    this.controlsEmpty = $('#risk-controls-empty');
    this.status = $('#risk-status');
    this.flatten = new FlattenForm(root, (controls) => this.showControls(controls));
    this.limits = null;
    this.controls = null;
    this.generation = 0;
    this.drawn = null;
    this.timer = null;
    this.soonTimer = null;
  }

  // Poll while `isLive()` says the stream is open (a gateway that is down is not asked every few seconds).
  start(isLive) {
    this.timer = setInterval(() => {
      if (isLive()) this.refresh();
    }, REFRESH_MS);
  }

  // An order just committed: refresh soon if it may have moved the controls.
  onOrder(order) {
    const mayMove = order.status === 'REJECTED' || (order.origin && order.origin !== 'strategy');
    if (!mayMove || this.soonTimer) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = null;
      this.refresh();
    }, SOON_MS);
  }

  setStrategies(strategies) {
    this.flatten.setNames(strategies);
  }

  setMayFlatten(may) {
    this.flatten.setAllowed(may);
  }

  async refresh() {
    const generation = ++this.generation;
    try {
      const [limits, controls] = await Promise.all([getJSON('v1/risk/limits'), getJSON('v1/controls')]);
      if (generation !== this.generation) return;
      this.status.textContent = '';
      // an unchanged answer is not drawn again: the tables stay put between polls
      const drawn = JSON.stringify([limits, controls]);
      if (drawn === this.drawn) return;
      this.drawn = drawn;
      this.limits = limits;
      this.controls = controls;
      this.render();
    } catch (error) {
      if (generation !== this.generation) return;
      this.status.textContent = `Not current: ${error.message}`;
    }
  }

  // The controls a flatten answered with: newer than any poll still on its way, which is dropped.
  showControls(controls) {
    this.generation += 1;
    this.drawn = null;
    this.controls = controls;
    this.render();
  }

  render() {
    if (this.limits) this.renderLimits(this.limits);
    if (this.controls) this.renderControls(this.controls);
  }

  renderLimits(policy) {
    this.session.textContent = describeSession(policy.session);
    this.session.classList.toggle('muted', !policy.session);
    this.fingerprint.textContent = `limits ${policy.fingerprint}`;
    const byName = (items) => Object.entries(items || {}).sort(([a], [b]) => a.localeCompare(b));
    const rows = [
      ['global', null, policy.global || {}],
      ...byName(policy.strategies).map(([name, limits]) => ['strategy', name, limits]),
      ...byName(policy.users).map(([name, limits]) => ['user', name, limits]),
    ].filter(([level, , limits]) => level === 'global' || Object.keys(limits).length > 0);
    const anySet = rows.some(([, , limits]) => Object.keys(limits).length > 0);
    this.limitsEmpty.hidden = anySet;
    this.limitsBody.replaceChildren(...rows.map(([level, target, limits]) => el(
      'tr',
      { dataset: { level, target: target ?? '' } },
      el('td', {}, level),
      el('th', { scope: 'row' }, target ?? 'everyone'),
      ...LIMITS.map(([name]) => {
        const value = limits[name];
        const text = name === 'breaker' ? describeBreaker(value) : (value ?? '–');
        return el('td', { dataset: { limit: name }, className: value === undefined || value === null ? 'unset' : null }, text);
      }),
    )));
  }

  // The breaker that applies to a strategy: its own, or the global default.
  breakerOf(strategy) {
    const policy = this.limits;
    if (!policy) return null;
    return (policy.strategies?.[strategy]?.breaker) || policy.global?.breaker || null;
  }

  renderControls(controls) {
    const changes = controls.changes || [];
    const rows = [];
    if (controls.global && controls.global !== 'ACTIVE') rows.push(['global', null, controls.global]);
    for (const [name, state] of Object.entries(controls.strategies || {}).sort(([a], [b]) => a.localeCompare(b))) {
      if (state !== 'ACTIVE') rows.push(['strategy', name, state]);
    }
    for (const [name, state] of Object.entries(controls.users || {}).sort(([a], [b]) => a.localeCompare(b))) {
      if (state !== 'ACTIVE') rows.push(['user', name, state]);
    }
    this.controlsEmpty.hidden = rows.length > 0;
    this.controlsBody.replaceChildren(...rows.map(([level, target, state]) => {
      const change = lastChange(changes, level, target);
      const breaker = byBreaker(change);
      let why = 'not among the latest changes';
      if (change) {
        const by = change.by ?? 'anonymous';
        if (breaker) why = 'circuit breaker';
        else why = change.reason === 'FLATTEN' ? `set with a flatten by ${by}` : `set by ${by}`;
      }
      return el(
        'tr',
        { dataset: { level, target: target ?? '', state, breaker: breaker ? 'yes' : 'no' } },
        el('td', {}, level),
        el('th', { scope: 'row' }, target ?? 'the whole gateway'),
        el('td', {}, el('span', { className: `state ${state}` }, state)),
        el('td', { className: 'why' }, why),
        el('td', { title: change ? change.at : null }, change ? formatWhen(change.at) : '–'),
        el('td', { dataset: { limit: 'breaker' } }, level === 'strategy' ? describeBreaker(this.breakerOf(target)) : ''),
      );
    }));
  }
}

// The flatten button and its confirmation: choose the scope, then confirm; POST /v1/controls/flatten.
class FlattenForm {
  constructor(root, onControls) {
    const $ = (selector) => root.querySelector(selector);
    this.onControls = onControls;
    this.opener = $('#flatten-open');
    this.form = $('#flatten-form');
    this.scope = this.form.elements.scope;
    this.target = this.form.elements.target;
    this.then = this.form.elements.then;
    this.targetRow = $('#flatten-target-row');
    this.summary = $('#flatten-summary');
    this.confirm = $('#flatten-confirm');
    this.result = $('#flatten-result');
    this.names = $('#flatten-names');
    this.strategies = [];
    this.users = [];
    this.allowed = false;
    this.opener.addEventListener('click', () => this.open());
    $('#flatten-cancel').addEventListener('click', () => this.close());
    this.scope.addEventListener('change', () => this.describe());
    this.target.addEventListener('input', () => this.describe());
    this.then.addEventListener('change', () => this.describe());
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.send();
    });
  }

  setAllowed(may) {
    this.allowed = may;
    if (!may) this.form.hidden = true;
    this.opener.hidden = !may || !this.form.hidden;
  }

  setNames(strategies) {
    this.strategies = strategies.map((s) => s.strategy);
    this.users = [...new Set(strategies.flatMap((s) => s.subscribers))].sort();
    this.fillNames();
  }

  fillNames() {
    const names = this.scope.value === 'user' ? this.users : this.strategies;
    this.names.replaceChildren(...names.map((name) => el('option', { value: name })));
  }

  open() {
    this.form.hidden = false;
    this.opener.hidden = true;
    this.result.textContent = '';
    this.result.className = '';
    this.describe();
    this.scope.focus();
  }

  close() {
    this.form.hidden = true;
    this.opener.hidden = !this.allowed;
  }

  // What the confirmation will do, in words; the confirm button waits for a target where one is needed.
  describe() {
    const level = this.scope.value;
    this.targetRow.hidden = level === 'global';
    this.target.required = level !== 'global';
    this.fillNames();
    const target = this.target.value.trim();
    const then = this.then.value;
    const what = level === 'global'
      ? 'every open position on the gateway'
      : `every open position of ${level} ${target ? `"${target}"` : '(name it above)'}`;
    const after = then
      ? `, then set ${level === 'global' ? 'the whole gateway' : `that ${level}`} ${then}`
      : '; the controls stay as they are';
    this.summary.textContent = `Close ${what}${after}.`;
    this.confirm.disabled = level !== 'global' && !target;
  }

  show(kind, text) {
    this.result.className = kind;
    this.result.textContent = text;
  }

  async send() {
    const level = this.scope.value;
    const body = {
      level,
      target: level === 'global' ? null : this.target.value.trim(),
      then: this.then.value || null,
    };
    this.confirm.disabled = true;
    try {
      const answer = await postJSON('v1/controls/flatten', body);
      if (answer.ok) {
        const orders = answer.body.orders || [];
        const closed = orders.reduce(
          (count, order) => count + (order.applied || []).filter((effect) => effect.action === 'CLOSED').length,
          0,
        );
        const noun = closed === 1 ? 'position' : 'positions';
        const by = orders.length === 1 ? 'order' : 'orders';
        this.show('accepted', `${closed} ${noun} closed (${orders.length} ${by})`);
        this.close();
        if (answer.body.controls) this.onControls(answer.body.controls);
      } else if (answer.status === 403) {
        this.show('error', `Not flattened: this key may not (it needs the admin role). ${describeError(answer.status, answer.body)}`);
        this.setAllowed(false);
      } else {
        this.show('error', `Not flattened: ${describeError(answer.status, answer.body)}`);
      }
    } catch (error) {
      this.show('error', 'No answer from the gateway (connection failed); check the positions before trying again.');
    } finally {
      this.describe();
    }
  }
}
