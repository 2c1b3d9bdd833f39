"""Generated sections of markdown files (tables written from results JSON, never by hand): a section lies
between a BEGIN and an END marker line, and is replaced whole each time it is regenerated."""

from pathlib import Path


def replace_section(path: Path, begin: str, end: str, section: str, new_file: str = "", heading: str = "") -> None:
    """Puts `section` (which starts with `begin` and ends with `end`) in place of the file's section between
    those markers, or appends it, after `heading`, when the file has none; a missing file starts as `new_file`."""
    text = path.read_text(encoding="utf-8") if path.exists() else new_file
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + heading + section + "\n"
    path.write_text(text, encoding="utf-8")
