#!/usr/bin/env bash
# Evidence for issue 11: the product before the redesign (commit 5a0ef9e: the runtime copied into
# the model wheel with `spacy package --code`) and after it (a wheel of weights and config that
# requires the runtime package clinical-deid) de-identify the same notes to the same bytes, each
# installed into a fresh virtual environment, through nlp.pipe and through the command line.
#
#   bash scripts/redesign_equivalence.sh [MODEL] [RULES] [NOTES] [WORK]
#
# MODEL: a trained NER pipeline (default: MEDDOCAN's synthetic r25-pseudo model), RULES: the
# deid_rules list of the Spanish product, NOTES: a folder of .txt notes (MEDDOCAN's test split).
# Prints the SHA-256 of each output and exits 1 if any differs. Needs the package index (spaCy,
# Faker, python-stdnum); no torch. About 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BEFORE=5a0ef9e
MODEL=$(realpath "${1:-training/meddocan/synthetic-r25-pseudo-ner_cpu/model-best}")
RULES=$(realpath "${2:-metrics/meddocan/rules-ner_cpu.json}")
NOTES=$(realpath "${3:-../shared/data/meddocan/test}")
WORK=${4:-/tmp/redesign-equivalence}
HEX=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff  # a demo key, both sides
rm -rf "$WORK" && mkdir -p "$WORK" && printf '%s\n' "$HEX" > "$WORK/key.hex"
META=(--name es_deid_synth --version 0.1.0 --lang es --scores "$ROOT/metrics/meddocan/synthetic-r25-pseudo-ner_cpu.json"
      --data-kind synthetic --training-data "Synthetic notes (run r25-pseudo)" --data-licence "CC BY 4.0"
      --training-text "$ROOT/corpus/meddocan/train.spacy" --training-text "$ROOT/corpus/meddocan/synthetic-r25-pseudo/train.spacy")

# nlp.pipe over the notes with the key set: one JSON line per note (text and spans).
PIPE='import json, sys, pathlib, spacy
nlp = spacy.load(sys.argv[1]); nlp.get_pipe("deid_transform").set_key(bytes.fromhex(sys.argv[3]))
files = sorted(pathlib.Path(sys.argv[2]).glob("*.txt"))
with open(sys.argv[4], "w", encoding="utf-8") as out:
    for f, doc in zip(files, nlp.pipe((f.read_text(encoding="utf-8") for f in files), batch_size=64)):
        out.write(json.dumps({"id": f.name, "text": doc._.deidentified, "spans": doc._.deid_spans}, ensure_ascii=False) + "\n")'

fresh_venv() {  # fresh_venv DIR PACKAGES...: a new virtual environment with PACKAGES from the index
  python3 -m venv "$1" && "$1/bin/python" -m pip install -q --disable-pip-version-check setuptools wheel "${@:2}"
}

echo "== before: $BEFORE, wheel with copied code"
git worktree add -f --detach "$WORK/src-before" "$BEFORE" >/dev/null
fresh_venv "$WORK/venv-before" spacy==3.8.18 faker==40.54.0
(cd "$WORK/src-before" && "$WORK/venv-before/bin/python" -m scripts.package_pipeline "$MODEL" "$WORK/pk-before" \
   "${META[@]}" --rules "$RULES" > "$WORK/build-before.log")
"$WORK/venv-before/bin/python" -m pip install -q "$WORK"/pk-before/*/dist/*.whl
"$WORK/venv-before/bin/python" -c "$PIPE" es_deid_synth "$NOTES" "$HEX" "$WORK/pipe-before.jsonl"
(cd "$WORK" && venv-before/bin/python -m es_deid_synth deidentify "$NOTES" out-before --spans-output spans-before.jsonl \
   --key-file key.hex > /dev/null)
git worktree remove --force "$WORK/src-before"

echo "== after: $(git rev-parse --short HEAD), wheel of weights and config + the runtime package"
# Built as `spacy project run packages` builds it (the project's environment), installed where
# users install it: a fresh environment with the runtime package and the model wheel only.
.venv/bin/python -m scripts.package_pipeline "$MODEL" "$WORK/pk-after" "${META[@]}" \
   --rules "$RULES" --config configs/deid_es.cfg > "$WORK/build-after.log"
fresh_venv "$WORK/venv-after" "$ROOT"
"$WORK/venv-after/bin/python" -m pip install -q "$WORK"/pk-after/*/dist/*.whl
"$WORK/venv-after/bin/python" -c "import sys; import clinical_deid; assert 'torch' not in sys.modules"
"$WORK/venv-after/bin/python" -c "import importlib.util as u; assert u.find_spec('torch') is None, 'torch installed'"
"$WORK/venv-after/bin/python" -c "$PIPE" es_deid_synth "$NOTES" "$HEX" "$WORK/pipe-after.jsonl"
(cd "$WORK" && venv-after/bin/clinical-deid es_deid_synth "$NOTES" out-after --spans-output spans-after.jsonl \
   --key-file key.hex > /dev/null)
unzip -l "$WORK"/pk-after/*/dist/*.whl | grep '\.py$' || true
unzip -p "$WORK"/pk-after/*/dist/*.whl '*/METADATA' | grep '^Requires-Dist'

echo "== compare"
status=0
for pair in "pipe-before.jsonl pipe-after.jsonl" "spans-before.jsonl spans-after.jsonl"; do
  set -- $pair
  printf '%s  %s\n%s  %s\n' "$(sha256sum < "$WORK/$1" | cut -c1-64)" "$1" "$(sha256sum < "$WORK/$2" | cut -c1-64)" "$2"
  cmp -s "$WORK/$1" "$WORK/$2" || { echo "DIFFER: $1 $2"; status=1; }
done
notes_before=$(cd "$WORK/out-before" && find . -type f | sort | xargs sha256sum | sha256sum | cut -c1-64)
notes_after=$(cd "$WORK/out-after" && find . -type f | sort | xargs sha256sum | sha256sum | cut -c1-64)
echo "$notes_before  out-before/ ($(ls "$WORK/out-before" | wc -l) notes)"
echo "$notes_after  out-after/"
[ "$notes_before" = "$notes_after" ] || { echo "DIFFER: out-before out-after"; status=1; }
[ $status = 0 ] && echo "identical: nlp.pipe, command-line notes and spans"
exit $status
