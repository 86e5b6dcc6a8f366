"""AI for the v1 API (``/api/v1/ai``): providers, usage, moderation.

* :mod:`providers` — the types every provider speaks (request, pieces, errors);
* :mod:`builtin` — deterministic rules, always present, not a language model;
* :mod:`openai_compat` — any OpenAI-compatible server (Ollama, llama.cpp, LM Studio, OpenAI);
* :mod:`local_gguf` — an optional in-process GGUF model (the ``local-ai`` extra);
* :mod:`service` — configured providers, their write-only keys, the per-user limit;
* :mod:`usage` — one row per request and the summaries;
* :mod:`moderation` — local pattern rules, honest about what they do not check.
"""
