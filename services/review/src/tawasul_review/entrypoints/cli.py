"""`tawasul-review-cli`: reviewers work their queues from a terminal, over ReviewService.

The reviewer's token (from the employee identity provider) comes in TAWASUL_REVIEWER_TOKEN.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import grpc
from tawasul.review.v1 import review_pb2, review_pb2_grpc
from tawasul_platform.grpc import DEFAULT_DEADLINE_SECONDS, bearer, field_violations

_STATE = {
    review_pb2.WORK_ITEM_STATE_QUEUED: "queued",
    review_pb2.WORK_ITEM_STATE_CLAIMED: "claimed",
    review_pb2.WORK_ITEM_STATE_DECIDED: "decided",
}


def _line(item: review_pb2.WorkItem) -> str:
    holder = f" by {item.assignee_id}" if item.assignee_id else ""
    return (
        f"{item.request_number}  {item.request_id}  {item.sub_service_code}  "
        f"{_STATE.get(item.state, '?')}{holder}"
    )


async def _run(args: argparse.Namespace) -> None:
    async with grpc.aio.insecure_channel(args.address) as channel:
        stub = review_pb2_grpc.ReviewServiceStub(channel)
        metadata = bearer(args.token)
        timeout = DEFAULT_DEADLINE_SECONDS
        if args.command == "queue":
            queue = await stub.ListQueue(
                review_pb2.ListQueueRequest(
                    department_code=args.department, page_token=args.page_token
                ),
                timeout=timeout,
                metadata=metadata,
            )
            print(f"queue {args.department}: {len(queue.items)} open on this page")
            for item in queue.items:
                print(f"  {_line(item)}")
            if queue.next_page_token:
                print(f"  more: --page-token {queue.next_page_token}")
        elif args.command == "claim":
            claimed = await stub.ClaimRequest(
                review_pb2.ClaimRequestRequest(request_id=args.request_id),
                timeout=timeout,
                metadata=metadata,
            )
            print(f"claimed {_line(claimed.item)}")
        elif args.command == "show":
            shown = await stub.GetWorkItem(
                review_pb2.GetWorkItemRequest(request_id=args.request_id),
                timeout=timeout,
                metadata=metadata,
            )
            print(_line(shown.item))
            print(f"  description: {shown.item.description}")
            for a in shown.attachments:
                print(f"  attachment {a.filename} ({a.content_type}, {a.size_bytes} bytes)")
                print(f"    {a.download_url}")
        else:
            decision = (
                review_pb2.DECISION_ACCEPT
                if args.command == "accept"
                else review_pb2.DECISION_REJECT
            )
            decided = await stub.DecideRequest(
                review_pb2.DecideRequestRequest(
                    request_id=args.request_id,
                    decision=decision,
                    message=args.message,
                    reason_code=args.reason,
                ),
                timeout=timeout,
                metadata=metadata,
            )
            print(f"{args.command}ed {_line(decided.item)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tawasul-review-cli", description=__doc__)
    parser.add_argument(
        "--address", default=os.environ.get("TAWASUL_REVIEW_ADDRESS", "127.0.0.1:19103")
    )
    parser.add_argument("--token", default=os.environ.get("TAWASUL_REVIEWER_TOKEN", ""))
    commands = parser.add_subparsers(dest="command", required=True)
    queue = commands.add_parser("queue", help="list a department's open requests, oldest first")
    queue.add_argument("department")
    queue.add_argument("--page-token", default="", help="from the previous page's `more:` line")
    for name, text in (("claim", "take a request"), ("show", "a request with its attachments")):
        commands.add_parser(name, help=text).add_argument("request_id")
    accept = commands.add_parser("accept", help="accept a claimed request")
    accept.add_argument("request_id")
    accept.add_argument("--message", default="")
    accept.add_argument("--reason", default="", help="a reason code of ListReasons")
    reject = commands.add_parser("reject", help="reject a claimed request, saying why")
    reject.add_argument("request_id")
    reject.add_argument("--message", required=True)
    reject.add_argument("--reason", required=True, help="a reason code of ListReasons")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("no reviewer token: pass --token or set TAWASUL_REVIEWER_TOKEN")
    try:
        asyncio.run(_run(args))
    except grpc.aio.AioRpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        for field, problem in field_violations(exc).items():
            print(f"  {field}: {problem}", file=sys.stderr)
        sys.exit(1)
