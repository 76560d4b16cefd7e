#!/usr/bin/env python3
"""Drive `tailops connect` with the real Python SDK's stdio client (PyPI `mcp` 2.3.0).

Usage (with the venv from tests/support/install-clients.sh; the bridge's
environment - TS_*, TAILOPS_*, RUST_LOG - is handed on):

    target/tools/venv/bin/python tests/clients/python_stdio_bridge.py \
        --log FILE --tail-path logs:app.log -- tailops connect ops1.tailnet.test ...

Launches the command as a stdio MCP server (`StdioServerParameters`), then,
in the 2025-11-25 revision (the only one the SDK's stdio client negotiates
with a handshake):
  1. lists the tools and calls `whoami`;
  2. calls `file_tail` with `follow_secs` and a progress callback while this
     script appends lines to FILE; every progress message is kept;
  3. calls `file_tail` with follow_secs 30 and abandons it (cancel scope)
     once its first progress arrived: the SDK sends notifications/cancelled;
  4. calls `whoami` again (the session survived the cancellation).
Prints ONE JSON object on stdout. Exit 0 ok, 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


async def run(cmd: list[str], log: str, tail_path: str) -> dict[str, Any]:
    import anyio
    import mcp_types as types
    from mcp import Client, StdioServerParameters

    # The SDK passes only a safe default environment to the server; the
    # bridge's own settings (auth key, DERP knob, log level) are handed on.
    env = {k: v for k, v in os.environ.items() if k.startswith(("TS_", "TAILOPS_", "RUST_LOG"))}
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=env)
    counter = {"n": 0}

    async def append_until(done: anyio.Event) -> None:
        # Lines appear while the call follows; the file is ours (a test root).
        while not done.is_set():
            counter["n"] += 1
            with open(log, "a") as f:
                f.write(f"bridge line {counter['n']}\n")
            with anyio.move_on_after(0.3):
                await done.wait()

    out: dict[str, Any] = {}
    async with Client(
        params,
        mode="legacy",
        client_info=types.Implementation(name="tailops-stdio-bridge-test", version="0"),
        cache=None,
        read_timeout_seconds=60,
    ) as client:
        out["protocol"] = client.protocol_version
        tools: list[str] = []
        cursor = None
        for _ in range(100):
            page = await client.list_tools(cursor=cursor)
            tools.extend(t.name for t in page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        out["tools"] = sorted(tools)
        who = await client.call_tool("whoami", {})
        out["whoami"] = who.structured_content

        # 2. progress notifications through the bridge
        progress: list[dict[str, Any]] = []
        got_two = anyio.Event()

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append({"progress": p, "message": message})
            if len(progress) >= 2:
                got_two.set()

        result: dict[str, Any] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(append_until, got_two)

            async def do_call() -> None:
                r = await client.call_tool(
                    "file_tail", {"path": tail_path, "lines": 1, "follow_secs": 4}, progress_callback=on_progress
                )
                result["r"] = r
                got_two.set()

            tg.start_soon(do_call)
        r = result["r"]
        out["follow"] = {"is_error": r.is_error, "structured": r.structured_content}
        out["progress"] = progress

        # 3. a cancelled call
        first = anyio.Event()
        cancelled_progress: list[str | None] = []

        async def on_first(p: float, total: float | None, message: str | None) -> None:
            cancelled_progress.append(message)
            first.set()

        outcome = {"finished": False}
        async with anyio.create_task_group() as tg:
            tg.start_soon(append_until, first)
            call_scope = anyio.CancelScope()

            async def long_call() -> None:
                with call_scope:
                    await client.call_tool(
                        "file_tail", {"path": tail_path, "lines": 1, "follow_secs": 30}, progress_callback=on_first
                    )
                    outcome["finished"] = True

            tg.start_soon(long_call)
            await first.wait()
            call_scope.cancel()
        out["cancel"] = {"finished": outcome["finished"], "progress_before_cancel": cancelled_progress}

        # 4. the session still works
        again = await client.call_tool("whoami", {})
        out["whoami_after_cancel"] = again.structured_content
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", required=True, help="file to append lines to (inside the server's file root)")
    ap.add_argument("--tail-path", required=True, help="the same file as the server names it, e.g. logs:app.log")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the bridge command")
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        print("python_stdio_bridge: no command", file=sys.stderr)
        sys.exit(2)
    import anyio

    try:
        out = anyio.run(run, cmd, args.log, args.tail_path)
    except BaseException as exc:  # noqa: BLE001 - anyio may raise ExceptionGroups
        import traceback

        traceback.print_exc()
        print(f"python_stdio_bridge: failed: {exc!r}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
