"""Web retrieval: search, fetch, extract, chunk, rank and pack sources for the prompt."""
