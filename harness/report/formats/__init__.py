"""The files a run folder gets (report.md, report.html, summary.csv), the terminal summary, and their
building blocks (markdown and HTML pieces, SVG charts)."""
