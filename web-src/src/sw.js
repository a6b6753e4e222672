// Service worker (only where the browser allows one: https or localhost). It keeps the app
// shell so the app opens with the hub out of reach; the feed and the outbox live in
// IndexedDB and work the same with or without it.
const CACHE = 'samizdat-__BUILD__'
const SHELL = __SHELL__

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()))
})

self.addEventListener('activate', (e) => {
  e.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('samizdat-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  )
})

self.addEventListener('fetch', (e) => {
  const req = e.request
  if (req.method !== 'GET') return
  const url = new URL(req.url)
  if (url.origin !== self.location.origin) return
  if (req.mode === 'navigate' && (url.pathname === '/' || url.pathname === '/index.html')) {
    // The page itself: the hub's newest when it answers, the kept copy when it does not.
    e.respondWith(
      fetch(req)
        .then((res) => {
          if (res.ok) {
            const copy = res.clone()
            caches.open(CACHE).then((c) => c.put('/', copy))
          }
          return res
        })
        .catch(() => caches.match('/', { cacheName: CACHE }).then((r) => r || Response.error())),
    )
    return
  }
  if (SHELL.includes(url.pathname)) {
    e.respondWith(caches.match(req, { cacheName: CACHE }).then((r) => r || fetch(req)))
  }
})
