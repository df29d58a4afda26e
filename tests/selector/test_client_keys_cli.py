"""The `keys` command line against a running Selector: create shows the key once, list never
shows it, revoke refuses it from then on, usage counts what it sent."""

from __future__ import annotations

import io
from pathlib import Path

import grpc
import pytest

from aiselector.v1 import selector_pb2
from services.selector import keys_cli
from tests.stacks import ADMIN_TOKEN


async def keys(stack, *argv: str, environ: dict[str, str] | None = None) -> tuple[int, str]:
    out = io.StringIO()
    args = keys_cli.parser().parse_args(["--selector", stack.selector.address, *argv])
    code = await keys_cli.run(args, environ or {"ADMIN_API_TOKEN": ADMIN_TOKEN}, out)
    return code, out.getvalue()


async def test_create_list_use_usage_and_revoke(make_stack):
    stack = await make_stack(allow_anonymous=False)

    code, shown = await keys(
        stack, "create", "--name", "my-app", "--rpm", "30", "--daily-requests", "1000"
    )
    assert code == 0
    key = next(line for line in shown.splitlines() if line.startswith("fais_"))
    assert "client key 1 for 'my-app' (30/min, 1000/day)" in shown

    code, listed = await keys(stack, "list")
    assert "my-app" in listed
    assert key[:9] in listed
    assert key not in listed

    metadata = (("authorization", f"Bearer {key}"),)
    reply = await stack.stub().ProcessPrompt(
        selector_pb2.ProcessPromptRequest(prompt="hi"), timeout=5, metadata=metadata
    )
    assert reply.success
    await stack.selector.recorder.flush()
    code, usage = await keys(stack, "usage")
    assert "my-app: 1 requests" in usage
    assert "0 failed" in usage

    assert (await keys(stack, "revoke", "1"))[0] == 0
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub().ProcessPrompt(
            selector_pb2.ProcessPromptRequest(prompt="hi"), timeout=5, metadata=metadata
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "REVOKED" in (await keys(stack, "list", "--all"))[1]


async def test_the_token_is_read_from_the_data_folder_and_errors_name_the_field(
    make_stack, tmp_path: Path, capsys
):
    stack = await make_stack()
    (tmp_path / "admin_token").write_text(ADMIN_TOKEN + "\n")

    code, _ = await keys(stack, "create", "--name", " ", environ={"DATA_DIR": str(tmp_path)})
    assert code == 1
    assert "INVALID_ARGUMENT: name: must be 1..100 printable characters" in capsys.readouterr().err
    code, _ = await keys(stack, "list", environ={"ADMIN_API_TOKEN": "wrong"})
    assert code == 1
    assert "PERMISSION_DENIED" in capsys.readouterr().err
