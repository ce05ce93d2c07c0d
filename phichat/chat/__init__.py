"""One chat turn, end to end: retrieve (optionally), build the prompt, stream the answer."""
