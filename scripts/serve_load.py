#!/usr/bin/env python3
"""Load test of `tinymla serve`: many concurrent clients for a while, every greedy reply
checked against the same prompt run alone, the server's memory watched.

    python scripts/serve_load.py [--model models/demo-m.q8_0.gguf] [--clients 64]
        [--seconds 60] [--slots 8] [--queue 32] [-t 1]

Starts `tinymla serve` on 127.0.0.1 (port 0) and runs `--clients` threads, each sending
requests back to back for `--seconds`: /v1/completions and /v1/chat/completions, streamed and
not, all greedy (temperature 0), over a fixed set of prompts and lengths. Before the run, each
(prompt, max_tokens) is run alone (`tinymla run --temp 0` for completions; one request to a
fresh one-slot server for chat) to give the expected text. A reply counts as failed if its
status is neither 200 nor a deliberate 429 (queue full), or if its text differs from the solo
run. The server's resident memory (VmRSS, VmHWM) is sampled every second. Python standard
library only.
"""
import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROMPTS = [
    "Once upon a time", "The little cat", "In the morning", "She said", "The king",
    "A long time ago there was", "He opened the door and", "The sun", "Tom and his dog",
    "One day", "The bird sang", "It was a cold night", "My friend", "The boy ran",
    "Under the tree", "They went to the",
]
LENGTHS = [8, 32, 64]


def start_server(binary, model, args):
    cmd = [str(binary), "serve", "-m", str(model), "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    addr = line.split("http://")[1].split()[0]
    return proc, f"http://{addr}"


def post(base, path, body, timeout=120):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def reply_text(path, stream, raw):
    """The text of a whole or streamed reply."""
    if not stream:
        choice = json.loads(raw)["choices"][0]
        return choice["message"]["content"] if "message" in choice else choice["text"]
    out = []
    for frame in raw.split("\n\n"):
        if not frame.startswith("data: ") or frame == "data: [DONE]":
            continue
        chunk = json.loads(frame[6:])
        for c in chunk.get("choices", []):
            out.append(c.get("delta", {}).get("content") or c.get("text") or "")
    return "".join(out)


def chat_body(prompt, n):
    return {"messages": [{"role": "user", "content": prompt}], "max_tokens": n, "temperature": 0}


def completion_body(prompt, n):
    return {"prompt": prompt, "max_tokens": n, "temperature": 0}


def memory_kb(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                fields[k] = int(v.split()[0])
    return fields


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "demo-m.q8_0.gguf")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--queue", type=int, default=32)
    ap.add_argument("-t", "--threads", type=int, default=1)
    ap.add_argument("--tinymla", type=Path, default=ROOT / "target" / "release" / "tinymla")
    a = ap.parse_args()

    # Expected texts, each run alone.
    expected = {}
    for p in PROMPTS:
        for n in LENGTHS:
            out = subprocess.run([str(a.tinymla), "run", "-m", str(a.model), "-p", p, "-n", str(n),
                                  "--temp", "0"], check=True, capture_output=True, text=True).stdout
            expected[("/v1/completions", p, n)] = out[:-1] if out.endswith("\n") else out
    solo, solo_base = start_server(a.tinymla, a.model, ["--slots", "1"])
    try:
        for p in PROMPTS:
            for n in LENGTHS:
                status, raw = post(solo_base, "/v1/chat/completions", chat_body(p, n))
                assert status == 200, raw
                expected[("/v1/chat/completions", p, n)] = reply_text("chat", False, raw)
    finally:
        solo.kill()
        solo.wait()
    work = sorted(expected)

    proc, base = start_server(a.tinymla, a.model, ["--slots", str(a.slots), "--queue",
                                                   str(a.queue), "-t", str(a.threads)])
    lock = threading.Lock()
    stats = {"ok": 0, "rejected": 0, "failed": 0, "mismatch": 0, "tokens": 0}
    failures = []
    latencies = []
    deadline = time.monotonic() + a.seconds
    memory = []

    def client(k):
        i = k
        while time.monotonic() < deadline:
            path, prompt, n = work[i % len(work)]
            stream = (i // len(work) + k) % 2 == 1
            i += 7
            body = (chat_body if "chat" in path else completion_body)(prompt, n)
            body["stream"] = stream
            t0 = time.monotonic()
            try:
                status, raw = post(base, path, body)
            except Exception as e:  # noqa: BLE001 - a failed request is what we count
                status, raw = -1, repr(e)
            dt = time.monotonic() - t0
            with lock:
                if status == 429:
                    stats["rejected"] += 1
                    time.sleep(0.05)
                elif status != 200:
                    stats["failed"] += 1
                    failures.append((status, raw[:200]))
                elif reply_text(path, stream, raw) != expected[(path, prompt, n)]:
                    stats["mismatch"] += 1
                    failures.append(("mismatch", path, prompt, n, stream))
                else:
                    stats["ok"] += 1
                    latencies.append(dt)

    def watch():
        while time.monotonic() < deadline + 1:
            memory.append(memory_kb(proc.pid))
            time.sleep(1)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
    watcher = threading.Thread(target=watch)
    start = time.monotonic()
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    watcher.join()
    with urllib.request.urlopen(base + "/metrics") as r:
        metrics = {line.split()[0]: float(line.split()[1]) for line in r.read().decode().splitlines()
                   if line and not line.startswith("#")}
    proc.kill()
    proc.wait()

    latencies.sort()
    gen = metrics.get("tinymla_generated_tokens_total", 0)
    steps = metrics.get("tinymla_decode_steps_total", 1)
    seqs = metrics.get("tinymla_decode_sequences_total", 0)
    print(f"{a.model.name}: {a.clients} clients for {elapsed:.1f} s, {a.slots} slots, queue "
          f"{a.queue}, {a.threads} thread(s)")
    print(f"  completed and equal to their solo run: {stats['ok']}")
    print(f"  refused with 429 (queue full):          {stats['rejected']}")
    print(f"  failed (other status or error):         {stats['failed']}")
    print(f"  completed but different from solo:      {stats['mismatch']}")
    if latencies:
        p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
        print(f"  latency of completed requests: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    print(f"  tokens generated: {gen:.0f} ({gen / elapsed:.0f} tok/s); mean decode batch "
          f"{seqs / max(steps, 1):.2f}; prompt tokens reused "
          f"{metrics.get('tinymla_prompt_tokens_reused_total', 0):.0f} of "
          f"{metrics.get('tinymla_prompt_tokens_total', 0) + metrics.get('tinymla_prompt_tokens_reused_total', 0):.0f}")
    rss = [m.get("VmRSS", 0) for m in memory]
    print(f"  server memory: VmRSS {min(rss) / 1024:.1f}..{max(rss) / 1024:.1f} MiB over the run, "
          f"peak VmHWM {max(m.get('VmHWM', 0) for m in memory) / 1024:.1f} MiB")
    for f in failures[:10]:
        print("  failure:", f)
    sys.exit(1 if stats["failed"] or stats["mismatch"] else 0)


if __name__ == "__main__":
    main()
