"""A tiny, randomly initialised Gemma-3-style causal LM: the offline stand-in for a generator.

Tests and smoke runs (the `all` workflow on the demo corpus) use it so that the real
loading, LoRA and generation code runs without a download; only the weights are small.
"""
from pathlib import Path
from typing import Iterable, Union

import torch


def build_tiny_model(output_dir: Union[str, Path], texts: Iterable[str], vocab_size: int = 400, seed: int = 0) -> Path:
    """A tiny, randomly initialised Gemma-3-style causal LM with a BPE tokenizer trained on `texts`.

    Offline stand-in for a real generator in tests and smoke runs (no download): same
    architecture family as the default model (grouped-query attention, sliding-window
    layers), a few hundred thousand parameters. Its samples are noise until adapted.

    output_dir (Union[str, Path]): the `save_pretrained` folder to write.
    texts (Iterable[str]): the text the BPE tokenizer is trained on.
    vocab_size (int): the tokenizer's vocabulary size.
    seed (int): torch's seed for the initial weights.
    RETURNS (Path): output_dir.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    output_dir = Path(output_dir)
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(list(texts), trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                             show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                        pad_token="<pad>", unk_token="<unk>",
                                        model_input_names=["input_ids", "attention_mask"])
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, head_dim=16, sliding_window=32, max_position_embeddings=1024,
        layer_types=["sliding_attention", "full_attention"], pad_token_id=0, eos_token_id=1, bos_token_id=2,
        query_pre_attn_scalar=16)
    model = Gemma3ForCausalLM(config)
    tokenizer.save_pretrained(output_dir)
    model.save_pretrained(output_dir)
    return output_dir
