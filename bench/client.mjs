// Load client for bench/relay_bench.py: one job per process, result as JSON on stdout.
//
//   node bench/client.mjs '<job json>'
//
// Jobs (see relay_bench.py for the fields):
//   ingest   send pre-serialized EVENT frames over N connections, each keeping at most
//            `window` events unacknowledged; count OK true/false.
//   req      REQ -> EOSE round trips on one connection, timed.
//   latency  one publisher at a steady rate while a second connection floods.
//
// Frames come from an ndjson file of ready ["EVENT",{...}] lines plus an index of line
// offsets (uint64 little-endian), so the client does no JSON encoding and no signing.
// Only 127.0.0.1 URLs are accepted.

import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

const job = JSON.parse(process.argv[2]);
const now = () => performance.now() / 1000; // seconds, monotonic

if (!/^ws:\/\/127\.0\.0\.1:\d+\/?$/.test(job.url)) {
  throw new Error(`refusing to connect to ${job.url}: loopback (127.0.0.1) only`);
}

function loadFrames(file, idxFile, start, end) {
  const idx = fs.readFileSync(idxFile);
  const count = idx.length / 8 - 1;
  if (start < 0 || end > count || start > end) {
    throw new Error(`range ${start}..${end} outside 0..${count}`);
  }
  const off = (i) => Number(idx.readBigUInt64LE(i * 8));
  const base = off(start);
  const size = off(end) - base;
  const buf = Buffer.allocUnsafe(size);
  const fd = fs.openSync(file, 'r');
  let got = 0;
  while (got < size) {
    const n = fs.readSync(fd, buf, got, size - got, base + got);
    if (n === 0) throw new Error('short read');
    got += n;
  }
  fs.closeSync(fd);
  const frames = new Array(end - start);
  for (let i = start; i < end; i++) {
    frames[i - start] = buf.subarray(off(i) - base, off(i + 1) - base - 1); // drop '\n'
  }
  return frames;
}

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      perMessageDeflate: false, maxPayload: 256 * 1024 * 1024, skipUTF8Validation: true,
    });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function cpu() {
  const u = process.cpuUsage();
  return { cpu_user_s: u.user / 1e6, cpu_sys_s: u.system / 1e6 };
}

function reasonKey(reason) {
  const s = String(reason);
  const colon = s.indexOf(':');
  return (colon > 0 ? s.slice(0, colon) : s).slice(0, 40) || '(empty)';
}

// Parse an OK frame cheaply: both relays answer with compact JSON, so the verdict sits right
// after the quoted 64-character id. Anything else falls back to JSON.parse.
const OK_PREFIX = Buffer.from('["OK","');
function parseOk(data) {
  if (data.length > 78 && data.compare(OK_PREFIX, 0, 7, 0, 7) === 0 && data[71] === 0x22 &&
      data[72] === 0x2c) {
    if (data[73] === 0x74) return [true, ''];
    if (data[73] === 0x66) {
      let reason = '';
      try { reason = JSON.parse(data)[3]; } catch { /* keep '' */ }
      return [false, reason];
    }
  }
  let msg;
  try { msg = JSON.parse(data); } catch { return null; }
  if (!Array.isArray(msg) || msg[0] !== 'OK') return null;
  return [msg[2] === true, msg[3]];
}

// One connection pushing frames[lo..hi) with at most `window` unacknowledged. Frames freed by
// a burst of OKs go out together (socket corked) on the next turn of the event loop.
function pushRange(ws, frames, lo, hi, window, stats) {
  let next = lo;
  let inflight = 0;
  let acked = 0;
  let scheduled = false;
  const total = hi - lo;
  const sock = ws._socket;
  return new Promise((resolve) => {
    const pump = () => {
      scheduled = false;
      if (inflight >= window || next >= hi) return;
      if (stats.firstSend === null) stats.firstSend = now();
      sock.cork();
      while (inflight < window && next < hi) {
        ws.send(frames[next++], { binary: false });
        inflight++;
      }
      sock.uncork();
    };
    ws.on('message', (data) => {
      const ok = parseOk(data);
      if (ok === null) {
        stats.other++;
        if (stats.otherSamples.length < 5) stats.otherSamples.push(String(data).slice(0, 200));
        return;
      }
      inflight--;
      acked++;
      stats.lastOk = now();
      if (ok[0]) stats.okTrue++;
      else {
        stats.okFalse++;
        const k = reasonKey(ok[1]);
        stats.reasons[k] = (stats.reasons[k] || 0) + 1;
      }
      if (acked === total) resolve();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(pump);
      }
    });
    ws.on('close', () => resolve());
    if (total === 0) resolve();
    else pump();
  });
}

function newStats() {
  return { firstSend: null, lastOk: null, okTrue: 0, okFalse: 0, other: 0, reasons: {},
           otherSamples: [] };
}

function watchdog(stats, stallS, capS, onFire) {
  const started = now();
  let lastCount = -1;
  let lastChange = now();
  const t = setInterval(() => {
    const c = stats.okTrue + stats.okFalse;
    if (c !== lastCount) {
      lastCount = c;
      lastChange = now();
    }
    if (now() - lastChange > stallS || now() - started > capS) {
      clearInterval(t);
      onFire();
    }
  }, 250);
  return () => clearInterval(t);
}

async function ingest() {
  const frames = loadFrames(job.file, job.idx, job.start, job.end);
  const conns = [];
  for (let i = 0; i < job.conns; i++) conns.push(await open(job.url));
  const stats = newStats();
  let timedOut = false;
  const stop = watchdog(stats, job.stall_s ?? 60, job.cap_s ?? 3600, () => {
    timedOut = true;
    for (const ws of conns) ws.terminate();
  });
  const n = frames.length;
  const per = Math.ceil(n / job.conns);
  const cpu0 = process.cpuUsage();
  await Promise.all(conns.map((ws, i) =>
    pushRange(ws, frames, Math.min(i * per, n), Math.min((i + 1) * per, n), job.window, stats)));
  stop();
  const cpuUsed = process.cpuUsage(cpu0);
  for (const ws of conns) ws.close();
  const elapsed = stats.lastOk !== null ? stats.lastOk - stats.firstSend : null;
  return {
    sent: n, ok_true: stats.okTrue, ok_false: stats.okFalse, other_messages: stats.other,
    other_samples: stats.otherSamples, false_reasons: stats.reasons, elapsed_s: elapsed,
    events_per_s: elapsed ? (stats.okTrue + stats.okFalse) / elapsed : null,
    timed_out: timedOut, conns: job.conns, window: job.window,
    client_cpu_s: (cpuUsed.user + cpuUsed.system) / 1e6,
  };
}

async function req() {
  const ws = await open(job.url);
  const runs = [];
  for (let r = 0; r < job.repeats; r++) {
    const subid = `bench-${r}`;
    const res = await new Promise((resolve) => {
      let events = 0;
      let t0 = 0;
      const timer = setTimeout(() => {
        ws.off('message', onMsg);
        resolve({ seconds: null, events, timed_out: true });
      }, (job.timeout_s ?? 120) * 1000);
      const onMsg = (data) => {
        // Count frames by their prefix: the benchmark times the relay, not JSON.parse.
        const head = data.subarray(0, 12).toString();
        if (head.startsWith('["EVENT"')) events++;
        else if (head.startsWith('["EOSE"')) {
          const dt = now() - t0;
          clearTimeout(timer);
          ws.off('message', onMsg);
          resolve({ seconds: dt, events, timed_out: false });
        } else if (head.startsWith('["CLOSED"') || head.startsWith('["NOTICE"')) {
          clearTimeout(timer);
          ws.off('message', onMsg);
          resolve({ seconds: null, events, timed_out: false, error: String(data).slice(0, 200) });
        }
      };
      ws.on('message', onMsg);
      t0 = now();
      ws.send(JSON.stringify(['REQ', subid, job.filter]));
    });
    runs.push(res);
    ws.send(JSON.stringify(['CLOSE', subid]));
    await new Promise((r2) => setTimeout(r2, 200));
  }
  ws.close();
  return { runs, ...cpu() };
}

function quantile(sorted, q) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

async function latency() {
  const pubFrames = loadFrames(job.file, job.idx, job.pub_start, job.pub_end);
  const floodFrames = loadFrames(job.file, job.idx, job.flood_start, job.flood_end);
  const pubIds = pubFrames.map((b) => JSON.parse(b)[1].id);
  const flood = await open(job.url);
  const pub = await open(job.url);
  const floodStats = newStats();
  let floodDone = false;
  const floodPromise = pushRange(flood, floodFrames, 0, floodFrames.length, job.window,
                                 floodStats).then(() => { floodDone = true; });
  await new Promise((r) => setTimeout(r, (job.warmup_s ?? 1) * 1000));
  const sentAt = new Map();
  const lat = [];
  const pubStats = newStats();
  let falseCount = 0;
  const acked = new Promise((resolve) => {
    let n = 0;
    const timer = setTimeout(resolve, (pubFrames.length / job.rate + 60) * 1000);
    pub.on('message', (data) => {
      const msg = JSON.parse(data);
      if (msg[0] !== 'OK') return;
      const t = sentAt.get(msg[1]);
      if (t === undefined) return;
      lat.push(now() - t);
      if (msg[2] !== true) falseCount++;
      if (++n === pubFrames.length) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  // Open loop: each event is sent at its scheduled time whether or not earlier ones were
  // acknowledged, so a slow relay cannot hide its latency by slowing the publisher down.
  const floodOkAtStart = floodStats.okTrue + floodStats.okFalse;
  const t0 = now();
  for (let i = 0; i < pubFrames.length; i++) {
    const due = t0 + i / job.rate;
    const wait = due - now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait * 1000));
    sentAt.set(pubIds[i], now());
    pub.send(pubFrames[i], { binary: false });
  }
  await acked;
  const t1 = now();
  const floodOkAtEnd = floodStats.okTrue + floodStats.okFalse;
  const exhausted = floodDone;
  flood.terminate();
  pub.close();
  void floodPromise;
  lat.sort((a, b) => a - b);
  pubStats.okFalse = falseCount;
  return {
    published: pubFrames.length, acked: lat.length, ok_false: falseCount,
    rate: job.rate, seconds: t1 - t0,
    p50_s: quantile(lat, 0.5), p90_s: quantile(lat, 0.9), p99_s: quantile(lat, 0.99),
    max_s: lat.length ? lat[lat.length - 1] : null,
    flood_acked_during: floodOkAtEnd - floodOkAtStart,
    flood_events_per_s: (floodOkAtEnd - floodOkAtStart) / (t1 - t0),
    flood_ok_false: floodStats.okFalse, flood_false_reasons: floodStats.reasons,
    flood_exhausted: exhausted, ...cpu(),
  };
}

const modes = { ingest, req, latency };
const result = await modes[job.mode]();
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
