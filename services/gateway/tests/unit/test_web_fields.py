"""The inputs the page draws for the catalog's fields (app.js's `fieldInput`, `needed` and
`markNeeded`), run by Node on a stand-in for the DOM: intake refuses a field that an option
chosen needs (required_when) left out, and a name in another script than its own, so the form
says both before it is sent, not only in the refusal after."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

PageScript = Callable[..., object]
NAMES = (
    "TEXTS",
    "t",
    "option",
    "labelText",
    "needed",
    "SCRIPTS",
    "errorSlot",
    "describe",
    "fieldInput",
    "markNeeded",
)

# corrections.name-or-birth-date of catalog v5 as GetCatalog sends it in Arabic (proto3 JSON).
CORRECTION = {
    "name": "correction",
    "type": "choice",
    "label": "البيان المطلوب تصحيحه",
    "required": True,
    "choices": [
        {"value": "name", "label": "الاسم"},
        {"value": "date_of_birth", "label": "تاريخ الميلاد"},
        {"value": "both", "label": "الاسم وتاريخ الميلاد"},
    ],
}
NAME_AR = {
    "name": "correct_name_ar",
    "type": "text",
    "label": "الاسم الصحيح بالعربية",
    "help": "الاسم بالحروف العربية كما هو مدوّن في الوثيقة الرسمية، عند تصحيح الاسم.",
    "required": False,
    "max_length": 150,
    "required_when": {"field": "correction", "values": ["name", "both"]},
    "script": "arabic",
}
NAME_EN = {
    **NAME_AR,
    "name": "correct_name_en",
    "label": "الاسم الصحيح بالإنجليزية",
    "help": "الاسم بالأحرف اللاتينية كما هو مدوّن في جواز السفر، عند تصحيح الاسم.",
    "script": "latin",
}
BIRTH = {
    "name": "correct_date_of_birth",
    "type": "date",
    "label": "تاريخ الميلاد الصحيح",
    "required": False,
    "required_when": {"field": "correction", "values": ["date_of_birth", "both"]},
    "script": "",
}
FORM = [CORRECTION, NAME_AR, NAME_EN, BIRTH]

# Elements as plain objects: what fieldInput sets on them, and the lookups markNeeded makes.
DOM = """
globalThis.document = {
  createElement: (tag) => ({
    tagName: tag.toUpperCase(), dataset: {}, children: [], value: "", attributes: {},
    append(...items) { this.children.push(...items); },
    setAttribute(name, value) { this.attributes[name] = value; },
  }),
};
const shown = (el) => ({
  tag: el.tagName, text: el.textContent, lang: el.lang, dir: el.dir, required: el.required,
  spellcheck: el.spellcheck, autocapitalize: el.autocapitalize, dataset: el.dataset,
});
function form(specs, prefix) {
  const parts = specs.flatMap((spec) => fieldInput(spec, prefix));
  for (const el of parts) if (el.dataset.field) el.labels = [parts[parts.indexOf(el) - 1]];
  const inputs = parts.filter((el) => el.dataset.field !== undefined);
  return { parts, inputs, querySelectorAll: () => inputs };
}
"""


def run(page_script: PageScript, body: str, *, lang: str = "ar") -> Any:
    """The value `body` (a function body with `DOM` in scope) returns."""
    return page_script(f"(() => {{ {DOM}\n{body} }})()", NAMES, lang=lang)


@pytest.mark.parametrize(
    ("spec", "values", "must"),
    [
        (NAME_EN, {"correction": "name"}, True),
        (NAME_EN, {"correction": "both"}, True),
        (NAME_EN, {"correction": "date_of_birth"}, False),
        (NAME_EN, {}, False),
        (BIRTH, {"correction": "date_of_birth"}, True),
        (BIRTH, {"correction": "name"}, False),
        (CORRECTION, {}, True),
        ({"name": "note", "required": False}, {"correction": "name"}, False),
    ],
)
def test_a_field_is_needed_when_required_or_when_an_option_it_names_is_chosen(
    page_script: PageScript, spec: dict[str, Any], values: dict[str, str], must: bool
) -> None:
    call = f"needed({json.dumps(spec)}, {json.dumps(values)})"
    assert page_script(call, ("needed",)) is must


@pytest.mark.parametrize(
    ("chosen", "required"),
    [
        ("", []),
        ("name", ["correct_name_ar", "correct_name_en"]),
        ("date_of_birth", ["correct_date_of_birth"]),
        ("both", ["correct_name_ar", "correct_name_en", "correct_date_of_birth"]),
    ],
)
def test_the_fields_an_option_chosen_needs_are_marked_required_and_only_those(
    page_script: PageScript, chosen: str, required: list[str]
) -> None:
    marked = run(
        page_script,
        f"""const drawn = form({json.dumps(FORM)});
        drawn.inputs[0].value = {json.dumps(chosen)};
        markNeeded(drawn);
        const marks = (el) => [el.dataset.field, el.required, el.labels[0].textContent];
        return drawn.inputs.slice(1).map(marks);""",
    )
    labels = {spec["name"]: spec["label"] for spec in FORM}
    assert marked == [
        [name, name in required, f"{labels[name]} (مطلوب)" if name in required else labels[name]]
        for name in ("correct_name_ar", "correct_name_en", "correct_date_of_birth")
    ]


def test_another_option_chosen_takes_the_mark_off_again(page_script: PageScript) -> None:
    marked = run(
        page_script,
        f"""const drawn = form({json.dumps(FORM)});
        drawn.inputs[0].value = "name";
        markNeeded(drawn);
        drawn.inputs[0].value = "date_of_birth";
        markNeeded(drawn);
        return drawn.inputs.map((el) => el.labels[0].textContent);""",
        lang="en",
    )
    # The choice itself stays required, whatever is chosen in it.
    assert marked == [
        "البيان المطلوب تصحيحه (required)",
        "الاسم الصحيح بالعربية",
        "الاسم الصحيح بالإنجليزية",
        "تاريخ الميلاد الصحيح (required)",
    ]


def test_an_answer_needs_only_what_the_request_does_not_hold(page_script: PageScript) -> None:
    # The reviewer asked for what is corrected and both names; the request has the Arabic one.
    filed = {"correction": "date_of_birth", "correct_name_ar": "فهد"}
    # As askedInputs draws them: a blank answer input leaves the request's value as it is.
    asked = [{**spec, "required": False} for spec in (CORRECTION, NAME_AR, NAME_EN)]
    marked = run(
        page_script,
        f"""const drawn = form({json.dumps(asked)}, "answer");
        const filed = {json.dumps(filed)};
        markNeeded(drawn, filed);
        const before = drawn.inputs.map((el) => el.required);
        drawn.inputs[0].value = "both";
        markNeeded(drawn, filed);
        return [before, drawn.inputs.map((el) => el.required)];""",
    )
    # The name in English is needed once the answer chooses both, the Arabic one is on file.
    assert marked == [[False, False, False], [False, False, True]]


@pytest.mark.parametrize(
    ("spec", "lang", "attributes", "hint"),
    [
        (
            NAME_EN,
            "ar",
            {"lang": "en", "dir": "ltr", "autocapitalize": "words", "spellcheck": False},
            "بالأحرف اللاتينية كما في جواز السفر، ولا يُقبل معها إلا المسافات والفواصل العليا (') "
            "والشرطات (-).",
        ),
        (
            NAME_EN,
            "en",
            {"lang": "en", "dir": "ltr", "autocapitalize": "words", "spellcheck": False},
            "In Latin letters, as in the passport, with only spaces, apostrophes (') and hyphens "
            "(-) besides.",
        ),
        (
            NAME_AR,
            "ar",
            {"lang": "ar", "dir": "rtl", "spellcheck": False},
            "بالحروف العربية، ولا يُقبل معها إلا المسافات والفواصل العليا (') والشرطات (-).",
        ),
        (
            NAME_AR,
            "en",
            {"lang": "ar", "dir": "rtl", "spellcheck": False},
            "In Arabic letters, with only spaces, apostrophes (') and hyphens (-) besides.",
        ),
    ],
)
def test_a_name_input_is_in_its_scripts_language_and_says_which_letters_it_takes(
    page_script: PageScript, spec: dict[str, Any], lang: str, attributes: dict[str, Any], hint: str
) -> None:
    parts = run(page_script, f"return fieldInput({json.dumps(spec)}).map(shown);", lang=lang)
    label, field, help_, script, error = parts
    assert {name: field.get(name) for name in attributes} == attributes
    assert (help_["tag"], help_["text"]) == ("P", spec["help"])
    assert (script["tag"], script["text"]) == ("P", hint)
    # Intake's refusal of the name ("fields.<name>") is shown under those lines.
    assert error["dataset"] == {"errorFor": f"fields.{spec['name']}"}
    assert label["text"] == spec["label"]


def test_a_field_of_any_script_is_drawn_in_the_pages_language_without_a_hint(
    page_script: PageScript,
) -> None:
    parts = run(page_script, f"return fieldInput({json.dumps(BIRTH)}).map(shown);")
    assert [part["tag"] for part in parts] == ["LABEL", "INPUT", "P"]
    assert (parts[1].get("lang"), parts[1].get("dir")) == (None, None)
