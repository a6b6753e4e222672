// NIP-19 bech32 (BIP-173) for npub/nsec: 32-byte payloads only, so no length limit games.
const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3]

function polymod(values) {
  let chk = 1
  for (const v of values) {
    const top = chk >>> 25
    chk = ((chk & 0x1ffffff) << 5) ^ v
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GENERATOR[i]
  }
  return chk >>> 0
}

function hrpExpand(hrp) {
  const out = []
  for (let i = 0; i < hrp.length; i++) out.push(hrp.charCodeAt(i) >> 5)
  out.push(0)
  for (let i = 0; i < hrp.length; i++) out.push(hrp.charCodeAt(i) & 31)
  return out
}

function regroup(data, from, to, pad) {
  let acc = 0
  let bits = 0
  const out = []
  const maxv = (1 << to) - 1
  for (const value of data) {
    acc = (acc << from) | value
    bits += from
    while (bits >= to) {
      bits -= to
      out.push((acc >> bits) & maxv)
    }
    acc &= (1 << bits) - 1
  }
  if (pad) {
    if (bits > 0) out.push((acc << (to - bits)) & maxv)
  } else if (bits >= from || ((acc << (to - bits)) & maxv)) {
    throw new Error('bad padding')
  }
  return out
}

export function encode(hrp, bytes) {
  const data = regroup(bytes, 8, 5, true)
  const chk = polymod([...hrpExpand(hrp), ...data, 0, 0, 0, 0, 0, 0]) ^ 1
  let out = hrp + '1'
  for (const d of data) out += CHARSET[d]
  for (let i = 0; i < 6; i++) out += CHARSET[(chk >>> (5 * (5 - i))) & 31]
  return out
}

/** Decode; returns {hrp, bytes}. Throws on any error (case mix, checksum, padding). */
export function decode(text) {
  const s = text.trim()
  if (s !== s.toLowerCase() && s !== s.toUpperCase()) throw new Error('mixed case')
  const lower = s.toLowerCase()
  const sep = lower.lastIndexOf('1')
  if (sep < 1 || sep + 7 > lower.length) throw new Error('no separator')
  const hrp = lower.slice(0, sep)
  const data = []
  for (const c of lower.slice(sep + 1)) {
    const v = CHARSET.indexOf(c)
    if (v < 0) throw new Error('bad character')
    data.push(v)
  }
  if (polymod([...hrpExpand(hrp), ...data]) !== 1) throw new Error('bad checksum')
  return { hrp, bytes: Uint8Array.from(regroup(data.slice(0, -6), 5, 8, false)) }
}
