"""``merge_toml`` (Codex's config.toml) reads the file once: what it keeps and whether it
changed anything are judged on the same text."""

from __future__ import annotations

from pathlib import Path

import pytest

from redis_swarm.mcp_server._codex_toml import merge_toml

BLOCK = '[mcp_servers.swarm]\ncommand = "swarm"'


@pytest.mark.parametrize("held", ["", 'model = "o3"\n\n'], ids=["ours-only", "with-others"])
def test_merge_toml_reads_its_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(held + BLOCK)
    reads: list[Path] = []
    read_text = Path.read_text

    def counted(self: Path, *args: object, **kwargs: object) -> str:
        reads.append(self)
        return read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", counted)
    merged = merge_toml(path, "mcp_servers.swarm", BLOCK)  # unchanged
    assert (merged.changed, merged.previous) == (False, {"command": "swarm"})
    assert reads == [path]
    reads.clear()
    assert merge_toml(path, "mcp_servers.swarm", "").changed  # taken out
    assert reads == [path]
    assert path.exists() == bool(held)
