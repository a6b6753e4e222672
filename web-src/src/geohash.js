// Geohash encode/decode (the public-domain algorithm: interleaved longitude/latitude bits).
const BASE32 = '0123456789bcdefghjkmnpqrstuvwxyz'

export function encode(lat, lon, precision) {
  let latLo = -90
  let latHi = 90
  let lonLo = -180
  let lonHi = 180
  let out = ''
  let bit = 0
  let ch = 0
  let even = true
  while (out.length < precision) {
    if (even) {
      const mid = (lonLo + lonHi) / 2
      if (lon >= mid) {
        ch = (ch << 1) | 1
        lonLo = mid
      } else {
        ch <<= 1
        lonHi = mid
      }
    } else {
      const mid = (latLo + latHi) / 2
      if (lat >= mid) {
        ch = (ch << 1) | 1
        latLo = mid
      } else {
        ch <<= 1
        latHi = mid
      }
    }
    even = !even
    if (++bit === 5) {
      out += BASE32[ch]
      bit = 0
      ch = 0
    }
  }
  return out
}

/** Centre and half-extent of a cell: {lat, lon, dlat, dlon}, or null if not a geohash. */
export function decode(hash) {
  let latLo = -90
  let latHi = 90
  let lonLo = -180
  let lonHi = 180
  let even = true
  for (const c of hash.toLowerCase()) {
    const v = BASE32.indexOf(c)
    if (v < 0) return null
    for (let b = 4; b >= 0; b--) {
      const on = (v >> b) & 1
      if (even) {
        const mid = (lonLo + lonHi) / 2
        if (on) lonLo = mid
        else lonHi = mid
      } else {
        const mid = (latLo + latHi) / 2
        if (on) latLo = mid
        else latHi = mid
      }
      even = !even
    }
  }
  return { lat: (latLo + latHi) / 2, lon: (lonLo + lonHi) / 2, dlat: (latHi - latLo) / 2, dlon: (lonHi - lonLo) / 2 }
}

export function isGeohash(s) {
  return /^[0-9bcdefghjkmnpqrstuvwxyz]{1,12}$/.test(s)
}

/** Approximate cell size in km for a precision, for labels ("≈ 5 km"). */
export const CELL_KM = { 2: 1250, 3: 156, 4: 39, 5: 4.9, 6: 1.2, 7: 0.15 }
