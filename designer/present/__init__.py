"""Presentation: what the CLI tables, the app and the HTML reports show, written once.

`format`: unit formatters, the metric rows of the profile/compare tables, ratios, the set-up line.
`figures`: plotly figure builders (the app's pages and `designer compare --html` / `designer proxy`'s
report draw the same ones). `report`: the self-contained HTML reports. Nothing here computes a number
the profiler does not already give; only units change.
"""
