"""What the page gives assistive technology (WCAG 2.1 AA, as the DGA's guidelines ask): each
input described by its help and its message slot, the slot a live region, the focus on the first
field refused, a progress bar named by its document, and a title of its own for each view. The
page's markup read as written; app.js's functions run by Node on a stand-in for the DOM."""

from __future__ import annotations

import json
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
from tawasul_gateway.settings import WEB_DIR

PageScript = Callable[..., object]
CONTROLS = {"input", "select", "textarea"}

# Elements as plain objects: the attributes app.js sets, and the lookups its functions make.
DOM = """
const element = (tag, props = {}) => ({
  tagName: tag.toUpperCase(), dataset: {}, attributes: {}, children: [], value: "", ...props,
  append(...items) { this.children.push(...items); },
  setAttribute(name, value) { this.attributes[name] = String(value); },
  getAttribute(name) { return this.attributes[name] ?? null; },
  removeAttribute(name) { delete this.attributes[name]; },
  addEventListener() {},
  focus() { focused.push(this.id); },
});
const focused = [];
globalThis.document = { createElement: (tag) => element(tag) };
globalThis.CSS = { escape: (s) => s };
// app.js's own (a name the definitions' lookup does not take).
globalThis.$ = (selector, root = document) => root.querySelector(selector);
"""


def run(page_script: PageScript, body: str, names: tuple[str, ...], *, lang: str = "ar") -> Any:
    """The value `body` (a function body with `DOM` in scope) returns."""
    return page_script(f"(() => {{ {DOM}\n{body} }})()", names, lang=lang)


class _Tags(HTMLParser):
    """index.html's start tags in document order, with their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))


def _page() -> list[tuple[str, dict[str, str]]]:
    parser = _Tags()
    parser.feed((WEB_DIR / "index.html").read_text("utf-8"))
    return parser.tags


def test_every_input_of_the_page_has_a_label() -> None:
    tags = _page()
    labelled = {attrs["for"] for tag, attrs in tags if tag == "label"}
    controls = [attrs["id"] for tag, attrs in tags if tag in CONTROLS]
    assert controls
    assert [c for c in controls if c not in labelled] == []


def test_each_message_slot_is_a_live_region_that_its_input_is_described_by() -> None:
    """A slot under an input (past a progress bar or help lines) is read with it; one under none
    (the rejected request linked, the documents as a whole) is read out when its message comes."""
    described: dict[str, str] = {}
    control: dict[str, str] | None = None
    slots = 0
    for tag, attrs in _page():
        if "data-error-for" in attrs:
            slots += 1
            assert attrs.get("id"), attrs
            assert attrs.get("aria-live") == "polite", attrs
            if control is not None:
                described[control["id"]] = attrs["id"]
                assert attrs["id"] in control.get("aria-describedby", "").split(), control
            control = None
        elif tag in CONTROLS:
            control = attrs
        elif not (tag == "progress" or (tag == "p" and attrs.get("class") == "help")):
            control = None
    assert slots == 13
    assert described["description"] == "description-error"
    assert described["respond-file"] == "respond-file-error"


def test_the_page_has_a_status_region_and_a_confirmation_that_takes_the_focus() -> None:
    tags = {attrs.get("id", ""): (tag, attrs) for tag, attrs in _page()}
    assert tags["status"][1]["role"] == "status"
    # "Done" is a status of its own, not the errors' alert.
    assert (tags["notice"][1]["role"], tags["banner"][1]["role"]) == ("status", "alert")
    # What people type or are named by reads in its own direction, whatever the page's.
    for written in ("who", "description", "respond-message"):
        assert tags[written][1]["dir"] == "auto", written
    tag, attrs = tags["submitted-title"]
    assert (tag, attrs["tabindex"]) == ("h3", "-1")
    # The sub-service's description and the code's "sent" line are read with their inputs.
    assert "sub-service-about" in tags["sub-service"][1]["aria-describedby"].split()
    assert "track-sent" in tags["track-code"][1]["aria-describedby"].split()


FIELD = {
    "name": "correct_name_en",
    "type": "text",
    "label": "الاسم الصحيح بالإنجليزية",
    "help": "الاسم بالأحرف اللاتينية كما هو مدوّن في جواز السفر.",
    "required": False,
    "script": "latin",
}
FIELD_NAMES = (
    "TEXTS",
    "t",
    "option",
    "labelText",
    "SCRIPTS",
    "errorSlot",
    "describe",
    "fieldInput",
)


def test_a_catalog_fields_input_is_described_by_its_help_and_its_message(
    page_script: PageScript,
) -> None:
    parts = run(
        page_script,
        f"""return fieldInput({json.dumps(FIELD)}).map((el) => ({{
            id: el.id, attributes: el.attributes, errorFor: el.dataset.errorFor }}));""",
        FIELD_NAMES,
    )
    _label, field, help_, script, error = parts
    assert field["attributes"]["aria-describedby"] == (
        "field-correct_name_en-help-1 field-correct_name_en-help-2 field-correct_name_en-error"
    )
    assert (help_["id"], script["id"]) == (
        "field-correct_name_en-help-1",
        "field-correct_name_en-help-2",
    )
    assert error == {
        "id": "field-correct_name_en-error",
        "attributes": {"aria-live": "polite"},
        "errorFor": "fields.correct_name_en",
    }


@pytest.mark.parametrize(
    ("call", "label", "described"),
    [
        (
            'documentInput({ code: "reports.general-inquiry" }, SPEC)',
            "مستندات داعمة (مطلوب)",
            "document-supporting_document-uploaded document-supporting_document-error",
        ),
        ("askedDocument(SPEC, 2)", "مستندات داعمة", "answer-document-supporting_document-2-error"),
    ],
)
def test_a_document_input_is_described_by_its_lines_and_its_progress_named_by_its_label(
    page_script: PageScript, call: str, label: str, described: str
) -> None:
    spec = {"kind": "supporting_document", "label": "مستندات داعمة", "required": True}
    parts = run(
        page_script,
        f"""const SPEC = {json.dumps(spec)};
        const parts = {call};
        const [label, input] = parts;
        const progress = parts.find((el) => el.tagName === "PROGRESS");
        const error = parts.find((el) => el.dataset.errorFor !== undefined);
        return [label.textContent, input.attributes["aria-describedby"],
                progress.attributes["aria-labelledby"] === label.id && Boolean(label.id),
                error.attributes["aria-live"]];""",
        ("TEXTS", "t", "labelText", "errorSlot", "describe", "documentInput", "askedDocument"),
    )
    assert parts == [label, described, True, "polite"]


def test_a_refusal_puts_the_focus_on_the_first_field_it_refused(page_script: PageScript) -> None:
    """Intake names the mobile before the description; the description comes first on the form,
    and takes the focus, its message being its description."""
    shown = run(
        page_script,
        """const form = [
          element("textarea", { id: "description" }),
          element("p", { className: "error" }),
          element("input", { id: "mobile" }),
          element("p", { className: "error" }),
          element("input", { id: "email" }),
          element("p", { className: "error" }),
        ];
        form[1].dataset.errorFor = "description";
        form[3].dataset.errorFor = "contact.mobile";
        form[5].dataset.errorFor = "contact.email";
        form.forEach((el, i) => { el.previousElementSibling = form[i - 1] ?? null; });
        const root = {
          querySelector(selector) {
            const slot = /^\\[data-error-for="(.*)"\\]$/.exec(selector);
            if (slot) return form.find((el) => el.dataset.errorFor === slot[1]) ?? null;
            if (selector === '[aria-invalid="true"]') {
              return form.find((el) => el.attributes["aria-invalid"] === "true") ?? null;
            }
            throw new Error(selector);
          },
        };
        showError(root, { message: "refused", fields: {
          "contact.mobile": "ليس رقم جوال سعوديًا", description: "قصير جدًا" } });
        const marks = (el) => [el.id, el.attributes["aria-invalid"], el.textContent];
        return [focused, form.map(marks)];""",
        ("showError", "controlOf"),
    )
    assert shown == [
        ["description"],
        [
            ["description", "true", None],
            [None, None, "قصير جدًا"],
            ["mobile", "true", None],
            [None, None, "ليس رقم جوال سعوديًا"],
            ["email", None, None],
            [None, None, None],
        ],
    ]


# A view as retitle finds it: its h2, and the confirmation's h3 when a request was just filed.
VIEWS = """
const view = (h2, filed) => ({
  querySelector: (selector) =>
    selector === "h2" ? { textContent: h2 }
    : selector === "#submitted:not([hidden]) h3" && filed ? { textContent: filed } : null,
});
const titled = (shown) => {
  const main = "main > section:not([hidden])";
  globalThis.document = { querySelector: (s) => (s === main ? shown : null) };
  retitle();
  return document.title;
};
"""


@pytest.mark.parametrize(
    ("lang", "shown", "title"),
    [
        ("ar", "view('طلب جديد')", "طلب جديد — تواصل — المديرية العامة للجوازات"),
        (
            "ar",
            "view('طلب جديد', 'تم استلام طلبك')",
            "تم استلام طلبك — تواصل — المديرية العامة للجوازات",
        ),
        ("en", "view('My requests')", "My requests — Tawasul — General Directorate of Passports"),
        (
            "en",
            "view('Request number\\n  TW000000123')",
            "Request number TW000000123 — Tawasul — General Directorate of Passports",
        ),
        ("en", "null", "Tawasul — General Directorate of Passports"),
    ],
)
def test_each_view_has_a_title_of_its_own_in_the_pages_language(
    page_script: PageScript, lang: str, shown: str, title: str
) -> None:
    got = page_script(
        f"(() => {{ {DOM}\n{VIEWS}\nreturn titled({shown}); }})()",
        ("TEXTS", "t", "pageTitle", "retitle"),
        lang=lang,
    )
    assert got == title


def test_the_column_names_in_the_arabic_bulk_help_read_left_to_right(
    page_script: PageScript,
) -> None:
    """Each isolated (U+2066…U+2069): unisolated in the Arabic line, "field." showed as ".field"."""
    said = page_script('TEXTS.ar["bulk.help"]', ("TEXTS",))
    assert isinstance(said, str)
    for column in ("subject_id", "sub_service_code", "description", "mobile", "field."):
        assert f" \u2066{column}\u2069،" in said
    assert " \u2066cites_request_number\u2069." in said


def test_the_bulk_help_says_the_file_is_saved_as_csv_utf8_in_both_languages(
    page_script: PageScript,
) -> None:
    """Excel's plain CSV (Windows-1256 on Arabic Windows) and its "Unicode Text" are refused:
    the page said nothing of the file's kind, so the establishment learnt it from a refusal."""
    said = page_script('[TEXTS.ar["bulk.help"], TEXTS.en["bulk.help"]]', ("TEXTS",))
    assert isinstance(said, list)
    ar, en = said
    assert ar.startswith(
        "احفظ الملف بنوع \u2066CSV UTF-8\u2069 (في Excel من «حفظ باسم»). صف لكل طلب:"
    )
    assert en.startswith("Save the file as CSV UTF-8 (in Excel, Save As). One row a request:")
    # The page's own Arabic, shown before its script runs, says it too.
    page = (WEB_DIR / "index.html").read_text("utf-8")
    assert "احفظ الملف بنوع &#x2066;CSV UTF-8&#x2069; (في Excel من «حفظ باسم»). صف لكل طلب:" in page


@pytest.mark.parametrize(("lost", "focused"), [(True, ["view-heading"]), (False, [])])
def test_a_focus_lost_with_the_control_pressed_goes_to_the_views_heading(
    page_script: PageScript, lost: bool, focused: list[str]
) -> None:
    got = run(
        page_script,
        f"""const heading = element("h2", {{ id: "view-heading" }});
        const body = element("body");
        Object.assign(document, {{
          body,
          activeElement: {json.dumps(lost)} ? body : element("select"),
          querySelector: (s) => (s === "main > section:not([hidden]) h2" ? heading : null),
        }});
        focusView();
        return focused;""",
        ("focusView",),
    )
    assert got == focused
    # Each view's heading can take it (not in the tab order).
    assert all(attrs.get("tabindex") == "-1" for tag, attrs in _page() if tag == "h2")
