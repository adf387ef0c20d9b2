"""The configuration directory in Keptn's config-repo layout.

    DIR/receiver.yaml                                   settings
    DIR/<project>/<stage>/remediation.yaml              stage-level fallback
    DIR/<project>/<stage>/<service>/remediation.yaml    per service (wins)
    DIR/<project>/<stage>/<service>/slo.yaml, sli.yaml  (sli.yaml also per stage / project)
    DIR/.../prometheus/sli.yaml, DIR/.../dynatrace/sli.yaml
        where Keptn stored a provider's SLIs (`keptn add-resource --resourceUri=prometheus/
        sli.yaml`), at project, stage and service level: read for that provider only, after
        the plain sli.yaml of the same level. `prometheus` and `dynatrace` are never names
        of a project, stage or service.

The tree is indexed and every file of it read once, when it is scanned: what is checked is
what runs, even if a file changes on disk before the next reload. Lookups go through the
index with names from the payload as keys, never by joining payload text into a path: a
payload cannot reach a file that the index does not hold.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from receiver import yamlfile
from receiver.errors import ConfigError
from receiver.models import ServiceRef

REMEDIATION = "remediation.yaml"
SLO = "slo.yaml"
SLI = "sli.yaml"
SERVICE_FILES = (REMEDIATION, SLO, SLI)
PROVIDER_DIRS = ("prometheus", "dynatrace")  # Keptn's SLI providers' resource directories


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ConfigTree:
    root: Path
    files: frozenset[Path]  # every service-level file found, relative to root
    # What each of them held when it was scanned (by its path under root, as the lookups
    # return it): the YAML document, or why it could not be read.
    contents: Mapping[Path, Any | ConfigError] = dataclasses.field(repr=False)
    _by_parts: dict[tuple[str, ...], Path] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_parts", {path.parts: path for path in self.files})

    def document(self, file: Path) -> Any:
        """The YAML document of one of the tree's files as it was scanned; its ConfigError if
        it could not be read."""
        found = self.contents[file]
        if isinstance(found, ConfigError):
            raise found
        return found

    def unreadable(self) -> list[ConfigError]:
        """Why each file that could not be read could not, in path order."""
        return [e for _, e in sorted(self.contents.items()) if isinstance(e, ConfigError)]

    def remediation_file(self, ref: ServiceRef) -> Path | None:
        """The service's remediation.yaml, else its stage's, else None."""
        # On the path of every webhook: plain tuple lookups, no Path built per call.
        names = (ref.project, ref.stage, ref.service, REMEDIATION)
        found = self._by_parts.get(names) or self._by_parts.get((*names[:2], REMEDIATION))
        return self.root / found if found else None

    def slo_file(self, ref: ServiceRef) -> Path | None:
        return self._first(Path(ref.project, ref.stage, ref.service, SLO))

    def sli_files(self, ref: ServiceRef, provider: str | None = None) -> tuple[Path, ...]:
        """The SLI files of project, stage and service that exist, least specific first: at
        each level the plain sli.yaml, then `<provider>/sli.yaml` (every provider's when
        `provider` is None)."""
        providers = PROVIDER_DIRS if provider is None else (provider,)
        candidates = []
        for level in (
            (ref.project,),
            (ref.project, ref.stage),
            (ref.project, ref.stage, ref.service),
        ):
            candidates.append(Path(*level, SLI))
            candidates.extend(Path(*level, name, SLI) for name in providers)
        return tuple(self.root / c for c in candidates if c in self.files)

    def sli_providers(self, ref: ServiceRef) -> tuple[str, ...]:
        """The providers whose directories hold SLI files for `ref`."""
        return tuple(
            name
            for name in PROVIDER_DIRS
            if any(f.parent.name == name for f in self.sli_files(ref, name))
        )

    def named(self, name: str) -> tuple[Path, ...]:
        """Every file of the tree called `name` (remediation.yaml, ...), in path order."""
        return tuple(self.root / p for p in sorted(self.files) if p.name == name)

    def services(self) -> tuple[ServiceRef, ...]:
        """Every project/stage/service directory that holds at least one service file."""
        refs = {
            ServiceRef(project=p.parts[0], stage=p.parts[1], service=p.parts[2])
            for p in self.files
            if len(p.parts) == 4 and not _in_provider_dir(p)
        }
        return tuple(sorted(refs, key=str))

    def _first(self, *candidates: Path) -> Path | None:
        return next((self.root / c for c in candidates if c in self.files), None)


def scan(root: Path) -> ConfigTree:
    """Index the service files under `root` and read each. Raises ConfigError if `root` is
    not a directory."""
    if not root.is_dir():
        raise ConfigError(str(root), "", "configuration directory does not exist")
    files = frozenset(relative for relative in walk(root, ".yaml") if _indexed(relative))
    return ConfigTree(root=root, files=files, contents={root / f: _read(root / f) for f in files})


def walk(root: Path, suffix: str) -> list[Path]:
    """Every file under `root` whose name ends with `suffix`, relative to it, in path order.

    Through symlinks: a ConfigMap volume is symlinks (`sockshop -> ..data/sockshop`, where
    `..data` points at a timestamped folder), and pathlib's rglob does not follow a
    symlinked directory, so a receiver in a pod would have found no file at all. The
    kubelet's own `..`-prefixed entries are passed over (their files are reached through
    the links), and a link back up the tree is walked once."""
    found: list[Path] = []
    visited: set[str] = set()
    for directory, subdirectories, names in os.walk(root, followlinks=True):
        real = os.path.realpath(directory)
        if real in visited:
            subdirectories.clear()
            continue
        visited.add(real)
        subdirectories[:] = [d for d in subdirectories if not d.startswith("..")]
        base = Path(directory).relative_to(root)
        # A directory named like a file is found too: reading it says what is wrong.
        found.extend(base / name for name in (*names, *subdirectories) if name.endswith(suffix))
    return sorted(found)


def _read(file: Path) -> Any | ConfigError:
    try:
        document = yamlfile.read(file)
    except ConfigError as e:
        return e
    if not isinstance(document, dict):
        return ConfigError(str(file), "", "expected a mapping at the top level")
    return document


def _in_provider_dir(relative: Path) -> bool:
    return any(part in PROVIDER_DIRS for part in relative.parts[:-1])


def _indexed(relative: Path) -> bool:
    """A service file where the layout puts one, or an SLI file in a provider's directory
    (only there: a project, stage or service cannot be called like a provider)."""
    depth = len(relative.parts)
    if _in_provider_dir(relative):
        return (
            relative.name == SLI
            and relative.parts[-2] in PROVIDER_DIRS
            and 3 <= depth <= 5
            and (not _in_provider_dir(relative.parent))
        )
    return relative.name in SERVICE_FILES and 2 <= depth <= 4


def check(tree: ConfigTree) -> list[ConfigError]:
    """Problems with the service files that every later check relies on: YAML that loads
    into a mapping (each reported here once; the later checks pass over such a file), and
    files where the layout does not look for them."""
    errors = tree.unreadable()
    for relative in walk(tree.root, ".yaml"):
        path = tree.root / relative
        if path.name in SERVICE_FILES and _in_provider_dir(relative) and not _indexed(relative):
            provider = next(part for part in relative.parts if part in PROVIDER_DIRS)
            errors.append(
                ConfigError(
                    str(path),
                    "",
                    f"ignored: {provider}/ is where Keptn kept {provider}'s sli.yaml, not a"
                    " project, stage or service",
                )
            )
    for path in (tree.root / relative for relative in walk(tree.root, ".yml")):
        if path.with_suffix(".yaml").name in SERVICE_FILES:
            errors.append(
                ConfigError(str(path), "", f"ignored: the file must be named {path.stem}.yaml")
            )
    return errors
