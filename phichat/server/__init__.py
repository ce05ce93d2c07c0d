"""phichat serve: an OpenAI-compatible endpoint in front of a local model."""
