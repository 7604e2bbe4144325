"""The dependency locks (requirements/service.lock: the service; requirements/dev.lock: with
the dev, local and otel extras): every requirement of setup.cfg is pinned to a version it
allows, every pin carries its hashes, the service's lock holds no development tool, and the
environment the tests run in is the dev lock's (`make install` installs from it)."""
from __future__ import annotations

import configparser
import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
SERVICE_LOCK = ROOT / "requirements" / "service.lock"
DEV_LOCK = ROOT / "requirements" / "dev.lock"
DEV_EXTRAS = ("dev", "local", "otel")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def _requirements(*extras: str) -> list[Requirement]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    blocks = [config["options"]["install_requires"]]
    blocks += [config["options.extras_require"][extra] for extra in extras]
    return [Requirement(line.strip()) for block in blocks for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _pins(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes)."""
    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = (match.group(2), 0)
        elif current and "--hash=sha256:" in line:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


@pytest.mark.parametrize("lock, extras", [(SERVICE_LOCK, ()), (DEV_LOCK, DEV_EXTRAS)],
                         ids=["service", "dev"])
def test_every_requirement_is_pinned_to_a_version_setup_cfg_allows(lock, extras):
    pins = _pins(lock)
    requirements = _requirements(*extras)
    assert len(requirements) > 10
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in {lock.name}: run `make lock`"
        version, hashes = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), \
            f"{lock.name} pins {name}=={version}, setup.cfg asks {requirement}: run `make lock`"
    assert all(hashes > 0 for _, hashes in pins.values()), "a pin without --hash"


def test_the_service_lock_holds_no_development_tool():
    pins = _pins(SERVICE_LOCK)
    for requirement in _requirements("dev", "local"):
        name = canonicalize_name(requirement.name)
        if name not in {canonicalize_name(r.name) for r in _requirements()}:
            assert name not in pins, f"{name} is a development tool"


def test_the_test_environment_is_the_dev_lock():
    different = {}
    for name, (version, _) in _pins(DEV_LOCK).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            different[name] = (version, installed)
    assert not different, f"installed differ from requirements/dev.lock: {different}"
