"""The book: each chapter's tables, figures and glued numbers, read from the study's results
files (:mod:`mpqlib.study`); nothing is computed while a page renders."""
