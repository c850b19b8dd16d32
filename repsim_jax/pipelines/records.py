"""Step records: what lets a rerun of a pipeline reuse a step instead of running it again.

A step that completes leaves `<workdir>/steps/<step>.json`, written last and atomically:

  {"step", "title", "created" (UTC, ISO),
   "key": what the step's results are a function of (`step_key`): its name, settings (and the
          settings of other steps it reads), the config outside `analysis`, the input
          fingerprints (stores, checkpoints), the package version, the step module's `VERSION`,
          and the digests of the records of the steps it `READS`,
   "saved": the result npz files it wrote (`Run.save`), relative to the workdir,
   "returned": "steps/<step>.npz": its returned value and report sections
               (`results.tree_to_bytes`),
   "files": {every file it wrote, relative path: {"bytes", "sha256"}}}

A record is reusable when its key equals the rerun's and every file is unchanged
(`matching_record`). A step that is recomputed gets a new record, hence a new digest, so every
step that reads it is recomputed too.
"""
from __future__ import annotations

import datetime
import json
import os
from typing import Any, Callable, Mapping, Sequence

from repsim_jax import results as results_lib
from repsim_jax.pipelines.report import Section

RECORDS = "steps"
# config keys that change how a run goes, never its numbers (each step's settings are in
# `analysis`, keyed per step)
RUN_CONTROL = ("analysis", "resume", "recompute", "distributed", "num_threads")


def _plain(value: Any) -> Any:
  """Settings as JSON values; the list of steps is not a setting (demo steps get `analysis`)."""
  value = results_lib.to_jsonable(value)
  return {k: v for k, v in value.items() if k != "steps"} if isinstance(value, dict) else value


def step_key(name: str, module: Any, settings: Callable[[str], Any], *, config: Any,
             inputs: Mapping[str, str], upstream: Mapping[str, str]) -> dict[str, Any]:
  """What step `name` (of `module`, with `settings(name)`) computes from; equal keys, equal
  results. `module` may declare `VERSION` (default 1), `READS` (steps whose results it reads)
  and `READS_SETTINGS` (steps whose settings it reads); `upstream`: step -> record digest."""
  config = results_lib.to_jsonable(config) if config is not None else {}
  return {
      "step": name,
      "version": int(getattr(module, "VERSION", 1)),
      "package": results_lib.package_versions().get("repsim_jax"),
      "settings": _plain(settings(name)),
      "settings_of": {n: _plain(settings(n)) for n in getattr(module, "READS_SETTINGS", ())},
      "config": ({k: v for k, v in config.items() if k not in RUN_CONTROL}
                 if isinstance(config, dict) else config),
      "inputs": dict(inputs),
      "reads": {n: upstream.get(n) for n in getattr(module, "READS", ())},
  }


def paths(workdir: str, name: str) -> tuple[str, str]:
  """(record, stored value) of step `name`: `<workdir>/steps/<name>.json` and `.npz`."""
  return (os.path.join(workdir, RECORDS, f"{name}.json"),
          os.path.join(workdir, RECORDS, f"{name}.npz"))


def digest(record: Mapping[str, Any]) -> str:
  """What the steps reading a step's results keep of its record."""
  return results_lib.fingerprint_json(record)


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
  """Dotted paths where two keys differ ("settings.seed", "reads.block_stats")."""
  if isinstance(old, dict) and isinstance(new, dict):
    return [d for k in sorted(set(old) | set(new), key=str)
            for d in differences(old.get(k), new.get(k), f"{prefix}{k}.")]
  return [] if json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True) else [
      prefix.rstrip(".") or "key"]


def matching_record(workdir: str, name: str, key: Mapping[str, Any]
                    ) -> tuple[dict[str, Any] | None, str]:
  """(step `name`'s record if a rerun with `key` may reuse it, else None; why not)."""
  path = paths(workdir, name)[0]
  if not os.path.exists(path):
    return None, "no record"
  try:
    with open(path) as f:
      record = json.load(f)
  except (OSError, ValueError):
    return None, "unreadable record"
  if json.dumps(record.get("key"), sort_keys=True) != json.dumps(key, sort_keys=True):
    return None, "changed: " + ", ".join(differences(record.get("key") or {}, key)[:4])
  for rel, expected in record.get("files", {}).items():
    full = os.path.join(workdir, rel)
    if not os.path.exists(full):
      return None, f"{rel} is missing"
    if os.path.getsize(full) != expected["bytes"] or results_lib.file_digest(full) != expected:
      return None, f"{rel} changed since the record"
  return record, ""


def write_record(workdir: str, name: str, title: str, key: Mapping[str, Any], payload: bytes, *,
                 saved: Sequence[str], figures: Sequence[str]) -> dict[str, Any]:
  """Writes the stored value `payload`, then the record (last, atomically); returns it.
  `saved`: the npz paths `Run.save` returned (their JSON files are listed too)."""
  record_path, returned_path = paths(workdir, name)
  results_lib.write_atomic(returned_path, payload)
  outputs = [p for npz in saved for p in (npz, os.path.splitext(npz)[0] + ".json")]
  outputs += [*figures, returned_path]
  rel = lambda p: os.path.relpath(p, workdir)
  record = {"step": name, "title": title,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "key": dict(key), "saved": [rel(p) for p in saved], "returned": rel(returned_path),
            "files": {rel(p): results_lib.file_digest(p) for p in dict.fromkeys(outputs)}}
  results_lib.write_atomic(record_path, json.dumps(record, indent=1))
  return record


def plain_section(section: Section, workdir: str) -> dict[str, Any]:
  """A report section as stored values, figure paths relative to `workdir`."""
  rel = lambda p: os.path.relpath(p, workdir) if os.path.isabs(p) else p
  return {"title": section.title, "notes": section.notes, "rows": section.rows,
          "tables": section.tables,
          "figures": [(caption, [rel(p) for p in ps]) for caption, ps in section.figures]}


def section_from_plain(plain: Mapping[str, Any], workdir: str, *, draw: bool) -> Section:
  """The section `plain_section` stored."""
  return Section(plain["title"], draw=draw, notes=list(plain["notes"]), rows=list(plain["rows"]),
                 tables=list(plain["tables"]),
                 figures=[(c, [os.path.join(workdir, p) for p in ps])
                          for c, ps in plain["figures"]])
