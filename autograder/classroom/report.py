"""Human-readable views of a results dict: a terminal table (instructor) and Markdown/HTML feedback (student).

Feedback follows Gradescope's visibility: `hidden` tests appear only with `show_hidden`, `after_due_date` tests
only with `after_due_date`; the score line then counts only the tests shown and says how many are withheld.
Totals read "80 / 80 + 10 extra credit" (`engine.results.score_text`). A test that trained the student's code (the
accuracy tests) shows the training curve its run reported: a plot (PNG, inline) in HTML, a short table in Markdown.
Everything from the student's code is escaped in HTML and fenced in Markdown.
"""

from __future__ import annotations

import base64
import html
import io

from autograder.engine.results import CURVE_SERIES, score_line, score_text

_FENCE = "````"
# A curve's values are the student's to choose (any finite float): beyond this they are drawn at it, so an axis
# of 1e308 (which matplotlib cannot lay out: a singular transform) never stops the feedback.
CURVE_PLOT_LIMIT = 1e12
CURVE_TABLE_ROWS = 11  # points of a training curve that the Markdown table lists (the first, the last, evenly between)


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


def _notes(results: dict) -> str:
    """What results.json's `output` says besides the total (older results: all of it)."""
    notes = results.get("extra_data", {}).get("notes")
    return "\n\n".join(notes) if isinstance(notes, list) else results.get("output", "")


def _number(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _curve_rows(curve: dict) -> list[int]:
    count = len(curve["steps"])
    if count <= CURVE_TABLE_ROWS:
        return list(range(count))
    return sorted({round(i * (count - 1) / (CURVE_TABLE_ROWS - 1)) for i in range(CURVE_TABLE_ROWS)})


def _curve_caption(curve: dict) -> str:
    caption = (f"Training curve your code's run reported ({curve['steps'][-1]} steps; each point the mean over its "
               "window of steps). Not used for the score")
    if curve.get("measured") is not None:
        caption += f": the score is the query accuracy {curve['measured']:.3f} the grader measured on secret test tasks"
    return caption + "."


def curve_markdown(curve: dict) -> list[str]:
    """A few points of a training curve as a Markdown table, and the bar the grader applied."""
    lines = [_curve_caption(curve), "", "| step | " + " | ".join(f"training {name}" for name in CURVE_SERIES) + " |",
             "|---:|" + "---:|" * len(CURVE_SERIES)]
    for i in _curve_rows(curve):
        lines.append(f"| {curve['steps'][i]} | " + " | ".join(_number(curve[name][i]) for name in CURVE_SERIES) + " |")
    if curve.get("threshold") is not None and curve.get("floor") is not None:
        lines += ["", f"Bar (test accuracy): full credit from {curve['threshold']:.3f}, none at or below "
                      f"{curve['floor']:.3f}."]
    return lines


def curve_png(curve: dict) -> bytes:
    """The training curve as a PNG: loss (left axis) and accuracy (right axis, with the bar's threshold and floor
    and the accuracy the grader measured) against the steps."""
    from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend

    figure = Figure(figsize=(7, 3.6), dpi=100, layout="constrained")
    loss_axes = figure.subplots()
    accuracy_axes = loss_axes.twinx()
    nan = float("nan")
    steps = curve["steps"]

    def plotted(values):
        return [nan if v is None else min(max(v, -CURVE_PLOT_LIMIT), CURVE_PLOT_LIMIT) for v in values]

    loss_axes.plot(steps, plotted(curve["loss"]), color="#4c72b0", label="training loss")
    accuracy_axes.plot(steps, plotted(curve["accuracy"]), color="#dd8452", label="training accuracy")
    for key, style, label in (("threshold", "--", "full credit from"), ("floor", ":", "no credit at or below")):
        if curve.get(key) is not None:
            accuracy_axes.axhline(curve[key], color="#55a868", linestyle=style, label=f"{label} {curve[key]:.3f}")
    if curve.get("measured") is not None:
        accuracy_axes.plot([steps[-1]], [curve["measured"]], "o", color="#c44e52",
                           label=f"test accuracy (graded) {curve['measured']:.3f}")
    loss_axes.set_xlabel("training step")
    loss_axes.set_ylabel("loss")
    loss_axes.set_ylim(bottom=0)
    accuracy_axes.set_ylabel("accuracy")
    accuracy_axes.set_ylim(0, 1.02)
    handles = [h for axes in (loss_axes, accuracy_axes) for h in axes.get_legend_handles_labels()[0]]
    figure.legend(handles=handles, fontsize="small", loc="outside lower center", ncols=3)  # off the curves
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


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
    lines.append(f"Total: {score_text(results['tests'])}   ({extra.get('assignment', '?')}, "
                 f"profile {extra.get('profile', '?')}, device {extra.get('device', '?')}, sandbox "
                 f"{extra.get('sandbox', '?')}, {results['execution_time']:.1f} s)")
    if _notes(results):
        lines += ["", _notes(results)]
    return "\n".join(lines)


def render_markdown(results: dict, *, show_hidden: bool = False, after_due_date: bool = False) -> str:
    tests, withheld = _shown(results, show_hidden, after_due_date)
    extra = results.get("extra_data", {})
    lines = [f"# Feedback: {extra.get('assignment', 'assignment')}", "", f"**{score_line(tests, withheld)}**", ""]
    if _notes(results):
        lines += [_FENCE, _notes(results).replace(_FENCE, "` ` ` `"), _FENCE, ""]
    lines += ["| | Test | Points |", "|---|---|---|"]
    for test in tests:
        mark = "✅" if test["status"] == "passed" else "❌"
        name = test["name"].replace("|", "\\|")
        lines.append(f"| {mark} | {name} | {_points(test)} |")
    for test in tests:
        curve = test.get("extra_data", {}).get("training_curve")
        if test.get("output") or curve:
            lines += ["", f"## {test['name']}"]
        if test.get("output"):
            lines += ["", _FENCE, test["output"].replace(_FENCE, "` ` ` `"), _FENCE]
        if curve:
            lines += ["", *curve_markdown(curve)]
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
        # Images only as data: URIs (the training curves, drawn here).
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
        'img-src data:">',
        f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:.2em .6em;text-align:left}"
        ".passed{color:#176117}.failed{color:#a11}pre{background:#f4f4f4;padding:.6em;white-space:pre-wrap}</style>",
        "</head><body>", f"<h1>{e(title)}</h1>", f"<p><strong>{e(score_line(tests, withheld))}</strong></p>",
    ]
    if _notes(results):
        parts.append(f"<pre>{e(_notes(results))}</pre>")
    parts.append("<table><tr><th>Result</th><th>Test</th><th>Points</th></tr>")
    for test in tests:
        parts.append(f'<tr class="{e(test["status"])}"><td>{e(test["status"])}</td><td>{e(test["name"])}</td>'
                     f"<td>{e(_points(test))}</td></tr>")
    parts.append("</table>")
    for test in tests:
        curve = test.get("extra_data", {}).get("training_curve")
        if test.get("output") or curve:
            parts.append(f"<h2>{e(test['name'])}</h2>")
        if curve:
            try:
                image = base64.b64encode(curve_png(curve)).decode("ascii")
            except Exception as exc:  # noqa: BLE001 - a plot is never worth losing the student's feedback
                parts.append(f"<p>{e(_curve_caption(curve))} (The plot could not be drawn: "
                             f"{e(type(exc).__name__)}.)</p>")
            else:
                parts.append(f'<figure><img src="data:image/png;base64,{image}" alt="training curve: loss and '
                             f'accuracy against steps"><figcaption>{e(_curve_caption(curve))}</figcaption></figure>')
        if test.get("output"):
            parts.append(f"<pre>{e(test['output'])}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
