"""The office P5 and P8 seed into review's table: an office's work items as COPY records.

Every department and sub-service of the catalog in the queues routing gives them, every state
(mostly decided: years of history, then the open work: queued, claimed under a lease, waiting
on the beneficiary), priorities raised by routing rules and follow-ups, SLA marks and due
dates, appeals, the search columns as review writes them, and the reviewers who hold the
claims. The same mix at any size, so the open work grows with the table. Seeded rows are told
from real ones by their prefixes and removed whatever happens.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from tawasul_calendar import SlaUnit
from tawasul_platform.catalog import load_catalog
from tawasul_review.adapters.reasons import load_reasons
from tawasul_review.domain.model import Decision, Status
from tawasul_review.domain.reviewers import DEFAULT_CAPACITY, DEFAULT_LANGUAGES
from tawasul_review.domain.search import mobile_key, normalise, tokens

# Seeded rows are told from real ones by these prefixes (real request numbers start "TW").
NUMBER_PREFIX = "P5"
REVIEWER_PREFIX = "P5R"
# What Office.rows gives for each row, in this order: every column of review's table.
FIELDS = (
    "request_id",
    "request_number",
    "department",
    "queue",
    "sub_service_code",
    "description",
    "applicant_id",
    "document_ids",
    "contact",
    "state",
    "assignee",
    "decision",
    "decision_message",
    "queued_at",
    "priority",
    "submitted_at",
    "sla",
    "pauses",
    "paused_since",
    "claimed_until",
    "last_holder",
    "missing",
    "respond_by",
    "reason_code",
    "public_status",
    "sla_alerted",
    "sla_next_at",
    "due_at",
    "appeal_of",
    # Search's columns (issue 15, P8), as review's repository writes them.
    "subject_id",
    "names",
    "mobile_key",
    "search_text",
    "search_tokens",
    # The span that queued the item (issue 13): none, for rows seeded outside any trace.
    "origin",
    # The request's fields (migration 0014): empty, as on items queued before it.
    "fields",
    # The rejected request it corrects (migration 0015): none, as for most requests.
    "cites_number",
    # Status changes published (migration 0016): none counted, as on items queued before it.
    "status_sequence",
    # Routing's decisions applied (migration 0017): none counted, as on items queued before it.
    "routed_sequence",
    # The transfer the latest of them answered (migration 0021): none.
    "routed_transfer",
    # The key a reviewer's ClaimNext held the item under (migration 0024): none.
    "claim_key",
)
BATCH = 50_000
# Nothing seeded falls due for review's sweep (lapsed claims, information deadlines, SLA
# marks) within this long, so the sweep leaves the seeded rows alone during the run.
QUIET_FOR = timedelta(hours=2)

# The share of each state among stored requests, per cent.
STATES = (
    ("decided", 64.0),
    ("closed", 8.0),
    ("withdrawn", 3.5),
    ("waiting_on_applicant", 4.0),
    ("queued", 19.0),
    ("claimed", 1.5),
)
DEPARTMENTS = {"residents": 30, "passports": 25, "visas": 20, "reports": 15, "corrections": 10}
# Routing's rules raise some to 10, 15 or 20, follow-ups to their count; 30 is the pool's.
PRIORITIES = ((0, 85), (1, 4), (2, 2), (3, 1), (10, 3), (15, 1), (20, 4))
# The head of DEPARTMENT's queue: urgent items (routing's highest priority), past due, that
# went back to the queue after a claim. The measured claims take only these (and give them
# back), so they announce nothing: a first claim would publish "under review" for a request
# intake and notify never saw. Past due, they also come before any real urgent item.
POOL_PRIORITY = 30
POOL_SUB_SERVICE = "passports.lost-passport-report"
# Claims each seeded reviewer holds on average, below their capacity (DEFAULT_CAPACITY).
HELD_EACH = 12
# An office day's working hours, and working hours per calendar day (five such days a week).
DAY_HOURS = 7
HOURS_PER_CALENDAR_DAY = 5 * DAY_HOURS / 7
# Queues routing's rules (rules.v1.json) send some of these sub-services' requests to.
RULE_QUEUES = {
    "residents.visit-visa-extension": "residents.visit-visa",
    "reports.absence-report": "reports.establishments",
    "reports.cancel-absence-report": "reports.establishments",
    "reports.edit-absent-worker-data": "reports.establishments",
}
HISTORY = timedelta(days=730)
OPEN_FOR = timedelta(days=12)
DESCRIPTIONS = (
    "The renewal was paid on Absher but the passport status did not change for two weeks",
    "أرجو تصحيح تاريخ الميلاد في السجل ليطابق جواز السفر المرفق",
    "The worker has been absent from work since the start of the month, report attached",
    "طلب تمديد تأشيرة زيارة لوالدتي، لم يتمكن النظام من التمديد آليًا",
    "Lost my passport while travelling, police report and a copy of the ID are attached",
    "تم سداد الرسوم ولم تنعكس على السجل، مرفق إيصال السداد",
    "Please cancel the exit re-entry visa, the holder is no longer travelling this season",
    "نقل خدمات العامل إلى المنشأة الجديدة متوقف منذ أسبوع بسبب ملاحظة على السجل",
)
# Names as the registry gives them, Arabic and Latin, spelled the ways they are (أ and ا,
# ة, ى): the person of row n is `person(n)`, so the load process can search for them.
FIRST_NAMES = (
    ("محمد", "Mohammed"),
    ("أحمد", "Ahmed"),
    ("عبدالله", "Abdullah"),
    ("خالد", "Khalid"),
    ("فهد", "Fahad"),
    ("سعد", "Saad"),
    ("عبد الرحمن", "Abdulrahman"),
    ("إبراهيم", "Ibrahim"),
    ("يوسف", "Yousef"),
    ("مصطفى", "Mustafa"),
    ("عيسى", "Eissa"),
    ("سلمان", "Salman"),
    ("فاطمة", "Fatimah"),
    ("نورة", "Noura"),
    ("سارة", "Sarah"),
    ("عائشة", "Aisha"),
    ("مريم", "Maryam"),
    ("هيفاء", "Haifa"),
    ("أسامة", "Osama"),
    ("حمزة", "Hamza"),
    ("ليلى", "Layla"),
    ("منى", "Muna"),
    ("طلال", "Talal"),
    ("ماجد", "Majed"),
    ("تركي", "Turki"),
    ("نايف", "Naif"),
    ("بدر", "Badr"),
    ("ريم", "Reem"),
    ("جواهر", "Jawaher"),
    ("عمر", "Omar"),
    ("علي", "Ali"),
    ("حسن", "Hassan"),
)
FAMILY_NAMES = (
    ("القحطاني", "Al-Qahtani"),
    ("العتيبي", "Al-Otaibi"),
    ("الشهري", "Al-Shehri"),
    ("الدوسري", "Al-Dosari"),
    ("الزهراني", "Al-Zahrani"),
    ("الغامدي", "Al-Ghamdi"),
    ("المطيري", "Al-Mutairi"),
    ("الحربي", "Al-Harbi"),
    ("الشمري", "Al-Shammari"),
    ("العنزي", "Al-Anazi"),
    ("السبيعي", "Al-Subaie"),
    ("البقمي", "Al-Buqami"),
    ("الرشيدي", "Al-Rashidi"),
    ("الجهني", "Al-Juhani"),
    ("العمري", "Al-Omari"),
    ("السهلي", "Al-Sahli"),
    ("المالكي", "Al-Malki"),
    ("الأحمدي", "Al-Ahmadi"),
    ("اليامي", "Al-Yami"),
    ("الخالدي", "Al-Khalidi"),
    ("الحلبي", "Al-Halabi"),
    ("سانتوس", "Santos"),
    ("حسين", "Hussain"),
    ("خان", "Khan"),
)
MISSING = '[{"kind": "document", "name": "passport_copy", "description": "A clear copy"}]'
REJECTION_MESSAGE = "المرفقات غير واضحة، أرجو إعادة التقديم"
RESPOND_WITHIN = timedelta(days=5)
OPEN = ("queued", "claimed", "waiting_on_applicant")
ACCEPT, REJECT = Decision.ACCEPT.value, Decision.REJECT.value
UNDER_REVIEW, RETURNED = Status.UNDER_REVIEW.value, Status.RETURNED_BY_APPLICANT.value
NEEDS_MORE_INFO, CLOSED = Status.NEEDS_MORE_INFO.value, Status.CLOSED.value
ACCEPTED, REJECTED = Status.ACCEPTED.value, Status.REJECTED.value


@dataclass(frozen=True)
class SubService:
    code: str
    department: str
    queues: tuple[str, str]  # the department's default queue, and the one a rule may choose
    sla: str  # the JSON review stores
    budget: timedelta  # the SLA in calendar time, near enough for due dates and marks


def sub_services() -> list[SubService]:
    """The catalog's sub-services with their queues and their SLA in calendar time."""
    out = []
    for s in load_catalog().sub_services.values():
        hours = s.sla.amount * (DAY_HOURS if s.sla.unit is SlaUnit.WORKING_DAYS else 1)
        default = f"{s.department}.default"
        out.append(
            SubService(
                code=s.code,
                department=s.department,
                queues=(default, RULE_QUEUES.get(s.code, default)),
                sla=json.dumps({"amount": s.sla.amount, "unit": s.sla.unit.value}),
                budget=timedelta(days=hours / HOURS_PER_CALENDAR_DAY),
            )
        )
    return out


def reviewers_per_department(stored: int) -> int:
    """Enough reviewers that the claims of `stored` requests sit below their capacity."""
    claimed = dict(STATES)["claimed"] / 100 * stored * max(DEPARTMENTS.values()) / 100
    return max(2, round(claimed / HELD_EACH) + 1)


def reviewer_id(department: str, k: int) -> str:
    return f"{REVIEWER_PREFIX}-{department}-{k:05d}"


def _picker(weighted: Sequence[tuple[Any, float]]) -> Callable[[random.Random], Any]:
    values = [v for v, _ in weighted]
    bounds = list(itertools.accumulate(w for _, w in weighted))
    total = bounds[-1]
    return lambda rng: values[bisect.bisect(bounds, rng.random() * total)]


class Office:
    """Work items as COPY records, one tuple per row in FIELDS' order; the same rows for the
    same seed, first row and count."""

    def __init__(self, seed: int = 5) -> None:
        self.seed = seed
        services = sub_services()
        by_department = {d: [s for s in services if s.department == d] for d in DEPARTMENTS}
        self._state = _picker(STATES)
        self._sub_service = _picker(
            [
                (s, weight / len(by_department[department]))
                for department, weight in DEPARTMENTS.items()
                for s in by_department[department]
            ]
        )
        self._priority = _picker(PRIORITIES)
        self._pool_service = next(s for s in services if s.code == POOL_SUB_SERVICE)
        self._rejections = sorted(
            r.code for r in load_reasons().values() if Decision.REJECT in r.decisions
        )

    def rows(
        self, first: int, count: int, now: datetime, *, stored: int, pool: int = 0
    ) -> list[tuple[Any, ...]]:
        """Rows `first` to `first + count` of an office of `stored` requests; the first `pool`
        of them are the claimable head of DEPARTMENT's queue."""
        rng = random.Random(self.seed * 1_000_003 + first)
        team = reviewers_per_department(stored)
        return [
            self._row(rng, n, now, team, pooled=n - first < pool)
            for n in range(first, first + count)
        ]

    def _row(
        self, rng: random.Random, n: int, now: datetime, team: int, *, pooled: bool
    ) -> tuple[Any, ...]:
        r = rng.random
        s: SubService = self._pool_service if pooled else self._sub_service(rng)
        state: str = "queued" if pooled else self._state(rng)
        priority: int = POOL_PRIORITY if pooled else self._priority(rng)
        somebody = reviewer_id(s.department, int(r() * team))
        if pooled:  # past due: they bounced between reviewers
            submitted = now - timedelta(days=6 + 4 * r())
        elif state in OPEN:
            submitted = now - OPEN_FOR * r()
        else:
            submitted = now - timedelta(days=1) - HISTORY * r()
        public_status: str | None = None
        assignee = last_holder = appeal_of = decision_message = reason_code = ""
        decision: str | None = None
        pauses = missing = "[]"
        paused_since = claimed_until = respond_by = sla_next_at = None
        sla_alerted = 0
        if pooled:  # claimed once and given back
            public_status, last_holder = UNDER_REVIEW, somebody
        elif state == "queued":
            roll = r()
            if roll < 0.12:  # claimed once, given back or lapsed
                public_status = UNDER_REVIEW
            elif roll < 0.20:  # the beneficiary answered an information request
                public_status, last_holder = RETURNED, somebody
                pauses = _pause(r, submitted, now)
            elif roll < 0.22:  # an appealed rejection, for another reviewer
                public_status, appeal_of = REJECTED, somebody
                priority += 1
        elif state == "claimed":
            public_status, assignee = UNDER_REVIEW, somebody
            # Leases that outlast the run: a lapse would put the item back in the queue.
            claimed_until = now + QUIET_FOR + timedelta(minutes=30 * r())
        elif state == "waiting_on_applicant":
            since = max(submitted, now - timedelta(days=3.5))
            paused_since = since + (now - since) * r()
            respond_by = paused_since + RESPOND_WITHIN
            public_status, last_holder, missing = NEEDS_MORE_INFO, somebody, MISSING
        elif state == "decided":
            assignee = somebody
            if r() < 0.75:
                decision, public_status, reason_code = ACCEPT, ACCEPTED, "completed"
            else:
                decision, public_status = REJECT, REJECTED
                reason_code = self._rejections[int(r() * len(self._rejections))]
                decision_message = REJECTION_MESSAGE
            sla_alerted = (0, 0, 0, 0, 0, 0, 50, 75, 100)[int(r() * 9)]
            if r() < 0.08:
                pauses = _pause(r, submitted, submitted + s.budget)
            paused_since = submitted + s.budget * (0.5 + r())  # decided: its clock stopped
        elif state == "withdrawn":
            paused_since = submitted + s.budget * r()
        elif state == "closed":  # no answer by the deadline
            paused_since = submitted + s.budget * (0.1 + 0.5 * r())
            respond_by = paused_since + RESPOND_WITHIN
            public_status, last_holder, missing = CLOSED, somebody, MISSING
        if state in ("queued", "claimed"):
            # The marks at 50, 75 and 100 % of the SLA: those before the quiet window were
            # alerted, the next one is when review's sweep looks at the item again.
            quiet_until = now + QUIET_FOR
            for mark in (50, 75, 100):
                at = submitted + s.budget * mark / 100
                if at > quiet_until:
                    sla_next_at = at
                    break
                sla_alerted = mark
        bits = rng.getrandbits
        documents = ", ".join(f'"{_uuid(bits(128))}"' for _ in range(n % 4))
        names = person(n)
        description = f"{DESCRIPTIONS[n % len(DESCRIPTIONS)]} ({n})"
        mobile = mobile_of(n)
        email = f"applicant{n}@example.sa" if r() < 0.4 else ""
        locale = "en" if r() < 0.15 else "ar"
        # searchable(description, *names), from normalised parts made once each.
        indexed = (
            f"{_NORMALISED[DESCRIPTIONS[n % len(DESCRIPTIONS)]]} {n} "
            f"{_NORMALISED[names[0]]} {_NORMALISED[names[1]]}"
        )
        return (
            _uuid(bits(128)),  # request_id
            f"{NUMBER_PREFIX}{n:09d}",  # request_number
            s.department,
            s.queues[r() < 0.4],  # queue
            s.code,  # sub_service_code
            description,
            applicant_of(n),  # applicant_id: a citizen or a resident
            f"[{documents}]",  # document_ids
            f'{{"mobile": "{mobile}", "email": "{email}", "locale": "{locale}"}}',
            state,
            assignee,
            decision,
            decision_message,
            submitted + timedelta(seconds=0.05 + 3 * r()),  # queued_at: routed seconds later
            priority,
            submitted,  # submitted_at
            s.sla,
            pauses,
            paused_since,
            claimed_until,
            last_holder,
            missing,
            respond_by,
            reason_code,
            public_status,
            sla_alerted,
            sla_next_at,
            submitted + s.budget,  # due_at
            appeal_of,
            applicant_of(n),  # subject_id: the applicant, filing for themself
            json.dumps(names, ensure_ascii=False),
            mobile_key(mobile),
            indexed,  # search_text
            tokens(indexed),  # search_tokens
            "",  # origin
            "{}",  # fields
            "",  # cites_number
            0,  # status_sequence
            0,  # routed_sequence
            0,  # routed_transfer
            "",  # claim_key
        )


def name_parts(n: int) -> tuple[tuple[str, str], tuple[str, str], tuple[str, str]]:
    """Row n's subject's first name, father's name and family name, (Arabic, Latin) each."""
    first, father = FIRST_NAMES[n * 7 % 32], FIRST_NAMES[n * 11 // 32 % 32]
    return first, father, FAMILY_NAMES[n * 13 // 1024 % len(FAMILY_NAMES)]


def person(n: int) -> list[str]:
    """Row n's subject: their whole name in Arabic, and in Latin letters."""
    first, father, family = name_parts(n)
    return [
        f"{first[0]} {father[0]} {family[0]}",
        f"{first[1]} {father[1]} {family[1]}",
    ]


def applicant_of(n: int) -> str:
    """Row n's applicant: a citizen (1…) or a resident (2…), the same for the same n."""
    return f"{1 + (n & 1)}{(n * 7919 + 12345) % 10**9:09d}"


def mobile_of(n: int) -> str:
    return f"05{(n * 104729 + 7) % 10**8:08d}"


class _Normalised(dict[str, str]):
    """normalise() of the few distinct descriptions and names, each made once."""

    def __missing__(self, text: str) -> str:
        self[text] = normalise(text)
        return self[text]


_NORMALISED = _Normalised()


def _uuid(bits: int) -> str:
    """A version 4 UUID's text; a quarter of the rows' making went into uuid.UUID."""
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


def _pause(r: Callable[[], float], start: datetime, end: datetime) -> str:
    """One interval the clock stood still (waiting on the beneficiary), as review stores it."""
    a = start + (end - start) * (0.1 + 0.4 * r())
    b = a + (end - a) * (0.1 + 0.4 * r())
    return json.dumps([[a.isoformat(), b.isoformat()]])


def size_label(n: int) -> str:
    """10000 → "10k", 1000000 → "1M"."""
    for unit, scale in (("M", 1_000_000), ("k", 1_000)):
        if n >= scale and n % (scale // 10) == 0:
            return f"{n / scale:g}{unit}"
    return str(n)


# --- seeding and removing --------------------------------------------------------------------


async def seed(
    conn: asyncpg.Connection, office: Office, first: int, stored: int, *, pool: int = 0
) -> float:
    """COPYs rows `first` to `stored` in batches, each made in a thread while the one before
    is copied, then the reviewers who hold their claims; vacuums and analyzes like a table
    that lives. The seconds it took."""
    started = time.perf_counter()
    now = datetime.now(UTC)

    def batch(at: int, size: int) -> list[tuple[Any, ...]]:
        return office.rows(at, size, now, stored=stored, pool=pool if at == first else 0)

    following = asyncio.create_task(asyncio.to_thread(batch, first, min(BATCH, stored - first)))
    for at in range(first, stored, BATCH):
        rows = await following
        if at + BATCH < stored:
            size = min(BATCH, stored - at - BATCH)
            following = asyncio.create_task(asyncio.to_thread(batch, at + BATCH, size))
        await conn.copy_records_to_table("work_items", records=rows, columns=FIELDS)
    team = range(reviewers_per_department(first) if first else 0, reviewers_per_department(stored))
    languages = json.dumps(sorted(DEFAULT_LANGUAGES))
    await conn.copy_records_to_table(
        "reviewers",
        records=[
            (reviewer_id(d, k), json.dumps([d]), languages, DEFAULT_CAPACITY, True, "[]")
            for d in DEPARTMENTS
            for k in team
        ],
        columns=("reviewer_id", "departments", "languages", "capacity", "available", "supervises"),
    )
    await conn.execute("VACUUM (ANALYZE) work_items, reviewers")
    # The COPY and the vacuum dirtied the whole table: written out now, not by a checkpoint
    # in the middle of the measurement (a table that grew over years has no such backlog).
    await conn.execute("CHECKPOINT")
    return round(time.perf_counter() - started, 1)


async def announced(conn: asyncpg.Connection) -> int:
    """Events review wrote about seeded requests (none, when the claims took the pool only)."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE key IN "
            "(SELECT request_id::text FROM work_items WHERE request_number LIKE $1)",
            f"{NUMBER_PREFIX}%",
        )
    )


async def remove(conn: asyncpg.Connection) -> float:
    """Deletes the seeded rows, the history the claims wrote and the seeded reviewers."""
    started = time.perf_counter()
    seeded = f"{NUMBER_PREFIX}%"
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM history WHERE request_id IN "
            "(SELECT request_id FROM work_items WHERE request_number LIKE $1)",
            seeded,
        )
        await conn.execute("DELETE FROM work_items WHERE request_number LIKE $1", seeded)
        await conn.execute(
            "DELETE FROM reviewers WHERE reviewer_id LIKE $1", f"{REVIEWER_PREFIX}-%"
        )
    await conn.execute("VACUUM (ANALYZE) work_items, reviewers, history")
    return round(time.perf_counter() - started, 1)
