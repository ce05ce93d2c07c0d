"""The Textual app. This is the only package that imports Textual (or Rich)."""
