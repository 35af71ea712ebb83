"""Human-readable views of a results dict: a terminal table (instructor) and Markdown/HTML feedback (student).

Feedback follows Gradescope's visibility: `hidden` tests appear only with `show_hidden`, `after_due_date` tests
only with `after_due_date`; the score line then counts only the tests shown and says how many are withheld.
Everything from the student's code is escaped in HTML and fenced in Markdown.
"""

from __future__ import annotations

import html

_FENCE = "````"


def _shown(results: dict, show_hidden: bool, after_due_date: bool) -> tuple[list[dict], int]:
    shown = []
    for test in results["tests"]:
        visibility = test.get("visibility", "visible")
        if visibility == "visible" or show_hidden or (visibility == "after_due_date" and after_due_date):
            shown.append(test)
    return shown, len(results["tests"]) - len(shown)


def _points(test: dict) -> str:
    if test["extra_data"].get("extra_credit"):
        return f"{test['score']:g} (extra credit, up to {test['extra_data']['points']:g})"
    return f"{test['score']:g} / {test['max_score']:g}"


def _score_line(tests: list[dict], withheld: int) -> str:
    score = sum(t["score"] for t in tests)
    max_score = sum(t["max_score"] for t in tests)
    line = f"Score: {score:g} / {max_score:g}"
    if withheld:
        line += f" ({withheld} more test{'s' if withheld != 1 else ''} not shown yet)"
    return line


def render_table(results: dict) -> str:
    """All tests, for the person running the grader."""
    rows = [(t["status"].upper(), _points(t), t["visibility"], t["name"]) for t in results["tests"]]
    widths = [max([len(header)] + [len(row[i]) for row in rows]) for i, header in enumerate(("RESULT", "POINTS",
                                                                                          "VISIBILITY"))]
    lines = [f"{'RESULT':<{widths[0]}}  {'POINTS':<{widths[1]}}  {'VISIBILITY':<{widths[2]}}  TEST"]
    for row in rows:
        lines.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    extra = results.get("extra_data", {})
    lines.append("")
    lines.append(f"Total: {results['score']:g} / {results['max_score']:g}   ({extra.get('assignment', '?')}, "
                 f"profile {extra.get('profile', '?')}, device {extra.get('device', '?')}, sandbox "
                 f"{extra.get('sandbox', '?')}, {results['execution_time']:.1f} s)")
    if results.get("output"):
        lines += ["", results["output"]]
    return "\n".join(lines)


def render_markdown(results: dict, *, show_hidden: bool = False, after_due_date: bool = False) -> str:
    tests, withheld = _shown(results, show_hidden, after_due_date)
    extra = results.get("extra_data", {})
    lines = [f"# Feedback: {extra.get('assignment', 'assignment')}", "", f"**{_score_line(tests, withheld)}**", ""]
    if results.get("output"):
        lines += [_FENCE, results["output"].replace(_FENCE, "` ` ` `"), _FENCE, ""]
    lines += ["| | Test | Points |", "|---|---|---|"]
    for test in tests:
        mark = "✅" if test["status"] == "passed" else "❌"
        name = test["name"].replace("|", "\\|")
        lines.append(f"| {mark} | {name} | {_points(test)} |")
    for test in tests:
        if test.get("output"):
            lines += ["", f"## {test['name']}", "", _FENCE, test["output"].replace(_FENCE, "` ` ` `"), _FENCE]
    lines.append("")
    return "\n".join(lines)


def render_html(results: dict, *, show_hidden: bool = False, after_due_date: bool = False) -> str:
    tests, withheld = _shown(results, show_hidden, after_due_date)
    extra = results.get("extra_data", {})
    e = html.escape
    title = f"Feedback: {extra.get('assignment', 'assignment')}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        # The page shows untrusted text; forbid scripts and remote content even if escaping were ever bypassed.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">',
        f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:.2em .6em;text-align:left}"
        ".passed{color:#176117}.failed{color:#a11}pre{background:#f4f4f4;padding:.6em;white-space:pre-wrap}</style>",
        "</head><body>", f"<h1>{e(title)}</h1>", f"<p><strong>{e(_score_line(tests, withheld))}</strong></p>",
    ]
    if results.get("output"):
        parts.append(f"<pre>{e(results['output'])}</pre>")
    parts.append("<table><tr><th>Result</th><th>Test</th><th>Points</th></tr>")
    for test in tests:
        parts.append(f'<tr class="{e(test["status"])}"><td>{e(test["status"])}</td><td>{e(test["name"])}</td>'
                     f"<td>{e(_points(test))}</td></tr>")
    parts.append("</table>")
    for test in tests:
        if test.get("output"):
            parts.append(f"<h2>{e(test['name'])}</h2><pre>{e(test['output'])}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
