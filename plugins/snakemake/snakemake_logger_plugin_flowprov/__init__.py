"""flowprov's Snakemake logger plugin: `snakemake --logger flowprov`.

Snakemake 9 finds it by its module name (snakemake_logger_plugin_*). It records the workflow as a
pipeline Transform and Run, each rule as a rule Transform, each job as a Run with the files it
read and wrote (hashed in full, registered in place) and the software it ran with (`software.py`:
conda env, container, modules, wrapper, deployed or only declared). The translation lives in
`translate.py`; this module is only the logger-plugin surface.
"""

import logging
from dataclasses import dataclass, field
from logging import LogRecord
from typing import Optional

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

from .translate import (
    MainThreadWatcher,
    Translator,
    snakemake_version,
    version_warning,
    watch_fatal_signals,
)


def _opt(help_text: str, default=None, choices=None):
    meta = {"help": help_text, "env_var": True, "required": False}
    if choices:
        meta["choices"] = choices
    return field(default=default, metadata=meta)


# No `from __future__ import annotations` here: Snakemake turns these field types into argparse
# types, so they must be real objects (Optional[str]), not strings.
@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    """`--logger-flowprov-<name>`, or SNAKEMAKE_LOGGER_FLOWPROV_<NAME>."""

    instance: Optional[str] = _opt(
        "flowprov instance to record into (a name or an instance yaml path); default: FLOWPROV_INSTANCE, "
        "then the current instance"
    )
    register: str = _opt(
        "which files to hash and register: both, outputs, inputs or none",
        "both",
        ["both", "outputs", "inputs", "none"],
    )
    name: Optional[str] = _opt(
        "name of the pipeline Transform (default: the workflow folder's name)"
    )
    version: Optional[str] = _opt(
        "version of the pipeline Transform, e.g. 7.2.0 (default: none; code changes still version it)"
    )
    reference: Optional[str] = _opt(
        "a URL documenting the pipeline, stored as the Transform's reference"
    )
    spool: Optional[str] = _opt(
        "file to keep events in if neither the store nor the journal folder can be written"
        " (default: .snakemake/flowprov-spool.jsonl)"
    )


class LogHandler(LogHandlerBase):
    def __post_init__(self) -> None:
        self.translator = Translator(
            self.settings, dryrun=bool(getattr(self.common_settings, "dryrun", False))
        )
        if self.translator.enabled:
            warning = version_warning(snakemake_version())
            if warning:
                logging.getLogger("flowprov").warning(warning)
        # temp() files must be hashed before Snakemake deletes them: see MainThreadWatcher
        self._watcher = MainThreadWatcher(self.translator)
        self._snakemake_logger().addHandler(self._watcher)
        watch_fatal_signals(self.translator)

    @staticmethod
    def _snakemake_logger() -> logging.Logger:
        try:
            from snakemake.logging import logger

            if isinstance(logger, logging.Logger):
                return logger
        except ImportError:
            pass
        return logging.getLogger("snakemake.logging")

    def emit(self, record: LogRecord) -> None:
        self.translator.handle(record)  # never raises: the workflow must not notice us

    def close(self) -> None:
        try:
            self._snakemake_logger().removeHandler(self._watcher)
            self.translator.close()
        finally:
            super().close()

    @property
    def writes_to_stream(self) -> bool:
        return False

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True  # we want every record, whatever --quiet says

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False


__all__ = ["LogHandler", "LogHandlerSettings"]
