"""SearchRequests on review's real gRPC server, built by its composition root, in-process on a
real PostgreSQL (pg_trgm included): every kind of query, the filters, pages, suggestions for
a mistyped number, who finds what, bad input, and a search during a change of state.

Work items arrive as review's routed-event subscriber makes them (`from_routed` on a
RequestRouted envelope, then the enqueue use case), so the names and IDs travel the way the
stack carries them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import text
from tawasul.common.v1 import common_pb2
from tawasul.events.v1 import events_pb2
from tawasul.review.v1 import review_pb2, review_pb2_grpc
from tawasul_platform.grpc import bearer, field_violations
from tawasul_platform.identity import Principal, Role
from tawasul_platform.migrations import upgrade
from tawasul_platform.request_numbers import damm_digit
from tawasul_platform.testing import async_engine
from tawasul_review.adapters import repository
from tawasul_review.adapters.events import from_routed
from tawasul_review.adapters.repository import ReviewUnitOfWork
from tawasul_review.app import handlers
from tawasul_review.domain.search import tokens

from .served import IDENTITY, MIGRATIONS, START, Served, token
from .served import served as review_server

ALI = token("E100", "passports")
SARA = token("E200", "passports", "visas")
VISAS_ONLY = token("E300", "visas")
CORRECTIONS = token("E400", "corrections")
CITIZEN = IDENTITY.token_for(Principal("1000000008", Role.CITIZEN))


def number(n: int) -> str:
    body = f"{n:08d}"
    return "TW" + body + damm_digit(body)


class Search:
    def __init__(self, server: Served) -> None:
        self.stub = review_pb2_grpc.ReviewServiceStub(server.channel)
        self.engine = server.engine
        self.database = server.database
        self.rules = server.rules
        self.clock = server.clock
        self.count = 0

    async def routed(
        self,
        *,
        department: str = "passports",
        description: str = "The photo does not appear when renewing my passport",
        applicant_id: str = "1000000008",
        subject_id: str = "",
        mobile: str = "+966551234567",
        name_ar: str = "",
        name_en: str = "",
        fields: dict[str, str] | None = None,
        sub_service: str = "general",
    ) -> review_pb2.WorkItem:
        """A request routed to review, as its routed-event subscriber takes it in."""
        self.count += 1
        self.clock.now += timedelta(minutes=1)
        routed = events_pb2.RequestRouted(
            request_id=str(uuid.uuid4()),
            request_number=number(10_000_000 + self.count),
            sub_service_code=f"{department}.{sub_service}",
            department_code=department,
            queue=f"{department}.default",
            description=description,
            applicant_id=applicant_id,
            subject_id=subject_id,
            contact=common_pb2.Contact(mobile=mobile, locale="ar"),
            submitted_at=Timestamp(seconds=int(self.clock.now.timestamp())),
            subject_name_ar=name_ar,
            subject_name_en=name_en,
            fields=fields or {},
        )
        event = events_pb2.Envelope(event_id=str(uuid.uuid4()), request_routed=routed)
        item = from_routed(event, self.clock.now, None)
        await handlers.enqueue(
            uow=ReviewUnitOfWork(self.database),
            routed=[(event.event_id, item)],
            policy=self.rules,
            now=self.clock.now,
        )
        return review_pb2.WorkItem(
            request_id=routed.request_id, request_number=routed.request_number
        )

    async def __call__(
        self, query: str = "", who: str = ALI, **fields: object
    ) -> review_pb2.SearchRequestsResponse:
        return await self.stub.SearchRequests(
            review_pb2.SearchRequestsRequest(query=query, **fields),  # type: ignore[arg-type]
            timeout=10,
            metadata=bearer(who),
        )

    async def numbers(self, query: str = "", who: str = ALI, **fields: object) -> list[str]:
        return [i.request_number for i in (await self(query, who, **fields)).items]


# Every test with the window of newest items as shipped, and with one of two items, where a
# search for words is mostly settled by reading the whole table.
@pytest.fixture(params=[repository.RECENT_WINDOW, 2], ids=["window", "narrow-window"])
async def search(
    database_url: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Search]:
    monkeypatch.setattr(repository, "RECENT_WINDOW", request.param)
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    async with served(database_url) as search:
        yield search


@asynccontextmanager
async def served(database_url: str) -> AsyncIterator[Search]:
    """Review's server on a database migrated already."""
    async with review_server(database_url) as server:
        yield Search(server)


async def refused(
    search: Search, query: str = "", who: str = ALI, **fields: object
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await search(query, who, **fields)
    return caught.value


# --- each kind of query ----------------------------------------------------------------------


async def test_the_search_indexes_merge_new_entries_a_little_at_a_time(search: Search) -> None:
    # A GIN index merges its pending entries inside the insert that fills the list: at the
    # default 4 MB one routed request in thousands waited hundreds of milliseconds.
    async with search.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_am a ON a.oid = c.relam"
                " WHERE a.amname = 'gin' AND c.relname LIKE 'work_items%'"
            )
        )
        options: dict[str, list[str]] = {row.relname: row.reloptions for row in rows}
    assert options == {
        "work_items_search_text": ["gin_pending_list_limit=256"],
        "work_items_search_tokens": ["gin_pending_list_limit=256"],
    }


async def test_by_request_number_in_any_spelling(search: Search) -> None:
    wanted = await search.routed()
    await search.routed()
    digits = wanted.request_number[2:]
    arabic = digits.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    for typed in (wanted.request_number, digits, f"tw {digits[:4]}-{digits[4:]}", arabic):
        found = await search(typed)
        assert [i.request_number for i in found.items] == [wanted.request_number], typed
        assert found.kind == review_pb2.SEARCH_KIND_REQUEST_NUMBER
        assert not found.suggestions


async def test_a_mistyped_or_unchecked_number_gives_suggestions_not_results(
    search: Search,
) -> None:
    wanted = await search.routed()
    digits = wanted.request_number[2:]
    wrong = digits[:3] + str((int(digits[3]) + 1) % 10) + digits[4:]
    swapped = digits[:5] + digits[6] + digits[5] + digits[7:]
    for typed in (digits[:8], wrong, swapped if swapped != digits else wrong):
        found = await search(typed)
        assert not found.items
        assert [s.request_number for s in found.suggestions] == [wanted.request_number], typed
    # A reviewer of another department is suggested nothing of it.
    assert not (await search(digits[:8], VISAS_ONLY)).suggestions


async def test_by_the_applicants_or_the_subjects_id(search: Search) -> None:
    own = await search.routed(applicant_id="1012345672")
    dependent = await search.routed(applicant_id="1023456781", subject_id="1012345672")
    await search.routed(applicant_id="1000000016")
    found = await search("١٠١٢٣٤٥٦٧٢")
    assert found.kind == review_pb2.SEARCH_KIND_PERSON_ID
    assert [i.request_number for i in found.items] == [
        dependent.request_number,
        own.request_number,
    ]
    assert found.items[0].subject_id == "1012345672"


async def test_by_mobile_in_every_spelling(search: Search) -> None:
    wanted = await search.routed(mobile="0559876543")
    await search.routed(mobile="+966551111111")
    for typed in ("0559876543", "+966559876543", "00966 55 987 6543", "٠٥٥٩٨٧٦٥٤٣"):
        assert await search.numbers(typed) == [wanted.request_number], typed


async def test_by_name_as_arabic_is_really_typed_and_by_its_latin_spelling(
    search: Search,
) -> None:
    ahmad = await search.routed(
        name_ar="أحمد عبدالله الزهراني", name_en="Ahmad Abdullah Al-Zahrani"
    )
    fatima = await search.routed(name_ar="فاطمة مصطفى", name_en="Fatimah Mustafa")
    await search.routed(name_ar="خالد سعيد", name_en="Khalid Saeed")
    for typed in ("احمد", "إحمد", "أحمد", "عبد الله", "الزهراني", "ahmad", "AL-ZAHRANI"):
        assert await search.numbers(typed) == [ahmad.request_number], typed
    for typed in ("فاطمه", "مصطفي", "فاطـــمة", "fatimah MUSTAFA"):
        assert await search.numbers(typed) == [fatima.request_number], typed
    found = (await search("فاطمه")).items[0]
    assert list(found.subject_names) == ["فاطمة مصطفى", "Fatimah Mustafa"]


async def test_a_name_or_a_query_with_an_invisible_character_in_a_word(search: Search) -> None:
    # As pasted from a document: a soft hyphen, a zero-width joiner, a direction mark.
    christopher = await search.routed(name_en="Chris\u00adtopher Lee")
    muhammad = await search.routed(name_ar="مح\u200dمد الحربي")
    assert await search.numbers("christopher") == [christopher.request_number]
    assert await search.numbers("محمد") == [muhammad.request_number]
    assert await search.numbers("\u200fمح\u200dمد\u200f") == [muhammad.request_number]
    assert await search.numbers("Chris\u00adtopher") == [christopher.request_number]


async def test_latin_letters_with_a_stroke_or_a_ligature_meet_their_plain_spelling(
    search: Search,
) -> None:
    yilmaz = await search.routed(name_en="Mehmet Yılmaz")
    soren = await search.routed(name_en="SØREN ØDEGÅRD")
    for typed in ("YILMAZ", "yilmaz", "Yılmaz"):
        assert await search.numbers(typed) == [yilmaz.request_number], typed
    for typed in ("soren odegard", "Søren", "ødegård"):
        assert await search.numbers(typed) == [soren.request_number], typed


async def test_a_name_typed_on_an_urdu_or_persian_keyboard(search: Search) -> None:
    ibrahim = await search.routed(name_ar="ابراھیم خان")
    aisha = await search.routed(name_ar="عائشۃ صدیقۀ")
    for typed in ("إبراهيم", "ابراھیم", "ابراهيم"):
        assert await search.numbers(typed) == [ibrahim.request_number], typed
    for typed in ("عائشة", "صديقه", "صدیقۂ"):
        assert await search.numbers(typed) == [aisha.request_number], typed


async def test_a_name_among_the_sub_services_fields_is_searched_too(search: Search) -> None:
    wanted = await search.routed(fields={"worker_name": "Maria Santos", "visa_number": "123"})
    assert await search.numbers("santos") == [wanted.request_number]


async def test_a_name_an_answer_corrects_is_searched_and_shown(search: Search) -> None:
    wanted = await search.routed(
        department="corrections",
        sub_service="name-or-birth-date",
        name_ar="محمد القحطاني",
        fields={"correct_name_en": "Mohamed Alkahtany", "correct_birth_date": "1990-01-01"},
    )
    assert await search.numbers("alkahtany", CORRECTIONS) == [wanted.request_number]
    await search.stub.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=wanted.request_id),
        timeout=5,
        metadata=bearer(CORRECTIONS),
    )
    await search.stub.RequestInformation(
        review_pb2.RequestInformationRequest(
            request_id=wanted.request_id,
            missing=[
                common_pb2.MissingItem(
                    kind="field", name="correct_name_en", description="As in the passport"
                )
            ],
            message="Please write the English name as in your passport",
            respond_within_working_days=3,
        ),
        timeout=5,
        metadata=bearer(CORRECTIONS),
    )
    search.clock.now += timedelta(hours=1)
    await handlers.answered(
        uow=ReviewUnitOfWork(search.database),
        event_id=str(uuid.uuid4()),
        request_id=uuid.UUID(wanted.request_id),
        message="done",
        policy=search.rules,
        now=search.clock.now,
        fields={"correct_name_en": "Mohammed Ibn Alqahtani"},
    )
    (found,) = (await search("alqahtani", CORRECTIONS)).items
    assert found.request_number == wanted.request_number
    assert list(found.subject_names) == ["محمد القحطاني", "Mohammed Ibn Alqahtani"]
    assert await search.numbers("ibn alqahtani", CORRECTIONS) == [wanted.request_number]
    # The name the request was filed under is still what it was filed under.
    assert await search.numbers("alkahtany", CORRECTIONS) == [wanted.request_number]
    case = await search.stub.GetCase(
        review_pb2.GetCaseRequest(request_id=wanted.request_id),
        timeout=5,
        metadata=bearer(CORRECTIONS),
    )
    assert list(case.item.subject_names) == ["محمد القحطاني", "Mohammed Ibn Alqahtani"]


async def test_by_words_of_the_description_and_of_public_messages(search: Search) -> None:
    photo = await search.routed(description="لا تظهر الصورة الشخصية عند تجديد الجواز")
    lost = await search.routed(description="فقدت جوازي أثناء السفر")
    assert await search.numbers("الصوره تجديد") == [photo.request_number]
    assert set(await search.numbers("الجواز")) == {photo.request_number}
    # A public message is found from the moment it is sent; an internal note never.
    await search.stub.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=lost.request_id), timeout=5, metadata=bearer(ALI)
    )
    await search.stub.MessageApplicant(
        review_pb2.MessageApplicantRequest(request_id=lost.request_id, text="أرفق محضر الشرطة"),
        timeout=5,
        metadata=bearer(ALI),
    )
    await search.stub.AddNote(
        review_pb2.AddNoteRequest(request_id=lost.request_id, text="ملاحظة سرية للمكتب"),
        timeout=5,
        metadata=bearer(ALI),
    )
    assert await search.numbers("محضر الشرطه") == [lost.request_number]
    assert await search.numbers("سرية") == []


async def test_a_number_in_the_text_is_found_whole(search: Search) -> None:
    passport = await search.routed(description="رقم جوازي A١٢٣٤٥٦٧ ولم يتم التجديد")
    # A longer number holding it, and numbers sharing every trigram of it: other numbers.
    receipt = await search.routed(description="Receipt 91234567 attached")
    await search.routed(description="Codes 4567123 and 2345671 attached")
    for typed in ("1234567", "١٢٣٤٥٦٧", "a1234567", "A-1234567", "جوازي 1234567"):
        assert await search.numbers(typed) == [passport.request_number], typed
    assert await search.numbers("234567") == []
    # Eight digits read as a request number unless the reviewer asks for text.
    assert await search.numbers("91234567", kind=review_pb2.SEARCH_KIND_TEXT) == [
        receipt.request_number
    ]
    # A number in a public message is found from the moment it is sent.
    await search.stub.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=passport.request_id),
        timeout=5,
        metadata=bearer(ALI),
    )
    await search.stub.MessageApplicant(
        review_pb2.MessageApplicantRequest(
            request_id=passport.request_id, text="أرفق الإيصال رقم ٥٥٥٠٠١"
        ),
        timeout=5,
        metadata=bearer(ALI),
    )
    assert await search.numbers("555001 1234567") == [passport.request_number]
    assert await search.numbers("55500") == []


# --- filters and pages -----------------------------------------------------------------------


async def test_filters_by_department_state_dates_and_sla(search: Search) -> None:
    first = await search.routed(department="passports")
    visa = await search.routed(department="visas")
    later = await search.routed(department="passports")
    await search.stub.ClaimRequest(
        review_pb2.ClaimRequestRequest(request_id=later.request_id),
        timeout=5,
        metadata=bearer(ALI),
    )
    assert await search.numbers(who=SARA) == [
        later.request_number,
        visa.request_number,
        first.request_number,
    ]
    assert await search.numbers(who=SARA, department_code="visas") == [visa.request_number]
    assert await search.numbers(who=SARA, states=[review_pb2.WORK_ITEM_STATE_CLAIMED]) == [
        later.request_number
    ]
    # A state named again is the same state, not one pushing the last past a cut.
    repeated = [review_pb2.WORK_ITEM_STATE_QUEUED] * 10 + [review_pb2.WORK_ITEM_STATE_CLAIMED]
    assert await search.numbers(who=SARA, states=repeated) == await search.numbers(who=SARA)
    assert await search.numbers(
        who=SARA, sub_service_code="passports.general", states=[review_pb2.WORK_ITEM_STATE_QUEUED]
    ) == [first.request_number]
    cut = Timestamp(seconds=int((search.clock.now - timedelta(seconds=30)).timestamp()))
    assert await search.numbers(who=SARA, submitted_from=cut) == [later.request_number]
    assert await search.numbers(who=SARA, submitted_before=cut) == [
        visa.request_number,
        first.request_number,
    ]
    # A week's SLA: on track now, breached two weeks on.
    assert len(await search.numbers(who=SARA, sla_state=review_pb2.SLA_STATE_ON_TRACK)) == 3
    assert await search.numbers(who=SARA, sla_state=review_pb2.SLA_STATE_BREACHED) == []
    search.clock.now += timedelta(days=21)
    assert len(await search.numbers(who=SARA, sla_state=review_pb2.SLA_STATE_BREACHED)) == 3


async def test_pages_follow_on_without_gaps_or_repeats(search: Search) -> None:
    made = [(await search.routed(department=d)).request_number for d in ["passports", "visas"] * 7]
    seen: list[str] = []
    page_token = ""
    while True:
        page = await search(who=SARA, page_size=3, page_token=page_token)
        assert len(page.items) <= 3
        seen += [i.request_number for i in page.items]
        page_token = page.next_page_token
        if not page_token:
            break
    assert seen == made[::-1]


@pytest.mark.parametrize("window", [1, 2, 3, 5, 1000])
async def test_words_are_paged_alike_however_many_newest_items_are_read_first(
    search: Search, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    """A window holding every item settles each page from it; a window of one, none (every
    page planned over the table); the ones between, some: the pages are the same."""
    common, rare = "تجديد جواز السفر", "تجديد جواز السفر بعد فقده في المطار"
    made = [
        (
            department,
            (await search.routed(department=department, description=text)).request_number,
            text,
        )
        # Visas' older match lies behind its three newest items, newer than passports'
        # second newest: a narrow window over visas must not settle a page that misses it.
        for department, text in [
            ("passports", rare),
            ("passports", rare),
            ("visas", rare),
            ("visas", common),
            ("visas", common),
            ("visas", common),
            ("passports", rare),
            ("passports", common),
            ("visas", common),
        ]
    ]
    monkeypatch.setattr(repository, "RECENT_WINDOW", window)
    for query, holders in (("جواز السفر", (common, rare)), ("فقده المطار", (rare,))):
        expected = [number for _, number, text in reversed(made) if text in holders]
        for page_size in (1, 2, 4, 50):
            seen: list[str] = []
            page_token = ""
            while True:
                page = await search(query, who=SARA, page_size=page_size, page_token=page_token)
                seen += [i.request_number for i in page.items]
                page_token = page.next_page_token
                if not page_token:
                    break
            assert seen == expected, (query, page_size)


# --- who finds what --------------------------------------------------------------------------


async def test_a_reviewer_of_another_department_finds_nothing_of_it(search: Search) -> None:
    item = await search.routed(
        department="passports", name_ar="نورة القحطاني", applicant_id="1012345672"
    )
    for query in (item.request_number, "1012345672", "0551234567", "نوره", ""):
        assert await search.numbers(query, VISAS_ONLY) == [], query
        assert await search.numbers(query, ALI) == [item.request_number], query
    denied = await refused(search, "نوره", VISAS_ONLY, department_code="passports")
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_reviews_record_narrows_what_the_token_grants(search: Search) -> None:
    visa = await search.routed(department="visas")
    passports = await search.routed(department="passports")
    session = search.database.session()
    await session.execute(
        text("INSERT INTO reviewers VALUES ('E200', '[\"passports\"]', '[\"ar\"]', 5, true, '[]')")
    )
    await session.commit()
    assert await search.numbers(who=SARA) == [passports.request_number]
    assert visa.request_number not in await search.numbers(visa.request_number, SARA)


async def test_callers_other_than_reviewers_are_refused(search: Search) -> None:
    # The gate turns an end user's token away before the method runs.
    error = await refused(search, "احمد", CITIZEN)
    assert error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"query": "في"}, "query"),
        ({"query": "x" * 201}, "query"),
        ({"query": "abc", "kind": review_pb2.SEARCH_KIND_MOBILE}, "query"),
        ({"query": "abc", "kind": review_pb2.SEARCH_KIND_PERSON_ID}, "query"),
        ({"query": "abc", "kind": review_pb2.SEARCH_KIND_REQUEST_NUMBER}, "query"),
        ({"kind": 99}, "kind"),
        ({"sla_state": 99}, "sla_state"),
        ({"states": [99]}, "states[0]"),
        ({"page_size": -1}, "page_size"),
        ({"page_token": "bm90IGEgdG9rZW4="}, "page_token"),
        ({"page_token": "%%%"}, "page_token"),
        ({"department_code": "pass ports"}, "department_code"),
        ({"sub_service_code": "a b"}, "sub_service_code"),
        ({"submitted_from": Timestamp(seconds=-(10**11))}, "submitted_from"),
        (
            {
                "submitted_from": Timestamp(seconds=1_800_000_000),
                "submitted_before": Timestamp(seconds=1_700_000_000),
            },
            "submitted_before",
        ),
    ],
)
async def test_bad_input_is_invalid_argument_with_the_field(
    search: Search, fields: dict[str, object], field: str
) -> None:
    rest = {name: value for name, value in fields.items() if name != "query"}
    error = await refused(search, str(fields.get("query", "")), ALI, **rest)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {field}


# --- a search during a change --------------------------------------------------------------


async def test_a_search_during_claims_sees_each_item_whole(search: Search) -> None:
    """Every result is one committed row: a claimed item has its holder, a queued one none,
    and its text matches whatever state it is in."""
    # Fifteen: within a reviewer's default capacity.
    items = [await search.routed(name_ar="سلمان الدوسري") for _ in range(15)]
    seen: list[review_pb2.WorkItem] = []

    async def claim_all() -> None:
        for item in items:
            await search.stub.ClaimRequest(
                review_pb2.ClaimRequestRequest(request_id=item.request_id),
                timeout=5,
                metadata=bearer(ALI),
            )

    async def keep_searching() -> None:
        for _ in range(20):
            seen.extend((await search("الدوسري", page_size=200)).items)

    await asyncio.gather(claim_all(), keep_searching())
    assert seen
    for item in seen:
        claimed = item.state == review_pb2.WORK_ITEM_STATE_CLAIMED
        assert claimed == (item.assignee_id == "E100"), item
        assert item.state in (
            review_pb2.WORK_ITEM_STATE_QUEUED,
            review_pb2.WORK_ITEM_STATE_CLAIMED,
        )
    final = await search("الدوسري", page_size=200)
    assert {i.state for i in final.items} == {review_pb2.WORK_ITEM_STATE_CLAIMED}
    assert len(final.items) == 15


async def test_rows_stored_before_search_existed_are_found_after_the_migration(
    database_url: str,
) -> None:
    """Revisions 0006 and 0007 fill the search columns of the rows already there."""
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url, "0005")
    engine = async_engine(database_url, pool_size=2)
    request_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO work_items (request_id, request_number, department, queue,"
                " sub_service_code, description, applicant_id, document_ids, contact, state,"
                " queued_at, submitted_at, sla, pauses, missing) VALUES (:id, 'TW000000000',"
                " 'passports', 'passports.default', 'passports.general', 'فقدت جوازي', "
                ' \'1000000008\', \'[]\', \'{"mobile": "0551234567", "email": "",'
                ' "locale": "ar"}\', \'queued\', now(), now(), \'{"amount": 5, "unit":'
                " \"days\"}', '[]', '[]')"
            ),
            {"id": request_id},
        )
        await conn.execute(
            text(
                "INSERT INTO history (request_id, at, actor, action, note, internal) VALUES"
                " (:id, now(), 'E100', 'message', 'أرسل صورة المحضر رقم ٤٤١٢', false)"
            ),
            {"id": request_id},
        )
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT subject_id, mobile_key, search_text, search_tokens FROM work_items")
            )
        ).one()
    await engine.dispose()
    assert row.subject_id == "1000000008"
    assert row.mobile_key == "551234567"
    assert row.search_text == "فقدت جوازي ارسل صوره المحضر رقم 4412"
    assert row.search_tokens == ["4412"]


async def test_rows_indexed_before_normalise_dropped_or_folded_more_are_found_after_0022(
    database_url: str,
) -> None:
    """Revision 0022 writes again the text of the rows whose description, names or public
    messages hold a character normalise reads otherwise since, as flush writes a new row's;
    it leaves the others be."""
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url, "0021")
    engine = async_engine(database_url, pool_size=2)
    rows = {
        # As normalise wrote them before: each invisible character a break between words.
        "named": ("Lost passport", ["Chris\u00adtopher Lee"], "lost passport chris topher lee"),
        "described": ("جوازي رقم A12\u200b34567", [], "جوازي رقم a12 34567"),
        "said": ("Lost passport", [], "lost passport"),
        "latin": (
            "Lost passport",
            ["Mehmet YILMAZ", "Ærøskøbing"],
            "lost passport mehmet yilmaz ærøskøbing",
        ),
        # Nothing changed for it: left as it is, however it reads.
        "urdu": ("ابراھیم کی درخواست", [], "ابراھيم كي درخواست"),
        "untouched": ("Lost passport", ["Christopher Lee"], "as stored"),
    }
    ids = {key: uuid.uuid4() for key in rows}
    async with engine.begin() as conn:
        for n, (key, (description, names, indexed)) in enumerate(rows.items()):
            await conn.execute(
                text(
                    "INSERT INTO work_items (request_id, request_number, department, queue,"
                    " sub_service_code, description, applicant_id, document_ids, contact, state,"
                    " queued_at, submitted_at, sla, pauses, missing, names, search_text,"
                    " search_tokens) VALUES (:id, :number, 'passports', 'passports.default',"
                    " 'passports.general', :description, '1000000008', '[]',"
                    ' \'{"mobile": "0551234567", "email": "", "locale": "ar"}\', \'queued\','
                    " :at, :at, '{\"amount\": 5, \"unit\": \"working_days\"}', '[]', '[]',"
                    " CAST(:names AS jsonb), :indexed, :tokens)"
                ),
                {
                    "id": ids[key],
                    "number": number(30_000_000 + n),
                    "description": description,
                    "at": START + timedelta(minutes=n),
                    "names": json.dumps(names),
                    "indexed": indexed,
                    "tokens": tokens(indexed),
                },
            )
        await conn.execute(
            text(
                "INSERT INTO history (request_id, at, actor, action, note, internal) VALUES"
                " (:id, :at, 'E100', 'message', 'Send the police re\u00adport', false),"
                " (:id, :at, 'E100', 'note', 'Ask the embas\u200bsy', true),"
                " (:id, :at, 'applicant', 'answered', 'Sent, \u200fthank you', false)"
            ),
            {"id": ids["said"], "at": START},
        )
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    async with engine.connect() as conn:
        stored = {
            row.request_id: (row.search_text, row.search_tokens)
            for row in await conn.execute(
                text("SELECT request_id, search_text, search_tokens FROM work_items")
            )
        }
    await engine.dispose()
    assert stored == {
        ids["named"]: ("lost passport christopher lee", []),
        ids["described"]: ("جوازي رقم a1234567", ["a1234567", "1234567"]),
        # The public messages in their order; the internal note never.
        ids["said"]: ("lost passport send the police report sent thank you", []),
        ids["latin"]: ("lost passport mehmet yilmaz aeroskobing", []),
        ids["urdu"]: ("ابراهيم كي درخواست", []),
        ids["untouched"]: ("as stored", []),
    }
    async with served(database_url) as search:
        assert await search.numbers("christopher") == [number(30_000_000)]
        assert await search.numbers("1234567") == [number(30_000_001)]
        assert await search.numbers("report") == [number(30_000_002)]
        assert await search.numbers("aeroskobing") == [number(30_000_003)]
        assert await search.numbers("إبراهيم") == [number(30_000_004)]
