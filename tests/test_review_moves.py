"""Where the doctor's scan, the revoke and the wording of a user made by an older
redis-swarm live: the doctor's scan in ``_ops/doctor.py`` (``views`` keeps the views), the
revoke in ``_acl_revoke.py`` (still exported by the package), and the re-apply wording said
once (``_errors.REAPPLY_OLDER_USER``) by the three refusals that add it."""

from __future__ import annotations

import inspect
from pathlib import Path

import redis_swarm
from redis_swarm import _acl_apply, _client, _errors
from redis_swarm._ops import counters, doctor, findings, views

SRC = Path(redis_swarm.__file__).parent


def test_the_reapply_wording_is_said_once() -> None:
    wording = _errors.REAPPLY_OLDER_USER
    assert wording.startswith("a shard or coordinator user made by an older redis-swarm")
    for module in (doctor, counters, findings):
        source = inspect.getsource(module)
        assert "REAPPLY_OLDER_USER" in source, module.__name__
        assert "older redis-swarm" not in source, module.__name__
    spelled = [
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*.py")
        if "made by an older redis-swarm gets this" in path.read_text(encoding="utf-8")
    ]
    assert spelled == ["_errors.py"]


def test_the_doctors_scan_is_its_own_module() -> None:
    for name in ("corrupt_records", "record_damage", "repair_indexes", "_Scan", "_damage"):
        assert hasattr(doctor, name) and not hasattr(views, name), name
    assert set(doctor.__all__) == {
        "corrupt_records",
        "record_damage",
        "repair_indexes",
        "finding_lost",  # (one task's lost result, by the scan's rule: swarm task show)
    }
    for name in doctor.__all__:  # the shells run the doctor's own operations
        entry = inspect.getattr_static(_client.Swarm, name)
        assert entry._function() is getattr(doctor, name), name


def test_the_revoke_is_its_own_module_and_still_exported() -> None:
    from redis_swarm import _acl_revoke

    assert not hasattr(_acl_apply, "revoke_user") and not hasattr(_acl_apply, "RevokedUser")
    assert redis_swarm.revoke_user is _acl_revoke.revoke_user
    assert redis_swarm.RevokedUser is _acl_revoke.RevokedUser
    assert {"revoke_user", "RevokedUser"} <= set(redis_swarm.__all__)
