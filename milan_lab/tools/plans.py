"""Study plans: what a study will run and how it will decide, written down (and committed) before its
first run, and the per-run results stamped with the plan they were made under.

A plan is a YAML file (the repository keeps them in ``benchmarks/plans/NAME.yaml``)::

    name: ablation_dense            # the file's stem
    study: ablation                 # the runner that reads it
    preset: milan_vit-micro-p8_offline
    arms: [MILAN, random masking]   # arm names the runner knows
    baseline: MILAN                 # the arm every other is compared with
    seeds: [0, 1, 2]                # paired seeds
    overrides: {epochs: 6}          # config overrides of every run
    sizes: {eval_val: 512}          # evaluation sizes
    probes: [knn_mean, linear_mean] # the probes every run is scored on (evaluation.suite); null: the runner's own
    primary: [linear_mean]          # declared primary metric(s)
    holm_family: [linear_mean]      # metrics adjusted together (Holm), over every arm compared with the baseline
    tost_margin: null               # equivalence margin (metric units), or null for no equivalence test
    decision_rule: "..."            # what the study will conclude from which result
    retrospective: false            # true: written down after the runs it describes (said in the table's footer)

Its hash is the sha256 of the canonical content (the parsed YAML as sorted, compact JSON: comments and
layout do not count). Every run's ``result.json`` carries the plan's name and hash and the provenance
taken when the run started (commit, uncommitted changes, date); a study refuses to reuse a finished run
made under another plan (or none), so one study's numbers never mix two plans.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from milan_lab.config import parse_yaml
from milan_lab.errors import ConfigError

REQUIRED = ("name", "study", "arms", "baseline", "seeds", "primary", "holm_family", "tost_margin", "decision_rule")
OPTIONAL = {"preset": None, "variant": None, "overrides": {}, "sizes": {}, "notes": None, "retrospective": False,
            "probes": None}
# Keys that came after plans were first hashed: left at their default they are not hashed, so that a plan written
# before them keeps its hash (and the runs stamped with it stay reusable).
UNHASHED_DEFAULTS = {"probes": None}


@dataclass(frozen=True)
class Plan:
    """A loaded plan: its content (every key of ``REQUIRED`` and ``OPTIONAL``), hash and file."""
    content: dict
    hash: str
    path: Path | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return self.content["name"]

    def __getitem__(self, key):
        return self.content[key]

    def summary(self) -> dict:
        """What a study's record keeps of its plan: name, hash, the planned arms, baseline and seeds, how it decides."""
        return {"name": self.name, "hash": self.hash, "arms": list(self["arms"]), "baseline": self["baseline"],
                "seeds": list(self["seeds"]),
                "primary": list(self["primary"]), "holm_family": list(self["holm_family"]),
                "tost_margin": self["tost_margin"], "decision_rule": self["decision_rule"],
                "retrospective": self["retrospective"], "probes": self["probes"]}


def plan_hash(content: dict) -> str:
    """sha256 of the canonical content: sorted keys, compact separators (a YAML date counts as its text)."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


def make_plan(content: dict, path: Path | None = None) -> Plan:
    """A Plan from its content, checked: every required key, lists where lists belong, the baseline
    among the arms, primaries in the Holm family, a positive margin or none."""
    where = str(path) if path else "plan"
    if not isinstance(content, dict):
        raise ConfigError(f"{where}: a plan is a mapping of keys ({', '.join(REQUIRED)}), got {type(content).__name__}")
    missing = [k for k in REQUIRED if k not in content]
    if missing:
        raise ConfigError(f"{where}: missing key {missing[0]!r} (a plan declares {', '.join(REQUIRED)})")
    unknown = sorted(set(content) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join((*REQUIRED, *OPTIONAL))}")
    c = {**OPTIONAL, **content}
    for key in ("arms", "seeds", "primary", "holm_family"):
        c[key] = _as_list(c[key])
        if not c[key]:
            raise ConfigError(f"{where}: {key!r} is empty")
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in c["seeds"]):
        raise ConfigError(f"{where}: 'seeds' must be non-negative integers, got {c['seeds']}")
    if c["baseline"] not in c["arms"]:
        raise ConfigError(f"{where}: baseline {c['baseline']!r} is not one of the arms {c['arms']}")
    outside = [m for m in c["primary"] if m not in c["holm_family"]]
    if outside:
        raise ConfigError(f"{where}: primary metric {outside[0]!r} is not in 'holm_family' {c['holm_family']}")
    if not isinstance(c["retrospective"], bool):
        raise ConfigError(f"{where}: 'retrospective' must be true or false, got {c['retrospective']!r}")
    margin = c["tost_margin"]
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin <= 0):
        raise ConfigError(f"{where}: 'tost_margin' must be a positive number or null, got {margin!r}")
    for key in ("overrides", "sizes"):
        if not isinstance(c[key], dict):
            raise ConfigError(f"{where}: {key!r} must be a mapping, got {c[key]!r}")
    if c["probes"] is not None:
        c["probes"] = _as_list(c["probes"])
        if not c["probes"] or not all(isinstance(p, str) for p in c["probes"]):
            raise ConfigError(f"{where}: 'probes' must be a list of probe names or null, got {c['probes']!r}")
    hashed = {k: v for k, v in c.items() if not (k in UNHASHED_DEFAULTS and v == UNHASHED_DEFAULTS[k])}
    return Plan(c, plan_hash(hashed), path)


def load_plan(path: str | Path) -> Plan:
    """Read and check a plan file (YAML); a ConfigError naming the file for a missing or bad one."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"plan {path} not found")
    content = parse_yaml(path.read_text(), f"plan {path}")  # the config files' reader: no aliases, bounded
    plan = make_plan(content, path)
    if plan.name != path.stem:
        raise ConfigError(f"plan {path}: its name {plan.name!r} is not the file's name {path.stem!r}")
    return plan


def run_start(plan: Plan | None) -> dict:
    """What a run records when it starts: the plan's name and hash, and the code's commit, whether it
    had uncommitted changes, the date (taken now, not when the study's record is written) and the instruction
    set torch's CPU kernels run with (a run reused from a sitting on another CPU may score a few scenes
    differently: benchmarks/score_repeat.py)."""
    from milan_lab.tools.records import provenance  # a sibling tool
    prov = provenance()
    return {"plan": plan.name if plan else None, "plan_hash": plan.hash if plan else None,
            "started": {"commit": prov["commit"], "uncommitted_changes": prov["uncommitted_changes"], "date": now(),
                        "cpu_capability": prov["cpu_capability"]}}


def finished_run(path: str | Path, plan: Plan | None, scored_on: dict | None = None) -> dict | None:
    """The result of a run finished earlier (``path``: its result.json), None if there is none; a
    ConfigError naming the run and both hashes if it was made under another plan (or without one).
    With ``scored_on`` (what the study makes a run with: its probes and sizes, and the device it trains
    and is scored on; stored in the result under that key) a result made with anything else, or one that
    does not record an entry, is refused too, naming what differs: its numbers are not those the study
    would compute."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: a broken run result ({e.msg} at line {e.lineno}); delete it to run again") from None
    check_run(result, plan, scored_on, str(path.parent))
    return result


def check_run(result: dict, plan: Plan | None, scored_on: dict | None, where: str, remedy: str | None = None) -> None:
    """A finished run's ``result`` against the study that would reuse it (``finished_run``'s checks, also
    applied to the runs of a record before they are restored): made under ``plan`` and, with ``scored_on``,
    on those probes, sizes and device; otherwise a ConfigError starting with ``where``, saying what differs and
    ending with ``remedy`` (default: another output folder, or the plan or probes, sizes and device it was made with)."""
    want = plan.hash if plan else None
    if result.get("plan_hash") != want:
        def named(name, h):
            return f"plan {name!r} ({str(h)[:12]})" if h else "no plan"
        raise ConfigError(f"{where}: a finished run made under {named(result.get('plan'), result.get('plan_hash'))}, "
                          f"not {named(plan.name if plan else None, want)}; "
                          f"{remedy or 'pass another output folder or restore that plan'}")
    if scored_on is not None and result.get("scored_on") != scored_on:
        raise ConfigError(f"{where}: a finished run scored on {_differs(result.get('scored_on'), scored_on)}; "
                          f"{remedy or 'pass another output folder or the probes, sizes and device it was made with'}")


def _differs(had: dict | None, want: dict) -> str:
    """The first entry where a run's ``scored_on`` differs from the study's, as 'KEY X, not Y'."""
    if not isinstance(had, dict):
        return f"unrecorded probes and sizes, not {want}"
    for key in want.keys() | had.keys():
        a, b = had.get(key), want.get(key)
        if key not in had:  # a run made before the study recorded it (its device, say)
            return f"unrecorded {key}, not {b!r}"
        if isinstance(a, dict) and isinstance(b, dict) and a != b:
            return _differs(a, b)
        if a != b:
            return f"{key} {a!r}, not {b!r}"
    return "the same"  # not reached: only called when they differ


def write_run_result(path: str | Path, row: dict, start: dict) -> dict:
    """``row`` with the run's start stamp (``run_start``), written to ``path`` atomically (the suite's one
    result writer); returns it."""
    from milan_lab.evaluation.suite import write_result  # here, not at the top: it loads torch, and a plan is read before any work
    return write_result(path, {**row, **start})


def check_against_plan(plan: Plan, **given) -> None:
    """A study's arguments against its plan: arms and seeds must be among the plan's (fewer is a
    deviation the footer reports), every other given value equal to the plan's."""
    for key in ("arms", "seeds"):
        if key in given:
            extra = [v for v in given[key] if v not in plan[key]]
            if extra:
                raise ConfigError(f"plan {plan.name}: {key[:-1]} {extra[0]!r} is not in the plan's {key} {plan[key]}")
    for key, value in given.items():
        if key not in ("arms", "seeds") and plan[key] != value:
            raise ConfigError(f"plan {plan.name}: {key} {value!r} differs from the plan's {plan[key]!r}; write another plan")


def runs_table(rows: list[dict], since: str | None = None) -> list[dict]:
    """Per run, what a study's record lists: arm, seed, the commit it started from, uncommitted changes,
    the date, the CPU instruction set (None for runs from before it was kept), and whether it was reused
    (started before ``since``, the ISO date this sitting began)."""
    def one(r):
        start = r.get("started") or {}
        return {"arm": r["arm"], "seed": r["seed"], "commit": start.get("commit"),
                "uncommitted_changes": start.get("uncommitted_changes"), "started": start.get("date"),
                "cpu_capability": start.get("cpu_capability"),
                "reused": bool(since and start.get("date") and _instant(start["date"]) < _instant(since))}
    return [one(r) for r in rows]


def now() -> str:
    """The date as runs record it (UTC, ISO, to the microsecond): a sitting's start for ``runs_table``. Finer than
    the records' seconds, so that a run reused from a sitting that ended within the same second as this one began is
    still told from this sitting's first run."""
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _instant(date: str):
    """An ISO date as a time that compares (runs from older records have whole seconds, newer ones microseconds)."""
    from datetime import datetime
    return datetime.fromisoformat(date)


def deviations(plan: dict, rows: list[dict]) -> list[str]:
    """How the runs depart from their plan (``plan``: ``Plan.summary()``): planned arms not run,
    arms with fewer seeds than planned."""
    seeds: dict[str, set] = {}
    for r in rows:
        seeds.setdefault(r["arm"], set()).add(r["seed"])
    out = [f"arm {a!r} not run" for a in plan["arms"] if a not in seeds]
    for arm in plan["arms"]:
        missing = [s for s in plan["seeds"] if arm in seeds and s not in seeds[arm]]
        if missing:
            out.append(f"{arm}: {len(seeds[arm])} of {len(plan['seeds'])} planned seeds (missing {', '.join(map(str, missing))})")
    return out


def plan_footer(result: dict) -> str:
    """The line under a study's table: its plan (name, hash), any deviation from it, the commits its runs
    started from, and the CPU instruction sets they ran with when there were several (a probe may score a few
    scenes differently under each); empty for a record made without a plan."""
    plan = result.get("plan")
    if not plan:
        return ""
    found = deviations(plan, result["rows"])
    runs = result.get("runs") or []
    dirty = sum(1 for r in runs if r.get("uncommitted_changes"))
    commits = sorted({r["commit"] for r in runs if r.get("commit")})
    isas = sorted({r["cpu_capability"] for r in runs if r.get("cpu_capability")})
    unknown = sum(1 for r in runs if not r.get("cpu_capability"))  # runs from before records kept it
    when = " (written after its runs: retrospective, not a pre-registration)" if plan.get("retrospective") else ""
    return (f"Plan `{plan['name']}` ({plan['hash'][:12]}){when}: " + ("; ".join(found) if found else "run as planned")
            + (f"; runs started from commit{'s' if len(commits) > 1 else ''} {', '.join(commits)}" if commits else "")
            + (f", {dirty} with uncommitted changes" if dirty else "")
            + (f"; runs on CPUs with different instruction sets ({', '.join(isas)})" if len(isas) > 1 else "")
            + (f"; {unknown} run{'s' if unknown > 1 else ''} with no recorded instruction set" if isas and unknown else "")
            + ". ")
