"""The run report: one self-contained HTML file per job (inline SVG charts, embedded JPEG thumbnails)."""
