#!/usr/bin/env python3
"""Drive a tailops MCP server with the real Python SDK (PyPI `mcp` 2.3.0).

Usage (with the venv from tests/support/install-clients.sh):

    target/tools/venv/bin/python tests/clients/python_client.py \
        --url http://127.0.0.1:PORT/mcp --protocol 2025-11-25
    target/tools/venv/bin/python tests/clients/python_client.py \
        --url http://127.0.0.1:PORT/mcp --protocol 2026-07-28

Connects over Streamable HTTP, negotiates the requested protocol revision,
lists the tools, calls `whoami` and `server_info`, and prints ONE JSON object
on stdout:

    {"protocol": ..., "tools": [...sorted...], "whoami": {...},
     "server_info": {...} | {"isError": true, ...}, "session_id": ... | null}

SDK API used (mcp 2.3.0, `mcp.Client`):
  * 2025-11-25: `Client(transport, mode="legacy")` - the initialize handshake
    (the SDK offers LATEST_HANDSHAKE_VERSION = 2025-11-25) + notifications/initialized;
    the server hands out an `Mcp-Session-Id`.
  * 2026-07-28: `Client(transport, mode="2026-07-28")` - the stateless
    revision: no handshake, every request carries the `_meta` envelope and the
    `Mcp-Protocol-Version` header. `mode=<version>` alone only *adopts* the
    version without talking to the server, so this script then sends a real
    `server/discover` (`session.send_discover`) and re-adopts the server's
    DiscoverResult; a server that rejects discover or does not list
    2026-07-28 in `supportedVersions` is a failure.
The session id is not exposed by the SDK's transport, so it is read from the
`Mcp-Session-Id` response header through an httpx2 response hook.

Exit codes: 0 ok; 1 any failure (message on stderr); 2 bad usage;
3 the requested protocol revision is not supported by this SDK version.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any

PROTOCOLS = ("2025-11-25", "2026-07-28")
EXPECTED_SDK = "2.3.0"


def _fail(msg: str, code: int = 1) -> None:
    print(f"python_client: {msg}", file=sys.stderr)
    sys.exit(code)


def _dump(model: Any) -> Any:
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def _tool_result(result: Any, name: str, *, allow_error: bool) -> Any:
    """structuredContent of a CallToolResult, or an isError summary."""
    if result.is_error:
        texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
        if not allow_error:
            _fail(f"tool {name} returned isError: {texts}")
        out: dict[str, Any] = {"isError": True, "content": texts}
        if result.structured_content is not None:
            out["structuredContent"] = result.structured_content
        return out
    if result.structured_content is None:
        _fail(f"tool {name} returned no structuredContent: {_dump(result)}")
    return result.structured_content


async def run(url: str, protocol: str) -> dict[str, Any]:
    import httpx2
    import mcp_types as types
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

    modern = protocol in MODERN_PROTOCOL_VERSIONS
    if not modern and protocol not in HANDSHAKE_PROTOCOL_VERSIONS:
        _fail(f"the installed mcp SDK cannot speak protocol {protocol}", 3)

    session_ids: list[str] = []

    async def on_response(response: httpx2.Response) -> None:
        sid = response.headers.get("mcp-session-id")
        if sid and sid not in session_ids:
            session_ids.append(sid)

    http = create_mcp_http_client()
    http.event_hooks["response"].append(on_response)
    async with http:
        transport = streamable_http_client(url, http_client=http)
        client = Client(
            transport,
            mode=protocol if modern else "legacy",
            client_info=types.Implementation(name="tailops-python-client", version="0"),
            cache=None,  # always hit the server
            read_timeout_seconds=30,
        )
        async with client:
            if modern:
                # Real round trip: `mode="2026-07-28"` only adopted a synthesized result.
                raw = await client.session.send_discover(protocol)
                discovered = types.DiscoverResult.model_validate(raw)
                if protocol not in discovered.supported_versions:
                    _fail(f"server/discover does not list {protocol}: {discovered.supported_versions}")
                client.session.adopt(discovered)
            else:
                init = client.session.initialize_result
                if init is None:
                    _fail("no InitializeResult after the handshake")
            negotiated = client.protocol_version
            if negotiated != protocol:
                _fail(f"negotiated protocol {negotiated!r}, wanted {protocol!r}")

            tools: list[str] = []
            cursor: str | None = None
            for _ in range(100):
                page = await client.list_tools(cursor=cursor)
                tools.extend(t.name for t in page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    break
            whoami = _tool_result(await client.call_tool("whoami", {}), "whoami", allow_error=False)
            server_info = _tool_result(await client.call_tool("server_info", {}), "server_info", allow_error=True)

    if modern and session_ids:
        _fail(f"a 2026-07-28 exchange got an Mcp-Session-Id: {session_ids}")
    if not modern and len(session_ids) != 1:
        _fail(f"expected exactly one Mcp-Session-Id in 2025-11-25 mode, saw {session_ids}")
    return {
        "protocol": negotiated,
        "tools": sorted(tools),
        "whoami": whoami,
        "server_info": server_info,
        "session_id": session_ids[0] if session_ids else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="MCP endpoint, e.g. http://127.0.0.1:8080/mcp")
    ap.add_argument("--protocol", required=True, choices=PROTOCOLS)
    ap.add_argument("--debug", action="store_true", help="print tracebacks on failure")
    args = ap.parse_args()

    try:
        from importlib.metadata import version

        import anyio

        sdk = version("mcp")
    except Exception as exc:  # noqa: BLE001
        _fail(f"the MCP Python SDK is not importable ({exc}); run tests/support/install-clients.sh")
    if sdk != EXPECTED_SDK:
        print(f"python_client: warning: mcp {sdk} installed, written for {EXPECTED_SDK}", file=sys.stderr)

    try:
        out = anyio.run(run, args.url, args.protocol)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - anyio may raise ExceptionGroups
        if args.debug:
            traceback.print_exc()
        _fail(f"{args.protocol} against {args.url} failed: {_describe(exc)}")
    print(json.dumps(out, sort_keys=True))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    err = getattr(exc, "error", None)  # MCPError carries ErrorData
    if err is not None and hasattr(err, "code"):
        return f"{type(exc).__name__}: code {err.code}: {err.message} data={getattr(err, 'data', None)!r}"
    return f"{type(exc).__name__}: {exc}"


if __name__ == "__main__":
    main()
