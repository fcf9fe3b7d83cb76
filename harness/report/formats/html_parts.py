"""The building blocks of report.html: escaping, sections, tables, and the page's inline CSS and JS.

Every string that came from a suite or a model passes through `e()` = html.escape with quotes, so
a payload in the data stays text on the page.
"""

from __future__ import annotations

from html import escape
from typing import Any


def e(value: Any) -> str:
    return escape(str(value), quote=True)


def section(anchor: str, title: str, inner: str, note: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{anchor}">\n<h2>{title}</h2>\n{note_html}{inner}\n</section>'


def table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """Header strings are escaped here; cells arrive as HTML their builders escaped."""
    ths = "".join(f"<th>{e(h)}</th>" for h in head)
    trs = "\n".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return f'<div class="table-wrap"><table class="{cls}"><thead><tr>{ths}</tr></thead>\n<tbody>\n{trs}\n</tbody></table></div>'


def td(html: str, cls: str = "") -> str:
    return f'<td class="{cls}">{html}</td>' if cls else f"<td>{html}</td>"


def swatch(color: str) -> str:
    return f'<span class="swatch" style="background:{color}"></span>'


CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f6f7f9;--card:#fff;--accent:#2563eb;--ok:#15803d;--bad:#b91c1c}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
header,nav,main,footer{max-width:1200px;margin:0 auto;padding:0 24px}
header{padding-top:28px}
h1{font-size:24px;margin:0 0 12px;font-weight:650}
h1 .suite{color:var(--accent)}
h2{font-size:18px;margin:0 0 12px;font-weight:650}
h3{font-size:14px;margin:16px 0 8px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:6px 18px;margin:0 0 12px}
.facts div{min-width:0}
.facts div.wide{grid-column:span 3}
.facts dt{font-size:11px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.facts dd{margin:0;overflow-wrap:anywhere}
nav{display:flex;flex-wrap:wrap;gap:4px 16px;padding-top:4px;padding-bottom:8px;border-bottom:1px solid var(--line);margin-bottom:18px}
nav a{color:var(--accent);text-decoration:none;font-size:13px}
nav a:hover{text-decoration:underline}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:18px 20px;margin:0 0 18px}
.recommendation{border-left:5px solid var(--accent);background:#eff6ff}
.recommendation .label{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:var(--accent);font-weight:700}
.rec-text{font-size:17px;margin:4px 0 6px;font-weight:550}
.rec-detail{margin:0;color:var(--muted)}
.note,.legend{color:var(--muted);font-size:12.5px;margin:0 0 10px}
.legend{margin-top:8px}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{background:#f1f5f9;font-weight:600;white-space:nowrap;position:sticky;top:0}
table.numeric thead th:not(:first-child){text-align:right}
table.cost thead th{white-space:normal;vertical-align:bottom}
tbody tr:nth-child(even){background:#fafbfc}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.name{font-weight:550;white-space:nowrap}
td.best{background:#ecfdf5}
sup.sig{color:var(--bad);margin-left:2px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:7px;vertical-align:0}
table.winloss{width:auto}
table.slices{width:auto;min-width:50%}
table.winloss th[scope=row]{background:#f1f5f9}
td.wl{text-align:center;min-width:64px}
td.diag{text-align:center;color:var(--muted);background:#f9fafb}
figure{margin:16px 0 0}
figcaption{font-size:12.5px;color:var(--muted);margin-bottom:6px}
svg.chart{max-width:760px;display:block}
svg .grid{stroke:#eef0f3}
svg .axis{stroke:#9ca3af}
svg .tick{fill:var(--muted)}
svg text{fill:var(--fg)}
svg .whisker line{stroke:#111827;stroke-width:1.5}
.badge{display:inline-block;font-size:11px;font-weight:600;border-radius:10px;padding:0 8px;white-space:nowrap}
.badge.yes{background:#dcfce7;color:var(--ok)}
.badge.no{background:#fee2e2;color:var(--bad)}
.badge.part{background:#fef3c7;color:#92400e}
.controls{display:flex;flex-wrap:wrap;gap:10px 20px;align-items:center;margin-bottom:10px}
.controls input[type=search]{padding:4px 8px;border:1px solid var(--line);border-radius:6px;min-width:220px;font:inherit}
#example-count{color:var(--muted);font-size:12.5px}
table.examples td{min-width:140px}
table.examples td.id{min-width:90px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.text{white-space:pre-wrap;overflow-wrap:anywhere;max-height:9em;overflow:auto;margin-top:2px}
.meta{display:block;color:var(--muted);font-size:11px}
.answer{color:var(--muted);font-size:12px;margin-top:4px;overflow-wrap:anywhere}
.error{color:var(--bad);font-size:12px;margin-top:4px}
td.wrong{background:#fff7f7}
td.partial{background:#fffbeb}
td.missing{color:var(--muted);font-style:italic}
.facts-list{margin:0;padding-left:18px}
footer{color:var(--muted);font-size:12px;padding-bottom:28px}
"""

JS = """
(function () {
  try {
    var box = document.getElementById('only-disagree');
    var search = document.getElementById('example-search');
    var count = document.getElementById('example-count');
    if (!box || !search || !count) { document.documentElement.setAttribute('data-js', 'ok'); return; }
    var rows = Array.prototype.slice.call(document.querySelectorAll('#examples-table tbody tr'));
    function apply() {
      var text = search.value.trim().toLowerCase();
      var shown = 0;
      rows.forEach(function (row) {
        var show = (!box.checked || row.getAttribute('data-disagree') === '1') &&
                   (!text || row.textContent.toLowerCase().indexOf(text) !== -1);
        row.hidden = !show;
        if (show) { shown += 1; }
      });
      count.textContent = shown + ' of ' + rows.length + ' examples shown';
    }
    box.addEventListener('change', apply);
    search.addEventListener('input', apply);
    if (window.location.hash === '#disagree') { box.checked = true; }
    apply();
    document.documentElement.setAttribute('data-js', 'ok');
  } catch (err) {
    document.documentElement.setAttribute('data-js', 'error: ' + err);
  }
})();
"""
