"""Routing rules: which queue and priority a request gets, and why, decided by versioned data.

The rules are data (rules.v<N>.json in this package), checked here against the catalog: a bad
entry is refused with its JSON path, so a broken file stops routing at start-up instead of
misrouting requests. Pure: the caller reads the file and hands over the decoded JSON.

How rules combine (every matching rule is found, in file order):
- the queue comes from the first matching rule that names one; when none does, the default
  queue of the request's department, `<department>.default`, takes it;
- the priority is the highest of the matching rules' priorities, 0 when none sets one. The
  highest, not a sum: a rule's number then means "at least this urgent" on its own, and an
  overlapping rule added later cannot inflate priorities by accident;
- the decision names one rule, `rules.v<version>:<id>`: the one that chose the queue, else the
  one that gave the priority, else `default`.

On a transfer the department is the reviewer's choice, not the catalog's: the queue of a rule
that lies in another department is passed over, so no rule can undo a transfer. Its priority
still counts: what made the request urgent is about the request, not where it is (and review
keeps a transferred request's higher priority, so GetDecision agrees with its queue order).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, NoReturn

from tawasul_platform.catalog import Catalog, FieldSpec, FieldType, SubService
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.i18n import Bilingual
from tawasul_platform.identity import BENEFICIARY_ROLES

DEFAULT_RULE = "default"
DEFAULT_QUEUE = "default"
DEFAULT_PRIORITY = 0
MAX_PRIORITY = 1000
# So that `transfer:<from>-><to>+rules.v<N>:<id>` and the queue fit their columns in decisions.
MAX_RULE_ID = 100
MAX_QUEUE = 100
APPLICANT_KINDS = tuple(sorted(role.value for role in BENEFICIARY_ROLES))
# The channels RequestSubmitted.channel names (protos/tawasul/events/v1/events.proto).
CHANNELS = ("web", "mobile", "establishment-portal")
CONDITIONS = frozenset(
    {
        "applicant_kinds",
        "subject_nationalities",
        "channels",
        "sub_services",
        "departments",
        "fields",
        "follow_ups_at_least",
    }
)

_KEBAB = r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*"
_RULE_ID = re.compile(_KEBAB)
_QUEUE = re.compile(rf"({_KEBAB})\.{_KEBAB}")
_ALPHA3 = re.compile(r"[A-Z]{3}")


def queue_of(department: str) -> str:
    return f"{department}.{DEFAULT_QUEUE}"


def department_of(queue: str) -> str:
    return queue.split(".", 1)[0]


@dataclass(frozen=True)
class Attributes:
    """What rules may look at in a request, real or hypothetical."""

    sub_service_code: str
    applicant_kind: str = ""
    subject_nationality: str = ""
    channel: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)
    follow_up_count: int = 0


@dataclass(frozen=True)
class Conditions:
    """All must hold; within one condition, any listed value will do. Empty means any."""

    applicant_kinds: tuple[str, ...] = ()
    subject_nationalities: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    sub_services: tuple[str, ...] = ()
    # The department the request is routed to: the catalog's, or a transfer's target.
    departments: tuple[str, ...] = ()
    fields: tuple[tuple[str, tuple[str, ...]], ...] = ()
    follow_ups_at_least: int = 0

    def reasons(self, request: Attributes, department: str) -> tuple[str, ...] | None:
        """Why each condition holds, in words; None when one does not."""
        reasons: list[str] = []
        for label, actual, allowed in (
            ("sub-service", request.sub_service_code, self.sub_services),
            ("department", department, self.departments),
            ("applicant kind", request.applicant_kind, self.applicant_kinds),
            ("subject nationality", request.subject_nationality, self.subject_nationalities),
            ("channel", request.channel, self.channels),
            *((f"field {n}", request.fields.get(n, ""), v) for n, v in self.fields),
        ):
            if not allowed:
                continue
            if actual not in allowed:
                return None
            reasons.append(_is_one_of(label, actual, allowed))
        if self.follow_ups_at_least:
            if request.follow_up_count < self.follow_ups_at_least:
                return None
            reasons.append(
                f"{request.follow_up_count} follow-ups (at least {self.follow_ups_at_least})"
            )
        return tuple(reasons)


def _is_one_of(label: str, actual: str, allowed: Sequence[str]) -> str:
    if len(allowed) == 1:
        return f"{label} is {actual}"
    return f"{label} {actual} is one of {', '.join(allowed)}"


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    when: Conditions
    queue: str | None = None
    priority: int | None = None


@dataclass(frozen=True)
class Match:
    rule: Rule
    reasons: tuple[str, ...]

    def why(self) -> str:
        return f"rule {self.rule.id} ({self.rule.description}): {', '.join(self.reasons)}"


@dataclass(frozen=True)
class Route:
    department: str
    queue: str
    priority: int
    # `rules.v<version>:<id>`; `rules.v<version>:default` when no rule matched.
    rule: str
    explanation: str
    matched: tuple[Match, ...] = ()
    # The rule that set the priority, named as `rule` is; `default` when none raised it.
    prioritised_by: str = DEFAULT_RULE

    @property
    def by_default(self) -> bool:
        return not self.matched


@dataclass(frozen=True)
class RoutingRules:
    """One version of the rules, checked against the catalog whose departments it names."""

    version: int
    rules: tuple[Rule, ...]
    catalog: Catalog

    def name(self, rule_id: str) -> str:
        return f"rules.v{self.version}:{rule_id}"

    def route(
        self, request: Attributes, *, department: str | None = None, filed_under: str = ""
    ) -> Route:
        """Where `request` goes; `department` is the one it is routed in (a transfer's target,
        which Transfer.check refuses unless the catalog has it, or the one a follow-up finds
        it in), else the catalog decides.

        A sub-service or department the catalog no longer has (it dropped one a request was
        filed or routed under) is one no rule matches on, as an unknown attribute is: the
        request stays routable. With no `department`, it goes to `filed_under`, the department
        intake filed it under, when the catalog still has that; only when it has neither is
        the request refused."""
        v = self.catalog.version
        sub_service = self.catalog.sub_services.get(request.sub_service_code)
        if department is not None:
            home = department
        elif sub_service is not None:
            home = sub_service.department
        elif filed_under in self.catalog.departments:
            home = filed_under
        else:
            raise InvalidArgument(
                {
                    "sub_service_code": f"not a sub-service of catalog v{v}",
                    "department_code": f"not a department of catalog v{v}",
                }
            )

        def elsewhere(rule: Rule) -> bool:
            return bool(department and rule.queue and department_of(rule.queue) != department)

        matched: list[Match] = []
        for rule in self.rules:
            # A rule that would only move the request out of a transfer's department is moot.
            if elsewhere(rule) and rule.priority is None:
                continue
            reasons = rule.when.reasons(request, home)
            if reasons is not None:
                matched.append(Match(rule, reasons))

        by_queue = next((m for m in matched if m.rule.queue and not elsewhere(m.rule)), None)
        # max() keeps the first of equals, so the earlier rule is named on a tie.
        by_priority = max(
            (m for m in matched if m.rule.priority is not None),
            key=lambda m: m.rule.priority or 0,
            default=None,
        )
        queue = by_queue.rule.queue if by_queue and by_queue.rule.queue else queue_of(home)
        priority = DEFAULT_PRIORITY
        if by_priority and by_priority.rule.priority is not None:
            priority = by_priority.rule.priority
        decider = by_queue or by_priority

        lines: list[str] = []
        if by_queue:
            lines.append(f"Queue {queue} by {by_queue.why()}.")
        elif department:
            passed = [m.rule for m in matched if elsewhere(m.rule)]
            lines.append(
                f"Queue {queue}: the default queue of {home}, the transfer's department"
                + "".join(f"; rule {r.id}'s queue {r.queue} is in another" for r in passed)
                + "."
            )
        elif sub_service is None:
            lines.append(
                f"Queue {queue}: no rule chose a queue, and catalog v{v} no longer has"
                f" {request.sub_service_code}: the default queue of {home}, the department it"
                " was filed under."
            )
        else:
            lines.append(
                f"Queue {queue}: no rule chose a queue, and {request.sub_service_code} belongs to"
                f" {home} in catalog v{v}."
            )
        if by_priority is None:
            lines.append(f"Priority {priority}: no rule raised it.")
        elif by_priority is by_queue:
            lines.append(f"Priority {priority} by the same rule.")
        else:
            lines.append(f"Priority {priority} by {by_priority.why()}.")
        others = [m for m in matched if m is not by_queue and m is not by_priority]
        if others:
            lines.append(
                "Also matched, without changing the outcome: "
                + "; ".join(m.why() for m in others)
                + "."
            )
        return Route(
            department=department_of(queue),
            queue=queue,
            priority=priority,
            rule=self.name(decider.rule.id if decider else DEFAULT_RULE),
            explanation=" ".join(lines),
            matched=tuple(matched),
            prioritised_by=self.name(by_priority.rule.id if by_priority else DEFAULT_RULE),
        )

    def explain(self, request: Attributes) -> Route:
        """The route of a hypothetical request, whose every attribute is checked first: one
        intake would refuse (a field the sub-service lacks, a choice it does not offer, a filer
        or nationality it does not admit) gets no route, since no real request takes it.

        Submitted requests are not held to this: intake checked them, and an attribute
        routing does not know only means that no rule matches on it.
        """
        problems: dict[str, str] = {}
        sub_service = self.catalog.sub_services.get(request.sub_service_code)
        if not request.sub_service_code:
            problems["sub_service_code"] = Bilingual("required", "مطلوب")
        elif sub_service is None:
            v = self.catalog.version
            problems["sub_service_code"] = Bilingual(
                f"not a sub-service of catalog v{v}", f"ليست خدمة فرعية في الدليل v{v}"
            )
        if request.applicant_kind and request.applicant_kind not in APPLICANT_KINDS:
            problems["applicant_kind"] = _one_of(APPLICANT_KINDS)
        elif request.applicant_kind and sub_service is not None:
            filers = sorted(role.value for role in sub_service.filers)
            if request.applicant_kind not in filers:
                problems["applicant_kind"] = Bilingual(
                    f"{sub_service.code} is filed by {', '.join(filers)} only",
                    f"لا يقدّم الخدمة الفرعية {sub_service.code} إلا: {'، '.join(filers)}",
                )
        nationality = request.subject_nationality
        if nationality and not _ALPHA3.fullmatch(nationality):
            problems["subject_nationality"] = Bilingual(
                "an ISO 3166-1 alpha-3 code such as YEM, or empty",
                "رمز دولة من ثلاثة أحرف وفق ISO 3166-1 مثل YEM، أو فارغ",
            )
        elif nationality and sub_service is not None and not _admits(sub_service, nationality):
            problems["subject_nationality"] = _nationals_only(sub_service)
        if request.channel and request.channel not in CHANNELS:
            problems["channel"] = _one_of(CHANNELS)
        if sub_service is not None:
            problems.update(_field_problems(sub_service, request.fields))
        if problems:
            raise InvalidArgument(problems)
        return self.route(request)


# At most this many unknown field names are named back one by one (`fields.<name>`); more, or
# a name no field could have, is answered once, on `fields`, without repeating what was sent.
MAX_NAMED_UNKNOWN_FIELDS = 5
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,49}")


def _field_problems(sub_service: SubService, fields: Mapping[str, str]) -> dict[str, str]:
    """What is wrong with `fields` for `sub_service`, by the catalog's FieldSpecs: names it
    lacks, choices it does not offer, nationalities outside its limit. A field left empty is
    one the hypothetical request does not give."""
    specs = {spec.name: spec for spec in sub_service.fields}
    unknown = [name for name in fields if name not in specs]
    problems: dict[str, str] = {}
    if len(unknown) > MAX_NAMED_UNKNOWN_FIELDS or any(
        not _FIELD_NAME.fullmatch(name) for name in unknown
    ):
        names = ", ".join(specs) or "none"
        problems["fields"] = Bilingual(
            f"only fields of {sub_service.code}: {names}",
            f"حقول الخدمة الفرعية {sub_service.code} فقط: {'، '.join(specs) or 'لا شيء'}",
        )
    else:
        for name in unknown:
            problems[f"fields.{name}"] = Bilingual(
                f"not a field of {sub_service.code}",
                f"ليس حقلًا من حقول الخدمة الفرعية {sub_service.code}",
            )
    for name, spec in specs.items():
        value = fields.get(name, "")
        if not value:
            continue
        if spec.type is FieldType.CHOICE and not _option(spec, value):
            problems[f"fields.{name}"] = _one_of(tuple(o.value for o in spec.options))
        elif spec.type is FieldType.NATIONALITY and not _admits(sub_service, value):
            problems[f"fields.{name}"] = _nationals_only(sub_service)
    return problems


def _admits(sub_service: SubService, nationality: str) -> bool:
    """Whether the sub-service's nationality limit (empty: none) admits `nationality`."""
    limit = sub_service.subject_nationalities
    return not limit or nationality in limit


def _nationals_only(sub_service: SubService) -> Bilingual:
    codes = sorted(sub_service.subject_nationalities)
    return Bilingual(
        f"{sub_service.code} is for nationals of {', '.join(codes)} only",
        f"الخدمة الفرعية {sub_service.code} لحاملي الجنسيات التالية فقط: {'، '.join(codes)}",
    )


def _one_of(values: Sequence[str]) -> Bilingual:
    return Bilingual(
        f"one of {', '.join(values)}, or empty", f"إحدى القيم: {'، '.join(values)}، أو فارغ"
    )


# The rules file


def parse_rules(raw: Mapping[str, Any], catalog: Catalog) -> RoutingRules:
    """The rules in `raw` (the decoded JSON); a ValueError names the path of a bad entry."""
    root = _object(raw, "", required={"version", "rules"})
    version = _int(root["version"], "version", minimum=1)
    rules: list[Rule] = []
    ids: dict[str, str] = {}
    for path, item in _items(root["rules"], "rules"):
        rule = _rule(item, path, catalog)
        _claim(ids, rule.id, f"{path}.id", "rule id")
        rules.append(rule)
    return RoutingRules(version=version, rules=tuple(rules), catalog=catalog)


def _rule(raw: object, path: str, catalog: Catalog) -> Rule:
    item = _object(raw, path, required={"id", "description", "when", "then"})
    rule_id = _str(item["id"], f"{path}.id")
    if not _RULE_ID.fullmatch(rule_id):
        _fail(f"{path}.id", f"{rule_id!r} is not a kebab-case id")
    if len(rule_id) > MAX_RULE_ID:
        _fail(f"{path}.id", f"longer than {MAX_RULE_ID} characters")
    if rule_id == DEFAULT_RULE:
        _fail(f"{path}.id", f"{DEFAULT_RULE!r} names the catalog's routing; choose another id")
    then = _object(item["then"], f"{path}.then", required=set(), optional={"queue", "priority"})
    if not then:
        _fail(f"{path}.then", "names neither a queue nor a priority")
    return Rule(
        id=rule_id,
        description=_str(item["description"], f"{path}.description"),
        when=_conditions(item["when"], f"{path}.when", catalog),
        queue=_queue(then["queue"], f"{path}.then.queue", catalog) if "queue" in then else None,
        priority=(
            _int(then["priority"], f"{path}.then.priority", minimum=1, maximum=MAX_PRIORITY)
            if "priority" in then
            else None
        ),
    )


def _conditions(raw: object, path: str, catalog: Catalog) -> Conditions:
    item = _object(raw, path, required=set(), optional=CONDITIONS)
    if not item:
        _fail(path, "no condition: a rule for every request belongs in the catalog")
    of_catalog = f"of catalog v{catalog.version}"
    sub_services = _values(
        item, "sub_services", path, catalog.sub_services, f"the sub-services {of_catalog}"
    )
    follow_ups = 0
    if "follow_ups_at_least" in item:
        follow_ups = _int(item["follow_ups_at_least"], f"{path}.follow_ups_at_least", minimum=1)
    return Conditions(
        applicant_kinds=_values(item, "applicant_kinds", path, APPLICANT_KINDS, "applicant kinds"),
        subject_nationalities=tuple(
            _shaped(value, p, _ALPHA3, "an ISO 3166-1 alpha-3 code")
            for p, value in _list(item, "subject_nationalities", path)
        ),
        channels=_values(item, "channels", path, CHANNELS, "channels"),
        sub_services=sub_services,
        departments=_values(
            item, "departments", path, catalog.departments, f"the departments {of_catalog}"
        ),
        fields=(
            _fields(
                item["fields"],
                f"{path}.fields",
                [catalog.sub_services[code] for code in sub_services],
                catalog,
            )
            if "fields" in item
            else ()
        ),
        follow_ups_at_least=follow_ups,
    )


def _fields(
    raw: object, path: str, sub_services: Sequence[SubService], catalog: Catalog
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Field conditions, each naming a field of every listed sub-service (or of some, if the
    rule lists none), with values a choice field can take."""
    item = _object(raw, path, required=set(), optional=None)
    if not item:
        _fail(path, "must not be empty")
    pool = sub_services or list(catalog.sub_services.values())
    conditions: list[tuple[str, tuple[str, ...]]] = []
    for name, expected in item.items():
        name_path = f"{path}.{name}"
        specs: list[FieldSpec] = [s for sub in pool for s in sub.fields if s.name == name]
        lacking = [sub.code for sub in pool if not any(s.name == name for s in sub.fields)]
        if sub_services and lacking:
            _fail(name_path, f"not a field of {', '.join(lacking)}")
        if not specs:
            _fail(name_path, f"not a field of any sub-service of catalog v{catalog.version}")
        if isinstance(expected, list):
            raw_values = [(f"{name_path}[{i}]", v) for i, v in enumerate(expected)]
            if not raw_values:
                _fail(name_path, "must not be empty")
        else:
            raw_values = [(name_path, expected)]
        values: list[str] = []
        for value_path, value in raw_values:
            text = _str(value, value_path)
            if text in values:
                _fail(value_path, f"duplicate value {text!r}")
            if not any(s.type is not FieldType.CHOICE or _option(s, text) for s in specs):
                options = sorted({o.value for s in specs for o in s.options})
                _fail(value_path, f"{text!r} is not an option of {name}: {', '.join(options)}")
            values.append(text)
        conditions.append((name, tuple(values)))
    return tuple(conditions)


def _option(spec: FieldSpec, value: str) -> bool:
    return any(option.value == value for option in spec.options)


def _queue(raw: object, path: str, catalog: Catalog) -> str:
    queue = _shaped(raw, path, _QUEUE, "a 'department.kebab-case' queue")
    if len(queue) > MAX_QUEUE:
        _fail(path, f"longer than {MAX_QUEUE} characters")
    if department_of(queue) not in catalog.departments:
        _fail(
            path,
            f"{queue!r} names no department of catalog v{catalog.version};"
            f" known: {', '.join(sorted(catalog.departments))}",
        )
    return queue


# JSON primitives: each checks one value and names its path when it is wrong.


def _fail(path: str, message: str) -> NoReturn:
    raise ValueError(f"{path or '(root)'}: {message}")


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _object(
    raw: object, path: str, *, required: Set[str], optional: Set[str] | None = frozenset()
) -> Mapping[str, Any]:
    """An object with the `required` keys; `optional=None` allows any other key."""
    if not isinstance(raw, Mapping):
        _fail(path, f"expected an object, got {_kind(raw)}")
    for key in sorted(required - raw.keys()):
        _fail(_at(path, key), "missing")
    if optional is not None:
        for key in sorted(raw.keys() - required - optional):
            _fail(_at(path, str(key)), "unknown key")
    return raw


def _items(raw: object, path: str) -> list[tuple[str, object]]:
    if not isinstance(raw, list):
        _fail(path, f"expected a list, got {_kind(raw)}")
    return [(f"{path}[{index}]", item) for index, item in enumerate(raw)]


def _list(item: Mapping[str, Any], key: str, path: str) -> list[tuple[str, object]]:
    """The optional, non-empty list `key` of a condition, with no value twice."""
    if key not in item:
        return []
    items = _items(item[key], f"{path}.{key}")
    if not items:
        _fail(f"{path}.{key}", "must not be empty (leave the condition out to match any)")
    seen: list[object] = []
    for item_path, value in items:
        if value in seen:
            _fail(item_path, f"duplicate value {value!r}")
        seen.append(value)
    return items


def _values(
    item: Mapping[str, Any],
    key: str,
    path: str,
    known: Sequence[str] | Mapping[str, object],
    among: str,
) -> tuple[str, ...]:
    """The optional list `key`, each value one of `known` (`among` says whose)."""
    values: list[str] = []
    for value_path, value in _list(item, key, path):
        text = _str(value, value_path)
        if text not in known:
            _fail(value_path, f"unknown {text!r} among {among}: {', '.join(sorted(known))}")
        values.append(text)
    return tuple(values)


def _str(raw: object, path: str) -> str:
    if not isinstance(raw, str):
        _fail(path, f"expected a string, got {_kind(raw)}")
    if not raw.strip():
        _fail(path, "must not be blank")
    return raw


def _shaped(raw: object, path: str, pattern: re.Pattern[str], description: str) -> str:
    text = _str(raw, path)
    if not pattern.fullmatch(text):
        _fail(path, f"{text!r} is not {description}")
    return text


def _int(raw: object, path: str, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        _fail(path, f"expected an integer, got {_kind(raw)}")
    if raw < minimum:
        _fail(path, f"must be at least {minimum}, got {raw}")
    if maximum is not None and raw > maximum:
        _fail(path, f"must be at most {maximum}, got {raw}")
    return raw


def _claim(seen: dict[str, str], key: str, path: str, what: str) -> None:
    if key in seen:
        _fail(path, f"duplicate {what} {key!r} (first at {seen[key]})")
    seen[key] = path


_JSON_KINDS: dict[type, str] = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "true/false",
    int: "an integer",
    float: "a number",
}


def _kind(raw: object) -> str:
    return "null" if raw is None else _JSON_KINDS.get(type(raw), type(raw).__name__)
