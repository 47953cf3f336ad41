// Accepted and rejected orders per second over the last five minutes, drawn on a canvas as
// stacked bars. Seconds are those of the gateway's clock (the offset is taken from /v1/stats).

import { epochSecond, formatNumber } from './dom.js';

const ACCEPTED = '#1a7f37';
const REJECTED = '#c62828';
const GRID = '#dde3ea';
const INK = '#5d6b7a';

export class ThroughputChart {
  constructor(canvas, summary, seconds = 300) {
    this.canvas = canvas;
    this.summary = summary;
    this.seconds = seconds;
    this.offset = 0;
    this.buckets = new Map(); // epoch second -> {accepted, rejected}
  }

  now() {
    return Math.floor(Date.now() / 1000) + this.offset;
  }

  load(throughput) {
    this.seconds = throughput.seconds;
    this.offset = throughput.until - Math.floor(Date.now() / 1000);
    this.buckets = new Map();
    const first = throughput.until - throughput.seconds + 1;
    throughput.accepted.forEach((accepted, index) => {
      const rejected = throughput.rejected[index];
      if (accepted || rejected) this.buckets.set(first + index, { accepted, rejected });
    });
  }

  apply(order) {
    const second = epochSecond(order.received_at);
    if (second === null || second <= this.now() - this.seconds) return;
    const bucket = this.buckets.get(second) || { accepted: 0, rejected: 0 };
    if (order.status === 'ACCEPTED') bucket.accepted += 1;
    else bucket.rejected += 1;
    this.buckets.set(second, bucket);
  }

  // Orders per second over the last `window` seconds.
  rate(window = 10) {
    const now = this.now();
    let total = 0;
    for (let second = now - window + 1; second <= now; second += 1) {
      const bucket = this.buckets.get(second);
      if (bucket) total += bucket.accepted + bucket.rejected;
    }
    return total / window;
  }

  render() {
    const now = this.now();
    const first = now - this.seconds + 1;
    for (const second of this.buckets.keys()) if (second < first) this.buckets.delete(second);

    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(canvas.clientWidth, 100);
    const height = Math.max(canvas.clientHeight, 80);
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    let peak = 0;
    let accepted = 0;
    let rejected = 0;
    for (const [second, bucket] of this.buckets) {
      peak = Math.max(peak, bucket.accepted + bucket.rejected);
      if (second > now - 60) {
        accepted += bucket.accepted;
        rejected += bucket.rejected;
      }
    }
    const top = niceCeiling(Math.max(peak, 1));
    const left = 44;
    const bottom = height - 20;
    const plotWidth = width - left - 8;
    const plotHeight = bottom - 8;

    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = INK;
    ctx.strokeStyle = GRID;
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const fraction of [0, 0.5, 1]) {
      const y = Math.round(bottom - fraction * plotHeight) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + plotWidth, y);
      ctx.stroke();
      ctx.fillText(formatNumber(Math.round(top * fraction * 10) / 10), left - 6, y);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const minutes = Math.floor(this.seconds / 60);
    for (let minute = 0; minute <= minutes; minute += 1) {
      const x = left + plotWidth - (minute * 60 * plotWidth) / this.seconds;
      ctx.fillText(minute === 0 ? 'now' : `-${minute} min`, Math.min(Math.max(x, left + 16), left + plotWidth - 12), bottom + 5);
    }

    const barWidth = plotWidth / this.seconds;
    for (const [second, bucket] of this.buckets) {
      const x = left + (second - first) * barWidth;
      const acceptedHeight = (bucket.accepted / top) * plotHeight;
      const rejectedHeight = (bucket.rejected / top) * plotHeight;
      const w = Math.max(barWidth - 0.5, 1);
      ctx.fillStyle = ACCEPTED;
      ctx.fillRect(x, bottom - acceptedHeight, w, acceptedHeight);
      ctx.fillStyle = REJECTED;
      ctx.fillRect(x, bottom - acceptedHeight - rejectedHeight, w, rejectedHeight);
    }

    this.summary.textContent = `last minute: ${formatNumber(accepted)} accepted, ${formatNumber(rejected)} rejected`;
    this.canvas.setAttribute('aria-label', `Orders per second; ${this.summary.textContent}`);
  }
}

function niceCeiling(value) {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (value <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}
