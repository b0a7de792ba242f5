"""Rewrites the README's generated family table from the registry (`branches_itnet.family_table()`):

    python tests/sync_readme.py

`tests/test_families.py` fails until the README holds the registry's table."""

from pathlib import Path

from modeling_itnet.branches_itnet import family_table

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- families", "\n<!-- /families -->"


def readme_table(text: str) -> tuple[int, int]:
    """The span of the generated table in the README's `text`."""
    start = text.index("-->\n", text.index(START)) + len("-->\n")
    return start, text.index(END)


def main():
    text = README.read_text()
    start, end = readme_table(text)
    README.write_text(text[:start] + family_table() + text[end:])


if __name__ == "__main__":
    main()
