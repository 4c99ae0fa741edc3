#!/usr/bin/env bash
# Runs every cargo-fuzz target of tinymla-core for SECONDS each (default 60), starting from a
# seed corpus built from the committed fixtures (tests/fixtures/*.gguf) and snapshot seeds
# (core/fuzz/seeds/). Fails if any target finds a crash; crash inputs land in
# core/fuzz/artifacts/<target>/ — fix the bug and keep the input as a regression test.
# Needs the nightly toolchain and `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
work="$PWD/target/fuzz-corpus"
mkdir -p "$work"/{gguf_parse,model_forward,cache_restore,tokenizer}

cp tests/fixtures/*.gguf "$work/gguf_parse/"
for f in tests/fixtures/*.gguf; do
    # model_forward inputs: two little-endian u32 token ids, then the model file.
    { printf '\001\000\000\000\005\000\000\000'; cat "$f"; } > "$work/model_forward/$(basename "$f")"
done
cp core/fuzz/seeds/cache_restore/* "$work/cache_restore/"
# tokenizer inputs: the golden corpus lines of the tokenizer fixtures, one file each.
python3 -c '
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for f in pathlib.Path("tests/fixtures/tokenizer").glob("*.json"):
    data = json.loads(f.read_text())
    lines = data["cases"]
    for i, line in enumerate(lines):
        text = line["text"]
        (out / f"{f.stem}-{i}").write_text(text)
' "$work/tokenizer"

cd core/fuzz
for target in gguf_parse model_forward cache_restore tokenizer; do
    echo "fuzzing $target for ${secs}s"
    log="$work/$target.log"
    status=0
    cargo +nightly fuzz run "$target" "$work/$target" -- \
        -max_total_time="$secs" -max_len=600000 -rss_limit_mb=4096 -print_final_stats=1 \
        > "$log" 2>&1 || status=$?
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)" "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log" >&2
        echo "fuzz target $target failed (exit $status); inputs in core/fuzz/artifacts/$target" >&2
        exit 1
    fi
done
