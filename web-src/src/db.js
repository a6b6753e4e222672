// IndexedDB: the key, settings, the last feed and the outbox survive reloads and work on
// plain HTTP (no service worker needed).
const NAME = 'samizdat'
const VERSION = 1
let dbPromise = null

function open() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const req = indexedDB.open(NAME, VERSION)
      req.onupgradeneeded = () => {
        const db = req.result
        db.createObjectStore('kv')
        const events = db.createObjectStore('events', { keyPath: 'id' })
        events.createIndex('created_at', 'created_at')
        db.createObjectStore('outbox', { keyPath: 'qid', autoIncrement: true })
      }
      req.onsuccess = () => resolve(req.result)
      req.onerror = () => reject(req.error)
      req.onblocked = () => reject(new Error('database blocked'))
    })
  }
  return dbPromise
}

function done(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error)
  })
}

async function tx(store, mode, fn) {
  const db = await open()
  return new Promise((resolve, reject) => {
    const t = db.transaction(store, mode)
    let result
    Promise.resolve(fn(t.objectStore(store))).then((r) => {
      result = r
    }, reject)
    t.oncomplete = () => resolve(result)
    t.onerror = () => reject(t.error)
    t.onabort = () => reject(t.error || new Error('transaction aborted'))
  })
}

export const kvGet = (key) => tx('kv', 'readonly', (s) => done(s.get(key)))
export const kvSet = (key, value) => tx('kv', 'readwrite', (s) => done(s.put(value, key)))

export const allEvents = () => tx('events', 'readonly', (s) => done(s.getAll()))

export function putEvents(events) {
  return tx('events', 'readwrite', (s) => {
    for (const ev of events) s.put(ev)
  })
}

export function deleteEvents(ids) {
  return tx('events', 'readwrite', (s) => {
    for (const id of ids) s.delete(id)
  })
}

/** Keep the newest `keep` events of the cache (by created_at). */
export function pruneEvents(keep) {
  return tx('events', 'readwrite', async (s) => {
    const count = await done(s.count())
    let extra = count - keep
    if (extra <= 0) return
    const cursorReq = s.index('created_at').openCursor()
    await new Promise((resolve, reject) => {
      cursorReq.onsuccess = () => {
        const cur = cursorReq.result
        if (!cur || extra <= 0) return resolve()
        cur.delete()
        extra--
        cur.continue()
      }
      cursorReq.onerror = () => reject(cursorReq.error)
    })
  })
}

export const outboxAll = () => tx('outbox', 'readonly', (s) => done(s.getAll()))
export const outboxAdd = (item) => tx('outbox', 'readwrite', (s) => done(s.add(item)))
export const outboxPut = (item) => tx('outbox', 'readwrite', (s) => done(s.put(item)))
export const outboxDelete = (qid) => tx('outbox', 'readwrite', (s) => done(s.delete(qid)))
