"""The book's study: its facts (:mod:`.facts`), its steps as a pipeline (:mod:`.pipeline`), where
they run (:mod:`.engine`) and its command group (``mpq study``, :mod:`.cli`)."""

import importlib

PARTS = ("pilot", "protocol", "sweep", "correlation", "efficiency", "timing", "observation", "objections", "v4",
         "claims")
"""The parts of the study; a chapter asks for the ones it shows. The pilot runs whenever the profile
takes its main budget from it and pilot.json is missing. ``timing`` re-times chapter 4's searches on one
host; its steps run last, one at a time, in the driver's process. ``v4``: protocol version 4's tests
(:mod:`.protocol4`), at the designs of the a-priori power analysis."""

_PIPELINE = ("CHAPTER_PARTS", "Plan", "Study", "ensure", "run", "status")


def __getattr__(name: str):  # the pipeline (and torch) load on first use, not with the command line
    if name in _PIPELINE:
        return getattr(importlib.import_module(f"{__name__}.pipeline"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PARTS", *_PIPELINE]
