"""The book's study: its facts (:mod:`.facts`), its steps as a pipeline (:mod:`.pipeline`), where
they run (:mod:`.engine`) and its command group (``mpq study``, :mod:`.cli`)."""

PARTS = ("protocol", "sweep", "correlation", "efficiency", "observation", "claims")
"""The parts of the study; a chapter asks for the ones it shows."""


def __getattr__(name: str):  # the pipeline (and torch) load on first use, not with the command line
    from . import pipeline

    if name in pipeline.__all__:
        return getattr(pipeline, name)
    raise AttributeError(f"module 'mpqlib.study' has no attribute {name!r}")


__all__ = ["PARTS", "CHAPTER_PARTS", "Plan", "Study", "ensure", "run", "status"]
