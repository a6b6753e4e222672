#!/usr/bin/env node
// Drives the negentropy (NIP-77) implementation of @nostr-dev-kit/sync for
// tests/test_negentropy_interop.py.
//
//   node negentropy_driver.mjs
//
// Commands arrive on stdin, one JSON object a line: {"seq": 1, "op": "open", ...}.
// Each gets exactly one answer on stdout, one JSON object a line:
// {"seq": 1, "value": ...} on success or {"seq": 1, "error": "message"} on failure.
// Anything the libraries log goes to stderr, so stdout carries only answers.
//
// Items are [created_at, "64 hex digits of the id"] pairs. Messages are hex strings.
//
// In-process protocol objects (the library's Negentropy + NegentropyStorage classes):
//   {"op": "open", "name": "a", "role": "initiator"|"responder", "items": [...],
//    "frameSizeLimit": 0}
//       -> initiator: {"msg": hex}; responder: {}
//   {"op": "reconcile", "name": "a", "msg": hex}
//       -> responder: {"msg": hex}
//       -> initiator: {"msg": hex | null, "have": [id hex...], "need": [id hex...]}
//   {"op": "drop", "name": "a"} -> {}
//
// NIP-77 client against a relay, through the library's own SyncSession on an NDK relay
// connection (NDK's WebSocket transport, here the `ws` package):
//   {"op": "sync", "url": "ws://127.0.0.1:PORT", "filter": {...}, "items": [...],
//    "frameSizeLimit": 4096, "timeout": 10000, "filterAsArray": true}
//       -> {"have": [...], "need": [...], "rounds": n, "frames": [["send"|"recv", frame]...]}
//   Without "frameSizeLimit" (or with 0) the library's default of 50,000 bytes applies.
//   "filterAsArray" (default true) sends NEG-OPEN with the filter wrapped in an array, which
//   is what NDKSync.sync() always does; false sends the bare filter object NIP-77 specifies.
//   "frames" are the NEG-* frames of the session in order, as sent and received.
//   {"op": "exit"} -> {} and the process ends.
//
// Relay URLs must be ws:// on the loopback interface: this is a test tool, not a client.

import { createInterface } from 'node:readline'
import WebSocket from 'ws'

// Node 20 has no global WebSocket; NDK's connectivity layer uses the global one.
globalThis.WebSocket ??= WebSocket

for (const name of ['log', 'info', 'debug', 'warn']) {
  console[name] = (...args) => console.error(`[ndk ${name}]`, ...args)
}

const { default: NDK, NDKRelay } = await import('@nostr-dev-kit/ndk')
const { Negentropy, NegentropyStorage, SyncSession, uint8ArrayToHex, hexToUint8Array } =
  await import('@nostr-dev-kit/sync')

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]'])
const HEX = /^(?:[0-9a-f]{2})*$/

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

function hexMessage(msg) {
  if (typeof msg !== 'string' || !HEX.test(msg)) throw new Error('msg must be a lowercase hex string')
  return hexToUint8Array(msg)
}

function storageOf(items) {
  if (!Array.isArray(items)) throw new Error('items must be an array of [created_at, id hex]')
  const storage = new NegentropyStorage()
  for (const item of items) {
    if (!Array.isArray(item) || item.length !== 2) throw new Error(`bad item ${JSON.stringify(item)}`)
    const [ts, id] = item
    if (!Number.isSafeInteger(ts) || ts < 0) throw new Error(`bad timestamp ${ts}`)
    if (typeof id !== 'string' || id.length !== 64 || !HEX.test(id)) throw new Error(`bad id ${id}`)
    // A hex id gives the storage a fresh Uint8Array of its own, which its fingerprint
    // code needs (it reads ids through a DataView over the whole underlying buffer).
    storage.insert(ts, id)
  }
  storage.seal()
  return storage
}

const hexList = (ids) => ids.map((id) => uint8ArrayToHex(id))

// --- in-process sessions ---------------------------------------------------------------------

const sessions = new Map() // name -> { ne, role }

async function open({ name, role, items, frameSizeLimit = 0 }) {
  if (typeof name !== 'string' || !name) throw new Error('open needs a name')
  if (role !== 'initiator' && role !== 'responder') throw new Error(`bad role ${role}`)
  const ne = new Negentropy(storageOf(items), frameSizeLimit)
  sessions.set(name, { ne, role })
  if (role === 'initiator') return { msg: uint8ArrayToHex(await ne.initiate()) }
  return {}
}

async function reconcile({ name, msg }) {
  const session = sessions.get(name)
  if (!session) throw new Error(`no session named ${name}`)
  const res = await session.ne.reconcile(hexMessage(msg))
  const next = res.nextMessage === undefined ? null : uint8ArrayToHex(res.nextMessage)
  if (session.role === 'responder') {
    if (next === null) throw new Error('responder produced no message')
    return { msg: next }
  }
  return { msg: next, have: hexList(res.have), need: hexList(res.need) }
}

// --- NIP-77 client over a WebSocket ----------------------------------------------------------

function once(emitter, event, ms, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no ${event} within ${ms} ms`)), ms)
    emitter.once(event, (...args) => {
      clearTimeout(timer)
      resolve(args)
    })
  })
}

async function sync({ url, filter, items, frameSizeLimit, timeout = 10000, filterAsArray = true }) {
  checkUrl(url)
  if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) {
    throw new Error('filter must be one filter object')
  }
  const storage = storageOf(items)
  const frames = []
  const netDebug = (msg, _relay, direction) => {
    if (direction !== 'send' && direction !== 'recv') return
    let frame
    try {
      frame = JSON.parse(msg)
    } catch {
      return
    }
    if (Array.isArray(frame) && typeof frame[0] === 'string' && frame[0].startsWith('NEG-')) {
      frames.push([direction, frame])
    }
  }
  const ndk = new NDK({ netDebug })
  const relay = new NDKRelay(url, undefined, ndk)
  const ready = once(relay, 'ready', 5000, `connecting to ${url}`)
  ready.catch(() => {}) // awaited below; this only keeps a failed connect() from leaving it unhandled
  await relay.connect(5000, false)
  await ready
  let rounds = 0
  try {
    // Without frameSizeLimit (or with 0) SyncSession uses its default of 50,000 bytes.
    const opts = { timeout }
    if (frameSizeLimit !== undefined && frameSizeLimit !== null) opts.frameSizeLimit = frameSizeLimit
    const session = new SyncSession(relay, filterAsArray ? [filter] : filter, storage, opts)
    session.on('progress', (p) => {
      if (p.phase === 'reconciling') rounds += 1
    })
    const { have, need } = await session.start()
    return { have: [...have], need: [...need], rounds, frames }
  } catch (err) {
    // Keep the frames: they say what the relay answered.
    err.message = `${err.message}; frames: ${JSON.stringify(frames)}`
    throw err
  } finally {
    relay.disconnect()
  }
}

// --- command loop ----------------------------------------------------------------------------

const ops = {
  open,
  reconcile,
  drop: ({ name }) => {
    sessions.delete(name)
    return {}
  },
  sync,
}

function answer(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`)
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of lines) {
  if (!line.trim()) continue
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (err) {
    answer({ seq: null, error: `not JSON: ${err.message}` })
    continue
  }
  if (cmd.op === 'exit') {
    answer({ seq: cmd.seq, value: {} })
    break
  }
  const fn = ops[cmd.op]
  if (!fn) {
    answer({ seq: cmd.seq, error: `unknown op ${cmd.op}` })
    continue
  }
  try {
    answer({ seq: cmd.seq, value: await fn(cmd) })
  } catch (err) {
    answer({ seq: cmd.seq, error: err instanceof Error ? err.message : String(err) })
  }
}
// NDK keeps timers (validation ratios, keepalives); end explicitly.
process.exit(0)
