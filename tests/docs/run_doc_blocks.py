#!/usr/bin/env python3
"""Runs the shell blocks of a Markdown file, so that the recipes in the docs cannot rot.

Every fenced block whose info string is sh, bash or shell is a recipe. Each one runs, in a fresh
temporary directory, unless the HTML comment right before it says why it cannot:

    <!-- doc-test: skip: <reason> -->

A block runs as it is written, or through a template in the comment before it, which says how a
person would run the block's commands (several terminals, a file to read, what to check after):

    <!-- doc-test
    seq 1 20 > jobs.txt
    {1} &
    {2}
    wait_until 10 grep -q 20 out.txt
    -->

`{N}` stands for the block's N-th command (continuation lines joined, comments dropped). Every
command of the block must appear in its template: a command the test never runs is a recipe that
can rot. Options, each on a line of its own inside the comment:

    timeout: S     the bound for the whole block (default 60 s); background jobs are killed then
    keep-tcp       do not replace tcp endpoints by ipc ones (the block needs tcp itself)

Before a block runs, its endpoints and system paths are made private to its directory, so that
blocks run in parallel with every other test, as root or not, and touch nothing outside it:
`tcp://HOST:PORT` (any host, `*` included) becomes `ipc://DOC/tcp-PORT` (DOC: the block's directory), and the absolute paths
under /var, /run, /etc/zmqkit and /tmp become paths under DOC (their parent directories are
not created: the recipes must do that themselves, as they would on a fresh machine).

The script runs with bash -e -o pipefail, with the build's binaries first on PATH (then the
python3 that runs this script, so that `python3 -c 'import zmq'` finds python3-zmq) and a function
`wait_until SECONDS COMMAND...` that polls COMMAND every 50 ms until it succeeds (1 when it does
not within SECONDS). It passes when it exits 0 within its bound.

Usage: run_doc_blocks.py [--bin-dir DIR] [--list] FILE.md...
Prints one line per block and a closing `N passed, N failed, N skipped` line; exits 1 when any
block failed or a template is inconsistent with its block.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

FENCE = re.compile(r"^(```+|~~~+)\s*([A-Za-z0-9_+-]*)")
SHELL_LANGS = {"sh", "bash", "shell"}
ANNOTATION_START = "<!-- doc-test"


@dataclass
class Block:
    path: str
    line: int  # 1-based line of the opening fence
    text: str
    annotation: str | None = None  # the comment's body, None when there is none
    skip_reason: str | None = None
    template: str | None = None
    timeout: float = 60.0
    keep_tcp: bool = False
    problems: list[str] = field(default_factory=list)


def parse_annotation(block: Block, body: str) -> None:
    body = body.strip()
    if body.startswith(":"):
        body = body[1:].strip()
    if body.startswith("skip:"):
        block.skip_reason = body[len("skip:"):].strip()
        if not block.skip_reason:
            block.problems.append("'skip:' needs a reason")
        return
    lines = []
    for raw in body.splitlines():
        stripped = raw.strip()
        if stripped.startswith("timeout:"):
            block.timeout = float(stripped[len("timeout:"):].strip().rstrip("s"))
        elif stripped == "keep-tcp":
            block.keep_tcp = True
        else:
            lines.append(raw)
    template = "\n".join(lines).strip()
    block.template = template or None


def read_blocks(path: str) -> list[Block]:
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        start = i
        i += 1
        body = []
        while i < len(lines) and not (lines[i].startswith(fence) and
                                      not lines[i][len(fence):].strip("`").strip()):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        if lang not in SHELL_LANGS:
            continue
        block = Block(path=path, line=start + 1, text="\n".join(body) + "\n")
        # The annotation: the HTML comment that ends on the last non-blank line before the fence.
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j >= 0 and lines[j].strip().endswith("-->"):
            k = j
            while k >= 0 and ANNOTATION_START not in lines[k]:
                k -= 1
            if k >= 0:
                comment = "\n".join(lines[k:j + 1])
                inner = comment[comment.index(ANNOTATION_START) + len(ANNOTATION_START):]
                inner = inner[:inner.rindex("-->")]
                block.annotation = inner
                parse_annotation(block, inner)
        blocks.append(block)
    return blocks


def commands_of(text: str) -> list[str]:
    """The block's commands: continuation lines joined, comment lines and trailing comments
    dropped, here-documents kept with the command that opens them."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cmd = line
        while cmd.rstrip().endswith("\\") and i < len(lines):
            cmd = cmd.rstrip()[:-1].rstrip() + " " + lines[i].strip()
            i += 1
        heredoc = re.search(r"<<-?\s*'?\"?([A-Za-z_]+)'?\"?", cmd)
        if heredoc:
            end = heredoc.group(1)
            body = []
            while i < len(lines):
                body.append(lines[i])
                i += 1
                if lines[i - 1].strip() == end:
                    break
            cmd = cmd + "\n" + "\n".join(body)
        out.append(strip_trailing_comment(cmd))
    return out


def strip_trailing_comment(cmd: str) -> str:
    """Drops a `# comment` at the end of the first line (outside quotes)."""
    first, nl, rest = cmd.partition("\n")
    quote = None
    for idx, ch in enumerate(first):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (idx == 0 or first[idx - 1] in " \t"):
            first = first[:idx].rstrip()
            break
    return first + nl + rest


TCP = re.compile(r"tcp://(?:\[[^\]]*\]|[A-Za-z0-9_.*-]+):(\d+|\*)")
PRIVATE_PATHS = re.compile(r"(?<![\w./$-])(/var/|/run/|/etc/zmqkit|/tmp/)")
IPC_PRIVATE_PATHS = re.compile(r"ipc://(/var/|/run/|/etc/zmqkit|/tmp/)")


def localize(script: str, keep_tcp: bool, doc: str) -> str:
    # The directory's literal path, not "$DOC": endpoints often stand in single quotes. Paths
    # first, so that the ipc paths made of tcp endpoints are not rewritten again.
    script = IPC_PRIVATE_PATHS.sub(lambda m: "ipc://" + doc + m.group(1), script)
    script = PRIVATE_PATHS.sub(lambda m: doc + m.group(1), script)
    if not keep_tcp:
        script = TCP.sub(lambda m: f"ipc://{doc}/tcp-" + m.group(1).replace("*", "any"), script)
    return script


PRELUDE = r"""
wait_until() {
    local seconds="$1"; shift
    local deadline=$(( $(date +%s%N) + seconds * 1000000000 ))
    until "$@"; do
        if [ "$(date +%s%N)" -ge "$deadline" ]; then
            echo "doc-test: wait_until: '$*' still false after ${seconds}s" >&2
            return 1
        fi
        sleep 0.05
    done
}
"""


def script_for(block: Block, doc: str) -> str:
    commands = commands_of(block.text)
    if block.template is None:
        body = block.text
    else:
        used = set()

        def expand(m: re.Match) -> str:
            n = int(m.group(1))
            if not 1 <= n <= len(commands):
                block.problems.append(f"template names {{{n}}}, the block has {len(commands)} commands")
                return ""
            used.add(n)
            return commands[n - 1]

        body = re.sub(r"\{(\d+)\}", expand, block.template)
        missing = [str(n) for n in range(1, len(commands) + 1) if n not in used]
        if missing:
            block.problems.append("the template never runs command(s) " + ", ".join(missing) +
                                  " of the block")
    return PRELUDE + localize(body, block.keep_tcp, doc) + "\n"


def run_block(block: Block, bin_dir: str | None) -> tuple[bool, str]:
    doc = tempfile.mkdtemp(prefix="zkdoc-")
    script = script_for(block, doc)
    if block.problems:
        shutil.rmtree(doc, ignore_errors=True)
        return False, "; ".join(block.problems)
    env = dict(os.environ)
    env["DOC"] = doc
    env["HOME"] = doc
    # The recipes' `python3` is the one running this script (Debian's, with python3-zmq).
    path = [os.path.dirname(sys.executable), env.get("PATH", "")]
    if bin_dir:
        path.insert(0, os.path.abspath(bin_dir))
    env["PATH"] = os.pathsep.join(path)
    for name in [k for k in env if k.startswith("ZMQKIT_") and k not in ("ZMQKIT_BIN_DIR", "ZMQKIT_SOURCE_DIR")]:
        del env[name]
    started = time.monotonic()
    # Output goes to a file, not a pipe: background jobs keep their copy of it open after the
    # script itself has ended, and the block ends with the script.
    with tempfile.TemporaryFile(mode="w+", errors="replace") as log:
        proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=doc, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=block.timeout)
            ok = proc.returncode == 0
            why = f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            ok = False
            why = f"still running after {block.timeout:g}s"
        # The block's background jobs (a proxy started with &, a subscriber) end with it:
        # SIGTERM to its process group, then SIGKILL to whatever is left of it.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        log.seek(0)
        out = log.read()
    elapsed = time.monotonic() - started
    shutil.rmtree(doc, ignore_errors=True)
    detail = f"{why}, {elapsed:.1f}s"
    if not ok:
        detail += "\n--- script ---\n" + script.strip() + "\n--- output ---\n" + (out or "").strip()
    return ok, detail


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", help="directory of the zmqkit binaries, put first on PATH")
    ap.add_argument("--list", action="store_true", help="list the blocks and what runs them")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    passed = failed = skipped = 0
    for path in args.files:
        for block in read_blocks(path):
            where = f"{os.path.relpath(block.path)}:{block.line}"
            if block.skip_reason is not None and not block.problems:
                skipped += 1
                print(f"SKIP {where}: {block.skip_reason}")
                continue
            if args.list:
                print(f"RUN  {where}" + (" (template)" if block.template else ""))
                continue
            ok, detail = run_block(block, args.bin_dir)
            if ok:
                passed += 1
                print(f"PASS {where} ({detail})")
            else:
                failed += 1
                print(f"FAIL {where}: {detail}")
            sys.stdout.flush()
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
