"""A document of headings, paragraphs, tables and figures, written as Markdown (PNG figures
beside it) and as one self-contained HTML file (figures embedded as data URIs, no external
references), so the two always hold the same content."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


def pct(x: float | None) -> str:
    """An accuracy as a percentage with one decimal; a dash where it is undefined (no examples)."""
    return "—" if x is None else f"{x:.1%}"


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(([f"*{self.caption}*", ""] if self.caption else []) + lines)


@dataclass
class Figure:
    path: Path  # a PNG file next to the Markdown
    caption: str


@dataclass
class Section:
    title: str
    blocks: list[str | Table | Figure] = field(default_factory=list)


def to_markdown(title: str, sections: list[Section], base: Path) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                lines.append(block.markdown())
            elif isinstance(block, Figure):
                lines.append(f"![{block.caption}]({Path(block.path).relative_to(base).as_posix()})")
                lines += ["", f"*{block.caption}*"]
            else:
                lines.append(block)
            lines.append("")
    return "\n".join(lines)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
figure { margin: 1em 0; } figure img { max-width: 100%; } figcaption { color: #555; font-size: 0.9em; }
nav a { margin-right: 1em; } code { background: #f3f3f3; padding: 0 0.2em; }
"""


def to_html(title: str, sections: list[Section]) -> str:
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{esc(title)}</title>",
           f"<style>{_STYLE}</style></head><body>", f"<h1>{esc(title)}</h1>", "<nav>"]
    out += [f'<a href="#s{i}">{esc(s.title)}</a>' for i, s in enumerate(sections)]
    out.append("</nav>")
    for i, section in enumerate(sections):
        out.append(f'<section id="s{i}"><h2>{esc(section.title)}</h2>')
        for block in section.blocks:
            if isinstance(block, Table):
                if block.caption:
                    out.append(f"<p><em>{esc(block.caption)}</em></p>")
                out.append("<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in block.header) + "</tr></thead><tbody>")
                out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in block.rows]
                out.append("</tbody></table>")
            elif isinstance(block, Figure):
                data = base64.b64encode(Path(block.path).read_bytes()).decode()
                out.append(f'<figure><img alt="{esc(block.caption)}" src="data:image/png;base64,{data}">'
                           f"<figcaption>{esc(block.caption)}</figcaption></figure>")
            else:
                out.append(f"<p>{_inline(block)}</p>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escape, then render Markdown's `code` and **bold** spans."""
    parts = html.escape(text).split("`")
    text = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def write(out_dir: Path, title: str, sections: list[Section]) -> tuple[Path, Path]:
    """Write `report.md` and `report.html` into `out_dir` (figures must already be there)."""
    out_dir = Path(out_dir)
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(to_markdown(title, sections, out_dir))
    page.write_text(to_html(title, sections))
    return md, page


def plural(kind: str) -> str:
    """`neurons`, `heads`, `head frequencies`: the row kinds as a heading."""
    return kind[:-1] + "ies" if kind.endswith("frequency") else kind + "s"
