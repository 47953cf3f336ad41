// Small DOM and formatting helpers shared by the dashboard's views. Text always goes in as
// textContent, never as HTML: names may contain characters such as "&" or "<".

const dirty = new Set();
let flushQueued = false;

// Ask for view.render() soon; many changes in a burst of events become one render.
export function renderSoon(view) {
  dirty.add(view);
  if (!flushQueued) {
    flushQueued = true;
    setTimeout(flush, 50);
  }
}

function flush() {
  flushQueued = false;
  const views = [...dirty];
  dirty.clear();
  for (const view of views) {
    try {
      view.render();
    } catch (error) {
      console.warn('render failed', error);
    }
  }
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'className') node.className = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const numberFormat = new Intl.NumberFormat('en-US');

export function formatNumber(value) {
  return typeof value === 'number' ? numberFormat.format(value) : '–';
}

export function formatTime(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  return when.toLocaleTimeString('en-GB', { hour12: false });
}

// "a, b, c +4 more" for long lists; the full list goes in a title attribute.
export function shortList(items, limit) {
  if (items.length <= limit) return items.join(', ');
  return `${items.slice(0, limit).join(', ')} +${items.length - limit} more`;
}

export function epochSecond(iso) {
  const millis = Date.parse(iso);
  return Number.isNaN(millis) ? null : Math.floor(millis / 1000);
}
