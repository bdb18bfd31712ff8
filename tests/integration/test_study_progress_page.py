"""The real-model study's progress table on docs/studies.md matches the committed run files."""

from analysis.study.__main__ import main


def test_the_page_shows_every_committed_run():
    """`python -m analysis.study progress --study smollm2` after committing exported runs."""
    assert main(["progress", "--study", "smollm2", "--check"]) == 0
