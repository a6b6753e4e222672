#!/usr/bin/env node
// Drives the nostr-tools client library against a relay for tests/test_nostr_tools.py.
//
//   node nostr_tools_driver.mjs ws://127.0.0.1:PORT
//
// Commands arrive on stdin, one JSON object a line: {"seq": 1, "op": "publish", ...}.
// Each gets exactly one answer on stdout, one JSON object a line:
// {"seq": 1, "value": ...} on success or {"seq": 1, "error": "message"} on failure.
// Anything nostr-tools itself logs goes to stderr, so stdout carries only answers.
// The relay URL must be a loopback ws:// URL: this script is a test tool, not a client.

import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'
import { SimplePool, useWebSocketImplementation as usePoolWebSocketImplementation } from 'nostr-tools/pool'
import { bytesToHex, hexToBytes } from 'nostr-tools/utils'

// Node 20 has no global WebSocket; nostr-tools takes the `ws` package instead.
useWebSocketImplementation(WebSocket)
usePoolWebSocketImplementation(WebSocket)

for (const name of ['log', 'info', 'debug', 'warn']) {
  console[name] = (...args) => console.error(`[nostr-tools ${name}]`, ...args)
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]'])

function checkUrl(url) {
  let parsed
  try {
    parsed = new URL(url)
  } catch {
    throw new Error(`not a URL: ${url}`)
  }
  if (parsed.protocol !== 'ws:' || !LOOPBACK.has(parsed.hostname)) {
    throw new Error(`refusing ${url}: only ws:// URLs on the loopback interface are allowed`)
  }
  return url
}

let defaultUrl
try {
  defaultUrl = checkUrl(process.argv[2] || '')
} catch (err) {
  console.error(`usage: node nostr_tools_driver.mjs ws://127.0.0.1:PORT (${err.message})`)
  process.exit(2)
}

const relays = new Map() // connection name -> { relay, notices }
const subs = new Map() // subscription name -> state, see openSubscription

function plain(event) {
  // finalizeEvent returns an object carrying a Symbol flag; answer with just the wire fields.
  const { id, pubkey, created_at, kind, tags, content, sig } = event
  return { id, pubkey, created_at, kind, tags, content, sig }
}

function signer(skHex, tamper) {
  const sk = hexToBytes(skHex)
  return async (template) => {
    if (tamper === 'challenge') {
      template = {
        ...template,
        tags: template.tags.map((t) => (t[0] === 'challenge' ? ['challenge', 'not-the-challenge'] : t)),
      }
    } else if (tamper === 'relay') {
      template = {
        ...template,
        tags: template.tags.map((t) => (t[0] === 'relay' ? ['relay', 'ws://127.0.0.1:1/'] : t)),
      }
    }
    return finalizeEvent(template, sk)
  }
}

function conn(name) {
  const entry = relays.get(name)
  if (!entry) throw new Error(`no connection named ${name}`)
  return entry
}

function withTimeout(promise, ms, what) {
  let handle
  const timer = new Promise((_, reject) => {
    handle = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms)
  })
  return Promise.race([promise, timer]).finally(() => clearTimeout(handle))
}

// A subscription that records what arrives before EOSE ("stored") and after it ("live").
// The library's own EOSE timer is pushed far out so that `eose: true` means a real EOSE frame.
function openSubscription(relay, filters, waitMs) {
  const state = { stored: [], live: [], invalid: [], eose: false, closed: null, waiters: [] }
  const wake = () => {
    for (const w of state.waiters.splice(0)) w()
  }
  const settled = new Promise((resolve) => {
    const timer = setTimeout(resolve, waitMs)
    state.sub = relay.subscribe(filters, {
      eoseTimeout: 600_000,
      onevent(event) {
        ;(state.eose ? state.live : state.stored).push(plain(event))
        wake()
      },
      oninvalidevent(event) {
        state.invalid.push(event)
        wake()
      },
      oneose() {
        state.eose = true
        clearTimeout(timer)
        resolve()
      },
      onclose(reason) {
        if (state.closed === null) state.closed = String(reason)
        clearTimeout(timer)
        resolve()
        wake()
      },
    })
  })
  return { state, settled }
}

function report(state) {
  return {
    events: state.stored,
    invalid: state.invalid,
    eose: state.eose,
    closed: state.closed,
  }
}

const ops = {
  async keygen() {
    const sk = generateSecretKey()
    return { sk: bytesToHex(sk), pubkey: getPublicKey(sk) }
  },

  async sign({ sk, template, tamper }) {
    const tpl = { created_at: Math.floor(Date.now() / 1000), tags: [], content: '', ...template }
    const event = plain(finalizeEvent(tpl, hexToBytes(sk)))
    const verified = verifyEvent({ ...event })
    if (tamper === 'content') event.content += ' (edited after signing)'
    if (tamper === 'sig') event.sig = (event.sig[0] === '0' ? '1' : '0') + event.sig.slice(1)
    return { event, verified }
  },

  async verify({ event }) {
    return { verified: verifyEvent({ ...event }) }
  },

  async connect({ conn: name, url, onauth_sk }) {
    const relay = new Relay(checkUrl(url || defaultUrl))
    const notices = []
    relay.onnotice = (msg) => notices.push(msg)
    if (onauth_sk) relay.onauth = signer(onauth_sk)
    relays.set(name, { relay, notices })
    await withTimeout(relay.connect(), 10_000, 'connect')
    return { url: relay.url, connected: relay.connected }
  },

  async publish({ conn: name, event }) {
    const reason = await conn(name).relay.publish(event)
    return { reason }
  },

  async auth({ conn: name, sk, tamper }) {
    const reason = await conn(name).relay.auth(signer(sk, tamper))
    return { reason }
  },

  async query({ conn: name, filters, wait_ms = 5000 }) {
    const { state, settled } = openSubscription(conn(name).relay, filters, wait_ms)
    await settled
    const result = report(state)
    if (state.closed === null) state.sub.close()
    return result
  },

  async subscribe({ conn: name, sub, filters, wait_ms = 5000 }) {
    const { state, settled } = openSubscription(conn(name).relay, filters, wait_ms)
    subs.set(sub, state)
    await settled
    return report(state)
  },

  async wait_live({ sub, count, wait_ms = 5000 }) {
    const state = subs.get(sub)
    if (!state) throw new Error(`no subscription named ${sub}`)
    const deadline = Date.now() + wait_ms
    while (state.live.length + state.invalid.length < count && state.closed === null) {
      const left = deadline - Date.now()
      if (left <= 0) break
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left)
        state.waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
    return { events: state.live, invalid: state.invalid, closed: state.closed }
  },

  async unsubscribe({ sub }) {
    const state = subs.get(sub)
    if (!state) throw new Error(`no subscription named ${sub}`)
    if (state.closed === null) state.sub.close()
    subs.delete(sub)
    return {}
  },

  async count({ conn: name, filters }) {
    const count = await withTimeout(conn(name).relay.count(filters, {}), 10_000, 'count')
    return { count }
  },

  async notices({ conn: name }) {
    return { notices: conn(name).notices }
  },

  async close({ conn: name }) {
    conn(name).relay.close()
    relays.delete(name)
    return {}
  },

  async pool_query({ url, filter, wait_ms = 5000 }) {
    const target = checkUrl(url || defaultUrl)
    const pool = new SimplePool()
    try {
      const events = await pool.querySync([target], filter, { maxWait: wait_ms })
      return { events: events.map(plain) }
    } finally {
      pool.destroy()
    }
  },

  async pool_publish({ url, event, onauth_sk }) {
    const target = checkUrl(url || defaultUrl)
    const pool = new SimplePool()
    try {
      const params = onauth_sk ? { onauth: signer(onauth_sk) } : {}
      const results = await Promise.allSettled(pool.publish([target], event, params))
      return {
        results: results.map((r) =>
          r.status === 'fulfilled'
            ? { ok: true, reason: r.value }
            : { ok: false, error: String(r.reason?.message ?? r.reason) }
        ),
      }
    } finally {
      pool.destroy()
    }
  },
}

function answer(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
let queue = Promise.resolve()

lines.on('line', (line) => {
  if (!line.trim()) return
  // Commands run one after another, in the order they were sent.
  queue = queue.then(async () => {
    let msg
    try {
      msg = JSON.parse(line)
    } catch {
      answer({ seq: null, error: `not JSON: ${line.slice(0, 200)}` })
      return
    }
    const { seq, op, ...args } = msg
    if (op === 'exit') {
      for (const { relay } of relays.values()) relay.close()
      answer({ seq, value: {} })
      process.exit(0)
    }
    const fn = ops[op]
    if (!fn) {
      answer({ seq, error: `unknown op ${op}` })
      return
    }
    try {
      answer({ seq, value: await fn(args) })
    } catch (err) {
      answer({ seq, error: String(err?.message ?? err) })
    }
  })
})

lines.on('close', () => {
  queue.then(() => {
    for (const { relay } of relays.values()) relay.close()
    process.exit(0)
  })
})

process.on('unhandledRejection', (err) => {
  console.error('unhandled rejection:', err)
})
