"""`edgekit generate ARTIFACT`: stream text from a decode artifact in its runtime on this host."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(commands: Any) -> None:
    gen = commands.add_parser(
        "generate", help="generate text from a decode artifact (.pte, ONNX genai folder, "
                         ".mlpackage in the Core ML emulator)")
    gen.add_argument("path", metavar="ARTIFACT",
                     help="a decode .pte, .mlpackage (run in edgekit's Core ML emulator) or "
                          "onnxruntime-genai folder from `edgekit export --decode`")
    gen.add_argument("--prompt", help="prompt text (needs tokenizer.json beside the artifact)")
    gen.add_argument("--prompt-ids", metavar="IDS",
                     help="comma-separated prompt token ids, e.g. 1,5,7 (no tokenizer needed)")
    gen.add_argument("--chat", action="store_true",
                     help="wrap the prompt in the tokenizer's chat template as a user turn")
    gen.add_argument("--max-new-tokens", type=int, default=64, metavar="N",
                     help="tokens to generate at most (default 64)")
    gen.add_argument("--temperature", type=float, default=0.0,
                     help="0 (default) is greedy; above 0 samples")
    gen.add_argument("--top-k", type=int, default=0, help="sample from the k likeliest (0: all)")
    gen.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    gen.add_argument("--device", action="append", metavar="NAME|PATH.toml",
                     help="run under this device profile's threads and CPU affinity: a "
                          "built-in name (`edgekit devices`) or your own .toml; once")
    gen.add_argument("--json", action="store_true",
                     help="print one JSON object: tokens, text, stop reason, timings")
    gen.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from edgekit.devices import get_device
    from edgekit.errors import EdgekitError
    from edgekit.llm.generate import Sampling, generate
    from edgekit.llm.runners import open_decoder
    from edgekit.llm.tokenizer import read_special_ids
    from edgekit.runtimes.limits import limits_for, pinned
    from edgekit.validate.latency import host_cpu

    path = Path(args.path)
    if args.max_new_tokens < 1:
        raise EdgekitError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if args.temperature < 0:
        raise EdgekitError(f"--temperature must be 0 or more, got {args.temperature}")
    if (args.prompt is None) == (args.prompt_ids is None):
        raise EdgekitError("give exactly one of --prompt TEXT or --prompt-ids 1,5,7")
    # the tokenizer sits beside the artifact; a -genai folder holds its own (an .mlpackage is
    # a folder too, but its tokenizer is beside it)
    folder = path if path.is_dir() and path.suffix != ".mlpackage" else path.parent
    tokenizer = _tokenizer(folder) if args.prompt is not None else None
    if args.prompt is not None:
        if tokenizer is None:
            raise EdgekitError(f"{folder}: no tokenizer.json beside the artifact; pass "
                               "--prompt-ids instead")
        prompt = _encode(folder, tokenizer, args.prompt, args.chat)
    else:
        prompt = _parse_ids(args.prompt_ids)
    if args.device and len(args.device) > 1:
        raise EdgekitError(f"--device given {len(args.device)} times; a generation runs under "
                           "one device profile (`edgekit bench --device A --device B` "
                           "compares devices)")
    limits = limits_for(get_device(args.device[0])) if args.device else None
    with pinned(limits) if limits else nullcontext():
        session = open_decoder(path, limits.threads if limits else None)
        special = read_special_ids(folder)
        streamer = _Streamer(tokenizer, quiet=args.json)
        result = generate(session, prompt, args.max_new_tokens, eos=special.eos,
                          sampling=Sampling(args.temperature, args.top_k, args.seed),
                          on_token=streamer.on_token)
    streamer.finish()
    timings = result.timings()
    threads = limits.threads if limits else "runtime default"
    label = f"measured on host ({host_cpu()}, {threads} threads)"
    if session.emulated:  # a numpy interpreter's speed is not the phone runtime's
        label = f"measured on host in edgekit's Core ML emulator ({host_cpu()}), not Core ML"
    if args.json:
        text = tokenizer.decode(result.tokens) if tokenizer is not None else None
        print(json.dumps({"artifact": str(path), "prompt_tokens": prompt,
                          "tokens": result.tokens, "text": text, "stop": result.stop,
                          "emulated": session.emulated,
                          "timings": {"label": label, **timings}}, indent=2))
    else:
        rate = timings.get("decode_tok_s")
        speed = f", decode {rate} tok/s" if rate else ""
        print(f"[{result.stop}: {len(result.tokens)} tokens, prefill "
              f"{timings['prefill_ms']:.1f} ms{speed}; {label}]", file=sys.stderr)
    return 0


def _parse_ids(text: str) -> list[int]:
    from edgekit.errors import EdgekitError

    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise EdgekitError(f"--prompt-ids: '{text}' is not a comma-separated list of "
                           "integers") from None
    if not ids or min(ids) < 0:
        raise EdgekitError(f"--prompt-ids: '{text}' needs at least one id, none negative")
    return ids


def _tokenizer(folder: Path) -> Any:
    """The fast tokenizer in tokenizer.json beside the artifact, or None."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


def _encode(folder: Path, tokenizer: Any, prompt: str, chat: bool) -> list[int]:
    if chat:
        from edgekit.console import import_backend, quiet
        from edgekit.errors import EdgekitError

        transformers = import_backend("transformers")
        with quiet():
            hf = transformers.AutoTokenizer.from_pretrained(str(folder))
        if not getattr(hf, "chat_template", None):
            raise EdgekitError(f"{folder}: the tokenizer has no chat template; drop --chat")
        return list(hf.apply_chat_template([{"role": "user", "content": prompt}],
                                           add_generation_prompt=True, tokenize=True,
                                           return_dict=False))
    return list(tokenizer.encode(prompt).ids)


class _Streamer:
    """Prints text as tokens arrive (the decoded suffix, so multi-token characters are whole)."""

    def __init__(self, tokenizer: Any, quiet: bool) -> None:
        self.tokenizer, self.quiet = tokenizer, quiet
        self.tokens: list[int] = []
        self.printed = ""

    def on_token(self, token: int) -> None:
        self.tokens.append(token)
        if self.quiet:
            return
        if self.tokenizer is None:
            print(token, end=" ", flush=True)
            return
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            return
        print(text[len(self.printed):], end="", flush=True)
        self.printed = text

    def finish(self) -> None:
        if not self.quiet:
            print(flush=True)
