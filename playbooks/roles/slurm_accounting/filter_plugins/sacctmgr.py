"""What sacctmgr must do to make slurmdbd hold the QoS, clusters and federation a role asks for.

Each filter takes what ``sacctmgr -n -P show ...`` printed and the wanted state, and returns the
sacctmgr commands (argument vectors, for the command module's ``argv``: no shell) that bring the
database there; an empty list when it is there already. Every name and number is checked before
it is put in a command: a name with a comma would name two QoS, one with ``=`` another setting.

sacctmgr prints MaxWall as ``[days-]hours:minutes:seconds`` and MaxTRESPU as ``cpu=4,gres/gpu=8``
(src/sacctmgr/common.c, src/common/parse_time.c ``mins2time_str``), an unset limit as an empty
field, and lower-cases QoS and cluster names. A limit is cleared with ``-1`` (sacctmgr(1)).
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

SACCTMGR = ["sacctmgr", "-i"]
# The fields the QoS filter reads, in this order: `sacctmgr -n -P show qos format=...`.
QOS_FORMAT = "Name,Priority,MaxWall,MaxJobsPU,MaxTRESPU"
# QoS, cluster and federation names: what Slurm stores, with nothing sacctmgr would read as syntax.
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
# Slurm's time formats (sacctmgr(1), "MaxWallDurationPerJob"): minutes, minutes:seconds,
# hours:minutes:seconds, days-hours, days-hours:minutes, days-hours:minutes:seconds.
SLURM_TIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")
UNIT_MINUTES = {"m": 1, "h": 60, "d": 24 * 60}
GPU_TRES = "gres/gpu"
# Slurm keeps limits in 32 bits; INFINITE (0xffffffff) means no limit.
LIMIT_MAX = 2**32 - 2


def _name(value, what: str) -> str:
    text = str(value).lower() if value is not None else ""
    if not NAME.fullmatch(text):
        raise AnsibleFilterError(f"{what} {value!r} is not a name of a-z, 0-9 and _.- (at most 64)")
    return text


def _count(value, what: str, low: int = 0):
    """An integer limit, or None for no limit."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise AnsibleFilterError(f"{what} must be a whole number, not {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise AnsibleFilterError(f"{what} must be a whole number, not {value!r}") from None
    if not low <= number <= LIMIT_MAX:
        raise AnsibleFilterError(f"{what} must be between {low} and {LIMIT_MAX}, not {number}")
    return number


def minutes(value, what: str = "max_wall"):
    """A wall-clock limit in minutes (None for none): minutes as a number, a number with its unit
    (``90m``, ``12h``, ``7d``) or one of Slurm's time formats; seconds round up, as in Slurm."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise AnsibleFilterError(f"{what} must be a duration, not {value!r}")
    if isinstance(value, int):
        return _count(value, what, 1)
    text = str(value).strip()
    unit = re.fullmatch(r"(\d+)([mhd])", text)
    if unit:
        return _count(int(unit[1]) * UNIT_MINUTES[unit[2]], what, 1)
    match = SLURM_TIME.fullmatch(text)
    if not match:
        raise AnsibleFilterError(f"{what} {value!r} is not a duration (90m, 12h, 7d, 5400 or 3-12:00:00)")
    days, first, second, third = (int(g) if g is not None else None for g in match.groups())
    if days is not None:  # days-hours[:minutes[:seconds]]
        seconds = ((days * 24 + first) * 60 + (second or 0)) * 60 + (third or 0)
    elif third is not None:  # hours:minutes:seconds
        seconds = (first * 60 + second) * 60 + third
    elif second is not None:  # minutes:seconds
        seconds = first * 60 + second
    else:  # minutes
        seconds = first * 60
    return _count(-(-seconds // 60), what, 1)


def _fields(line: str, count: int) -> list[str]:
    """The ``|``-separated fields of one line. sacctmgr 22.05 ends every federation line but the
    first with one more ``|`` even with ``-P``, which is dropped."""
    fields = line.split("|")
    while len(fields) > count and fields[-1] == "":
        fields.pop()
    return fields


def _gpus(tres: str):
    """The gres/gpu count in a TRES list as sacctmgr prints it (None when it has none)."""
    for item in tres.split(","):
        key, _, count = item.partition("=")
        if key.strip() == GPU_TRES:
            return _count(count, "MaxTRESPU gres/gpu")
    return None


def _current_qos(shown: str) -> dict:
    out = {}
    for line in str(shown).splitlines():
        if not line.strip():
            continue
        fields = _fields(line, 5)
        if len(fields) != 5:
            raise AnsibleFilterError(f"sacctmgr printed {line!r}, not the five fields {QOS_FORMAT}")
        name, priority, wall, jobs, tres = fields
        out[name.lower()] = {
            "priority": _count(priority, f"priority of QoS {name}") or 0,
            "max_wall": minutes(wall, f"MaxWall of QoS {name}"),
            "max_jobs_per_user": _count(jobs, f"MaxJobsPU of QoS {name}"),
            "max_gpus_per_user": _gpus(tres),
        }
    return out


def _wanted_qos(qos: dict) -> dict:
    if not isinstance(qos, dict):
        raise AnsibleFilterError(f"a QoS must be a mapping, not {qos!r}")
    unknown = sorted(set(qos) - {"name", "priority", "max_wall", "max_jobs_per_user", "max_gpus_per_user"})
    if unknown:
        raise AnsibleFilterError(f"QoS {qos.get('name')!r}: unknown settings {', '.join(map(str, unknown))}")
    name = _name(qos.get("name"), "QoS name")
    return {
        "name": name,
        "priority": _count(qos.get("priority"), f"QoS {name} priority") or 0,
        "max_wall": minutes(qos.get("max_wall"), f"QoS {name} max_wall"),
        "max_jobs_per_user": _count(qos.get("max_jobs_per_user"), f"QoS {name} max_jobs_per_user", 1),
        "max_gpus_per_user": _count(qos.get("max_gpus_per_user"), f"QoS {name} max_gpus_per_user", 1),
    }


def _settings(want: dict, have: dict | None) -> list[str]:
    """sacctmgr settings that turn ``have`` (None: a new QoS) into ``want``; a None limit clears."""
    keys = (("priority", "Priority={}"), ("max_wall", "MaxWall={}"), ("max_jobs_per_user", "MaxJobsPerUser={}"),
            ("max_gpus_per_user", f"MaxTRESPerUser={GPU_TRES}={{}}"))
    out = []
    for key, form in keys:
        value = want[key]
        if have is None:
            if value is not None and not (key == "priority" and value == 0):
                out.append(form.format(value))
        elif value != have[key]:
            out.append(form.format(-1 if value is None else value))
    return out


def qos_commands(shown, wanted) -> list[list[str]]:
    """The sacctmgr commands that make every QoS in ``wanted`` exist with exactly its priority and
    limits (a missing or null limit is no limit), from ``shown``, the output of
    ``sacctmgr -n -P show qos format=Name,Priority,MaxWall,MaxJobsPU,MaxTRESPU``. Other QoS, and
    TRES limits other than gres/gpu, are left alone."""
    current = _current_qos(shown)
    commands, seen = [], set()
    for qos in wanted or []:
        want = _wanted_qos(qos)
        if want["name"] in seen:
            raise AnsibleFilterError(f"QoS {want['name']} is listed twice")
        seen.add(want["name"])
        have = current.get(want["name"])
        settings = _settings(want, have)
        if have is None:
            commands.append(SACCTMGR + ["add", "qos", f"Name={want['name']}"] + settings)
        elif settings:
            commands.append(SACCTMGR + ["modify", "qos", "where", f"Name={want['name']}", "set"] + settings)
    return commands


def cluster_commands(shown, wanted) -> list[list[str]]:
    """``sacctmgr add cluster`` for each name in ``wanted`` that ``shown`` (the output of
    ``sacctmgr -n -P show cluster format=Cluster``) lacks; empty names are skipped."""
    current = {_fields(line, 1)[0].strip().lower() for line in str(shown).splitlines() if line.strip()}
    missing = []
    for value in wanted or []:
        if value is None or value == "":
            continue
        name = _name(value, "cluster name")
        if name not in current and name not in missing:
            missing.append(name)
    return [SACCTMGR + ["add", "cluster", f"Name={name}"] for name in missing]


def federation_commands(shown, federation) -> list[list[str]]:
    """The sacctmgr command that makes ``federation`` ({name, clusters}) exist with exactly those
    member clusters, from ``shown``, the output of
    ``sacctmgr -n -P show federation format=Federation,Cluster``; none for a null federation."""
    if not federation:
        return []
    if not isinstance(federation, dict) or set(federation) - {"name", "clusters"}:
        raise AnsibleFilterError(f"the federation must be a mapping of name and clusters, not {federation!r}")
    name = _name(federation.get("name"), "federation name")
    clusters = [_name(c, f"cluster of federation {name}") for c in federation.get("clusters") or []]
    if not clusters:
        raise AnsibleFilterError(f"federation {name} lists no clusters")
    if len(set(clusters)) != len(clusters):
        raise AnsibleFilterError(f"federation {name} lists a cluster twice")
    members, exists = set(), False
    for line in str(shown).splitlines():
        if not line.strip():
            continue
        fed, cluster = (_fields(line, 2) + [""])[:2]
        if fed.strip().lower() == name:
            exists = True
            if cluster.strip():
                members.add(cluster.strip().lower())
    setting = "Clusters=" + ",".join(clusters)
    if not exists:
        return [SACCTMGR + ["add", "federation", f"Name={name}", setting]]
    if members != set(clusters):
        return [SACCTMGR + ["modify", "federation", "where", f"Name={name}", "set", setting]]
    return []


class FilterModule:
    def filters(self):
        return {
            "slurm_accounting_qos_commands": qos_commands,
            "slurm_accounting_cluster_commands": cluster_commands,
            "slurm_accounting_federation_commands": federation_commands,
        }
