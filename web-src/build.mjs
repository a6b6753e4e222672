// Builds the web app into src/samizdat/web/static/ (committed, so users never need node).
// Reproducible: the same sources and lockfile give byte-identical files (no timestamps;
// asset names carry a hash of their content). Run with `npm run build`.
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'

const HERE = dirname(fileURLToPath(import.meta.url))
const OUT = join(HERE, '..', 'src', 'samizdat', 'web', 'static')
const TARGET = ['es2022', 'chrome100', 'firefox100', 'safari15']
// Bundled packages and where their licence text is (qrcode-generator has it in its header).
const LICENSED = { '@noble/curves': 'LICENSE', '@noble/hashes': 'LICENSE', 'qrcode-generator': 'dist/qrcode.mjs' }

const sha256 = (data) => createHash('sha256').update(data).digest('hex')

const result = await esbuild.build({
  absWorkingDir: HERE,
  entryPoints: { app: 'src/app.js', style: 'src/style.css' },
  bundle: true,
  splitting: true,
  format: 'esm',
  minify: true,
  target: TARGET,
  charset: 'utf8',
  legalComments: 'none', // the licences go to third-party-licenses.txt instead
  entryNames: '[name]-[hash]',
  chunkNames: '[name]-[hash]',
  outdir: join(OUT, 'assets'),
  write: false,
  logLevel: 'warning',
})

const files = new Map() // path under static/ -> contents (string or Buffer)
let appJs = ''
let styleCss = ''
for (const f of result.outputFiles) {
  const rel = relative(OUT, f.path).split('\\').join('/')
  files.set(rel, Buffer.from(f.contents))
  if (/^assets\/app-[^/]+\.js$/.test(rel)) appJs = '/' + rel
  if (/^assets\/style-[^/]+\.css$/.test(rel)) styleCss = '/' + rel
}
if (!appJs || !styleCss) throw new Error('build did not produce app-*.js and style-*.css')

files.set('icon.svg', readFileSync(join(HERE, 'icon.svg')))
const manifest = {
  name: 'samizdat',
  short_name: 'samizdat',
  description: 'Eyewitness reports from the people around this hub',
  start_url: '/',
  scope: '/',
  display: 'standalone',
  background_color: '#f4f1ec',
  theme_color: '#8c1c13',
  icons: [{ src: '/icon.svg', sizes: 'any', type: 'image/svg+xml', purpose: 'any' }],
}
files.set('manifest.webmanifest', JSON.stringify(manifest, null, 2) + '\n')

const licences = Object.entries(LICENSED).map(([name, file]) => {
  const pkg = JSON.parse(readFileSync(join(HERE, 'node_modules', name, 'package.json'), 'utf8'))
  let text = readFileSync(join(HERE, 'node_modules', name, file), 'utf8')
  if (file.endsWith('.mjs')) text = text.match(/^(\/\/.*\n)+/)[0]
  text = text.trim()
  return `${name} ${pkg.version} (${pkg.license})\n\n${text}\n`
})
files.set('third-party-licenses.txt', licences.join('\n' + '-'.repeat(72) + '\n\n'))

// The build id names this exact set of files: the app compares it with /build.json to
// offer an update, and the service worker's cache is named after it.
const template = readFileSync(join(HERE, 'index.html'), 'utf8')
const swSource = readFileSync(join(HERE, 'src', 'sw.js'), 'utf8')
const idHash = createHash('sha256')
for (const name of [...files.keys()].sort()) idHash.update(name + '\0' + sha256(files.get(name)) + '\n')
idHash.update(sha256(template) + sha256(swSource))
const build = idHash.digest('hex').slice(0, 16)

const index = template.replaceAll('%BUILD%', build).replaceAll('%CSS%', styleCss).replaceAll('%JS%', appJs)
files.set('index.html', index)

const shell = ['/', ...[...files.keys()].filter((n) => n.startsWith('assets/')).sort().map((n) => '/' + n), '/manifest.webmanifest', '/icon.svg']
const sw = await esbuild.transform(swSource.replace('__BUILD__', build).replace('__SHELL__', JSON.stringify(shell)), {
  minify: true,
  target: TARGET,
  charset: 'utf8',
})
files.set('sw.js', sw.code)
files.set('build.json', JSON.stringify({ build }) + '\n')

rmSync(OUT, { recursive: true, force: true })
for (const [name, data] of [...files].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
  const path = join(OUT, name)
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, data)
  console.log(`${String(Buffer.byteLength(data)).padStart(8)}  ${name}`)
}
console.log(`build ${build}`)
