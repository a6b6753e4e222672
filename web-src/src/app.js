// The samizdat web app: identity, live feed with filters and witness counts, posting
// with photos, outbox for when the hub is out of reach. Vanilla DOM, no framework.
import * as db from './db.js'
import * as geohash from './geohash.js'
import { Hub } from './hub.js'
import { LANG_NAMES, LANGS, currentLanguage, formatTime, pickLanguage, relativeTime, setLanguage, t, translate } from './i18n.js'
import { extFor, hashBlob, hubHas, prepare, setClockOffset, UploadError, upload } from './media.js'
import {
  bytesToHex, deletionTemplate, extensionSigner, generateSecret, hexToBytes, labelTemplate, localSigner, now,
  npubEncode, nsecEncode, parseSecret, readDeletion, readLabel, readReport, reportTemplate, shortNpub,
} from './nostr.js'

const FEED_LIMIT = 300 // reports asked for on connect
const CACHE_KEEP = 3000 // events kept in IndexedDB
const SHOWN_MAX = 400 // reports rendered at once
const LANG_KEY = 'samizdat.lang'

const $ = (id) => document.getElementById(id)

function el(tag, attrs, ...children) {
  const e = document.createElement(tag)
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue
      if (k === 'class') e.className = v
      else if (k === 'text') e.textContent = v
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v)
      else e.setAttribute(k, v === true ? '' : v)
    }
  }
  for (const c of children) if (c != null) e.append(c)
  return e
}

// ---- state ------------------------------------------------------------------------------

let signer = null
const reports = new Map() // id -> {ev, r, el}
const labels = new Map() // report id -> Map(pubkey -> {created_at, id, value})
const seen = new Set() // ids of every event taken in
let filterTag = ''
let filterPlace = ''
let hub = null
let lastQid = null
const outboxState = new Map() // qid -> {state, detail}
const objectUrls = new Map() // qid -> [object URLs of its media]

// ---- small UI helpers ---------------------------------------------------------------------

let toastTimer = null
function toast(text) {
  const box = $('toast')
  box.textContent = text
  box.hidden = false
  clearTimeout(toastTimer)
  toastTimer = setTimeout(() => {
    box.hidden = true
  }, 5000)
}

function placeLabel(cell) {
  const c = geohash.decode(cell)
  if (!c) return cell
  const digits = cell.length <= 3 ? 0 : cell.length === 4 ? 1 : cell.length === 5 ? 2 : 3
  const km = geohash.CELL_KM[Math.min(cell.length, 7)] ?? 0.15
  return t('place.cell', {
    cell,
    lat: c.lat.toFixed(digits),
    lon: c.lon.toFixed(digits),
    size: km >= 1 ? t('unit.km', { n: Math.round(km) }) : t('unit.m', { n: Math.round(km * 1000) }),
  })
}

// ---- identity -----------------------------------------------------------------------------

async function loadIdentity() {
  const saved = await db.kvGet('identity')
  if (saved?.type === 'local') {
    signer = localSigner(hexToBytes(saved.sk))
  } else if (saved?.type === 'extension' && window.nostr) {
    try {
      signer = await extensionSigner()
    } catch {
      signer = null
    }
  }
  if (!signer && !saved && window.nostr) {
    // First visit with a NIP-07 extension: speak as the person the extension holds.
    try {
      signer = await extensionSigner()
      await db.kvSet('identity', { type: 'extension' })
    } catch {
      signer = null
    }
  }
  if (!signer) {
    const sk = generateSecret()
    await db.kvSet('identity', { type: 'local', sk: bytesToHex(sk) })
    signer = localSigner(sk)
    if (saved?.type === 'extension') toast(t('key.extensionGone'))
  }
  showIdentity()
}

function showIdentity() {
  const npub = npubEncode(signer.pubkey)
  $('key-npub').textContent = npub
  $('key-npub').title = npub
  $('key-npub-full').textContent = npub
  $('key-kind').textContent = t(signer.kind === 'extension' ? 'key.kindExtension' : 'key.kindLocal')
  $('key-backup-box').hidden = signer.kind !== 'local'
  $('key-backup').hidden = true
  $('key-extension').hidden = !window.nostr || signer.kind === 'extension'
  renderFeed(true)
}

async function showBackup() {
  const saved = await db.kvGet('identity')
  if (saved?.type !== 'local') return
  const nsec = nsecEncode(hexToBytes(saved.sk))
  $('key-nsec').textContent = nsec
  $('key-backup').hidden = false
  await drawQr($('key-qr'), nsec)
}

async function drawQr(box, text) {
  const { qrSvg } = await import('./qr.js')
  box.replaceChildren()
  box.insertAdjacentHTML('beforeend', qrSvg(text))
}

async function importKey() {
  const status = $('key-import-status')
  let sk
  try {
    sk = parseSecret($('key-import').value)
  } catch {
    status.textContent = t('key.importBad')
    return
  }
  if (!confirm(t('key.importConfirm'))) return
  await db.kvSet('identity', { type: 'local', sk: bytesToHex(sk) })
  signer = localSigner(sk)
  $('key-import').value = ''
  status.textContent = t('key.importDone')
  showIdentity()
}

async function useExtension() {
  try {
    signer = await extensionSigner()
    await db.kvSet('identity', { type: 'extension' })
    showIdentity()
  } catch (e) {
    toast(t('key.extensionFailed', { reason: e.message || String(e) }))
  }
}

// ---- feed ---------------------------------------------------------------------------------

let toPersist = []
let persistTimer = null
let renderTimer = null

/** NIP-09: ids their authors asked to delete (id → the author who asked). A report that
 * arrives after its deletion request is not shown; one already shown (or kept on this
 * phone) is removed from the screen and from the phone's cache. */
const deletedBy = new Map()

function takeEvents(events, persist) {
  let changed = false
  const gone = []
  for (const ev of events) {
    if (!ev || typeof ev.id !== 'string' || seen.has(ev.id)) continue
    if (ev.kind === 5) {
      seen.add(ev.id)
      for (const target of readDeletion(ev)) {
        deletedBy.set(target, ev.pubkey)
        const rep = reports.get(target)
        if (rep && rep.ev.pubkey === ev.pubkey) {
          reports.delete(target)
          gone.push(target)
          changed = true
        }
      }
    } else if (ev.kind === 1) {
      if (deletedBy.get(ev.id) === ev.pubkey) {
        seen.add(ev.id)
        gone.push(ev.id)
        continue
      }
      let r
      try {
        r = readReport(ev)
      } catch {
        continue
      }
      seen.add(ev.id)
      reports.set(ev.id, { ev, r, el: null })
      changed = true
    } else if (ev.kind === 1985) {
      const targets = readLabel(ev)
      if (!targets.length) continue
      seen.add(ev.id)
      for (const { target, value } of targets) applyLabel(target, ev, value)
      changed = true
    } else continue
    if (persist) toPersist.push(ev)
  }
  if (gone.length) {
    toPersist = toPersist.filter((e) => !gone.includes(e.id))
    db.deleteEvents(gone).catch(() => {})
  }
  if (toPersist.length && !persistTimer) {
    persistTimer = setTimeout(async () => {
      persistTimer = null
      const batch = toPersist
      toPersist = []
      try {
        await db.putEvents(batch)
        await db.pruneEvents(CACHE_KEEP)
      } catch {}
    }, 300)
  }
  if (changed) scheduleRender()
}

/** Latest label per key wins (ties: lowest id, as NIP-01 does for replaceable events). */
function applyLabel(target, ev, value) {
  let m = labels.get(target)
  if (!m) labels.set(target, (m = new Map()))
  const prev = m.get(ev.pubkey)
  if (prev && (prev.created_at > ev.created_at || (prev.created_at === ev.created_at && prev.id < ev.id))) return
  m.set(ev.pubkey, { created_at: ev.created_at, id: ev.id, value })
  const rep = reports.get(target)
  if (rep?.el) updateCounts(rep)
}

function counts(rep) {
  let corroborate = 0
  let dispute = 0
  const m = labels.get(rep.ev.id)
  if (m) {
    for (const [pk, l] of m) {
      if (pk === rep.ev.pubkey) continue
      if (l.value === 'corroborate') corroborate++
      else if (l.value === 'dispute') dispute++
    }
  }
  return { corroborate, dispute }
}

function scheduleRender() {
  if (renderTimer) return
  renderTimer = setTimeout(() => {
    renderTimer = null
    renderFeed(false)
  }, 60)
}

function matches(rep) {
  if (filterTag && !rep.r.tags.includes(filterTag)) return false
  if (filterPlace && !rep.r.place.startsWith(filterPlace)) return false
  return true
}

function sortedReports() {
  return [...reports.values()].sort((a, b) => b.ev.created_at - a.ev.created_at || (a.ev.id < b.ev.id ? -1 : 1))
}

function renderFeed(rebuild) {
  const feed = $('feed')
  if (rebuild) for (const rep of reports.values()) rep.el = null
  const list = sortedReports().filter(matches).slice(0, SHOWN_MAX)
  list.forEach((rep, i) => {
    if (!rep.el) {
      rep.el = buildItem(rep)
      updateCounts(rep)
    }
    if (feed.children[i] !== rep.el) feed.insertBefore(rep.el, feed.children[i] || null)
  })
  while (feed.children.length > list.length) feed.lastChild.remove()
  $('feed-empty').hidden = list.length > 0
  $('feed-empty').textContent = t(reports.size ? 'feed.noneMatch' : 'feed.empty')
  renderFilters()
}

function textWithTags(text) {
  const frag = document.createDocumentFragment()
  let last = 0
  for (const m of text.matchAll(/(^|[^\p{L}\p{N}_&/])#([\p{L}\p{N}_]{1,64})/gu)) {
    const start = m.index + m[1].length
    frag.append(text.slice(last, start))
    const tag = m[2].toLowerCase()
    frag.append(el('button', { class: 'tag', type: 'button', onclick: () => setFilter(tag, filterPlace) }, '#' + m[2]))
    last = start + 1 + m[2].length
  }
  frag.append(text.slice(last))
  return frag
}

function mediaNode(m, localUrl) {
  const ext = m.ext || extFor(m.mime)
  const src = localUrl || `/${m.sha256}.${ext}`
  const [w, h] = (m.dim || '').split('x').map(Number)
  const size = w > 0 && h > 0 ? { width: w, height: h } : {}
  if (m.mime.startsWith('video/') || /^(mp4|webm|mov|3gp)$/.test(ext)) {
    return el('video', { src, controls: true, preload: 'none', playsinline: true, ...size })
  }
  if (m.mime.startsWith('image/') || /^(jpg|jpeg|png|webp|gif|avif)$/.test(ext)) {
    const img = el('img', { src, alt: t('feed.photo'), loading: 'lazy', decoding: 'async', ...size })
    img.addEventListener('error', () => img.replaceWith(el('p', { class: 'missing', text: t('feed.mediaMissing') })), {
      once: true,
    })
    return img
  }
  return el('a', { href: src, download: true }, t('feed.file', { name: `${m.sha256.slice(0, 12)}.${ext}` }))
}

function buildItem(rep) {
  const { ev, r } = rep
  const mine = signer && ev.pubkey === signer.pubkey
  const head = el(
    'header',
    null,
    el('span', { class: 'author', title: npubEncode(ev.pubkey) }, mine ? t('feed.you') : shortNpub(ev.pubkey)),
    el('time', { datetime: new Date(ev.created_at * 1000).toISOString(), title: formatTime(ev.created_at), 'data-ts': ev.created_at }, relativeTime(ev.created_at)),
  )
  if (r.place) {
    head.append(
      el('button', { class: 'place', type: 'button', 'data-testid': 'feed-place', onclick: () => setFilter(filterTag, r.place.slice(0, Math.min(4, r.place.length))) }, placeLabel(r.place)),
    )
  }
  const body = el('div', { class: 'text', 'data-testid': 'feed-text' }, textWithTags(r.text))
  const item = el('article', { class: 'item', 'data-testid': 'feed-item', 'data-id': ev.id }, head)
  if (r.observedAt) item.append(el('p', { class: 'observed' }, t('feed.observed', { time: formatTime(r.observedAt) })))
  item.append(body)
  if (r.media.length) item.append(el('div', { class: 'media' }, ...r.media.map((m) => mediaNode(m))))
  const btn = (value) =>
    el(
      'button',
      { type: 'button', class: 'label', 'data-testid': value, 'data-value': value, disabled: mine, title: mine ? t('feed.ownReport') : t(`label.${value}.help`), onclick: () => label(rep, value) },
      el('span', null, t(`label.${value}`)),
      ' ',
      el('b', { 'data-testid': `${value}-count` }, '0'),
    )
  const footer = el('footer', null, btn('corroborate'), btn('dispute'))
  if (mine) {
    footer.append(el('button', { type: 'button', class: 'delete', 'data-testid': 'delete', title: t('feed.delete.help'), onclick: () => deleteReport(rep) }, t('feed.delete')))
  }
  item.append(footer)
  return item
}

/** The witness takes back their own report (NIP-09): gone from this phone at once, and
 * from the hub and every phone and hub that honours deletions once the request is sent. */
async function deleteReport(rep) {
  if (!signer || rep.ev.pubkey !== signer.pubkey) return
  if (!window.confirm(t('feed.delete.confirm'))) return
  await signAndSend(deletionTemplate(rep.ev, Math.max(now(), rep.ev.created_at)))
}

function updateCounts(rep) {
  const c = counts(rep)
  const mineNow = signer && labels.get(rep.ev.id)?.get(signer.pubkey)?.value
  for (const value of ['corroborate', 'dispute']) {
    const b = rep.el.querySelector(`[data-value="${value}"]`)
    b.querySelector('b').textContent = String(c[value])
    b.setAttribute('aria-pressed', String(mineNow === value))
  }
}

async function label(rep, value) {
  if (!signer || rep.ev.pubkey === signer.pubkey) return
  const prev = labels.get(rep.ev.id)?.get(signer.pubkey)
  if (prev?.value === value) return
  // A change of mind must be newer than the previous label, even within the same second.
  const created = Math.max(now(), (prev?.created_at ?? 0) + 1)
  await signAndSend(labelTemplate(rep.ev, value, created))
}

/** Sign a small event (a label, a deletion), apply it here at once, and queue it for the
 * hub: it goes now if the hub answers, or later from the outbox. */
async function signAndSend(template) {
  let ev
  try {
    ev = await signer.sign(template)
  } catch (e) {
    toast(t('status.signFailed', { reason: e.message || String(e) }))
    return
  }
  takeEvents([ev], true)
  const qid = await db.outboxAdd({ type: 'event', event: ev, media: [], created: Date.now(), state: 'queued' })
  outboxState.set(qid, { state: 'queued' })
  renderOutbox()
  flushOutbox()
}

function renderFilters() {
  const tagCounts = new Map()
  const cellCounts = new Map()
  for (const rep of reports.values()) {
    for (const tag of rep.r.tags) tagCounts.set(tag, (tagCounts.get(tag) || 0) + 1)
    for (let n = 3; n <= Math.min(5, rep.r.place.length); n++) {
      const cell = rep.r.place.slice(0, n)
      cellCounts.set(cell, (cellCounts.get(cell) || 0) + 1)
    }
  }
  const tagSel = $('filter-tag')
  const tagOpts = [el('option', { value: '' }, t('filter.allTags'))]
  const tags = [...tagCounts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 40)
  if (filterTag && !tagCounts.has(filterTag)) tags.unshift([filterTag, 0])
  for (const [tag, n] of tags) tagOpts.push(el('option', { value: tag }, `#${tag} (${n})`))
  tagSel.replaceChildren(...tagOpts)
  tagSel.value = filterTag

  const placeSel = $('filter-place')
  const placeOpts = [el('option', { value: '' }, t('filter.allPlaces'))]
  if (filterPlace && !cellCounts.has(filterPlace)) cellCounts.set(filterPlace, 0)
  for (const n of [3, 4, 5]) {
    const cells = [...cellCounts].filter(([c]) => c.length === n).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 15)
    if (!cells.length) continue
    const group = el('optgroup', { label: t(`precision.${n}`) })
    for (const [cell, k] of cells) group.append(el('option', { value: cell }, `${placeLabel(cell)} (${k})`))
    placeOpts.push(group)
  }
  placeSel.replaceChildren(...placeOpts)
  placeSel.value = filterPlace

  const list = $('cells')
  list.replaceChildren(...[...cellCounts.keys()].filter((c) => c.length >= 4).slice(0, 30).map((c) => el('option', { value: c }, placeLabel(c))))
}

function setFilter(tag, place) {
  filterTag = tag
  filterPlace = place
  // Ask the hub for older matching reports too; what it has arrives through takeEvents.
  const filters = []
  if (tag) filters.push({ kinds: [1], '#t': [tag], limit: FEED_LIMIT })
  if (place) filters.push({ kinds: [1], '#g': [place], limit: FEED_LIMIT })
  if (filters.length && hub) hub.subscribe('filtered', filters)
  else hub?.unsubscribe('filtered')
  renderFeed(false)
  window.scrollTo({ top: $('filters').offsetTop - 8 })
}

function refreshTimes() {
  for (const time of document.querySelectorAll('time[data-ts]')) time.textContent = relativeTime(Number(time.dataset.ts))
}

// ---- composing ----------------------------------------------------------------------------

function setComposeStatus(key, params, kind) {
  const s = $('compose-status')
  s.textContent = key ? t(key, params) : ''
  s.dataset.state = kind || ''
}

function chosenPlace() {
  const raw = $('compose-place').value.trim()
  const precision = Number($('compose-precision').value)
  if (!raw) return ''
  const m = raw.match(/^(-?\d{1,2}(?:\.\d+)?)\s*[,;\s]\s*(-?\d{1,3}(?:\.\d+)?)$/)
  if (m) {
    const lat = Number(m[1])
    const lon = Number(m[2])
    if (Math.abs(lat) > 90 || Math.abs(lon) > 180) throw new Error('range')
    return geohash.encode(lat, lon, precision)
  }
  const g = raw.toLowerCase()
  if (!geohash.isGeohash(g) || g.length < 2) throw new Error('format')
  return g.slice(0, precision)
}

function chosenTime() {
  const v = $('compose-time').value
  if (!v) return null
  const ms = new Date(v).getTime()
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : null
}

function renderPreviews() {
  const box = $('compose-previews')
  const files = [...$('compose-media').files]
  box.replaceChildren(
    ...files.map((f) =>
      el('span', { class: 'chip' }, t('compose.fileChip', { name: f.name, kb: Math.max(1, Math.round(f.size / 1024)) })),
    ),
  )
  $('compose-video-warn').hidden = !files.some((f) => f.type.startsWith('video/'))
  $('compose-keep-warn').hidden = !$('compose-keep').checked
}

async function submit(e) {
  e.preventDefault()
  if (!signer) return
  const text = $('compose-text').value.replace(/\r\n/g, '\n').trim()
  const files = [...$('compose-media').files]
  if (!text && !files.length) return setComposeStatus('status.empty', null, 'error')
  let place
  try {
    place = chosenPlace()
  } catch {
    return setComposeStatus('status.badPlace', null, 'error')
  }
  const observedAt = chosenTime()
  const keep = $('compose-keep').checked
  const button = $('compose-submit')
  button.disabled = true
  try {
    const media = []
    for (const [i, f] of files.entries()) {
      setComposeStatus('status.preparing', { n: i + 1, total: files.length })
      let p
      try {
        p = await prepare(f, keep)
      } catch (err) {
        return setComposeStatus('status.failed', { reason: `${f.name}: ${err.message}` }, 'error')
      }
      const sha256 = await hashBlob(p.blob)
      const ext = extFor(p.mime)
      media.push({
        blob: p.blob, mime: p.mime, sha256, size: p.blob.size, width: p.width, height: p.height, ext,
        url: `${location.origin}/${sha256}.${ext}`,
      })
    }
    let ev
    try {
      ev = await signer.sign(reportTemplate({ text: text.toWellFormed ? text.toWellFormed() : text, media, place, observedAt }))
    } catch (err) {
      return setComposeStatus('status.signFailed', { reason: err.message || String(err) }, 'error')
    }
    const item = { type: 'report', event: ev, media, created: Date.now(), state: 'queued' }
    const qid = await db.outboxAdd(item)
    lastQid = qid
    outboxState.set(qid, { state: 'queued' })
    $('compose').reset()
    renderPreviews()
    setComposeStatus(hub.state === 'open' ? 'status.sending' : 'status.queued', null, hub.state === 'open' ? 'sending' : 'queued')
    renderOutbox()
    flushOutbox()
  } finally {
    button.disabled = false
  }
}

function locate() {
  const hint = $('compose-place-hint')
  if (!window.isSecureContext || !navigator.geolocation) {
    hint.textContent = t('compose.locateInsecure')
    return
  }
  hint.textContent = t('compose.locating')
  navigator.geolocation.getCurrentPosition(
    (pos) => {
      const precision = Number($('compose-precision').value)
      $('compose-place').value = geohash.encode(pos.coords.latitude, pos.coords.longitude, precision)
      hint.textContent = placeLabel($('compose-place').value)
    },
    (err) => {
      hint.textContent = t('compose.locateFailed', { reason: err.message || String(err.code) })
    },
    { enableHighAccuracy: false, timeout: 20000, maximumAge: 60000 },
  )
}

// ---- outbox -------------------------------------------------------------------------------

let flushing = false
let flushAgain = false
const TRANSIENT = /^(rate-limited|error):/

function setItemState(item, state, detail) {
  outboxState.set(item.qid, { state, detail })
  if (item.qid === lastQid) {
    const map = { sending: 'status.sending', sent: 'status.sent', queued: 'status.queued', failed: 'status.failed', uploading: 'status.uploading' }
    setComposeStatus(map[state], detail, state === 'uploading' ? 'sending' : state)
  }
  renderOutbox()
}

let markReady
const identityReady = new Promise((resolve) => {
  markReady = resolve
})

async function flushOutbox() {
  await identityReady
  if (flushing) {
    flushAgain = true
    return
  }
  flushing = true
  try {
    do {
      flushAgain = false
      const items = await db.outboxAll()
      for (const item of items) {
        if (item.state === 'failed') continue
        if (hub.state !== 'open') {
          setItemState(item, 'queued')
          continue
        }
        if (!(await sendItem(item))) break
      }
    } while (flushAgain && hub.state === 'open')
  } finally {
    flushing = false
    renderOutbox()
  }
}

/** Send one outbox item; false if the hub went away and the rest should wait. */
async function sendItem(item) {
  setItemState(item, 'sending')
  for (const [i, m] of item.media.entries()) {
    if (m.uploaded) continue
    if (!(await hubHas(m.sha256))) {
      try {
        await upload(m, signer, (frac) => setItemState(item, 'uploading', { n: i + 1, total: item.media.length, pct: Math.round(frac * 100) }))
      } catch (e) {
        if (e instanceof UploadError && !e.retry) {
          item.state = 'failed'
          item.error = e.message
          await db.outboxPut(item)
          setItemState(item, 'failed', { reason: e.message })
          return true
        }
        setItemState(item, 'queued')
        retryLater()
        return false
      }
    }
    m.uploaded = true
    await db.outboxPut(item)
  }
  let res = await hub.publish(item.event)
  if (res.ok === false && res.message.startsWith('auth-required:') && (await authenticate())) res = await hub.publish(item.event)
  if (res.ok === true) {
    await db.outboxDelete(item.qid)
    takeEvents([item.event], true)
    setItemState(item, 'sent')
    return true
  }
  if (res.ok === false && !TRANSIENT.test(res.message)) {
    if (item.type !== 'report') {
      // A corroboration or dispute the hub refused: say so; there is nothing to keep.
      await db.outboxDelete(item.qid)
      outboxState.delete(item.qid)
      toast(t('status.failed', { reason: res.message }))
      return true
    }
    item.state = 'failed'
    item.error = res.message
    await db.outboxPut(item)
    setItemState(item, 'failed', { reason: res.message })
    return true
  }
  setItemState(item, 'queued')
  retryLater()
  return false
}

// After a passing failure (hub busy, upload cut off) with the WebSocket still open, try
// again in a while; a reconnect also retries.
let retryTimer = null
function retryLater() {
  if (retryTimer) return
  retryTimer = setTimeout(() => {
    retryTimer = null
    flushOutbox()
  }, 30000)
}

let challenge = null
async function authenticate() {
  if (!challenge) return false
  try {
    const ev = await signer.sign({ kind: 22242, content: '', tags: [['relay', hub.url], ['challenge', challenge]] })
    const res = await hub.auth(ev)
    return res.ok === true
  } catch {
    return false
  }
}

let outboxTimer = null
function renderOutbox() {
  if (!outboxTimer) {
    outboxTimer = setTimeout(() => {
      outboxTimer = null
      drawOutbox()
    }, 100)
  }
}

async function drawOutbox() {
  let items
  try {
    items = await db.outboxAll()
  } catch {
    return
  }
  const reportsWaiting = items.filter((i) => i.type === 'report')
  $('outbox').hidden = reportsWaiting.length === 0
  const list = $('outbox-list')
  const live = new Set(reportsWaiting.map((i) => i.qid))
  for (const [qid, urls] of objectUrls) {
    if (!live.has(qid)) {
      urls.forEach((u) => URL.revokeObjectURL(u))
      objectUrls.delete(qid)
    }
  }
  list.replaceChildren(
    ...reportsWaiting.map((item) => {
      const st = outboxState.get(item.qid) || { state: item.state, detail: item.error ? { reason: item.error } : null }
      const r = readReport(item.event)
      if (!objectUrls.has(item.qid)) objectUrls.set(item.qid, item.media.map((m) => URL.createObjectURL(m.blob)))
      const urls = objectUrls.get(item.qid)
      const li = el(
        'li',
        { class: 'item pending', 'data-testid': 'outbox-item', 'data-state': st.state },
        el('p', { class: 'text' }, r.text || '—'),
        item.media.length ? el('div', { class: 'media' }, ...item.media.map((m, i) => mediaNode({ ...m, dim: '' }, urls[i]))) : null,
        el('p', { class: 'state', 'data-testid': 'outbox-state' }, t(`outbox.${st.state}`, st.detail || {})),
      )
      if (st.state === 'failed') {
        li.append(
          el('button', { type: 'button', onclick: () => retryItem(item) }, t('outbox.retry')),
          ' ',
          el('button', { type: 'button', class: 'ghost', onclick: () => deleteItem(item) }, t('outbox.delete')),
        )
      }
      return li
    }),
  )
}

async function retryItem(item) {
  item.state = 'queued'
  delete item.error
  await db.outboxPut(item)
  outboxState.set(item.qid, { state: 'queued' })
  hub.retryNow()
  flushOutbox()
}

async function deleteItem(item) {
  if (!confirm(t('outbox.deleteConfirm'))) return
  await db.outboxDelete(item.qid)
  outboxState.delete(item.qid)
  renderOutbox()
}

// ---- hub connection -----------------------------------------------------------------------

function showHubState(state) {
  const s = $('hub-status')
  s.dataset.state = state
  s.textContent = t(`hub.${state}`)
  $('offline-banner').hidden = state === 'open' || state === 'connecting'
}

async function checkForUpdate() {
  try {
    const r = await fetch('/build.json', { cache: 'no-store' })
    if (!r.ok) return
    const hubTime = Date.parse(r.headers.get('Date') || '')
    if (Number.isFinite(hubTime)) {
      const skew = Math.round((hubTime - Date.now()) / 1000)
      setClockOffset(skew)
      if (Math.abs(skew) > 600) toast(t('hub.clockSkew', { minutes: Math.round(skew / 60) }))
    }
    const { build } = await r.json()
    const mine = document.querySelector('meta[name="samizdat-build"]')?.content
    if (build && mine && build !== mine) $('update-banner').hidden = false
  } catch {}
}

function connectHub() {
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`
  hub = new Hub(url, {
    onEvent: (ev) => takeEvents([ev], true),
    onState: (state) => {
      showHubState(state)
      if (state === 'open') {
        flushOutbox()
        checkForUpdate()
      }
    },
    onAuth: (c) => {
      challenge = c
    },
    // Reports first (they stream newest first); the witness labels once they are in, so
    // that on a slow link the first reports are not queued behind hundreds of labels.
    onEose: (subid) => {
      if (subid === 'feed' && !hub.subs.has('labels')) {
        hub.subscribe('labels', [{ kinds: [1985], '#L': ['samizdat.witness'], limit: FEED_LIMIT * 5 }])
        hub.subscribe('deletions', [{ kinds: [5], limit: FEED_LIMIT }])
      }
    },
  })
  hub.subscribe('feed', [{ kinds: [1], limit: FEED_LIMIT }])
  hub.connect()
  window.addEventListener('online', () => hub.retryNow())
  document.addEventListener('visibilitychange', () => document.visibilityState === 'visible' && hub.retryNow())
}

// ---- boot ---------------------------------------------------------------------------------

function fillSelects() {
  const langSel = $('lang')
  langSel.replaceChildren(...Object.keys(LANGS).map((l) => el('option', { value: l }, LANG_NAMES[l])))
  langSel.value = currentLanguage()
  const prec = $('compose-precision')
  const keepValue = prec.value || '5'
  prec.replaceChildren(...[2, 3, 4, 5, 6, 7].map((n) => el('option', { value: String(n), selected: n === 5 }, t(`precision.${n}`))))
  prec.value = keepValue
}

function applyLanguage(l) {
  setLanguage(l)
  translate(document)
  fillSelects()
  showHubState(hub ? hub.state : 'connecting')
  if (signer) showIdentity()
  else renderFeed(true)
  renderOutbox()
}

function showView(name) {
  $('view-main').hidden = name !== 'main'
  $('view-key').hidden = name !== 'key'
  if (name === 'key') drawQr($('share-qr'), location.origin + '/')
  window.scrollTo({ top: 0 })
}

async function boot() {
  let saved = null
  try {
    saved = localStorage.getItem(LANG_KEY)
  } catch {}
  applyLanguage(pickLanguage(saved))
  $('share-url').textContent = location.origin + '/'
  $('app').hidden = false
  $('boot').remove()

  $('lang').addEventListener('change', (e) => {
    try {
      localStorage.setItem(LANG_KEY, e.target.value)
    } catch {}
    applyLanguage(e.target.value)
  })
  $('compose').addEventListener('submit', submit)
  $('compose-media').addEventListener('change', renderPreviews)
  $('compose-keep').addEventListener('change', renderPreviews)
  $('compose-locate').addEventListener('click', locate)
  $('filter-tag').addEventListener('change', (e) => setFilter(e.target.value, filterPlace))
  $('filter-place').addEventListener('change', (e) => setFilter(filterTag, e.target.value))
  $('nav-key').addEventListener('click', () => showView('key'))
  $('key-back').addEventListener('click', () => showView('main'))
  $('key-show-backup').addEventListener('click', showBackup)
  $('key-import-submit').addEventListener('click', importKey)
  $('key-use-extension').addEventListener('click', useExtension)
  $('key-copy').addEventListener('click', () => navigator.clipboard?.writeText(npubEncode(signer.pubkey)).then(() => toast(t('key.copied')), () => {}))
  $('update-reload').addEventListener('click', () => location.reload())
  $('offline-retry').addEventListener('click', () => hub.retryNow())

  // The WebSocket opens while the key and the saved feed are read; the outbox waits for both.
  connectHub()
  try {
    await loadIdentity()
    takeEvents(await db.allEvents(), false)
    renderFeed(false)
  } catch (e) {
    // IndexedDB refused (private mode in some browsers): work with a key for this visit only.
    if (!signer) {
      signer = localSigner(generateSecret())
      showIdentity()
    }
    toast(t('status.noStorage'))
  }
  markReady()
  renderOutbox()
  if (hub.state === 'open') flushOutbox()
  setInterval(refreshTimes, 30000)
  performance.mark('samizdat-interactive')
  document.body.dataset.ready = 'true'
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {})
}

boot()
