// Nostr events: NIP-01 ids and BIP-340 signatures in pure JS (no crypto.subtle: plain
// HTTP on a LAN address is not a secure context), NIP-19 keys, and the report format of
// docs/report-format.md.
import { schnorr } from '@noble/curves/secp256k1.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import * as bech32 from './bech32.js'
import * as geohash from './geohash.js'

export { bytesToHex, hexToBytes, sha256 }

export const LABEL_NAMESPACE = 'samizdat.witness'
export const LABEL_VALUES = ['corroborate', 'dispute']

// NIP-01: exactly these seven characters are escaped; everything else is written raw.
const ESCAPES = { '\n': '\\n', '"': '\\"', '\\': '\\\\', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' }
const quote = (s) => '"' + s.replace(/[\n"\\\r\t\b\f]/g, (c) => ESCAPES[c]) + '"'

export function serialize(ev) {
  const tags = ev.tags.map((t) => '[' + t.map(quote).join(',') + ']').join(',')
  return `[0,"${ev.pubkey}",${ev.created_at},${ev.kind},[${tags}],${quote(ev.content)}]`
}

export function eventId(ev) {
  return bytesToHex(sha256(new TextEncoder().encode(serialize(ev))))
}

export function verifyEvent(ev) {
  try {
    if (eventId(ev) !== ev.id) return false
    return schnorr.verify(hexToBytes(ev.sig), hexToBytes(ev.id), hexToBytes(ev.pubkey))
  } catch {
    return false
  }
}

export const now = () => Math.floor(Date.now() / 1000)

export function npubEncode(hex) {
  return bech32.encode('npub', hexToBytes(hex))
}

export function nsecEncode(skBytes) {
  return bech32.encode('nsec', skBytes)
}

/** A secret key from "nsec1..." or 64 hex characters; throws with a short reason. */
export function parseSecret(text) {
  const s = text.trim()
  let bytes
  if (/^[0-9a-fA-F]{64}$/.test(s)) bytes = hexToBytes(s.toLowerCase())
  else {
    const { hrp, bytes: b } = bech32.decode(s)
    if (hrp !== 'nsec') throw new Error('not an nsec')
    bytes = b
  }
  if (bytes.length !== 32) throw new Error('wrong length')
  schnorr.getPublicKey(bytes) // throws for 0 or >= n
  return bytes
}

export function shortNpub(hex) {
  const n = npubEncode(hex)
  return n.slice(0, 10) + '…' + n.slice(-6)
}

/** A signer that holds the secret key in this page. */
export function localSigner(sk) {
  const pubkey = bytesToHex(schnorr.getPublicKey(sk))
  return {
    kind: 'local',
    pubkey,
    async sign(tpl) {
      const ev = {
        pubkey,
        created_at: tpl.created_at ?? now(),
        kind: tpl.kind,
        tags: tpl.tags,
        content: tpl.content,
      }
      ev.id = eventId(ev)
      ev.sig = bytesToHex(schnorr.sign(hexToBytes(ev.id), sk))
      return ev
    },
  }
}

/** A NIP-07 browser extension (window.nostr); its signatures are checked before use. */
export async function extensionSigner() {
  const ext = window.nostr
  const pubkey = await ext.getPublicKey()
  if (!/^[0-9a-f]{64}$/.test(pubkey)) throw new Error('extension gave no public key')
  return {
    kind: 'extension',
    pubkey,
    async sign(tpl) {
      const ev = await ext.signEvent({
        created_at: tpl.created_at ?? now(),
        kind: tpl.kind,
        tags: tpl.tags,
        content: tpl.content,
      })
      if (ev.pubkey !== pubkey || !verifyEvent(ev)) throw new Error('extension returned a bad signature')
      return ev
    },
  }
}

export function generateSecret() {
  return schnorr.utils.randomSecretKey()
}

// ---- reports ---------------------------------------------------------------------------

const HASHTAG = /(^|[^\p{L}\p{N}_&/])#([\p{L}\p{N}_]{1,64})/gu

export function hashtags(text) {
  const out = []
  for (const m of text.matchAll(HASHTAG)) {
    const tag = m[2].toLowerCase()
    if (!out.includes(tag)) out.push(tag)
  }
  return out
}

/**
 * The kind-1 template of a report (docs/report-format.md).
 * media: [{url, sha256, mime, size, width, height}]; place: geohash or ''; observedAt: unix s or null.
 */
export function reportTemplate({ text, media, place, observedAt, createdAt }) {
  const tags = hashtags(text).map((t) => ['t', t])
  if (place) for (let n = 2; n <= place.length; n++) tags.push(['g', place.slice(0, n)])
  for (const m of media) {
    const im = ['imeta', `url ${m.url}`, `m ${m.mime}`, `x ${m.sha256}`, `size ${m.size}`]
    if (m.width && m.height) im.push(`dim ${m.width}x${m.height}`)
    tags.push(im)
  }
  if (observedAt) tags.push(['observed_at', String(observedAt)])
  const urls = media.map((m) => m.url)
  const content = [text.trim(), ...urls].filter(Boolean).join('\n')
  return { kind: 1, created_at: createdAt ?? now(), tags, content }
}

export function labelTemplate(report, value, createdAt) {
  return {
    kind: 1985,
    created_at: createdAt ?? now(),
    content: '',
    tags: [
      ['L', LABEL_NAMESPACE],
      ['l', value, LABEL_NAMESPACE],
      ['e', report.id],
      ['p', report.pubkey],
    ],
  }
}

/** What the app shows of a kind-1 event. */
/** NIP-09: a request to delete the author's own report (kind 5, `e` and `k` tags). */
export function deletionTemplate(report, createdAt) {
  return {
    kind: 5,
    created_at: createdAt,
    tags: [['e', report.id], ['k', String(report.kind)]],
    content: '',
  }
}

/** The event ids a kind-5 event asks to delete. */
export function readDeletion(ev) {
  if (ev.kind !== 5 || !Array.isArray(ev.tags)) return []
  return ev.tags.filter((t) => Array.isArray(t) && t[0] === 'e' && /^[0-9a-f]{64}$/.test(t[1])).map((t) => t[1])
}

export function readReport(ev) {
  const media = []
  for (const t of ev.tags) {
    if (t[0] !== 'imeta') continue
    const f = {}
    for (const part of t.slice(1)) {
      const i = part.indexOf(' ')
      if (i > 0) f[part.slice(0, i)] = part.slice(i + 1)
    }
    if (!/^[0-9a-f]{64}$/.test(f.x || '')) continue
    const ext = (f.url || '').match(/\.([a-z0-9]{1,5})$/i)?.[1]?.toLowerCase() || ''
    media.push({ sha256: f.x, mime: f.m || '', ext, url: f.url || '', dim: f.dim || '' })
  }
  let place = ''
  for (const t of ev.tags) {
    if (t[0] === 'g' && typeof t[1] === 'string' && geohash.isGeohash(t[1]) && t[1].length > place.length) place = t[1]
  }
  const tags = ev.tags.filter((t) => t[0] === 't' && t[1]).map((t) => t[1].toLowerCase())
  const obs = ev.tags.find((t) => t[0] === 'observed_at')
  const observedAt = obs && /^\d{1,12}$/.test(obs[1]) ? Number(obs[1]) : null
  // The media URLs are on their own lines at the end of the content; the app shows the files instead.
  const urls = new Set(media.map((m) => m.url).filter(Boolean))
  const lines = ev.content.split('\n')
  while (lines.length && urls.has(lines[lines.length - 1].trim())) lines.pop()
  return { text: lines.join('\n').trim(), media, place, tags, observedAt }
}

/** For a kind-1985 event: [{target, value}] of samizdat.witness labels, or []. */
export function readLabel(ev) {
  if (ev.kind !== 1985) return []
  if (!ev.tags.some((t) => t[0] === 'L' && t[1] === LABEL_NAMESPACE)) return []
  const l = ev.tags.find((t) => t[0] === 'l' && t[2] === LABEL_NAMESPACE && LABEL_VALUES.includes(t[1]))
  if (!l) return []
  return ev.tags.filter((t) => t[0] === 'e' && /^[0-9a-f]{64}$/.test(t[1] || '')).map((t) => ({ target: t[1], value: l[1] }))
}
