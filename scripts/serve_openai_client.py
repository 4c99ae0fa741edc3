#!/usr/bin/env python3
"""`tinymla serve` driven by the official `openai` Python client: models, a chat reply, the
same reply streamed, a completion, and the errors the client raises for a bad request and a
full queue.

    pip install openai   # not in CI: CI stays Python-free
    python scripts/serve_openai_client.py [--model models/demo-m.q8_0.gguf]

Starts the server on 127.0.0.1 (port 0), prints what each call returned, and exits non-zero
if the streamed text differs from the whole reply or an error is not the one expected.
"""
import argparse
import subprocess
import sys
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "demo-m.q8_0.gguf")
    ap.add_argument("--tinymla", type=Path, default=ROOT / "target" / "release" / "tinymla")
    a = ap.parse_args()
    proc = subprocess.Popen([str(a.tinymla), "serve", "-m", str(a.model), "--port", "0",
                             "--slots", "2"], stdout=subprocess.PIPE, text=True)
    addr = proc.stdout.readline().split("http://")[1].split()[0]
    ok = True
    try:
        client = openai.OpenAI(base_url=f"http://{addr}/v1", api_key="unused", max_retries=0)
        print("openai", openai.__version__, "against", addr)
        models = client.models.list()
        print("models:", [m.id for m in models.data])
        messages = [{"role": "system", "content": "You tell short stories."},
                    {"role": "user", "content": "Tell me about a cat."}]
        whole = client.chat.completions.create(model=models.data[0].id, messages=messages,
                                               max_tokens=40, temperature=0)
        text = whole.choices[0].message.content
        print("chat:", repr(text), whole.choices[0].finish_reason, whole.usage)
        stream = client.chat.completions.create(model=models.data[0].id, messages=messages,
                                                max_tokens=40, temperature=0, stream=True,
                                                stream_options={"include_usage": True})
        pieces, usage = [], None
        for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
            if chunk.usage:
                usage = chunk.usage
        print(f"chat, streamed: {len(pieces)} chunks, equal to the whole reply: "
              f"{''.join(pieces) == text}; usage {usage}")
        ok &= "".join(pieces) == text
        done = client.completions.create(model=models.data[0].id, prompt="Once upon a time",
                                         max_tokens=20, temperature=0, seed=1)
        print("completion:", repr(done.choices[0].text), done.usage)
        try:
            client.chat.completions.create(model="x", messages=[{"role": "wizard", "content": "hi"}])
            ok = False
            print("a bad role was accepted")
        except openai.BadRequestError as e:
            print("bad role -> BadRequestError:", e.status_code, e.body)
    finally:
        proc.kill()
        proc.wait()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
