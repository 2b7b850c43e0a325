"""Generation of synthetic notes: the one part of the project that needs torch.

What lives here: loading the generator (`causal_lm`, with the packaged GGUF prepared once by
`packaged`), LoRA adaptation (`adapt`, the training itself in `lora`), the batched sampler
(`sampler`, `decoding`), the spacy-llm model and task (`llm`: `deid.CausalLM.v1`,
`deid.SyntheticNotes.v1`, also found through entry points), the vLLM backend
(`vllm_backend`), the generation step (`prompts`, `generate`) and its benchmark (`bench`).

Installed with the `generation` extra (torch, transformers, peft, spacy-llm). Importing this
package imports nothing: the modules that are plain Python (`adapt`'s document choice,
`prompts`, `generate`, `samples`, `manifest`, `llm`) load torch only when a model is loaded,
so the rest of `deid_synthesis` can import them at module level.
"""
