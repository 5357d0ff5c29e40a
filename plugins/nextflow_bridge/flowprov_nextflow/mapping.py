"""A YAML file naming processes as the lab knows them.

    processes:
      - match: "*CELLRANGER_COUNT"       # fnmatch pattern on the full process path
        name: Cell Ranger
        version: 7.2.0
        reference: https://www.10xgenomics.com/support/software/cell-ranger
      - match: "*:FASTQC"
        name: FastQC

The first matching entry wins; unmatched processes keep their Nextflow name.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import yaml
from flowprov.errors import ValidationError

_KEYS = {"match", "name", "version", "reference", "reference_type", "description"}


@dataclass(frozen=True)
class Rule:
    match: str
    name: str | None = None
    version: str | None = None
    reference: str | None = None
    reference_type: str | None = None
    description: str | None = None


class Mapping:
    def __init__(self, rules: list[Rule] | None = None):
        self.rules = rules or []

    @classmethod
    def load(cls, path: str | Path | None) -> Mapping:
        if path is None:
            return cls()
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as e:
            raise ValidationError(f"cannot read mapping file {path}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ValidationError(f"mapping file {path} is not valid YAML: {e}") from None
        entries = data.get("processes") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ValidationError(f"mapping file {path}: expected a top-level 'processes:' list")
        rules = []
        for i, entry in enumerate(entries, 1):
            if not isinstance(entry, dict) or "match" not in entry:
                raise ValidationError(f"mapping file {path}, entry {i}: needs a 'match:' pattern")
            extra = set(entry) - _KEYS
            if extra:
                raise ValidationError(
                    f"mapping file {path}, entry {i}: unknown key(s) {', '.join(sorted(extra))}"
                )
            rules.append(Rule(**{k: (str(v) if v is not None else None) for k, v in entry.items()}))
        return cls(rules)

    def lookup(self, process: str) -> Rule | None:
        short = process.rsplit(":", 1)[-1]
        for rule in self.rules:
            if fnmatchcase(process, rule.match) or fnmatchcase(short, rule.match):
                return rule
        return None
