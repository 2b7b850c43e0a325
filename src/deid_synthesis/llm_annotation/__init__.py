"""A large language model as the annotator (issue 15, in progress): spacy-llm models for it.

`openai_compatible`: `deid.OpenAICompatible.v1`, a chat/completions client for any
OpenAI-compatible server (vLLM, llama.cpp, Ollama, a hosted API) that calls no other host.
"""
