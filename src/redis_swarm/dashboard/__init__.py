"""The live views of a swarm: a web dashboard (``create_app``) and the snapshot it shows.

``swarm dashboard`` serves the app; ``swarm watch`` renders the same snapshot in a terminal.
The web part needs the ``dashboard`` extra (Starlette, uvicorn): import ``.app`` only then.
"""

from __future__ import annotations

from ._snapshot import PassProgress, Snapshot, snapshot

__all__ = ["PassProgress", "Snapshot", "snapshot"]
