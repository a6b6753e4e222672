// QR codes as inline SVG (loaded on demand: only the key backup and share panels need it).
import qrcode from 'qrcode-generator'

export function qrSvg(text) {
  const qr = qrcode(0, 'M')
  qr.addData(text)
  qr.make()
  return qr.createSvgTag({ cellSize: 4, margin: 4, scalable: true })
}
