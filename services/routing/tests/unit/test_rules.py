import copy
from dataclasses import replace
from typing import Any

import pytest
from tawasul_platform.catalog import load_catalog
from tawasul_platform.errors import InvalidArgument
from tawasul_platform.i18n import Bilingual
from tawasul_routing.adapters.rules import load_rules
from tawasul_routing.domain.rules import Attributes, RoutingRules, parse_rules

YEMENI_VISIT = Attributes(
    sub_service_code="residents.visit-visa-extension",
    applicant_kind="citizen",
    subject_nationality="YEM",
    channel="web",
)


def rules(*entries: dict[str, Any]) -> RoutingRules:
    return parse_rules({"version": 3, "rules": list(entries)}, load_catalog())


def rule(rule_id: str, when: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    return {"id": rule_id, "description": f"test rule {rule_id}", "when": when, "then": then}


# The shipped rules


def test_the_packaged_rules_are_version_1_over_the_catalog_and_loaded_once() -> None:
    shipped = load_rules()
    assert shipped.version == 1
    assert shipped.catalog is load_catalog()
    assert load_rules() is shipped
    assert [r.id for r in shipped.rules] == [
        "visit-visa-yemen-syria",
        "establishment-absence-report",
        "establishment-absence-corrections",
        "lost-passport-abroad",
        "visa-holder-abroad",
        "passport-fee-or-block",
        "repeated-follow-ups",
    ]


@pytest.mark.parametrize(
    ("request_", "queue", "priority", "rule"),
    [
        # The catalog's department, its default queue, by default.
        (Attributes("visas.cancel-visa"), "visas.default", 0, "rules.v1:default"),
        (Attributes("reports.general-inquiry"), "reports.default", 0, "rules.v1:default"),
        # Visit-visa extensions for Yemeni and Syrian nationals have their own queue...
        (YEMENI_VISIT, "residents.visit-visa", 0, "rules.v1:visit-visa-yemen-syria"),
        (
            Attributes("residents.visit-visa-extension", subject_nationality="SYR"),
            "residents.visit-visa",
            0,
            "rules.v1:visit-visa-yemen-syria",
        ),
        # ...but not when the nationality is unknown or another.
        (Attributes("residents.visit-visa-extension"), "residents.default", 0, "rules.v1:default"),
        (
            Attributes("residents.visit-visa-extension", subject_nationality="EGY"),
            "residents.default",
            0,
            "rules.v1:default",
        ),
        (
            Attributes("residents.iqama-issue-renewal", subject_nationality="YEM"),
            "residents.default",
            0,
            "rules.v1:default",
        ),
        # An establishment's absence report goes to the establishments' team, first.
        (
            Attributes("reports.absence-report", applicant_kind="establishment"),
            "reports.establishments",
            20,
            "rules.v1:establishment-absence-report",
        ),
        (
            Attributes("reports.absence-report", applicant_kind="citizen"),
            "reports.default",
            0,
            "rules.v1:default",
        ),
        # Its corrections go to the same team, at no higher priority.
        (
            Attributes("reports.edit-absent-worker-data", applicant_kind="establishment"),
            "reports.establishments",
            0,
            "rules.v1:establishment-absence-corrections",
        ),
        (
            Attributes("reports.cancel-absence-report", applicant_kind="establishment"),
            "reports.establishments",
            0,
            "rules.v1:establishment-absence-corrections",
        ),
        (
            Attributes("reports.cancel-absence-report", applicant_kind="resident"),
            "reports.default",
            0,
            "rules.v1:default",
        ),
        # A passport lost abroad is more urgent than one lost at home.
        (
            Attributes("passports.lost-passport-report", fields={"loss_place": "outside_kingdom"}),
            "passports.default",
            30,
            "rules.v1:lost-passport-abroad",
        ),
        (
            Attributes("passports.lost-passport-report", fields={"loss_place": "inside_kingdom"}),
            "passports.default",
            0,
            "rules.v1:default",
        ),
        (
            Attributes("visas.change-visa-duration", fields={"holder_location": "outside"}),
            "visas.default",
            20,
            "rules.v1:visa-holder-abroad",
        ),
        (
            Attributes("visas.change-visa-duration", fields={"holder_location": "inside"}),
            "visas.default",
            0,
            "rules.v1:default",
        ),
        # A list of field values: any of them will do.
        (
            Attributes("passports.issue-renewal-problem", fields={"problem": "fee_not_reflected"}),
            "passports.default",
            10,
            "rules.v1:passport-fee-or-block",
        ),
        (
            Attributes("passports.issue-renewal-problem", fields={"problem": "blocking_remark"}),
            "passports.default",
            10,
            "rules.v1:passport-fee-or-block",
        ),
        (
            Attributes("passports.issue-renewal-problem", fields={"problem": "photo_not_shown"}),
            "passports.default",
            0,
            "rules.v1:default",
        ),
        # Follow-ups raise any request, from the second on.
        (
            Attributes("corrections.name-or-birth-date", follow_up_count=2),
            "corrections.default",
            15,
            "rules.v1:repeated-follow-ups",
        ),
        (
            Attributes("corrections.name-or-birth-date", follow_up_count=1),
            "corrections.default",
            0,
            "rules.v1:default",
        ),
    ],
)
def test_each_shipped_rule_matches_its_requests_only(
    request_: Attributes, queue: str, priority: int, rule: str
) -> None:
    route = load_rules().route(request_)
    assert (route.department, route.queue, route.priority, route.rule) == (
        queue.split(".")[0],
        queue,
        priority,
        rule,
    )


def test_the_highest_priority_wins_and_the_queue_rule_is_named() -> None:
    route = load_rules().route(
        Attributes(
            "reports.absence-report",
            applicant_kind="establishment",
            follow_up_count=3,
        )
    )
    # The queue's rule names the decision; the follow-ups' 15 is below the report's 20.
    assert (route.queue, route.priority, route.rule) == (
        "reports.establishments",
        20,
        "rules.v1:establishment-absence-report",
    )
    abroad = load_rules().route(
        Attributes(
            "passports.lost-passport-report",
            fields={"loss_place": "outside_kingdom"},
            follow_up_count=2,
        )
    )
    assert (abroad.queue, abroad.priority, abroad.rule) == (
        "passports.default",
        30,
        "rules.v1:lost-passport-abroad",
    )


# How rules combine


def test_the_first_matching_rule_with_a_queue_wins() -> None:
    both = rules(
        rule("first", {"applicant_kinds": ["resident"]}, {"queue": "reports.first"}),
        rule("second", {"sub_services": ["reports.general-inquiry"]}, {"queue": "visas.second"}),
    )
    resident = Attributes("reports.general-inquiry", applicant_kind="resident")
    citizen = Attributes("reports.general-inquiry", applicant_kind="citizen")
    assert (both.route(resident).queue, both.route(resident).rule) == (
        "reports.first",
        "rules.v3:first",
    )
    # A rule may send a request to another department's queue.
    second = both.route(citizen)
    assert (second.department, second.queue, second.rule) == (
        "visas",
        "visas.second",
        "rules.v3:second",
    )


def test_priorities_take_the_highest_and_a_tie_names_the_earlier_rule() -> None:
    book = rules(
        rule("low", {"channels": ["web"]}, {"priority": 5}),
        rule("high", {"applicant_kinds": ["citizen"]}, {"priority": 40}),
        rule("also-high", {"subject_nationalities": ["SAU"]}, {"priority": 40}),
    )
    request = Attributes(
        "visas.cancel-visa", applicant_kind="citizen", subject_nationality="SAU", channel="web"
    )
    route = book.route(request)
    assert (route.queue, route.priority, route.rule) == ("visas.default", 40, "rules.v3:high")
    assert [m.rule.id for m in route.matched] == ["low", "high", "also-high"]
    only_low = book.route(Attributes("visas.cancel-visa", channel="web"))
    assert (only_low.priority, only_low.rule) == (5, "rules.v3:low")


def test_every_condition_must_hold() -> None:
    book = rules(
        rule(
            "strict",
            {
                "applicant_kinds": ["establishment"],
                "channels": ["establishment-portal"],
                "sub_services": ["reports.absence-report"],
                "departments": ["reports"],
                "fields": {"worker_type": "domestic_worker"},
                "follow_ups_at_least": 1,
            },
            {"priority": 9},
        )
    )
    full = Attributes(
        "reports.absence-report",
        applicant_kind="establishment",
        channel="establishment-portal",
        fields={"worker_type": "domestic_worker"},
        follow_up_count=1,
    )
    assert book.route(full).priority == 9
    for one_short in (
        replace(full, applicant_kind="resident"),
        replace(full, channel="web"),
        replace(full, sub_service_code="reports.cancel-absence-report"),
        replace(full, fields={"worker_type": "establishment_worker"}),
        replace(full, fields={}),
        replace(full, follow_up_count=0),
    ):
        assert book.route(one_short).priority == 0, one_short
    # On a transfer out of reports, the department no longer matches.
    assert book.route(full, department="visas").priority == 0


def test_on_a_transfer_a_rule_whose_queue_is_elsewhere_keeps_its_priority() -> None:
    absence = Attributes("reports.absence-report", applicant_kind="establishment")
    moved = load_rules().route(absence, department="residents")
    assert (moved.department, moved.queue, moved.priority, moved.rule) == (
        "residents",
        "residents.default",
        20,
        "rules.v1:establishment-absence-report",
    )
    assert moved.explanation == (
        "Queue residents.default: the default queue of residents, the transfer's department;"
        " rule establishment-absence-report's queue reports.establishments is in another."
        " Priority 20 by rule establishment-absence-report (an establishment's absence report"
        " blocks its worker's file until handled): sub-service is reports.absence-report,"
        " applicant kind is establishment."
    )


def test_a_transfer_routes_to_its_department_and_no_rule_can_undo_it() -> None:
    shipped = load_rules()
    # The visit-visa rule would send it back to residents: it is passed over.
    moved = shipped.route(YEMENI_VISIT, department="reports")
    assert (moved.department, moved.queue, moved.priority, moved.rule) == (
        "reports",
        "reports.default",
        0,
        "rules.v1:default",
    )
    assert moved.by_default
    # A rule of the target department still applies, and so do priority-only rules.
    back = shipped.route(
        Attributes("reports.absence-report", applicant_kind="establishment"), department="reports"
    )
    assert (back.queue, back.priority) == ("reports.establishments", 20)
    abroad = shipped.route(
        Attributes("passports.lost-passport-report", fields={"loss_place": "outside_kingdom"}),
        department="corrections",
    )
    assert (abroad.queue, abroad.priority, abroad.rule) == (
        "corrections.default",
        30,
        "rules.v1:lost-passport-abroad",
    )


def test_department_conditions_see_the_transfers_target() -> None:
    book = rules(rule("into-visas", {"departments": ["visas"]}, {"queue": "visas.transfers"}))
    request = Attributes("reports.general-inquiry")
    assert book.route(request).queue == "reports.default"
    assert book.route(request, department="visas").queue == "visas.transfers"


def test_an_unknown_sub_service_filed_under_an_unknown_department_cannot_be_routed() -> None:
    for filed_under in ("", "embassy"):
        with pytest.raises(InvalidArgument) as caught:
            load_rules().route(Attributes("nope.nothing"), filed_under=filed_under)
        assert caught.value.violations == {
            "sub_service_code": "not a sub-service of catalog v6",
            "department_code": "not a department of catalog v6",
        }


DROPPED = "residents.profession-change"


def without(code: str) -> RoutingRules:
    """The packaged rules over a catalog v7 that no longer has the sub-service `code`."""
    packaged = load_rules()
    subs = {k: v for k, v in packaged.catalog.sub_services.items() if k != code}
    return replace(packaged, catalog=replace(packaged.catalog, version=7, sub_services=subs))


def test_a_sub_service_the_catalog_dropped_goes_to_the_department_it_was_filed_under() -> None:
    route = without(DROPPED).route(Attributes(DROPPED, "resident"), filed_under="residents")
    assert (route.department, route.queue, route.priority, route.rule) == (
        "residents",
        "residents.default",
        0,
        "rules.v1:default",
    )
    assert route.explanation == (
        "Queue residents.default: no rule chose a queue, and catalog v7 no longer has"
        " residents.profession-change: the default queue of residents, the department it was"
        " filed under. Priority 0: no rule raised it."
    )


def test_the_rules_that_name_no_sub_service_still_apply_to_one_the_catalog_dropped() -> None:
    book = replace(
        rules(rule("chased", {"follow_ups_at_least": 2}, {"priority": 15})),
        catalog=without(DROPPED).catalog,
    )
    chased = Attributes(DROPPED, follow_up_count=2)
    route = book.route(chased, filed_under="residents")
    assert (route.queue, route.priority, route.rule) == ("residents.default", 15, "rules.v3:chased")
    # A transfer's or a follow-up's: the department is known, the request is not refused.
    route = book.route(chased, department="visas")
    assert (route.queue, route.priority) == ("visas.default", 15)


def test_a_department_the_catalog_dropped_matches_no_rule_on_it_but_the_others() -> None:
    # Where a follow-up finds a request a transfer took to a department dropped since (a
    # transfer's target is checked before: Transfer.check).
    book = rules(
        rule("in-visas", {"departments": ["visas"]}, {"priority": 40}),
        rule("chased", {"follow_ups_at_least": 2}, {"priority": 15}),
    )
    chased = Attributes("visas.cancel-visa", follow_up_count=2)
    assert book.route(chased, department="visas").priority == 40
    route = book.route(chased, department="embassy")
    assert (route.queue, route.priority, route.rule) == ("embassy.default", 15, "rules.v3:chased")


# Explanations


def test_the_default_is_explained_by_the_catalog() -> None:
    route = load_rules().explain(Attributes("reports.general-inquiry"))
    assert route.explanation == (
        "Queue reports.default: no rule chose a queue, and reports.general-inquiry belongs to"
        " reports in catalog v6. Priority 0: no rule raised it."
    )


def test_the_explanation_names_the_rules_and_the_conditions_that_matched() -> None:
    route = load_rules().explain(
        Attributes("reports.absence-report", applicant_kind="establishment", follow_up_count=4)
    )
    assert route.explanation == (
        "Queue reports.establishments by rule establishment-absence-report (an establishment's"
        " absence report blocks its worker's file until handled): sub-service is"
        " reports.absence-report, applicant kind is establishment. Priority 20 by the same rule."
        " Also matched, without changing the outcome: rule repeated-follow-ups (the beneficiary"
        " has followed up more than once): 4 follow-ups (at least 2)."
    )
    visit = load_rules().explain(YEMENI_VISIT)
    assert visit.explanation == (
        "Queue residents.visit-visa by rule visit-visa-yemen-syria (visit-visa extensions for"
        " Yemeni and Syrian nationals have a dedicated team): sub-service is"
        " residents.visit-visa-extension, subject nationality YEM is one of YEM, SYR."
        " Priority 0: no rule raised it."
    )
    abroad = load_rules().explain(
        Attributes("passports.lost-passport-report", fields={"loss_place": "outside_kingdom"})
    )
    assert abroad.explanation == (
        "Queue passports.default: no rule chose a queue, and passports.lost-passport-report"
        " belongs to passports in catalog v6. Priority 30 by rule lost-passport-abroad (a citizen"
        " who lost their passport abroad cannot travel home without it): sub-service is"
        " passports.lost-passport-report, field loss_place is outside_kingdom."
    )


def test_a_transfer_to_a_default_queue_is_explained_as_such() -> None:
    route = load_rules().route(YEMENI_VISIT, department="visas")
    assert route.explanation == (
        "Queue visas.default: the default queue of visas, the transfer's department."
        " Priority 0: no rule raised it."
    )


def test_a_hypothetical_request_is_checked_field_by_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        load_rules().explain(
            Attributes("nope", applicant_kind="robot", subject_nationality="ye", channel="fax")
        )
    assert caught.value.violations == {
        "sub_service_code": "not a sub-service of catalog v6",
        "applicant_kind": "one of citizen, establishment, resident, or empty",
        "subject_nationality": "an ISO 3166-1 alpha-3 code such as YEM, or empty",
        "channel": "one of web, mobile, establishment-portal, or empty",
    }
    with pytest.raises(InvalidArgument) as caught:
        load_rules().explain(Attributes(""))
    assert caught.value.violations == {"sub_service_code": "required"}


VISIT = "residents.visit-visa-extension"


@pytest.mark.parametrize(
    ("request_", "violations"),
    [
        # A choice the form does not offer: the rule on it would silently not match.
        (
            Attributes("passports.lost-passport-report", fields={"loss_place": "abroad"}),
            {"fields.loss_place": "one of inside_kingdom, outside_kingdom, or empty"},
        ),
        (
            Attributes("passports.lost-passport-report", fields={"lost_place": "outside_kingdom"}),
            {"fields.lost_place": "not a field of passports.lost-passport-report"},
        ),
        (
            Attributes("passports.lost-passport-report", applicant_kind="establishment"),
            {"applicant_kind": "passports.lost-passport-report is filed by citizen only"},
        ),
        (
            Attributes(VISIT, subject_nationality="EGY"),
            {"subject_nationality": f"{VISIT} is for nationals of SYR, YEM only"},
        ),
        (
            Attributes(VISIT, fields={"visitor_nationality": "EGY"}),
            {"fields.visitor_nationality": f"{VISIT} is for nationals of SYR, YEM only"},
        ),
    ],
)
def test_a_request_intake_would_refuse_gets_no_route(
    request_: Attributes, violations: dict[str, str]
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        load_rules().explain(request_)
    assert caught.value.violations == violations
    # In Arabic too, for the staff who read it so.
    assert all(isinstance(v, Bilingual) and v.ar for v in caught.value.violations.values())


def test_what_was_sent_as_field_names_is_not_repeated_past_a_few_plain_ones() -> None:
    with pytest.raises(InvalidArgument) as caught:
        load_rules().explain(Attributes("reports.general-inquiry", fields={"x" * 5000: "y"}))
    assert caught.value.violations == {
        "fields": "only fields of reports.general-inquiry: related_service, reference_number"
    }
    many = {f"f{n}": "v" for n in range(6)}
    with pytest.raises(InvalidArgument) as caught:
        load_rules().explain(Attributes("passports.lost-passport-report", fields=many))
    assert set(caught.value.violations) == {"fields"}
    # What the form offers, some given and some left empty, is a request intake takes.
    fine = load_rules().explain(
        Attributes(
            "passports.lost-passport-report",
            applicant_kind="citizen",
            subject_nationality="SAU",
            fields={"loss_place": "outside_kingdom", "loss_city": "Cairo", "passport_number": ""},
        )
    )
    assert (fine.priority, fine.rule) == (30, "rules.v1:lost-passport-abroad")


# The rules file: a bad entry is refused with its path


def test_the_minimal_rules_parse() -> None:
    book = parse_rules({"version": 2, "rules": []}, load_catalog())
    assert (book.version, book.rules) == (2, ())
    route = book.route(Attributes("visas.cancel-visa"))
    assert (route.queue, route.priority, route.rule) == ("visas.default", 0, "rules.v2:default")


GOOD = rule("good", {"sub_services": ["visas.cancel-visa"]}, {"priority": 1})


def edited(path: str, value: object) -> dict[str, Any]:
    """GOOD with one key (`then.priority`, say) set to `value`, or removed when it is None."""
    raw = copy.deepcopy(GOOD)
    *parents, key = path.split(".")
    target = raw
    for parent in parents:
        target = target[parent]
    if value is None:
        del target[key]
    else:
        target[key] = value
    return raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], r"^\(root\): expected an object, got a list$"),
        ({"rules": []}, r"^version: missing$"),
        ({"version": 0, "rules": []}, r"^version: must be at least 1, got 0$"),
        ({"version": "1", "rules": []}, r"^version: expected an integer, got a string$"),
        ({"version": 1, "rules": {}}, r"^rules: expected a list, got an object$"),
        ({"version": 1, "rules": [], "extra": 1}, r"^extra: unknown key$"),
        ({"version": 1, "rules": [GOOD, GOOD]}, r"^rules\[1\]\.id: duplicate rule id 'good'"),
        ({"version": 1, "rules": [GOOD, 7]}, r"^rules\[1\]: expected an object, got an integer$"),
    ],
)
def test_a_bad_file_is_refused_with_its_path(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rules(raw, load_catalog())


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (edited("id", None), r"^rules\[0\]\.id: missing$"),
        (edited("id", "Good Rule"), r"^rules\[0\]\.id: 'Good Rule' is not a kebab-case id$"),
        (edited("id", "default"), r"^rules\[0\]\.id: 'default' names the catalog's routing"),
        (edited("id", "r" * 101), r"^rules\[0\]\.id: longer than 100 characters$"),
        (edited("description", " "), r"^rules\[0\]\.description: must not be blank$"),
        (edited("colour", "red"), r"^rules\[0\]\.colour: unknown key$"),
        (edited("when", {}), r"^rules\[0\]\.when: no condition: a rule for every request"),
        (edited("when", []), r"^rules\[0\]\.when: expected an object, got a list$"),
        (edited("when.mood", ["calm"]), r"^rules\[0\]\.when\.mood: unknown key$"),
        (
            edited("when.sub_services", ["visas.nope"]),
            r"^rules\[0\]\.when\.sub_services\[0\]: unknown 'visas.nope' among the sub-services"
            r" of catalog v6: corrections\.",
        ),
        (
            edited("when.sub_services", []),
            r"^rules\[0\]\.when\.sub_services: must not be empty \(leave the condition out",
        ),
        (
            edited("when.sub_services", "visas.cancel-visa"),
            r"^rules\[0\]\.when\.sub_services: expected a list, got a string$",
        ),
        (
            edited("when.sub_services", ["visas.cancel-visa", "visas.cancel-visa"]),
            r"^rules\[0\]\.when\.sub_services\[1\]: duplicate value 'visas.cancel-visa'$",
        ),
        (
            edited("when.applicant_kinds", ["reviewer"]),
            r"^rules\[0\]\.when\.applicant_kinds\[0\]: unknown 'reviewer' among applicant kinds:"
            r" citizen, establishment, resident$",
        ),
        (
            edited("when.channels", ["fax"]),
            r"^rules\[0\]\.when\.channels\[0\]: unknown 'fax' among channels",
        ),
        (
            edited("when.departments", ["embassy"]),
            r"^rules\[0\]\.when\.departments\[0\]: unknown 'embassy' among the departments",
        ),
        (
            edited("when.subject_nationalities", ["Yemen"]),
            r"^rules\[0\]\.when\.subject_nationalities\[0\]: 'Yemen' is not an ISO 3166-1",
        ),
        (
            edited("when.subject_nationalities", [887]),
            r"^rules\[0\]\.when\.subject_nationalities\[0\]: expected a string, got an integer$",
        ),
        (
            edited("when.follow_ups_at_least", 0),
            r"^rules\[0\]\.when\.follow_ups_at_least: must be at least 1, got 0$",
        ),
        (
            edited("when.follow_ups_at_least", True),
            r"^rules\[0\]\.when\.follow_ups_at_least: expected an integer, got true/false$",
        ),
        (
            edited("when.fields", {"loss_place": "outside_kingdom"}),
            r"^rules\[0\]\.when\.fields\.loss_place: not a field of visas\.cancel-visa$",
        ),
        (
            edited("when.fields", {"visa_type": "tourist"}),
            r"^rules\[0\]\.when\.fields\.visa_type: 'tourist' is not an option of visa_type:"
            r" exit_reentry, final_exit$",
        ),
        (
            edited("when.fields", {"visa_type": ["final_exit", "final_exit"]}),
            r"^rules\[0\]\.when\.fields\.visa_type\[1\]: duplicate value 'final_exit'$",
        ),
        (
            edited("when.fields", {"visa_type": []}),
            r"^rules\[0\]\.when\.fields\.visa_type: must not be empty$",
        ),
        (
            edited("when.fields", {"visa_type": 3}),
            r"^rules\[0\]\.when\.fields\.visa_type: expected a string, got an integer$",
        ),
        (edited("when.fields", {}), r"^rules\[0\]\.when\.fields: must not be empty$"),
        (
            rule("shoes", {"fields": {"shoe_size": "42"}}, {"priority": 1}),
            r"^rules\[0\]\.when\.fields\.shoe_size: not a field of any sub-service of catalog v6$",
        ),
        (edited("then", {}), r"^rules\[0\]\.then: names neither a queue nor a priority$"),
        (edited("then.speed", 1), r"^rules\[0\]\.then\.speed: unknown key$"),
        (edited("then.priority", 0), r"^rules\[0\]\.then\.priority: must be at least 1, got 0$"),
        (
            edited("then.priority", 1001),
            r"^rules\[0\]\.then\.priority: must be at most 1000, got 1001$",
        ),
        (
            edited("then.priority", 2.5),
            r"^rules\[0\]\.then\.priority: expected an integer, got a number$",
        ),
        (
            edited("then.queue", "embassy.riyadh"),
            r"^rules\[0\]\.then\.queue: 'embassy.riyadh' names no department of catalog v6;"
            r" known: corrections, passports, reports, residents, visas$",
        ),
        (
            edited("then.queue", "visas." + "q" * 95),
            r"^rules\[0\]\.then\.queue: longer than 100 characters$",
        ),
        (
            edited("then.queue", "visas"),
            r"^rules\[0\]\.then\.queue: 'visas' is not a 'department.kebab-case' queue$",
        ),
        (
            edited("then.queue", "visas.Fast Lane"),
            r"^rules\[0\]\.then\.queue: 'visas.Fast Lane' is not a 'department.kebab-case'",
        ),
    ],
)
def test_a_bad_rule_is_refused_with_its_path(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rules({"version": 1, "rules": [entry]}, load_catalog())


def test_field_values_are_checked_against_any_sub_service_when_none_is_named() -> None:
    book = rules(rule("any-final-exit", {"fields": {"visa_type": "final_exit"}}, {"priority": 2}))
    request = Attributes("visas.cancel-visa", fields={"visa_type": "final_exit"})
    assert book.route(request).priority == 2
    # A free-text field takes any value.
    rules(rule("free", {"fields": {"loss_city": "Cairo"}}, {"priority": 2}))
