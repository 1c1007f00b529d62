#!/usr/bin/env bash
# The GPU checks in one go (under 5 minutes on one GPU), from the repository root:
#
#     bash benchmarks/gpu_check.sh [RESULTS.jsonl]
#
# 1. the CUDA tests (pytest -k cuda: training on the GPU end to end);
# 2. env throughput at B = 4,096 and 16,384 (benchmarks.bench_env --device cuda, our decoder);
# 3. PPO updates on the GPU (benchmarks.bench_ppo --device cuda, 4,096 envs: ours against the reference decoder);
# 4. ONNX Runtime's CUDA provider latency (benchmarks.bench_gpu_inference, against torch on CUDA and ORT on the CPU);
#    skipped, saying so, when the installed ONNX Runtime has no CUDA provider (onnxruntime-gpu);
# 5. a 1,000-character crowd frame: play.py recording headless (EGL) 1 s and 2 s of a 1,000-character crowd on
#    CUDA; the difference over the 30 extra frames is one frame (simulation, drawing, read-back and encoding);
#    skipped, saying so, without EGL.
#
# Without a CUDA device it stops at once with a message and status 2. Every part prints its JSON line (also appended
# to RESULTS.jsonl when given); the last line is a summary of what passed, failed and was skipped; the status is 1
# when a part failed. PYTHON overrides the interpreter (default .venv/bin/python).
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
RESULTS="${1:-}"
PART_TIMEOUT="${PART_TIMEOUT:-150}"
export PYTHONWARNINGS=ignore
WORK=$(mktemp -d)  # logs and videos of the parts, removed at the end
trap 'rm -rf "$WORK"' EXIT

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    version=$("$PY" -c "import torch; print(torch.__version__)" 2>/dev/null || echo "not importable")
    echo "gpu_check: no CUDA device: torch ($version, $PY) sees none. Run this on a machine with an NVIDIA GPU and a" \
         "CUDA build of torch in .venv (scripts/setup.sh keeps a torch that is already installed)." >&2
    exit 2
fi

passed=()
failed=()
skipped=()

record() {  # record NAME JSON-LINE
    echo "$2"
    if [ -n "$RESULTS" ]; then echo "$2" >> "$RESULTS"; fi
}

json_part() {  # json_part NAME COMMAND...: a benchmark printing one JSON line; status 3 means "cannot run here"
    local name=$1; shift
    local out status
    out=$(timeout "$PART_TIMEOUT" "$@" 2>"$WORK/gpu_check_$name.err")
    status=$?
    local line
    line=$(printf '%s\n' "$out" | grep '^{' | tail -n 1)
    if [ $status -eq 0 ] && [ -n "$line" ]; then
        record "$name" "$line"; passed+=("$name")
    elif [ $status -eq 3 ]; then  # the benchmark's own line says why it cannot run here
        record "$name" "$line"; skipped+=("$name")
    else
        record "$name" "{\"part\": \"$name\", \"error\": \"exit status $status\", \"stderr\": $(as_json < "$WORK/gpu_check_$name.err")}"
        failed+=("$name")
    fi
}

as_json() {  # the last 3 lines of stdin as one JSON string
    tail -n 3 | "$PY" -c 'import json, sys; print(json.dumps(sys.stdin.read()))'
}

# 1. The CUDA tests.
start=$(date +%s)
if timeout "$PART_TIMEOUT" "$PY" -m pytest -q -p no:cacheprovider -k cuda -rs tests/ > "$WORK"/gpu_check_tests.out 2>&1; then
    record tests "{\"part\": \"cuda_tests\", \"result\": \"$(tail -n 1 "$WORK"/gpu_check_tests.out)\", \"seconds\": $(( $(date +%s) - start ))}"
    if grep -q "skipped" "$WORK"/gpu_check_tests.out; then failed+=("cuda_tests (some skipped)"); else passed+=(cuda_tests); fi
else
    record tests "{\"part\": \"cuda_tests\", \"error\": \"$(tail -n 1 "$WORK"/gpu_check_tests.out)\"}"
    failed+=(cuda_tests)
fi

# 2. Env throughput at B = 4,096 and 16,384.
json_part env_throughput "$PY" -m benchmarks.bench_env --device cuda --batches 4096 16384 --tasks target \
    --formulations ours --no-single --repeats 5 --seconds 0.3

# 3. PPO updates.
json_part ppo_update "$PY" -m benchmarks.bench_ppo --device cuda --num-envs 4096 --updates 2 --reference-updates 0 \
    --skip-sb3

# 4. ONNX Runtime's CUDA provider.
json_part onnxruntime_cuda "$PY" -m benchmarks.bench_gpu_inference --repeats 5 --calls 50

# 5. A 1,000-character crowd frame, headless.
if ! "$PY" -c "import sys; from viewer.display import egl_available; sys.exit(0 if egl_available() else 1)"; then
    record crowd "{\"part\": \"crowd_frame\", \"skipped\": \"no EGL library (libEGL): no headless GL here\"}"
    skipped+=(crowd_frame)
else
    crowd_ok=1
    walls=()
    for seconds in 1 2; do
        t0=$(date +%s.%N)
        if ! timeout "$PART_TIMEOUT" "$PY" play.py --headless --characters 1000 --task random_walk --device cuda \
                --record "$WORK/gpu_check_crowd_$seconds.mp4" --seconds "$seconds" > "$WORK"/gpu_check_crowd.out 2>&1; then
            crowd_ok=0
            break
        fi
        walls+=("$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')")
    done
    if [ $crowd_ok -eq 1 ]; then
        frame_ms=$(awk -v a="${walls[0]}" -v b="${walls[1]}" 'BEGIN { printf "%.1f", 1000 * (b - a) / 30 }')
        record crowd "{\"part\": \"crowd_frame\", \"characters\": 1000, \"frame_ms\": $frame_ms, \"record_1s_wall_s\": ${walls[0]}, \"record_2s_wall_s\": ${walls[1]}}"
        passed+=(crowd_frame)
    else
        record crowd "{\"part\": \"crowd_frame\", \"error\": $(as_json < "$WORK"/gpu_check_crowd.out)}"
        failed+=(crowd_frame)
    fi
fi

summary="{\"gpu_check\": \"done\", \"passed\": \"${passed[*]:-}\", \"failed\": \"${failed[*]:-}\", \"skipped\": \"${skipped[*]:-}\"}"
record summary "$summary"
[ ${#failed[@]} -eq 0 ]
