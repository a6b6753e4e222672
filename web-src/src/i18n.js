// Message catalogues: every string the interface shows comes from here.
import en from './locales/en.js'
import kk from './locales/kk.js'
import ru from './locales/ru.js'

export const LANGS = { en, ru, kk }
export const LANG_NAMES = { en: 'English', ru: 'Русский', kk: 'Қазақша' }
let lang = 'en'

export function pickLanguage(saved) {
  if (saved && LANGS[saved]) return saved
  for (const l of navigator.languages || [navigator.language || 'en']) {
    const base = String(l).toLowerCase().split('-')[0]
    if (LANGS[base]) return base
  }
  return 'en'
}

export function setLanguage(l) {
  lang = LANGS[l] ? l : 'en'
  document.documentElement.lang = lang
}

export const currentLanguage = () => lang

/** t('key', {n: 3}): the current language's text, English if missing, the key if neither. */
export function t(key, params) {
  let s = LANGS[lang][key] ?? en[key] ?? key
  if (typeof s === 'function') s = s(params || {})
  if (params) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m))
  return s
}

/** Fill [data-i18n] (text), [data-i18n-placeholder], [data-i18n-title], [data-i18n-aria-label]. */
export function translate(root) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n)
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder)
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle)
  for (const el of root.querySelectorAll('[data-i18n-aria-label]')) el.setAttribute('aria-label', t(el.dataset.i18nAriaLabel))
}

export function formatTime(unix) {
  return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(unix * 1000))
}

export function relativeTime(unix, nowMs = Date.now()) {
  const diff = unix - nowMs / 1000
  const abs = Math.abs(diff)
  const rtf = new Intl.RelativeTimeFormat(lang, { numeric: 'auto', style: 'short' })
  if (abs < 45) return t('time.now')
  if (abs < 3600) return rtf.format(Math.round(diff / 60), 'minute')
  if (abs < 86400) return rtf.format(Math.round(diff / 3600), 'hour')
  if (abs < 7 * 86400) return rtf.format(Math.round(diff / 86400), 'day')
  return formatTime(unix)
}
