"""The citizen's web page in a real browser (Playwright driving Debian's Chromium) against the
real stack: sign in, file with an attachment, see the number and the expected dates, track, answer
an information request, cancel, correct a rejected request with a new one linked to it (also
after a transfer, and left behind on leaving it or signing out), start a new request from the
confirmation or come back to a draft from another view, be signed out at once when the session
ends, switch the language in the middle of a form without losing it, and track without signing
in, in Arabic and in English; and what a screen reader is given, where the focus goes, how
"Done" differs from a refusal and in which direction what people wrote reads (the tests here
that need no stack: the page's files served alone, its API faked).

Screenshots of each language are kept under TAWASUL_ARTIFACTS_DIR (default .state/artifacts).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Dialog, Locator, Page, Route, async_playwright, expect
from tawasul.common.v1 import common_pb2
from tawasul.docs.v1 import docs_pb2
from tawasul.intake.v1 import intake_pb2
from tawasul.review.v1 import review_pb2
from tawasul_devstack.journey import Clients, eventually, sample_pdf
from tawasul_devstack.stack import Stack
from tawasul_gateway.settings import WEB_DIR
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer
from tawasul_platform.identity import Role

from tests.e2e.direct import scalar, sql

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TAWASUL_ARTIFACTS_DIR", ROOT / ".state" / "artifacts"))
# A sample citizen of the development registry no other test files for.
CITIZEN, CITIZEN_NAME_AR = "1000000016", "فهد ناصر العتيبي"
TRACKER = "1034567899"
MOBILE = "0559876543"
DEPARTMENT, SUB_SERVICE = "reports", "reports.general-inquiry"
REQUEST_NUMBER = re.compile(r"^TW\d{9}$")
ISO_DATE = re.compile(r"^20\d\d-\d\d-\d\d$")
OPEN = {
    common_pb2.REQUEST_STATUS_SUBMITTED,
    common_pb2.REQUEST_STATUS_UNDER_REVIEW,
    common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO,
    common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT,
}
# Playwright's own waits poll until this long for what the page must show.
SHOWN_WITHIN_MS = 20_000


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("Debian's chromium is not installed (make browser installs it)")
    return path


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        # As root, Chromium runs only without its sandbox.
        launched = await p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    # A phone's screen: the page must be usable at this width.
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="ar-SA")
    opened = await context.new_page()
    opened.set_default_timeout(SHOWN_WITHIN_MS)
    expect.set_options(timeout=SHOWN_WITHIN_MS)
    try:
        yield opened
    finally:
        await context.close()


async def screenshot(page: Page, name: str) -> None:
    # The browser writes the file; its folder is made beforehand.
    await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


async def sign_in(page: Page, base: str) -> None:
    await page.goto(base)
    await page.locator(f'#people button[data-id="{CITIZEN}"]').click()
    await expect(page.locator("#who")).to_have_text(CITIZEN_NAME_AR)


async def test_a_citizen_files_follows_answers_and_cancels_in_arabic_then_english(
    stack: Stack, clients: Clients, page: Page, tmp_path: Path
) -> None:
    base = stack.config.gateway_url
    citizen = clients.token(CITIZEN, Role.CITIZEN)
    await withdraw_leftovers(clients, citizen)
    await page.goto(base)
    # Arabic, right to left, by default.
    assert await page.locator("html").get_attribute("dir") == "rtl"
    await expect(page.locator("#view-sign-in h2")).to_have_text("الدخول")
    await sign_in(page, base)

    # A field that names the person the request is about (names_subject in the catalog)
    # starts as the signed-in person's ID and follows the subject typed above it.
    await page.select_option("#department", "passports")
    await page.select_option("#sub-service", "passports.issue-renewal-problem")
    # How long it takes, in words that agree with the number ("5 يوم عمل" did not).
    await expect(page.locator("#sub-service-about")).to_contain_text("مدة الإنجاز: ٥ أيام عمل")
    national_id = page.locator("#field-national_id")
    await expect(national_id).to_have_value(CITIZEN)
    await page.fill("#subject-id", "1012345672")
    await expect(national_id).to_have_value("1012345672")
    await page.fill("#subject-id", "")
    await expect(national_id).to_have_value(CITIZEN)
    # A visitor's border number is never one's own ID: left to be typed; the visitor's
    # nationality is chosen by name among those the sub-service is for.
    await page.select_option("#department", "residents")
    await page.select_option("#sub-service", "residents.visit-visa-extension")
    await expect(page.locator("#field-visitor_border_number")).to_have_value("")
    nationality = page.locator("#field-visitor_nationality option")
    await expect(nationality).to_have_text(["اختر…", "الجمهورية العربية السورية", "اليمن"])

    # The form is drawn from the catalog: department, then its sub-services, then the fields.
    await page.select_option("#department", DEPARTMENT)
    await page.select_option("#sub-service", SUB_SERVICE)
    await expect(page.locator("#document-supporting_document")).to_be_attached()
    await page.fill("#mobile", MOBILE)

    # The server's validation message stands next to the field it is about, in the page's
    # language.
    await page.fill("#description", "لا يعمل")
    await page.click("#submit")
    description_error = page.locator('[data-error-for="description"]')
    await expect(description_error).to_contain_text("قصير جدًا، اكتب 20 حرفًا على الأقل")
    await expect(page.locator("#description")).to_have_attribute("aria-invalid", "true")
    assert await page.locator("#submitted").is_hidden()

    await page.fill(
        "#description", "معاملة تجديد الإقامة متوقفة عند خطوة الدفع منذ أسبوعين برسالة خطأ 504"
    )
    # Four screenshots where the sub-service takes three: intake's refusal of the fourth
    # stands next to the screenshots' input, not in the banner.
    screens = []
    for n in range(4):
        screen = tmp_path / f"screen-{n}.pdf"
        screen.write_bytes(sample_pdf(f"Error screen {n}"))
        screens.append(str(screen))
    await page.set_input_files("#document-error_screenshot", screens)
    screens_progress = page.locator('progress[data-kind="error_screenshot"]')
    await expect(screens_progress).to_have_attribute("title", "تم الرفع")
    await page.click("#submit")
    # (Contained: on a busy machine a screenshot still being scanned is said beside it.)
    await expect(page.locator('[data-error-for="documents.error_screenshot"]')).to_contain_text(
        "لقطة شاشة لرسالة الخطأ: 3 على الأكثر لهذه الخدمة الفرعية"
    )
    # Marked invalid: the input of that kind, not the "uploaded" line under it.
    await expect(page.locator("#document-error_screenshot")).to_have_attribute(
        "aria-invalid", "true"
    )
    await expect(page.locator('[data-uploaded-for="error_screenshot"]')).not_to_have_attribute(
        "aria-invalid", "true"
    )
    await page.set_input_files("#document-error_screenshot", screens[:1])
    await expect(screens_progress).to_have_attribute("title", "تم الرفع")

    # An attachment with its progress bar, filled when docs has it.
    attachment = tmp_path / "payment-error.pdf"
    attachment.write_bytes(sample_pdf("Payment error screen"))
    await page.set_input_files("#document-supporting_document", str(attachment))
    progress = page.locator('progress[data-kind="supporting_document"]')
    await expect(progress).to_have_attribute("title", "تم الرفع")
    assert await progress.evaluate("p => p.value") == 1

    await page.click("#submit")
    await expect(page.locator("#submitted")).to_be_visible()
    await expect(description_error).to_be_empty()
    number = (await page.locator("#submitted-number").text_content() or "").strip()
    assert REQUEST_NUMBER.match(number), number
    await expect(page.locator("#submitted-gregorian")).to_have_text(ISO_DATE)
    await expect(page.locator("#submitted-hijri")).to_have_text(re.compile(r"^14\d\d-\d\d-\d\d$"))
    await expect(page.locator("#submitted-expected")).to_contain_text("هـ")
    await screenshot(page, "submitted-ar")

    # What intake stored is what the page showed, attachment included.
    stored = await clients.track(citizen, number)
    assert stored.sub_service_code == SUB_SERVICE
    assert len(stored.document_ids) == 2
    expected = stored.expected_completion
    assert await page.locator("#submitted-gregorian").text_content() == expected.gregorian_date

    # English, left to right: the confirmation is read again in English, not thrown away; then
    # the list of one's requests and the request itself.
    await page.click("#language")
    assert await page.locator("html").get_attribute("dir") == "ltr"
    await expect(page.locator('#submitted [data-t="new.done"]')).to_have_text(
        "Your request was received"
    )
    await expect(page.locator("#submitted-number")).to_have_text(number)
    await expect(page.locator("#submitted-expected")).to_have_text(expected.text_en)
    await expect(page.locator("#new-form")).to_be_hidden()
    await expect(page.locator('nav a[href="#mine"]')).to_have_text("My requests")
    await page.click('nav a[href="#mine"]')
    mine = page.locator(f'#mine-list li[data-number="{number}"]')
    await expect(mine).to_be_visible()
    await mine.locator("a").click()
    await expect(page.locator("#request-number")).to_have_text(number)
    await expect(page.locator("#request-expected")).to_have_text(expected.text_en)
    # Inside the 3-day window the follow-up waits, and the page says until when.
    await expect(page.locator("#follow-up")).to_be_disabled()
    await expect(page.locator("#follow-up-from")).to_contain_text("A follow-up is possible from")
    await screenshot(page, "request-en")

    # Ten days pass (in intake's database: the service reads the real clock); the page now
    # offers the follow-up, and intake counts it.
    await sql(
        stack,
        "intake",
        "UPDATE requests SET submitted_at = submitted_at - interval '10 days'"
        " WHERE number = :number",
        number=number,
    )
    await page.reload()
    await expect(page.locator("#follow-up")).to_be_enabled()
    await expect(page.locator("#follow-up-from")).to_be_empty()
    await page.click("#follow-up")
    await expect(page.locator("#notice")).to_have_text("Done")
    assert (await clients.track(citizen, number)).follow_up_count == 1

    # A reviewer asks for more; the page shows what is asked and takes the answer.
    reviewer = clients.token("E7301", Role.REVIEWER, frozenset({DEPARTMENT}))
    await claim_and_ask(clients, reviewer, stored.request_id)
    # Review's decision reaches intake by an event; the page shows what intake says.
    await eventually(
        lambda: in_status(clients, citizen, number, common_pb2.REQUEST_STATUS_NEEDS_MORE_INFO),
        what="the information request in intake",
    )
    await page.reload()
    await expect(page.locator("#request-missing")).to_be_visible()
    await expect(page.locator("#missing-list")).to_contain_text("The reference number")
    # Refused, the answer stays in the form to be corrected.
    await page.fill("#respond-message", "x" * 1001)
    await page.click('#respond-form button[type="submit"]')
    await expect(page.locator('#respond-form [data-error-for="message"]')).to_have_text(
        "at most 1000 characters"
    )
    await expect(page.locator("#respond-message")).to_have_value("x" * 1001)
    await page.fill("#respond-message", "The reference number is 7781204; the receipt is attached")
    # What was asked for by name has an input of its own: the field's, and the document's
    # upload as its kind.
    await page.fill("#answer-reference_number", "7781204")
    screen = tmp_path / "error-screen.pdf"
    screen.write_bytes(sample_pdf("Error 504 at the payment step"))
    await page.set_input_files("#answer-document-error_screenshot", str(screen))
    # The same kind asked for twice: an input for each, each file its own upload.
    retry = tmp_path / "retry-screen.pdf"
    retry.write_bytes(sample_pdf("Error 504 again on retry"))
    await page.set_input_files("#answer-document-error_screenshot-2", str(retry))
    # Named as another type: the browser would declare it so, and docs reads the bytes.
    receipt = tmp_path / "receipt.jpg"
    receipt.write_bytes(sample_pdf("Receipt 7781204"))
    await page.set_input_files("#respond-file", str(receipt))

    async def lose_the_reply(route: Route) -> None:
        await route.fetch()  # intake takes the answer...
        await route.abort()  # ...and its reply never reaches the page

    await page.route("**/respond", lose_the_reply)
    await page.click('#respond-form button[type="submit"]')
    await expect(page.locator("#banner")).to_have_text("The service cannot be reached; try again.")
    await page.unroute("**/respond", lose_the_reply)
    await expect(page.locator("#respond-message")).not_to_be_empty()
    # Edited after the lost reply and sent again under the page's key: the answer taken first
    # stands, and the page says so and shows the request as it is.
    await page.fill("#respond-message", "The reference number is 7781204")
    await page.click('#respond-form button[type="submit"]')
    await expect(page.locator("#banner")).to_have_text(
        "an answer was already taken under this key: the request shows it"
    )
    await expect(page.locator("#request-missing")).to_be_hidden()
    await expect(page.locator("#respond-message")).to_have_value("")
    answered = await clients.track(citizen, number)
    assert answered.status == common_pb2.REQUEST_STATUS_RETURNED_BY_APPLICANT
    assert answered.fields["reference_number"] == "7781204"
    assert len(set(answered.document_ids)) == len(answered.document_ids) == 5
    for shot in answered.document_ids[2:4]:
        screenshot_kind = await clients.docs.GetDocument(
            docs_pb2.GetDocumentRequest(document_id=shot),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(citizen),
        )
        assert screenshot_kind.document.document_kind == "error_screenshot"
    # Sent under a key of the page's, so that sending it again is the same answer.
    answer = await scalar(
        stack,
        "intake",
        "SELECT jsonb_build_object('key', h->'answer_key', 'message', h->'message')"
        " FROM requests, jsonb_array_elements(history) h"
        " WHERE number = :number AND h->>'answer_key' IS NOT NULL",
        number=number,
    )
    assert uuid.UUID(answer["key"])
    assert answer["message"] == "The reference number is 7781204; the receipt is attached"
    await expect(page.locator("#request-status")).to_have_text(answered.status_label.en)

    # Cancelled with a reason from the browser's prompt.
    page.once("dialog", lambda dialog: dialog.accept("Solved at the office"))
    await page.click("#cancel")
    cancelled = await eventually(
        lambda: in_status(clients, citizen, number, common_pb2.REQUEST_STATUS_CANCELLED),
        what="the request cancelled",
    )
    await expect(page.locator("#request-status")).to_have_text(cancelled.status_label.en)
    await expect(page.locator("#cancel")).to_be_hidden()
    # Nothing is expected of the office any more: no date, nor its label.
    assert not cancelled.HasField("expected_completion")
    await expect(page.locator("#request-expected")).to_be_hidden()
    await expect(page.locator('#view-request [data-t="request.expected"]')).to_be_hidden()


async def withdraw_leftovers(clients: Clients, citizen: str) -> None:
    """A kept stack (TAWASUL_TEST_KEEP_STACK) may hold this test's open request of a run before:
    one person has one open request per sub-service."""
    mine = await clients.intake.ListMyRequests(
        intake_pb2.ListMyRequestsRequest(page_size=100),
        timeout=DEFAULT_DEADLINE_SECONDS,
        metadata=bearer(citizen),
    )
    for request in mine.requests:
        if request.sub_service_code == SUB_SERVICE and request.status in OPEN:
            await clients.intake.CancelRequest(
                intake_pb2.CancelRequestRequest(
                    request_number=request.request_number, reason="left by an earlier run"
                ),
                timeout=DEFAULT_DEADLINE_SECONDS,
                metadata=bearer(citizen),
            )


async def in_status(
    clients: Clients, citizen: str, number: str, status: common_pb2.RequestStatus.ValueType
) -> intake_pb2.Request | None:
    seen = await clients.track(citizen, number)
    return seen if seen.status == status else None


async def claim(clients: Clients, reviewer: str, request_id: str) -> None:
    async def claimed() -> bool | None:
        try:
            await clients.review.ClaimRequest(
                review_pb2.ClaimRequestRequest(request_id=request_id),
                timeout=DEFAULT_DEADLINE_SECONDS,
                metadata=bearer(reviewer),
            )
        except Exception:  # not routed to review yet
            return None
        return True

    await eventually(claimed, what="the request claimed in review")


async def claim_and_ask(clients: Clients, reviewer: str, request_id: str) -> None:
    await claim(clients, reviewer, request_id)
    await clients.review.RequestInformation(
        review_pb2.RequestInformationRequest(
            request_id=request_id,
            missing=[
                common_pb2.MissingItem(
                    kind="field", name="reference_number", description="The reference number"
                ),
                common_pb2.MissingItem(
                    kind="document", name="error_screenshot", description="The error's screen"
                ),
                common_pb2.MissingItem(
                    kind="document", name="error_screenshot", description="The screen on retry"
                ),
            ],
            message="Please send the payment's reference number",
            respond_within_working_days=3,
        ),
        timeout=DEFAULT_DEADLINE_SECONDS,
        metadata=bearer(reviewer),
    )


async def test_tracking_without_signing_in_with_the_code_sent_by_sms(
    stack: Stack, clients: Clients, page: Page
) -> None:
    base = stack.config.gateway_url
    citizen = clients.token(TRACKER, Role.CITIZEN)
    await withdraw_leftovers(clients, citizen)
    mobile = f"055{secrets.randbelow(10**7):07d}"
    filed = await clients.submit(
        citizen,
        key=str(uuid.uuid4()),
        sub_service=SUB_SERVICE,
        description="My exit visa transaction has been stalled at the payment step for days",
        documents=[],
        mobile=mobile,
    )
    number = filed.request_number

    await page.goto(f"{base}/#track")
    await page.fill("#track-number", number)
    await page.fill("#track-id", TRACKER)
    await page.fill("#track-mobile", mobile)
    await page.click("#track-start")
    await expect(page.locator("#track-code-form")).to_be_visible()

    e164 = "+966" + mobile[1:]

    async def code_sent() -> str | None:
        texts = [m["text"] for m in await clients.sms_received() if m["to"] == e164]
        codes = [found.group(0) for t in texts if (found := re.search(r"\b\d{6}\b", t))]
        return codes[-1] if codes else None

    code = await eventually(code_sent, what="the one-time code by SMS")
    # A wrong code: the server's refusal is shown, in the page's language, and nothing of the
    # request.
    await page.fill("#track-code", f"{(int(code) + 1) % 10**6:06d}")
    await page.click('#track-code-form button[type="submit"]')
    await expect(page.locator("#banner")).to_have_text("لا يوجد طلب يطابق هذه البيانات والرمز")
    assert await page.locator("#track-result").is_hidden()

    await page.fill("#track-code", code)
    await page.click('#track-code-form button[type="submit"]')
    await expect(page.locator("#track-result")).to_be_visible()
    await expect(page.locator("#track-status")).to_have_text(filed.status_label.ar)
    await expect(page.locator("#track-expected")).to_have_text(filed.expected_completion.text_ar)
    await expect(page.locator("#track-decision")).to_be_hidden()
    await screenshot(page, "tracking-ar")

    # Rejected with a reason of the office's catalog: tracked again (a new code), the page
    # shows the reason and the reviewer's words, and no expected date any more.
    reviewer = clients.token("E7302", Role.REVIEWER, frozenset({DEPARTMENT}))
    await reject(
        clients, reviewer, filed.request_id, "The transaction number does not match our records"
    )
    rejected = await eventually(
        lambda: in_status(clients, citizen, number, common_pb2.REQUEST_STATUS_REJECTED),
        what="the rejection in intake",
    )
    assert rejected.decision_reason_code == "data-mismatch"
    await page.click("#track-start")
    new_code = await eventually(
        lambda: _newer(code_sent(), code), what="a second one-time code by SMS"
    )
    await page.fill("#track-code", new_code)
    await page.click('#track-code-form button[type="submit"]')
    await expect(page.locator("#track-status")).to_have_text(rejected.status_label.ar)
    await expect(page.locator("#track-decision")).to_have_text(
        f"{rejected.decision_reason.ar} — The transaction number does not match our records"
    )
    await expect(page.locator("#track-expected")).to_be_hidden()


async def reject(clients: Clients, reviewer: str, request_id: str, message: str) -> None:
    await claim(clients, reviewer, request_id)
    await clients.review.DecideRequest(
        review_pb2.DecideRequestRequest(
            request_id=request_id,
            decision=review_pb2.DECISION_REJECT,
            reason_code="data-mismatch",
            message=message,
        ),
        timeout=DEFAULT_DEADLINE_SECONDS,
        metadata=bearer(reviewer),
    )


async def test_a_rejected_request_is_corrected_by_a_new_one_linked_to_it(
    stack: Stack, clients: Clients, page: Page
) -> None:
    """SPEC §2: a rejected request is not reopened; the beneficiary files a new one with the
    corrections, from the rejected one's page, and each request links to the other."""
    base = stack.config.gateway_url
    citizen = clients.token(CITIZEN, Role.CITIZEN)
    await withdraw_leftovers(clients, citizen)
    description = "معاملة تجديد الإقامة متوقفة عند خطوة الدفع برسالة خطأ 504 منذ أسبوع"
    filed = await clients.submit(
        citizen,
        key=str(uuid.uuid4()),
        sub_service=SUB_SERVICE,
        description=description,
        documents=[],
        mobile=MOBILE,
        fields={"reference_number": "7781240", "related_service": "تجديد الإقامة"},
    )
    number = filed.request_number
    reviewer = clients.token("E7303", Role.REVIEWER, frozenset({DEPARTMENT}))
    await reject(clients, reviewer, filed.request_id, "The transaction number is not ours")
    await eventually(
        lambda: in_status(clients, citizen, number, common_pb2.REQUEST_STATUS_REJECTED),
        what="the rejection in intake",
    )

    await sign_in(page, base)
    await page.goto(f"{base}/#request/{number}")
    await expect(page.locator("#request-number")).to_have_text(number)
    correct = page.locator("#correct")
    await expect(correct).to_have_text("تقديم طلب مصحح")
    # Linked to nothing yet: neither link is shown.
    await expect(page.locator("#request-corrects")).to_be_hidden()
    await expect(page.locator("#request-corrected-by")).to_be_hidden()
    await correct.click()

    # The new request's form starts as the rejected one was filed, and says what it corrects.
    correcting = page.locator("#correcting")
    await expect(correcting).to_be_visible()
    await expect(correcting).to_contain_text("يصحح الطلب المرفوض")
    await expect(page.locator("#correcting-number")).to_have_text(number)
    await expect(page.locator("#department")).to_have_value(DEPARTMENT)
    await expect(page.locator("#sub-service")).to_have_value(SUB_SERVICE)
    await expect(page.locator("#description")).to_have_value(description)
    await expect(page.locator("#field-reference_number")).to_have_value("7781240")
    await expect(page.locator("#field-related_service")).to_have_value("تجديد الإقامة")
    # The button that started it is gone: the form's first input has the focus.
    await expect(page.locator("#department")).to_be_focused()
    # The link can be dropped (the request is then filed on its own), and made again; the
    # focus is not lost with the card that held the button.
    await page.click("#correcting-drop")
    await expect(correcting).to_be_hidden()
    await expect(page.locator("#department")).to_be_focused()
    assert page.url.endswith("#new")
    await page.goto(f"{base}/#request/{number}")
    await correct.click()
    await expect(page.locator("#correcting-number")).to_have_text(number)
    await expect(page.locator("#description")).to_have_value(description)

    await page.fill("#field-reference_number", "7781204")
    await page.fill("#mobile", MOBILE)
    await screenshot(page, "correcting-ar")
    await page.click("#submit")
    await expect(page.locator("#submitted")).to_be_visible()
    corrected = (await page.locator("#submitted-number").text_content() or "").strip()
    assert REQUEST_NUMBER.match(corrected), corrected
    try:
        stored = await clients.track(citizen, corrected)
        assert stored.cites_request_number == number
        assert stored.fields["reference_number"] == "7781204"
        assert stored.description == description
        assert list((await clients.track(citizen, number)).cited_by_request_numbers) == [corrected]

        # Each request links to the other.
        await page.click("#submitted-link")
        await expect(page.locator("#request-number")).to_have_text(corrected)
        await expect(page.locator('#view-request [data-t="request.corrects"]')).to_have_text(
            "يصحح الطلب"
        )
        await expect(page.locator("#request-corrected-by")).to_be_hidden()
        await expect(page.locator("#correct")).to_be_hidden()
        await page.locator("#request-corrects a").click()
        await expect(page.locator("#request-number")).to_have_text(number)
        await expect(page.locator('#view-request [data-t="request.correctedBy"]')).to_have_text(
            "صُحّح بالطلب"
        )
        corrected_by = page.locator("#request-corrected-by a")
        await expect(corrected_by).to_have_text([corrected])
        await page.click("#language")
        await expect(page.locator('#view-request [data-t="request.correctedBy"]')).to_have_text(
            "Corrected by"
        )
        await expect(page.locator("#correct")).to_have_text("File a corrected request")
        await screenshot(page, "corrected-by-en")
        await corrected_by.click()
        await expect(page.locator("#request-corrects a")).to_have_text(number)
    finally:
        await clients.intake.CancelRequest(
            intake_pb2.CancelRequestRequest(request_number=corrected, reason="test done"),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(citizen),
        )


async def test_a_correction_is_filed_as_before_a_transfer_and_left_behind_when_left(
    stack: Stack, clients: Clients, page: Page
) -> None:
    """A request transferred to another department and rejected there: its correction starts
    under the sub-service it was filed as (and that sub-service's department). What is corrected
    stays through a look at the rejected request; leaving the correction for a new request, or
    signing out, leaves nothing of it for the next request or the next person."""
    base = stack.config.gateway_url
    citizen = clients.token(CITIZEN, Role.CITIZEN)
    await withdraw_leftovers(clients, citizen)
    description = f"معاملة تجديد الإقامة متوقفة عند الدفع برسالة خطأ 504 ({uuid.uuid4().hex[:8]})"
    filed = await clients.submit(
        citizen,
        key=str(uuid.uuid4()),
        sub_service=SUB_SERVICE,
        description=description,
        documents=[],
        mobile=MOBILE,
        fields={"reference_number": "7781240", "related_service": "تجديد الإقامة"},
    )
    number = filed.request_number
    reviewer = clients.token("E7304", Role.REVIEWER, frozenset({DEPARTMENT}))
    await claim(clients, reviewer, filed.request_id)
    await clients.review.TransferRequest(
        review_pb2.TransferRequestRequest(
            request_id=filed.request_id, department_code="residents", reason="Misfiled"
        ),
        timeout=DEFAULT_DEADLINE_SECONDS,
        metadata=bearer(reviewer),
    )
    residents = clients.token("E7305", Role.REVIEWER, frozenset({"residents"}))
    await reject(clients, residents, filed.request_id, "The transaction number is not ours")
    rejected = await eventually(
        lambda: in_status(clients, citizen, number, common_pb2.REQUEST_STATUS_REJECTED),
        what="the rejection in intake",
    )
    assert (rejected.department_code, rejected.sub_service_code) == ("residents", SUB_SERVICE)

    await sign_in(page, base)
    await page.goto(f"{base}/#request/{number}")
    await page.click("#correct")
    await expect(page.locator("#correcting-number")).to_have_text(number)
    await expect(page.locator("#department")).to_have_value(DEPARTMENT)
    await expect(page.locator("#sub-service")).to_have_value(SUB_SERVICE)
    reference = page.locator("#field-reference_number")
    await expect(reference).to_have_value("7781240")
    await expect(page.locator("#description")).to_have_value(description)

    # Corrected, then a look at the rejected request by the form's own link, and back: the
    # correction is as it was left, not emptied nor prefilled again.
    await reference.fill("7781204")
    await page.click("#correcting-number")
    await expect(page.locator("#request-number")).to_have_text(number)
    await page.go_back()
    await expect(page.locator("#correcting-number")).to_have_text(number)
    await expect(reference).to_have_value("7781204")
    await expect(page.locator("#field-related_service")).to_have_value("تجديد الإقامة")
    await expect(page.locator("#description")).to_have_value(description)
    # "File a corrected request" again: the same.
    await page.goto(f"{base}/#request/{number}")
    await page.click("#correct")
    await expect(page.locator("#correcting-number")).to_have_text(number)
    await expect(reference).to_have_value("7781204")

    # A new request: nothing of the rejected one, which an unlinked copy would file again.
    await page.click('nav a[href="#new"]')
    await expect(page.locator("#correcting")).to_be_hidden()
    await expect(page.locator("#department")).to_have_value("")
    await expect(page.locator("#sub-service")).to_have_value("")
    await expect(page.locator("#description")).to_have_value("")
    await expect(reference).not_to_be_attached()

    # Signed out in the middle of a correction: the next person to sign in on this page sees
    # none of it, nor the address naming the request.
    await page.goto(f"{base}/#request/{number}")
    await page.click("#correct")
    await expect(page.locator("#description")).to_have_value(description)
    await page.fill("#subject-id", "1012345672")
    await page.fill("#mobile", MOBILE)
    await page.fill("#email", "fahad@example.com")
    await page.click("#sign-out")
    await expect(page.locator("#view-sign-in")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"#new$"))
    await page.locator(f'#people button[data-id="{TRACKER}"]').click()
    await expect(page.locator("#who")).to_have_text("سارة علي الشهري")
    await expect(page.locator("#view-new")).to_be_visible()
    await expect(page.locator("#correcting")).to_be_hidden()
    for emptied in ("#department", "#sub-service", "#subject-id", "#description", "#mobile"):
        await expect(page.locator(emptied)).to_have_value("")
    await expect(page.locator("#email")).to_have_value("")


async def test_new_request_opens_an_empty_form_where_the_page_already_is(
    stack: Stack, clients: Clients, page: Page
) -> None:
    """After filing, the page's address is #new: "New request" changes no address, so no
    hashchange routes, yet it shows an empty form and not the confirmation; over a form half
    filled at #new, it starts the form again too."""
    base = stack.config.gateway_url
    citizen = clients.token(CITIZEN, Role.CITIZEN)
    await withdraw_leftovers(clients, citizen)
    await sign_in(page, base)
    await page.select_option("#department", DEPARTMENT)
    await page.select_option("#sub-service", SUB_SERVICE)
    await page.fill("#field-reference_number", "7781277")
    await page.fill("#description", "معاملة تجديد الإقامة متوقفة عند خطوة الدفع برسالة خطأ 504")
    await page.fill("#mobile", MOBILE)
    await page.click("#submit")
    await expect(page.locator("#submitted")).to_be_visible()
    number = (await page.locator("#submitted-number").text_content() or "").strip()
    assert REQUEST_NUMBER.match(number), number
    try:
        await expect(page).to_have_url(re.compile(r"#new$"))
        new = page.locator('nav a[href="#new"]')
        await new.click()
        await expect(page.locator("#submitted")).to_be_hidden()
        await expect(page.locator("#new-form")).to_be_visible()
        for emptied in ("#department", "#sub-service", "#description", "#mobile"):
            await expect(page.locator(emptied)).to_have_value("")
        await expect(page.locator("#field-reference_number")).not_to_be_attached()

        await page.select_option("#department", DEPARTMENT)
        await page.select_option("#sub-service", SUB_SERVICE)
        await page.fill("#field-reference_number", "7781278")
        await page.fill("#description", "وصف لم يرسل بعد لطلب آخر")
        await new.click()
        await expect(page.locator("#department")).to_have_value("")
        await expect(page.locator("#description")).to_have_value("")
        await expect(page.locator("#field-reference_number")).not_to_be_attached()
        await expect(page).to_have_url(re.compile(r"#new$"))
    finally:
        await clients.intake.CancelRequest(
            intake_pb2.CancelRequestRequest(request_number=number, reason="test done"),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(citizen),
        )


async def test_new_request_from_another_view_comes_back_to_the_draft(
    stack: Stack, page: Page, tmp_path: Path
) -> None:
    """A form half filled, a look at one's requests, and "New request" to come back: the draft is
    as it was left, its fields and its document, which the request is then sent with."""
    base = stack.config.gateway_url
    await sign_in(page, base)
    await page.select_option("#department", DEPARTMENT)
    await page.select_option("#sub-service", SUB_SERVICE)
    reference = page.locator("#field-reference_number")
    await reference.fill("7781279")
    description = "معاملة تجديد الإقامة متوقفة عند خطوة الدفع ولم تكتمل المسودة بعد"
    await page.fill("#description", description)
    attachment = tmp_path / "payment-error.pdf"
    attachment.write_bytes(sample_pdf("Payment error screen"))
    async with page.expect_response(re.compile(r"/api/v1/documents")) as uploading:
        await page.set_input_files("#document-supporting_document", str(attachment))
    document_id = (await (await uploading.value).json())["document"]["document_id"]
    uploaded = page.locator('[data-uploaded-for="supporting_document"]')
    await expect(uploaded).to_have_text("تم الرفع: ١")

    await page.click('nav a[href="#mine"]')
    await expect(page.locator("#view-mine")).to_be_visible()
    await page.click('nav a[href="#new"]')
    await expect(page.locator("#view-new")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"#new$"))
    await expect(page.locator("#department")).to_have_value(DEPARTMENT)
    await expect(page.locator("#sub-service")).to_have_value(SUB_SERVICE)
    await expect(reference).to_have_value("7781279")
    await expect(page.locator("#description")).to_have_value(description)
    await expect(uploaded).to_have_text("تم الرفع: ١")

    # Sent (and stopped on its way: nothing is filed), it carries the document uploaded before.
    sent: list[object] = []

    async def stop(route: Route) -> None:
        sent.append(route.request.post_data_json)
        await route.abort()

    await page.route("**/api/v1/requests", stop)
    await page.fill("#mobile", MOBILE)
    await page.click("#submit")
    await expect(page.locator("#banner")).to_have_text("تعذر الاتصال بالخدمة، حاول مرة أخرى.")
    assert len(sent) == 1
    body = sent[0]
    assert isinstance(body, dict)
    assert body["document_ids"] == [document_id]
    assert body["fields"] == {"reference_number": "7781279"}
    assert body["description"] == description


async def test_a_session_that_ends_shows_the_sign_in_at_once_and_comes_back_there(
    stack: Stack, page: Page, tmp_path: Path
) -> None:
    """Any 401 of the API (here the token expired) signs the page out at once: the sign-in view,
    a notice in the page's language, nothing of the form kept (as signing out); the same person
    signing in again comes back where the session ended, another person to a new request."""
    base = stack.config.gateway_url
    expired = stack.config.identity.token(CITIZEN, Role.CITIZEN, now=time.time() - 7200)

    async def expire(route: Route) -> None:
        # The page's own token, as the gateway sees it once its time is up.
        headers = {**route.request.headers, "authorization": f"Bearer {expired}"}
        await route.continue_(headers=headers)

    api = re.compile(r"/api/v1/")
    signed_out = page.locator("#view-sign-in")
    first_person = page.locator("#people button").first
    await sign_in(page, base)
    await page.select_option("#department", DEPARTMENT)
    await page.select_option("#sub-service", SUB_SERVICE)
    await page.fill("#description", "معاملة تجديد الإقامة متوقفة عند خطوة الدفع منذ أسبوعين")

    # An upload refused (docs, through the gateway): not an error beside the file input.
    await page.route(api, expire)
    attachment = tmp_path / "payment-error.pdf"
    attachment.write_bytes(sample_pdf("Payment error screen"))
    await page.set_input_files("#document-supporting_document", str(attachment))
    await expect(signed_out).to_be_visible()
    await expect(page.locator("#banner")).to_have_text("انتهت جلستك، سجّل الدخول مرة أخرى.")
    await expect(page.locator("#who")).to_be_empty()
    await expect(page.locator("#sign-out")).to_be_hidden()
    await expect(first_person).to_be_focused()
    await page.unroute(api, expire)
    await page.locator(f'#people button[data-id="{CITIZEN}"]').click()
    await expect(page.locator("#view-new")).to_be_visible()
    await expect(page.locator("#description")).to_have_value("")

    # A view opened (the list of one's requests), in English: back to it once signed in again.
    await page.click("#language")
    await page.route(api, expire)
    await page.click('nav a[href="#mine"]')
    await expect(signed_out).to_be_visible()
    await expect(page.locator("#view-mine")).to_be_hidden()
    await expect(page.locator("#banner")).to_have_text("Your session has ended; sign in again.")
    await expect(page).to_have_url(re.compile(r"#new$"))
    await page.unroute(api, expire)
    await page.locator(f'#people button[data-id="{CITIZEN}"]').click()
    await expect(page.locator("#view-mine")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"#mine$"))

    # Ended there again (found on a reload), and someone else signs in: a new request.
    await page.route(api, expire)
    await page.reload()
    await expect(signed_out).to_be_visible()
    await page.unroute(api, expire)
    await page.locator(f'#people button[data-id="{TRACKER}"]').click()
    await expect(page.locator("#who")).to_have_text("Sarah Ali Al-Shehri")
    await expect(page.locator("#view-new")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"#new$"))


async def test_a_bulk_upload_refused_for_its_session_signs_the_page_out(
    stack: Stack, page: Page, tmp_path: Path
) -> None:
    """The bulk filing's own call: its 401 signs out as any other (no row's error in the table),
    and the establishment signing in again comes back to the bulk filing."""
    establishment = "7000000013"
    expired = stack.config.identity.token(establishment, Role.ESTABLISHMENT, now=time.time() - 7200)

    async def expire(route: Route) -> None:
        headers = {**route.request.headers, "authorization": f"Bearer {expired}"}
        await route.continue_(headers=headers)

    csv = tmp_path / "workers.csv"
    csv.write_text(
        "subject_id,sub_service_code,description,mobile\n"
        f"2034567897,{SUB_SERVICE},The worker's iqama renewal fails at the payment step,"
        "0551234567\n"
    )
    await page.goto(stack.config.gateway_url)
    await page.locator(f'#people button[data-id="{establishment}"]').click()
    await page.click("#nav-bulk")
    bulk = re.compile(r"/api/v1/establishment/requests:bulk")
    await page.route(bulk, expire)
    await page.set_input_files("#bulk-file", str(csv))
    await page.click("#bulk-send")
    await expect(page.locator("#view-sign-in")).to_be_visible()
    await expect(page.locator("#banner")).to_have_text("انتهت جلستك، سجّل الدخول مرة أخرى.")
    await expect(page.locator("#nav-bulk")).to_be_hidden()
    await page.unroute(bulk, expire)
    await page.locator(f'#people button[data-id="{establishment}"]').click()
    await expect(page.locator("#view-bulk")).to_be_visible()
    await expect(page.locator("#bulk-results")).to_be_hidden()


async def test_a_catalog_asked_for_before_the_language_switched_is_not_kept(
    stack: Stack, page: Page
) -> None:
    """The language switched while the first catalog (Arabic) is on its way: the English one
    draws the form, and the Arabic one, arriving last, is neither shown nor kept."""
    base = stack.config.gateway_url
    released = asyncio.Event()

    async def late(route: Route) -> None:
        await released.wait()
        await route.continue_()

    arabic = re.compile(r"/api/v1/catalog\?locale=ar")
    await page.route(arabic, late)
    await sign_in(page, base)
    await page.click("#language")
    english = page.locator(f'#department option[value="{DEPARTMENT}"]')
    await expect(english).to_have_text("Reports and other transactions")
    async with page.expect_response(arabic):
        released.set()
    await page.click('nav a[href="#mine"]')
    await expect(page.locator("#view-mine")).to_be_visible()
    await page.click('nav a[href="#new"]')
    await expect(page.locator("#view-new")).to_be_visible()
    await expect(english).to_have_text("Reports and other transactions")
    await page.select_option("#department", DEPARTMENT)
    await expect(page.locator(f'#sub-service option[value="{SUB_SERVICE}"]')).to_have_text(
        "General inquiries and stalled transactions"
    )


async def test_switching_the_language_keeps_what_the_new_request_form_holds(
    stack: Stack, clients: Clients, page: Page, tmp_path: Path
) -> None:
    """The language switched, the form is relabelled from the catalog in the other language but
    keeps the fields typed, the documents uploaded and its idempotency key: sent again after an
    answer lost, the request is the one filed then, not a second."""
    base = stack.config.gateway_url
    citizen = clients.token(CITIZEN, Role.CITIZEN)
    await withdraw_leftovers(clients, citizen)
    marker = uuid.uuid4().hex[:8]
    description = f"معاملة تجديد الإقامة متوقفة عند خطوة الدفع برسالة خطأ 504 ({marker})"
    await sign_in(page, base)
    await page.select_option("#department", DEPARTMENT)
    await page.select_option("#sub-service", SUB_SERVICE)
    reference = page.locator("#field-reference_number")
    related = page.locator("#field-related_service")
    await reference.fill("7781299")
    await related.fill("تجديد الإقامة")
    await page.fill("#description", description)
    await page.fill("#mobile", MOBILE)
    attachment = tmp_path / "payment-error.pdf"
    attachment.write_bytes(sample_pdf("Payment error screen"))
    await page.set_input_files("#document-supporting_document", str(attachment))
    uploaded = page.locator('[data-uploaded-for="supporting_document"]')
    await expect(uploaded).to_have_text("تم الرفع: ١")

    async def lose_the_reply(route: Route) -> None:
        await route.fetch()  # intake files the request...
        await route.abort()  # ...and its answer never reaches the page

    await page.route("**/api/v1/requests", lose_the_reply)
    await page.click("#submit")
    await expect(page.locator("#banner")).to_have_text("تعذر الاتصال بالخدمة، حاول مرة أخرى.")
    await page.unroute("**/api/v1/requests", lose_the_reply)

    # In English: the catalog's labels and texts in English, what was entered as it was; the
    # file input is drawn empty, its row says the document is in.
    await page.click("#language")
    await expect(page.locator('label[for="field-reference_number"]')).to_have_text(
        "Transaction number"
    )
    await expect(page.locator("#sub-service-about")).to_contain_text("For general inquiries")
    await expect(reference).to_have_value("7781299")
    await expect(related).to_have_value("تجديد الإقامة")
    await expect(page.locator("#description")).to_have_value(description)
    await expect(uploaded).to_have_text("Uploaded: 1")
    await expect(page.locator('progress[data-kind="supporting_document"]')).to_have_attribute(
        "title", "Uploaded"
    )
    await screenshot(page, "relabelled-en")
    await page.click("#language")
    await expect(page.locator('label[for="field-reference_number"]')).to_have_text("رقم المعاملة")
    await expect(reference).to_have_value("7781299")
    await expect(related).to_have_value("تجديد الإقامة")
    await expect(uploaded).to_have_text("تم الرفع: ١")

    await page.click("#submit")
    await expect(page.locator("#submitted")).to_be_visible()
    number = (await page.locator("#submitted-number").text_content() or "").strip()
    assert REQUEST_NUMBER.match(number), number
    try:
        stored = await clients.track(citizen, number)
        assert dict(stored.fields) == {
            "reference_number": "7781299",
            "related_service": "تجديد الإقامة",
        }
        assert len(stored.document_ids) == 1
        document = await clients.docs.GetDocument(
            docs_pb2.GetDocumentRequest(document_id=stored.document_ids[0]),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(citizen),
        )
        assert document.document.document_kind == "supporting_document"
        # Filed once: sent again under the form's key, the request is the one the lost answer
        # was about.
        mine = await clients.intake.ListMyRequests(
            intake_pb2.ListMyRequestsRequest(page_size=100),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(citizen),
        )
        assert [r.request_number for r in mine.requests if marker in r.description] == [number]
    finally:
        await clients.intake.CancelRequest(
            intake_pb2.CancelRequestRequest(request_number=number, reason="test done"),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(citizen),
        )


async def _newer(sent: Awaitable[str | None], old: str) -> str | None:
    code = await sent
    return code if code and code != old else None


async def test_an_establishment_files_a_csv_and_sees_each_rows_result(
    stack: Stack, clients: Clients, page: Page, tmp_path: Path
) -> None:
    """Establishment 7000000013 sponsors 2034567897; 2000000006 is another's worker."""
    establishment, own, foreign = "7000000013", "2034567897", "2000000006"
    marker = uuid.uuid4().hex[:8]
    csv = tmp_path / "workers.csv"
    csv.write_text(
        "subject_id,sub_service_code,description,mobile\n"
        + "".join(
            f"{worker},{SUB_SERVICE},The worker's iqama renewal fails with error {marker},"
            "0551234567\n"
            for worker in (own, foreign)
        )
    )
    await page.goto(stack.config.gateway_url)
    await page.locator(f'#people button[data-id="{establishment}"]').click()
    await page.click("#nav-bulk")
    await page.set_input_files("#bulk-file", str(csv))
    await page.click("#bulk-send")
    filed = page.locator('#bulk-results tr[data-row="1"] strong')
    await expect(filed).to_have_text(REQUEST_NUMBER)
    number = await filed.text_content() or ""
    token = clients.token(establishment, Role.ESTABLISHMENT)
    try:
        refused = page.locator('#bulk-results tr[data-row="2"] .error')
        await expect(refused).to_contain_text("subject_id")
        await expect(refused).to_contain_text("لعمالها المكفولين لديها")
        await expect(page.locator("#bulk-summary")).to_have_text("طلبات مقدمة: 1 · صفوف مرفوضة: 1")
        await screenshot(page, "bulk-ar")
        stored = await clients.track(token, number)
        assert (stored.subject_id, stored.sub_service_code) == (own, SUB_SERVICE)

        # The same file again files nothing twice: the same number comes back.
        await page.click("#bulk-send")
        await expect(page.locator('#bulk-results tr[data-row="1"] strong')).to_have_text(number)
        mine = await clients.intake.ListMyRequests(
            intake_pb2.ListMyRequestsRequest(page_size=100),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(token),
        )
        assert [r.request_number for r in mine.requests if marker in r.description] == [number]
    finally:
        await clients.intake.CancelRequest(
            intake_pb2.CancelRequestRequest(request_number=number, reason="test done"),
            timeout=DEFAULT_DEADLINE_SECONDS,
            metadata=bearer(token),
        )


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_alone() -> Iterator[str]:
    """The page's own files, served as the gateway serves them but with no service behind: the
    test answers each API call itself (page.route)."""
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(WEB_DIR))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _catalog(locale: str) -> dict[str, Any]:
    arabic = locale == "ar"
    sub_service: dict[str, Any] = {
        "code": SUB_SERVICE,
        "name": "الاستفسارات العامة" if arabic else "General inquiries",
        "description": "للاستفسارات العامة" if arabic else "For general inquiries",
        "sla_amount": 3,
        "sla_unit": "working_days",
        "fields": [
            {
                "name": "related_service",
                "type": "text",
                "label": "الخدمة المتعلقة" if arabic else "Related service",
                "required": False,
            }
        ],
        "documents": [],
    }
    name = "التقارير" if arabic else "Reports"
    return {
        "locale": locale,
        "departments": [{"code": DEPARTMENT, "name": name, "sub_services": [sub_service]}],
    }


# The one request the page alone is shown, and what the page asks of the gateway the test
# answers itself: (status, JSON body) for a call's URL, method and JSON body; None for the
# sign-in's and the catalog's answers, or 404.
FAKED = "TW000000123"
Answer = tuple[int, object]
Answers = Callable[[str, str, dict[str, Any]], Answer | None]


def _gateway(url: str) -> Answer:
    """The development sign-in (one citizen) and the catalog; 404 to anything else."""
    if url.endswith("/dev/people"):
        person = {"id": CITIZEN, "name_ar": CITIZEN_NAME_AR, "kind": "citizen"}
        return 200, {"people": [person]}
    if url.endswith("/dev/sign-in"):
        return 200, {"token": "a.b.c", "role": "citizen"}
    if "/api/v1/catalog?locale=" in url:
        return 200, _catalog(url.rsplit("=", 1)[1])
    return 404, {}


async def _fake_api(page: Page, answers: Answers) -> None:
    """The gateway as the page sees it: `answers` first, then `_gateway`'s."""

    async def api(route: Route) -> None:
        url, method = route.request.url, route.request.method
        status, data = answers(url, method, route.request.post_data_json or {}) or _gateway(url)
        await route.fulfill(status=status, content_type="application/json", body=json.dumps(data))

    await page.route(re.compile(r"/(api/v1|dev)/"), api)


def _request(status: str, **more: Any) -> dict[str, Any]:
    """intake's Request as the gateway's JSON gives it, in `status` (REQUEST_STATUS_…'s end)."""
    return {
        "request_number": FAKED,
        "sub_service_code": SUB_SERVICE,
        "status": f"REQUEST_STATUS_{status}",
        "status_label": {"ar": status, "en": status},
        "department_code": DEPARTMENT,
        "department_name": {"ar": "التقارير", "en": "Reports"},
        **more,
    }


async def _direction(element: Locator) -> str:
    """The direction an element's text is laid out in, as the browser computed it."""
    direction = await element.evaluate("e => getComputedStyle(e).direction")
    assert isinstance(direction, str)
    return direction


async def test_a_screen_reader_is_told_each_refusal_and_the_request_filed(
    page_alone: str, page: Page
) -> None:
    """Keyboard only after sign-in: a refused submit puts the focus on the first field refused,
    its message its description and read out (a live region); the request filed, the focus is on
    its confirmation and the status region says its number; each view has its own title, in the
    page's language, and the signed-in name keeps its own language after a switch."""
    filed: list[dict[str, Any]] = []

    def file(url: str, method: str, body: dict[str, Any]) -> Answer | None:
        if not (url.endswith("/api/v1/requests") and method == "POST"):
            return None
        if len(body["description"]) < 20:
            fields = {"contact.mobile": "ليس رقم جوال سعوديًا", "description": "قصير جدًا"}
            return 400, {"error": {"code": "INVALID_ARGUMENT", "fields": fields}}
        filed.append(body)
        return 200, {"request": {"request_number": FAKED}}

    await _fake_api(page, file)
    site_ar = "تواصل — المديرية العامة للجوازات"
    site_en = "Tawasul — General Directorate of Passports"
    await page.goto(page_alone)
    await expect(page).to_have_title(f"الدخول — {site_ar}")
    await page.locator(f'#people button[data-id="{CITIZEN}"]').click()
    await expect(page).to_have_title(f"طلب جديد — {site_ar}")
    # The person's button went with the sign-in: the view's heading has the focus.
    await expect(page.locator("#view-new h2")).to_be_focused()
    await page.select_option("#department", DEPARTMENT)
    await page.select_option("#sub-service", SUB_SERVICE)
    # The sub-service's description is read with its choice.
    await expect(page.locator("#sub-service")).to_have_accessible_description(
        re.compile("للاستفسارات العامة")
    )
    await page.fill("#description", "لا يعمل")
    await page.focus("#submit")
    await page.keyboard.press("Enter")

    description = page.locator("#description")
    await expect(description).to_be_focused()
    await expect(description).to_have_accessible_description("قصير جدًا")
    await expect(page.locator("#mobile")).to_have_accessible_description("ليس رقم جوال سعوديًا")
    await expect(page.locator("#mobile")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#description-error")).to_have_attribute("aria-live", "polite")

    await description.fill("معاملة تجديد الإقامة متوقفة عند خطوة الدفع منذ أسبوعين")
    await page.fill("#mobile", MOBILE)
    await page.focus("#submit")
    await page.keyboard.press("Enter")
    await expect(page.locator("#submitted-title")).to_be_focused()
    await expect(page.locator("#status")).to_have_text("رقم الطلب: TW000000123")
    await expect(page.locator("#status")).to_have_attribute("role", "status")
    await expect(page).to_have_title(f"تم استلام طلبك — {site_ar}")
    assert len(filed) == 1

    await page.focus("#language")
    await page.keyboard.press("Enter")
    await expect(page).to_have_title(f"Your request was received — {site_en}")
    assert await page.locator("html").get_attribute("lang") == "en"
    await expect(page.locator("#who")).to_have_attribute("lang", "ar")
    await page.click('nav a[href="#track"]')
    await expect(page).to_have_title(f"Track a request without signing in — {site_en}")


async def test_a_link_followed_takes_a_screen_reader_to_the_views_heading(
    page_alone: str, page: Page
) -> None:
    """A view opened from a link (the navigation's, a request's in the list) puts the focus on
    its heading rather than leave it on the link pressed, which a screen reader stays on; the
    page's first view leaves it where the browser put it. "More" gone with the last page hands
    the focus to the first request it brought, not to the page's start."""
    second = "TW000000131"

    def mine(url: str, method: str, body: dict[str, Any]) -> Answer | None:
        if "/api/v1/requests?" in url:
            last = "page_token=2" in url
            number = second if last else FAKED
            listed = [_request("SUBMITTED", request_number=number)]
            return 200, {"requests": listed, "next_page_token": "" if last else "2"}
        if url.endswith(f"/api/v1/requests/{FAKED}"):
            return 200, {"request": _request("SUBMITTED")}
        return None

    await _fake_api(page, mine)
    await page.goto(page_alone)
    await page.locator(f'#people button[data-id="{CITIZEN}"]').click()
    await expect(page.locator("#view-new h2")).to_be_focused()
    await page.focus('nav a[href="#mine"]')
    await page.keyboard.press("Enter")
    await expect(page.locator("#view-mine h2")).to_be_focused()
    await page.click("#mine-more")
    await expect(page.locator("#mine-more")).to_be_hidden()
    await expect(page.locator(f'#mine-list li[data-number="{second}"] a')).to_be_focused()
    await page.locator(f'#mine-list li[data-number="{FAKED}"] a').click()
    await expect(page.locator("#request-number")).to_have_text(FAKED)
    await expect(page.locator("#view-request h2")).to_be_focused()
    await page.click("#nav-new")
    await expect(page.locator("#view-new")).to_be_visible()
    await expect(page.locator("#view-new h2")).to_be_focused()
    await page.click('nav a[href="#mine"]')
    await expect(page.locator("#view-mine h2")).to_be_focused()

    await page.reload()
    await expect(page.locator(f'#mine-list li[data-number="{FAKED}"]')).to_be_visible()
    assert await page.evaluate("document.activeElement === document.body")


async def test_done_is_a_polite_status_of_its_own_look_and_a_refusal_an_alert(
    page_alone: str, page: Page
) -> None:
    """An action taken says "Done" in a status region (read when the screen reader is free), in
    the office's green rather than the error's red; an action refused says why in the alert,
    in red, and the "Done" before it is gone."""
    refusal = "لا يمكن إلغاء الطلب بعد بدء مراجعته"

    def act(url: str, method: str, body: dict[str, Any]) -> Answer | None:
        if url.endswith(f"/api/v1/requests/{FAKED}"):
            past = {"at": "2026-01-01T00:00:00Z", "gregorian_date": "2026-01-01"}
            return 200, {"request": _request("SUBMITTED", follow_up_from=past)}
        if url.endswith("/follow-up"):
            return 200, {"request": _request("SUBMITTED")}
        if url.endswith("/cancel"):
            return 400, {"error": {"code": "FAILED_PRECONDITION", "message": refusal}}
        return None

    await _fake_api(page, act)
    await page.goto(f"{page_alone}#request/{FAKED}")
    await page.locator(f'#people button[data-id="{CITIZEN}"]').click()
    await page.click("#follow-up")
    notice, banner = page.locator("#notice"), page.locator("#banner")
    await expect(notice).to_have_text("تم")
    await expect(notice).to_have_attribute("role", "status")
    await expect(banner).to_be_hidden()
    green, red = "rgb(0, 108, 53)", "rgb(179, 38, 30)"
    assert await notice.evaluate("e => getComputedStyle(e).borderTopColor") == green

    async def reason(dialog: Dialog) -> None:
        await dialog.accept("لم أعد بحاجة إليه")

    page.once("dialog", reason)
    await page.click("#cancel")
    await expect(banner).to_have_text(refusal)
    await expect(banner).to_have_attribute("role", "alert")
    await expect(notice).to_be_empty()
    assert await banner.evaluate("e => getComputedStyle(e).borderTopColor") == red


async def test_what_a_person_or_a_reviewer_wrote_reads_in_its_own_direction(
    page_alone: str, page: Page
) -> None:
    """In the English page, the Arabic a person or a reviewer wrote (the name signed in as, what
    is asked of the beneficiary, the decision's message, a history step's, an answer typed)
    reads right to left (dir="auto"), as it would in the Arabic page; the page's own words stay
    left to right."""
    asked, message, step = "صورة إيصال الدفع", "أرفق إيصال الدفع من فضلك", "نحتاج رقم المعاملة"
    request = _request(
        "NEEDS_MORE_INFO",
        missing=[{"kind": "other", "name": "receipt", "description": asked}],
        decision_reason={"ar": "بيانات ناقصة", "en": "Information is missing"},
        decision_message=message,
        history=[{"at": "2026-12-01T09:00:00Z", "status_label": {"en": "Asked"}, "message": step}],
    )

    def shown(url: str, method: str, body: dict[str, Any]) -> Answer | None:
        if url.endswith(f"/api/v1/requests/{FAKED}") or url.endswith("/tracking/track"):
            return 200, {"request": request}
        if url.endswith("/tracking/start"):
            return 200, {}
        return None

    await _fake_api(page, shown)
    await page.goto(page_alone)
    person = page.locator(f'#people button[data-id="{CITIZEN}"]')
    await expect(person.locator('[dir="auto"]')).to_have_text(CITIZEN_NAME_AR)
    await person.click()
    await page.click("#language")
    assert await page.locator("html").get_attribute("dir") == "ltr"
    who = page.locator("#who")
    await expect(who).to_have_text(CITIZEN_NAME_AR)
    assert await _direction(who) == "rtl"

    # Typed in Arabic into the English form: the free text is laid out right to left.
    await page.select_option("#department", DEPARTMENT)
    await page.select_option("#sub-service", SUB_SERVICE)
    for typed in ("#field-related_service", "#description"):
        await page.fill(typed, "تجديد الإقامة")
        assert await page.locator(typed).evaluate("e => e.matches(':dir(rtl)')"), typed

    await page.goto(f"{page_alone}#request/{FAKED}")
    decided = page.locator("#request-decision")
    await expect(decided).to_have_text(f"Information is missing — {message}")
    assert await _direction(decided) == "ltr"
    history = page.locator("#request-history li")
    await expect(history).to_contain_text(f"Asked — {step}")
    written = {
        decided.locator('[dir="auto"]'): message,
        page.locator("#missing-list li"): asked,
        history.locator('[dir="auto"]'): step,
    }
    for element, said in written.items():
        await expect(element).to_have_text(said)
        assert await _direction(element) == "rtl", said
    answer = page.locator("#respond-message")
    await answer.fill("الإيصال مرفق")
    assert await answer.evaluate("e => e.matches(':dir(rtl)')")

    await page.goto(f"{page_alone}#track")
    await page.fill("#track-number", FAKED)
    await page.fill("#track-id", CITIZEN)
    await page.fill("#track-mobile", MOBILE)
    await page.click("#track-start")
    await page.fill("#track-code", "123456")
    await page.click('#track-code-form button[type="submit"]')
    tracked = page.locator('#track-decision [dir="auto"]')
    await expect(tracked).to_have_text(message)
    assert await _direction(tracked) == "rtl"
