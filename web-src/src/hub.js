// The WebSocket to the hub this page came from: reconnects by itself, keeps named
// subscriptions across reconnects, and resolves publishes with the relay's OK.
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000]
const OK_TIMEOUT_MS = 20000

export class Hub {
  constructor(url, { onEvent, onEose, onState, onNotice, onAuth }) {
    this.url = url
    this.ws = null
    this.state = 'connecting' // connecting | open | closed
    this.subs = new Map() // subid -> filters
    this.pending = new Map() // event id -> {resolve, timer}
    this.attempt = 0
    this.timer = null
    this.handlers = { onEvent, onEose, onState, onNotice, onAuth }
  }

  connect() {
    clearTimeout(this.timer)
    this.timer = null
    if (this.ws && this.ws.readyState <= 1) return
    this.setState('connecting')
    let ws
    try {
      ws = new WebSocket(this.url)
    } catch {
      this.scheduleReconnect()
      return
    }
    this.ws = ws
    ws.onopen = () => {
      this.attempt = 0
      this.setState('open')
      for (const [id, filters] of this.subs) this.send(['REQ', id, ...filters])
    }
    ws.onmessage = (m) => this.onMessage(m.data)
    ws.onclose = () => {
      if (this.ws !== ws) return
      this.ws = null
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer)
        p.resolve({ ok: null, message: 'connection lost' })
        this.pending.delete(id)
      }
      this.setState('closed')
      this.scheduleReconnect()
    }
  }

  /** Try now (after `online`, on returning to the page, or when the user asks). */
  retryNow() {
    if (this.state !== 'open') {
      this.attempt = 0
      this.connect()
    }
  }

  scheduleReconnect() {
    if (this.timer) return
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)]
    this.attempt++
    this.timer = setTimeout(() => {
      this.timer = null
      this.connect()
    }, base * (0.8 + Math.random() * 0.4))
  }

  setState(s) {
    if (this.state === s) return
    this.state = s
    this.handlers.onState?.(s)
  }

  send(msg) {
    if (this.ws?.readyState === 1) {
      this.ws.send(JSON.stringify(msg))
      return true
    }
    return false
  }

  subscribe(id, filters) {
    this.subs.set(id, filters)
    this.send(['REQ', id, ...filters])
  }

  unsubscribe(id) {
    if (this.subs.delete(id)) this.send(['CLOSE', id])
  }

  /** {ok: true|false, message} from the relay, or {ok: null, message} if it never answered. */
  publish(ev) {
    return this.request('EVENT', ev)
  }

  /** NIP-42: answer the hub's challenge with a signed kind-22242 event. */
  auth(ev) {
    return this.request('AUTH', ev)
  }

  request(type, ev) {
    return new Promise((resolve) => {
      if (!this.send([type, ev])) return resolve({ ok: null, message: 'not connected' })
      const timer = setTimeout(() => {
        this.pending.delete(ev.id)
        resolve({ ok: null, message: 'no answer from the hub' })
      }, OK_TIMEOUT_MS)
      this.pending.set(ev.id, { resolve, timer })
    })
  }

  onMessage(data) {
    let msg
    try {
      msg = JSON.parse(data)
    } catch {
      return
    }
    if (!Array.isArray(msg)) return
    const [type, a, b, c] = msg
    if (type === 'EVENT' && b && typeof b === 'object') this.handlers.onEvent?.(b, a)
    else if (type === 'EOSE') this.handlers.onEose?.(a)
    else if (type === 'OK') {
      const p = this.pending.get(a)
      if (p) {
        clearTimeout(p.timer)
        this.pending.delete(a)
        p.resolve({ ok: b === true, message: typeof c === 'string' ? c : '' })
      }
    } else if (type === 'NOTICE') this.handlers.onNotice?.(a)
    else if (type === 'AUTH' && typeof a === 'string') this.handlers.onAuth?.(a)
    else if (type === 'CLOSED' && this.subs.has(a)) this.subs.delete(a)
  }
}
