"""The printable poster at ``/poster``: one A4 page that gets a crowd onto the hub.

A big QR code of the web app's address, the address in text, the Wi-Fi network's name
(and, only if the operator configured it, its password and a QR code that joins it),
and three steps in Kazakh, Russian and English.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from .. import qr


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    tagline: str
    join_named: str  # {wifi} is replaced by the quoted network name
    join_here: str
    scan: str
    post: str
    quotes: tuple[str, str]


LANGUAGES = (
    Language(
        "kk", "Қазақша", "Куәгерлерден жаңалықтар — интернетсіз",
        "{wifi} Wi-Fi желісіне қосылыңыз.",
        "Осы жердегі Wi-Fi желісіне қосылыңыз.",
        "Кодты телефон камерасымен сканерлеңіз немесе браузерге мекенжайды теріңіз.",
        "Хабарларды оқыңыз және жариялаңыз. Өзіңіз басқаша таңдамасаңыз, "
        "фотосуреттеріңізден орналасқан жер туралы деректер өшіріледі.",
        ("«", "»"),
    ),
    Language(
        "ru", "Русский", "Новости от очевидцев — без интернета",
        "Подключитесь к сети Wi-Fi {wifi}.",
        "Подключитесь к местной сети Wi-Fi.",
        "Отсканируйте код камерой телефона или введите адрес в браузере.",
        "Читайте и публикуйте сообщения. Из ваших фотографий удаляются данные "
        "о местоположении, если вы сами не решите иначе.",
        ("«", "»"),
    ),
    Language(
        "en", "English", "Eyewitness news — no internet needed",
        "Join the Wi-Fi network {wifi}.",
        "Join the Wi-Fi network here.",
        "Scan the code with your phone's camera, or type the address into your browser.",
        "Read and post reports. Your photos lose their location data unless you choose "
        "otherwise.",
        ("“", "”"),
    ),
)

LABELS = {
    "wifi": "Wi-Fi",
    "password": "Құпиясөз · Пароль · Password",
    "join": "Wi-Fi желісіне қосылу · Подключиться к Wi-Fi · Join the Wi-Fi",
    "address": "Мекенжай · Адрес · Address",
}

CSS = """
@page{size:A4;margin:12mm}
*{box-sizing:border-box}
html{font-family:system-ui,"DejaVu Sans","Noto Sans",Arial,sans-serif;color:#000;background:#fff}
body{margin:0 auto;max-width:186mm}
.poster{display:flex;flex-direction:column;align-items:center;gap:3mm;break-inside:avoid}
h1{font-size:24pt;margin:0;text-align:center;line-height:1.1}
.tagline{margin:0;text-align:center;font-size:11pt;line-height:1.35}
.wifi{display:flex;align-items:center;gap:6mm;border:.7mm solid #000;border-radius:3mm;
  padding:2mm 5mm;font-size:16pt;max-width:100%}
.wifi .label{font-size:9pt;display:block}
.wifi strong{font-size:18pt;line-height:1.15;word-break:break-word}
.wifi .join svg{width:30mm;height:30mm;display:block}
.wifi .join small{display:block;font-size:6.5pt;text-align:center;max-width:30mm}
.main-qr svg{width:80mm;height:80mm;display:block}
.url{font:700 20pt/1.2 ui-monospace,"DejaVu Sans Mono",monospace;text-align:center;
  word-break:break-all;margin:0}
.url a{color:#000;text-decoration:none}
.url .label{display:block;font:9pt system-ui,"DejaVu Sans",sans-serif}
.steps{display:grid;grid-template-columns:1fr;gap:2mm;width:100%}
.steps section{border-top:.3mm solid #000;padding-top:1.5mm}
.steps h2{font-size:9pt;margin:0 0 1mm;text-transform:uppercase;letter-spacing:.05em}
.steps ol{margin:0;padding-left:6mm;font-size:11pt;line-height:1.3}
footer{font-size:7.5pt;text-align:center;word-break:break-all;color:#222}
footer code{font-size:7.5pt}
.noprint{font-size:10pt;text-align:center;color:#444}
@media print{.noprint{display:none}}
"""


def poster_html(*, title: str, web_url: str, wifi_name: str = "", wifi_password: str = "",
                https_url: str = "", fingerprint: str | None = None) -> str:
    e = html.escape
    steps = []
    for lang in LANGUAGES:
        if wifi_name:
            left, right = lang.quotes
            join = e(lang.join_named).replace("{wifi}", f"<b>{left}{e(wifi_name)}{right}</b>")
        else:
            join = e(lang.join_here)
        steps.append(
            f'<section lang="{lang.code}" data-lang="{lang.code}"><h2>{e(lang.name)}</h2>'
            f"<ol><li>{join}</li><li>{e(lang.scan)}</li><li>{e(lang.post)}</li></ol></section>"
        )
    wifi = ""
    if wifi_name:
        password = ""
        join_qr = ""
        if wifi_password:
            password = (f'<span class="label">{e(LABELS["password"])}</span>'
                        f'<strong data-testid="wifi-password">{e(wifi_password)}</strong>')
            join_qr = (f'<div class="join" data-testid="wifi-qr">'
                       f'{qr.svg(qr.wifi_payload(wifi_name, wifi_password), title="Wi-Fi")}'
                       f"<small>{e(LABELS['join'])}</small></div>")
        wifi = (f'<div class="wifi"><div><span class="label">{e(LABELS["wifi"])}</span>'
                f'<strong data-testid="wifi-name">{e(wifi_name)}</strong>'
                f"{'<br>' if password else ''}{password}</div>{join_qr}</div>")
    taglines = " · ".join(f'<span lang="{lang.code}">{e(lang.tagline)}</span>'
                          for lang in LANGUAGES)
    footer = ""
    if https_url:
        footer = (f"<footer>HTTPS: <code>{e(https_url)}</code>"
                  + (f" · SHA-256: <code data-testid='tls-fingerprint'>{e(fingerprint)}</code>"
                     if fingerprint else "") + "</footer>")
    return f"""<!doctype html>
<html lang="kk"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} — poster</title>
<style>{CSS}</style></head><body>
<p class="noprint">Print this page (A4): Ctrl+P / ⌘P.</p>
<main class="poster">
<h1>{e(title)}</h1>
<p class="tagline">{taglines}</p>
{wifi}
<div class="main-qr" data-testid="web-qr">{qr.svg(web_url, title=web_url)}</div>
<p class="url"><span class="label">{e(LABELS["address"])}</span>
<a href="{e(web_url)}" data-testid="web-url">{e(web_url)}</a></p>
<div class="steps">{"".join(steps)}</div>
{footer}
</main>
</body></html>"""


def access_html(access: Any) -> str:
    """The status page's "how to connect" block: the QR code of the web app's address,
    every address, and the HTTPS certificate's fingerprint (``access`` is a lan.Access)."""
    e = html.escape
    links = "".join(f'<li><a href="{e(u)}">{e(u)}</a></li>' for u in access.http_urls)
    if access.public_url:
        links = f'<li><a href="{e(access.public_url)}">{e(access.public_url)}</a></li>' + links
    secure = ""
    if access.https_urls:
        secure = ("<p>HTTPS (the browser warns about the hub's own certificate first; it is "
                  "the right one if its SHA-256 fingerprint is this one):</p><ul>"
                  + "".join(f'<li><a href="{e(u)}">{e(u)}</a></li>' for u in access.https_urls)
                  + "</ul>")
    fp = ""
    if access.fingerprint:
        fp = (f'<p>Certificate SHA-256 fingerprint:<br><code data-testid="tls-fingerprint">'
              f"{e(access.fingerprint)}</code></p>")
    if access.ca_fingerprint:
        fp += ('<p>For the web app to work offline on a phone, the phone must trust this '
               'hub: install <a href="/ca.crt" data-testid="ca-link">the hub\'s certificate '
               "authority</a> (Android: Settings → Security → Encryption &amp; credentials → "
               "Install a certificate → CA certificate; iPhone: open it, install the profile, "
               "then turn it on under Settings → General → About → Certificate Trust "
               "Settings). It can vouch only for local names and private addresses. Check "
               "its SHA-256 fingerprint first:<br><code data-testid=\"ca-fingerprint\">"
               f"{e(access.ca_fingerprint)}</code></p>")
    note = ""
    if access.loopback_only:
        lan = ", ".join(str(a.ip) for a in access.addresses) or "none found"
        note = (f"<p><strong>Only this computer can connect</strong>: the hub listens on "
                f"<code>{e(access.host or '*')}</code>. Start it with <code>--host 0.0.0.0</code>"
                f" to let phones on the Wi-Fi in (this machine's LAN addresses: {e(lan)}).</p>")
    addrs = ", ".join(f"{a.ip} ({a.interface})" if a.interface else str(a.ip)
                      for a in access.addresses) or "none (only loopback)"
    return f"""<section class="access" data-testid="access" style="display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start;margin:1rem 0">
<div style="width:12rem;max-width:100%" data-testid="web-qr">{qr.svg(access.web_url, title=access.web_url)}</div>
<div style="flex:1;min-width:16rem">
<p>Open the web app: scan the code, or type one of these addresses:</p>
<ul data-testid="web-urls">{links}</ul>
{secure}{fp}{note}
<p>LAN addresses: {e(addrs)}. <a href="/poster">Printable poster</a>.</p>
</div></section>"""
