"""The public HTTP API: the OpenAI Images API and the task dialects of other GPT-Image-2 services, all on the
same engine, credits and galleries as the pages."""
