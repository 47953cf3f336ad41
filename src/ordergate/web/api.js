// The dashboard's HTTP client: relative URLs, so the page works behind any path prefix.
// With auth on, the API key the user entered (kept in sessionStorage, this tab only) goes with every
// request as a bearer token; the event stream, which EventSource opens without headers, carries it
// as ?api_key= (the only URL where the gateway accepts it).

const KEY_ITEM = 'ordergate.apiKey';

export function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) || '';
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export function eventsUrl() {
  const key = apiKey();
  return key ? `v1/events?api_key=${encodeURIComponent(key)}` : 'v1/events';
}

// Called with the status when the gateway refuses the key (401) or its role (403).
let onRefused = () => {};
export function whenRefused(callback) {
  onRefused = callback;
}

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// What a JSON error body says, in one line: "detail", "message" or the raw text.
export function describeError(status, body) {
  if (body && typeof body === 'object') {
    if (typeof body.message === 'string') return body.message;
    if (typeof body.detail === 'string') return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((e) => `${(e.loc || []).join('.')}: ${e.msg}`).join('; ');
  }
  return `HTTP ${status}`;
}

async function readBody(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

// `expected` lists statuses the caller handles itself (they throw, but do not ask for another key).
export async function getJSON(path, { expected = [] } = {}) {
  const response = await fetch(path, { headers: { Accept: 'application/json', ...authHeaders() }, cache: 'no-store' });
  const body = await readBody(response);
  if ((response.status === 401 || response.status === 403) && !expected.includes(response.status)) {
    onRefused(response.status);
  }
  if (!response.ok) throw new HttpError(response.status, describeError(response.status, body));
  return body;
}

// The latest `count` orders this key may see, oldest first, in a bounded number of requests (about
// 2 log2(last order id) of at most `count` orders each), although the listing only goes upwards: a
// key bound to one user has no /v1/stats to say where the log ends.
export async function latestOrders(count) {
  const after = (cursor, limit) => getJSON(`v1/orders?after=${cursor}&limit=${limit}`);
  const first = await after(0, count);
  if (first.next === null || first.next === undefined) return first.items;
  let high = 1; // a cursor with no order after it
  while ((await after(high, 1)).items.length > 0) high *= 2;
  let low = 0; // a cursor with at least `count` orders after it
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if ((await after(middle, count)).items.length === count) low = middle;
    else high = middle;
  }
  return (await after(low, count)).items;
}

// Every item of a paged listing (/v1/positions, /v1/orders, /v1/trades: the cursor is an id;
// /v1/users, /v1/strategies: it is a name), following "next"; complete is false past maxPages.
export async function getAllPages(path, { pageSize = 1000, maxPages = 500 } = {}) {
  const items = [];
  let after = null;
  for (let page = 0; page < maxPages; page += 1) {
    const cursor = after === null ? '' : `&after=${encodeURIComponent(after)}`;
    const body = await getJSON(`${path}?limit=${pageSize}${cursor}`);
    items.push(...body.items);
    if (body.next === null || body.next === undefined) return { items, complete: true };
    after = body.next;
  }
  return { items, complete: false };
}

export async function postJSON(path, document) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...authHeaders() },
    body: JSON.stringify(document),
  });
  return { status: response.status, ok: response.ok, body: await readBody(response) };
}

// An event token ("ORDER_ID", or "COMMIT-ORDER_ID" on PostgreSQL) as a [commit, order id] pair.
export function streamPosition(token) {
  const parts = String(token || '0').split('-');
  return parts.length === 2 ? [Number(parts[0]), Number(parts[1])] : [0, Number(parts[0])];
}

// Whether stream position a comes after b.
export function after(a, b) {
  return a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);
}

// Whether this key may change controls and flatten (the admin role).
export async function mayChangeControls() {
  // GET v1/whoami names the key's role (a producer key, which may not read, gets 403); with auth off
  // anyone may change controls
  try {
    const response = await fetch('v1/whoami', { headers: { Accept: 'application/json', ...authHeaders() }, cache: 'no-store' });
    if (!response.ok) return false;
    const who = await response.json();
    return !who.auth || who.role === 'admin';
  } catch {
    return false;
  }
}
