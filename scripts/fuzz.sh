#!/usr/bin/env bash
# Runs every cargo-fuzz target of tinymla-core (core/fuzz/) for SECONDS each (default 60):
# first its regression inputs (core/fuzz/regressions/<target>/: every input that ever crashed
# it, each run once), then fuzzing from a seed corpus: the committed minimized corpus
# (core/fuzz/corpus/<target>/), the committed fixtures (tests/fixtures/*.gguf) and snapshot
# seeds (core/fuzz/seeds/). Fails if any target finds a crash, a timeout over 1 s or an
# out-of-memory; crash inputs land in core/fuzz/artifacts/<target>/ — fix the bug and add the
# input to core/fuzz/regressions/<target>/. Needs the nightly toolchain and cargo-fuzz.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(gguf_parse model_forward cache_restore tokenizer block_kernels tokenizer_vocab
        chat_template convert_inputs serve_request)
fi
work="$PWD/target/fuzz-corpus"
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    if [ -d "core/fuzz/corpus/$t" ]; then cp -r "core/fuzz/corpus/$t/." "$work/$t/"; fi
done
if [ -d "$work/gguf_parse" ]; then cp tests/fixtures/*.gguf tests/fixtures/kquant/*.gguf "$work/gguf_parse/"; fi
if [ -d "$work/model_forward" ]; then
    for f in tests/fixtures/*.gguf tests/fixtures/kquant/*.gguf; do
        # model_forward inputs: two little-endian u32 token ids, then the model file.
        { printf '\001\000\000\000\005\000\000\000'; cat "$f"; } > "$work/model_forward/$(basename "$f")"
    done
fi
if [ -d "$work/cache_restore" ]; then cp core/fuzz/seeds/cache_restore/* "$work/cache_restore/"; fi
if [ -d "$work/convert_inputs" ]; then
    # convert_inputs inputs: the u16 lengths of config.json, tokenizer.json and
    # tokenizer_config.json, those files, then the checkpoint's safetensors shard.
    le16() { printf '\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8)); }
    size() { if [ -f "$1" ]; then stat -c %s "$1"; else echo 0; fi; }
    for d in tests/fixtures/hf/*/; do
        cfg="$d/config.json" tok="$d/tokenizer.json" tc="$d/tokenizer_config.json"
        [ -f "$cfg" ] && [ -f "$d/model.safetensors" ] || continue
        [ "$(size "$tok")" -lt 65536 ] || tok=/dev/null
        {
            printf "$(le16 "$(size "$cfg")")$(le16 "$(size "$tok")")$(le16 "$(size "$tc")")"
            cat "$cfg"
            [ ! -f "$tok" ] || cat "$tok"
            [ ! -f "$tc" ] || cat "$tc"
            cat "$d/model.safetensors"
        } > "$work/convert_inputs/$(basename "$d")"
    done
fi

cd core/fuzz
for target in "${targets[@]}"; do
    log="$work/$target.log"
    regressions=(regressions/"$target"/*)
    if [ -e "${regressions[0]}" ]; then
        echo "fuzz target $target: ${#regressions[@]} regression inputs"
        if ! cargo +nightly fuzz run "$target" "${regressions[@]}" -- -timeout=1 -rss_limit_mb=2048 \
            > "$log" 2>&1; then
            tail -n 40 "$log" >&2
            echo "fuzz target $target fails on a regression input" >&2
            exit 1
        fi
    fi
    echo "fuzzing $target for ${secs}s"
    status=0
    cargo +nightly fuzz run "$target" "$work/$target" -- \
        -max_total_time="$secs" -timeout=1 -max_len=600000 -rss_limit_mb=2048 -print_final_stats=1 \
        > "$log" 2>&1 || status=$?
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)" "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log" >&2
        echo "fuzz target $target failed (exit $status); inputs in core/fuzz/artifacts/$target" >&2
        exit 1
    fi
done
