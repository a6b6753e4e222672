// Photos and videos: re-encode photos (drops EXIF: GPS, device serials), hash, upload
// to the hub's Blossom store (BUD-02 PUT /upload with a kind-24242 authorization).
import { bytesToHex, now, sha256 } from './nostr.js'

export const MAX_SIDE = 1600
const STALL_MS = 60000
const JPEG_QUALITY = 0.82
const REENCODE = /^image\/(jpeg|png|webp|heic|heif|avif|bmp|gif)$/

const EXT = {
  'image/jpeg': 'jpg', 'image/png': 'png', 'image/webp': 'webp', 'image/gif': 'gif',
  'image/heic': 'heic', 'image/heif': 'heif', 'image/avif': 'avif',
  'video/mp4': 'mp4', 'video/webm': 'webm', 'video/quicktime': 'mov', 'video/3gpp': '3gp',
}
export const extFor = (mime) => EXT[mime] || 'bin'

function loadImage(blob) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(blob)
    const img = new Image()
    img.onload = () => resolve({ img, url })
    img.onerror = () => {
      URL.revokeObjectURL(url)
      reject(new Error('not a readable image'))
    }
    img.src = url
  })
}

/**
 * Prepare one chosen file: {blob, mime, width, height, reencoded}.
 * Photos are drawn onto a canvas (the browser applies the EXIF orientation) and saved as
 * JPEG, at most MAX_SIDE pixels on the long side; nothing of the original file's metadata
 * survives. With keepOriginal, or for videos, the file is sent as it is.
 */
export async function prepare(file, keepOriginal) {
  const mime = file.type || 'application/octet-stream'
  if (keepOriginal || !REENCODE.test(mime)) {
    let width = 0
    let height = 0
    if (mime.startsWith('image/')) {
      try {
        const { img, url } = await loadImage(file)
        width = img.naturalWidth
        height = img.naturalHeight
        URL.revokeObjectURL(url)
      } catch {}
    }
    return { blob: file, mime, width, height, reencoded: false }
  }
  const { img, url } = await loadImage(file)
  try {
    const scale = Math.min(1, MAX_SIDE / Math.max(img.naturalWidth, img.naturalHeight))
    const width = Math.max(1, Math.round(img.naturalWidth * scale))
    const height = Math.max(1, Math.round(img.naturalHeight * scale))
    const canvas = document.createElement('canvas')
    canvas.width = width
    canvas.height = height
    const ctx = canvas.getContext('2d')
    ctx.fillStyle = '#fff' // transparent PNGs get a white background, not black
    ctx.fillRect(0, 0, width, height)
    ctx.drawImage(img, 0, 0, width, height)
    const blob = await new Promise((resolve, reject) =>
      canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('could not encode the photo'))), 'image/jpeg', JPEG_QUALITY),
    )
    return { blob, mime: 'image/jpeg', width, height, reencoded: true }
  } finally {
    URL.revokeObjectURL(url)
  }
}

/** Lowercase hex sha256 of a Blob, read in 4 MiB slices so videos do not fill memory twice. */
export async function hashBlob(blob) {
  const h = sha256.create()
  const step = 4 << 20
  for (let off = 0; off < blob.size; off += step) {
    h.update(new Uint8Array(await blob.slice(off, off + step).arrayBuffer()))
  }
  return bytesToHex(h.digest())
}

function base64Utf8(text) {
  const bytes = new TextEncoder().encode(text)
  let bin = ''
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(bin)
}

// Seconds to add to this phone's clock to get the hub's (from its Date header): the hub
// checks authorization times against its own clock, and phones in a blackout drift.
let clockOffset = 0
export function setClockOffset(seconds) {
  clockOffset = Math.abs(seconds) > 5 ? seconds : 0
}
const hubNow = () => now() + clockOffset

export class UploadError extends Error {
  constructor(message, retry) {
    super(message)
    this.retry = retry // true: the hub was unreachable or busy; try again later
  }
}

/** Is this blob already on the hub? (BUD-01 HEAD) */
export async function hubHas(sha) {
  try {
    const r = await fetch('/' + sha, { method: 'HEAD', cache: 'no-store' })
    return r.ok
  } catch {
    return false
  }
}

/** PUT /upload with progress; resolves the blob descriptor or rejects with UploadError. */
export async function upload(item, signer, onProgress) {
  const auth = await signer.sign({
    kind: 24242,
    created_at: hubNow(),
    content: `Upload ${item.sha256}.${extFor(item.mime)}`,
    tags: [['t', 'upload'], ['x', item.sha256], ['expiration', String(hubNow() + 600)]],
  })
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('PUT', '/upload')
    xhr.setRequestHeader('Authorization', 'Nostr ' + base64Utf8(JSON.stringify(auth)))
    xhr.setRequestHeader('Content-Type', item.mime)
    xhr.setRequestHeader('X-SHA-256', item.sha256)
    // A link that dies silently would leave the upload hanging: give up after a minute
    // without progress, and the outbox tries again later.
    let last = Date.now()
    const watchdog = setInterval(() => {
      if (Date.now() - last > STALL_MS) xhr.abort()
    }, 5000)
    xhr.upload.onprogress = (e) => {
      last = Date.now()
      if (e.lengthComputable) onProgress?.(e.loaded / e.total)
    }
    xhr.onloadend = () => clearInterval(watchdog)
    xhr.onabort = () => reject(new UploadError('upload stalled', true))
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        let desc = {}
        try {
          desc = JSON.parse(xhr.responseText)
        } catch {}
        if (desc.sha256 && desc.sha256 !== item.sha256) reject(new UploadError('the hub stored different bytes', false))
        else resolve(desc)
        return
      }
      const reason = xhr.getResponseHeader('X-Reason') || `HTTP ${xhr.status}`
      reject(new UploadError(reason, xhr.status >= 500 || xhr.status === 429 || xhr.status === 0))
    }
    xhr.onerror = () => reject(new UploadError('hub unreachable', true))
    xhr.ontimeout = () => reject(new UploadError('upload timed out', true))
    xhr.send(item.blob)
  })
}
