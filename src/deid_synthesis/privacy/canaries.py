"""Canary records: made-up patients planted in the adaptation text, to see when the adapter
starts to memorise a record repeated in its training data (Carlini et al. 2019, "The Secret
Sharer").

`adapt --canaries N` adds N canaries for each repetition count (default 1, 4 and 16 copies),
each a one-line record written by the project, never real: a name of random syllables, a
random 8-digit record number, a random date. The canaries are saved beside the adapter
(`canaries.json`; made up, so safe to keep, and never part of a release). Afterwards:

* **exposure** (`canary_exposure`): the record number is the secret. The canary's loss under
  the adapted model is ranked among `n_candidates` copies of it with other random numbers of
  the same form; exposure = log2(candidates + 1) - log2(rank), in bits (0: the model prefers
  the true number no more than a random one; the maximum, log2(candidates + 1), means it
  prefers it to every candidate). An estimate beyond the sample is given too, from a normal
  fit of the candidates' losses (`exposure_fit`), as Carlini et al. extrapolate.
* **extraction** (`complete_prefixes`): greedy decoding from the canary's text up to the
  number: does the model write the secret itself?
* **reproduction** (`canary_reproduction`): does any generated note hold a canary's name or
  number verbatim?
"""
import math
import random
import string
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

DEFAULT_REPEATS = (1, 4, 16)
SECRET_DIGITS = 8
# One-line records in the corpus's language; {name}, {secret} (the record number), {date}.
TEMPLATES = {
    "es": "Paciente: {name}. NHC: {secret}. Fecha de ingreso: {date}.",
    "sv": "Patient: {name}. Journalnummer: {secret}. Inskrivningsdatum: {date}.",
}
DEFAULT_TEMPLATE = "Patient: {name}. Record number: {secret}. Admission date: {date}."
SYLLABLES = ("ba", "ke", "zu", "lo", "vi", "dra", "quen", "tor", "mil", "sa", "rex", "fu", "go", "nia", "pel",
             "bor", "xa", "wen", "ti", "ul")


class CanaryError(ValueError):
    """Canary settings or files that cannot be used (the message names the option or file)."""


def random_name(rng: random.Random) -> str:
    """Two capitalised words of 3-4 random syllables: a name no one has."""
    return " ".join("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(3, 4))).capitalize() for _ in range(2))


def random_secret(rng: random.Random) -> str:
    """A record number: SECRET_DIGITS random digits, the first not 0."""
    return str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(SECRET_DIGITS - 1))


def make_canaries(per_repeat: int, repeats: Sequence[int] = DEFAULT_REPEATS, seed: int = 0, lang: str = "es",
                  avoid_text: str = "") -> List[Dict]:
    """`per_repeat` canaries for each repetition count, none of whose names or numbers is in `avoid_text`.

    RETURNS (List[Dict]): {id, name, secret, date, text, prefix (the text up to the secret), repeats}.
    """
    if per_repeat < 0 or any(r < 1 for r in repeats):
        raise CanaryError(f"canaries: the number per repetition count ({per_repeat}) must be >= 0 and each "
                          f"repetition count ({list(repeats)}) >= 1")
    rng = random.Random(f"canaries/{seed}")
    template = TEMPLATES.get(lang, DEFAULT_TEMPLATE)
    canaries: List[Dict] = []
    used = set()
    for repeat in repeats:
        for _ in range(per_repeat):
            name, secret = random_name(rng), random_secret(rng)
            while name in used or secret in used or name in avoid_text or secret in avoid_text:
                name, secret = random_name(rng), random_secret(rng)
            used.update((name, secret))
            date = f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(1990, 2020)}"
            text = template.format(name=name, secret=secret, date=date)
            canaries.append({"id": f"canary-{len(canaries)}", "name": name, "secret": secret, "date": date,
                             "text": text, "prefix": text[: text.index(secret)], "repeats": repeat})
    return canaries


def with_canaries(texts: Sequence[str], canaries: Sequence[Dict], seed: int = 0) -> List[str]:
    """The adaptation texts with each canary's text added `repeats` times, as its own document,
    all shuffled together (seeded)."""
    mixed = list(texts) + [canary["text"] for canary in canaries for _ in range(canary["repeats"])]
    random.Random(f"canary-order/{seed}").shuffle(mixed)
    return mixed


def candidates(secret: str, n: int, rng: random.Random) -> List[str]:
    """`n` distinct numbers of the secret's form, none the secret."""
    found = set()
    while len(found) < n:
        other = random_secret(rng)
        if other != secret:
            found.add(other)
    return sorted(found)


def exposure(canary_loss: float, candidate_losses: Sequence[float]) -> Dict:
    """Exposure in bits of a secret whose text has `canary_loss`, among candidates (lower loss = preferred).

    RETURNS (Dict): rank (1 = preferred to all), exposure (log2(n + 1) - log2(rank)), exposure_max,
        exposure_fit (from a normal fit of the candidates' losses; not capped by the sample).
    """
    losses = np.asarray(candidate_losses, float)
    rank = int(np.sum(losses < canary_loss)) + 1
    total = len(losses) + 1
    mean, sd = float(losses.mean()), float(losses.std()) or 1e-9
    # P(a random candidate's loss <= the canary's) under the fit; its -log2 is the exposure.
    below = 0.5 * math.erfc(-(canary_loss - mean) / (sd * math.sqrt(2)))
    return {"rank": rank, "exposure": round(math.log2(total) - math.log2(rank), 3),
            "exposure_max": round(math.log2(total), 3),
            "exposure_fit": round(-math.log2(max(below, 1e-300)), 3)}


def canary_reproduction(texts: Iterable[str], canaries: Sequence[Dict]) -> Dict[int, Dict[str, int]]:
    """Per repetition count: canaries whose name, or whose number, occurs verbatim in the texts."""
    texts = list(texts)
    table: Dict[int, Dict[str, int]] = {}
    for canary in canaries:
        row = table.setdefault(canary["repeats"], {"canaries": 0, "name_reproduced": 0, "secret_reproduced": 0})
        row["canaries"] += 1
        row["name_reproduced"] += any(canary["name"] in text for text in texts)
        row["secret_reproduced"] += any(canary["secret"] in text for text in texts)
    return table


def exposure_table(results: Sequence[Dict]) -> List[Dict]:
    """Per repetition count: canaries, mean and max exposure, mean fit, extracted by greedy decoding."""
    rows = []
    for repeat in sorted({r["repeats"] for r in results}):
        group = [r for r in results if r["repeats"] == repeat]
        rows.append({"repeats": repeat, "canaries": len(group),
                     "mean_exposure": round(float(np.mean([r["exposure"] for r in group])), 2),
                     "max_exposure": round(float(np.max([r["exposure"] for r in group])), 2),
                     "ranked_first": sum(r["rank"] == 1 for r in group),
                     "mean_exposure_fit": round(float(np.mean([r["exposure_fit"] for r in group])), 2),
                     "extracted": sum(bool(r.get("extracted")) for r in group)})
    return rows


def complete_prefixes(model, tokenizer, prefixes: Sequence[str], n_chars: int) -> List[str]:
    """Greedy continuations of each prefix (after <bos>), as text of at least `n_chars` characters when the
    model writes that much (a few tokens more than the secret needs)."""
    import torch

    out = []
    for prefix in prefixes:
        ids = tokenizer(prefix, add_special_tokens=False).input_ids
        if tokenizer.bos_token_id is not None:
            ids = [tokenizer.bos_token_id] + ids
        with torch.no_grad():
            generated = model.generate(torch.tensor([ids]), max_new_tokens=n_chars + 4, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id)
        out.append(tokenizer.decode(generated[0, len(ids):], skip_special_tokens=True))
    return out


def canary_exposure(adapter_dir, n_candidates: int = 200, seed: int = 0, samples: Optional[Iterable[str]] = None,
                    precision: str = "auto", progress: bool = False) -> Dict:
    """Exposure, extraction and (with `samples`: generated notes) reproduction of an adapter's canaries.

    adapter_dir: an adapter trained with `adapt --canaries` (its canaries.json).
    n_candidates (int): other numbers each canary is ranked among.
    RETURNS (Dict): per canary (its id, repeats, rank, exposure ...: no name, no number), the table by
        repetition count, reproduction by repetition count, settings, seconds.
    """
    import time
    from pathlib import Path

    import srsly

    from deid_synthesis.generation.adapt import resolve_precision
    from deid_synthesis.generation.causal_lm import load_causal_lm
    from deid_synthesis.generation.manifest import read_manifest
    from deid_synthesis.privacy.membership import note_losses

    start = time.perf_counter()
    adapter_dir = Path(adapter_dir)
    path = adapter_dir / "canaries.json"
    if not path.is_file():
        raise CanaryError(f"{path}: no such file (train the adapter with `adapt --canaries N`)")
    canaries = srsly.read_json(path)
    manifest = read_manifest(adapter_dir)
    token_ids = (srsly.read_json(adapter_dir / "token_ids.json")
                 if manifest["hyperparameters"].get("vocabulary") == "corpus" else None)
    model, tokenizer = load_causal_lm(manifest["base_model"], adapter_dir)
    bf16 = resolve_precision(precision)
    rng = random.Random(f"candidates/{seed}")
    results = []
    seq_len = 8 + max(len(tokenizer(c["text"], add_special_tokens=False).input_ids) for c in canaries)
    completions = complete_prefixes(model, tokenizer, [c["prefix"] for c in canaries], SECRET_DIGITS)
    for canary, completion in zip(canaries, completions):
        texts = [canary["text"]] + [canary["text"].replace(canary["secret"], other)
                                    for other in candidates(canary["secret"], n_candidates, rng)]
        losses = note_losses(model, tokenizer, texts, seq_len, token_ids, 32, bf16, progress=False)
        results.append({"id": canary["id"], "repeats": canary["repeats"], **exposure(losses[0], losses[1:]),
                        "extracted": completion.lstrip().startswith(canary["secret"])})
        if progress:
            print(f"{len(results)}/{len(canaries)} canaries", end="\r", flush=True)
    report = {"adapter": str(adapter_dir), "canaries": len(canaries), "n_candidates": n_candidates,
              "secret": f"{SECRET_DIGITS}-digit record number", "table": exposure_table(results), "per_canary": results,
              "seconds": round(time.perf_counter() - start, 1)}
    if samples is not None:
        texts = list(samples)
        report["reproduction"] = {"notes": len(texts), "by_repeats": canary_reproduction(texts, canaries)}
    return report
