"""A batch's callbacks: checked when the batch is made (a callback that could never run is
refused then, not when the batch ends) and stored as the payloads pushed when it ends."""

from __future__ import annotations

from typing import Any

from sidequest import connection, items, registry
from sidequest.payload import Payload, dumps
from sidequest.signatures import check_call

#: The payload field of a job's batch ancestry (its batch's bid, then each parent's).
PAYLOAD_KEY = "sq_batch"
#: What a callback looks like, for the errors that refuse another shape.
CALLBACK_FORM = ("(JobClass, [args]): a Job class, an @job function or a job's name, then "
                 "the list of the arguments its perform takes")


def callback_payload(name: str, callback: Any, bid: str, shard: str,
                     parent: list[str] | None) -> str:
    """The payload of batch ``bid``'s callback ``name``, pushed as it is when it fires;
    ``parent``: the parent's ancestry, for a child batch, whose callback is a job of the
    parent (lua/batch_update.lua makes it a member as it pushes it)."""
    target, args = _callback_parts(name, callback)
    job_class = _callback_class(name, target)
    if job_class is None:  # a job only another process defines (a Ruby one, say)
        base: Payload = {"class": target, "queue": "default", "retry": True}
    else:
        base = job_class.payload_base()
        _check_arguments(name, job_class, args)
    item = items.normalize({**base, "args": args, "sq_batch_callback": bid})
    if parent is not None and job_class is not None and registry.runs_here(job_class):
        # Not one only another process runs (a name not loaded here, a push-only stub): a
        # Ruby process would run it uncounted, and the parent would wait for it forever.
        item[PAYLOAD_KEY] = list(parent)
    table = connection.shard_map()
    if table is not None and table.shard_of(item["queue"]) != shard:
        # Its shard's scheduler pushes the callback into a queue of that same Redis.
        raise ValueError(f"batch callback {item['class']} goes to queue {item['queue']!r} on "
                         f"shard {table.shard_of(item['queue'])!r}, but the batch is kept on "
                         f"shard {shard!r}; route the callback's queue to the batch's shard")
    return dumps(item)


def _callback_parts(name: str, callback: Any) -> tuple[Any, list[Any]]:
    if not isinstance(callback, (tuple, list)) or len(callback) != 2:
        raise TypeError(f"{name} must be {CALLBACK_FORM}; got {callback!r}")
    target, args = callback
    if type(args) not in (list, tuple):
        hint = " (keyword arguments are not supported)" if isinstance(args, dict) else ""
        raise TypeError(f"{name} must be {CALLBACK_FORM}; its arguments {args!r} are not a "
                        f"list{hint}")
    return target, list(args)


def _callback_class(name: str, target: Any) -> Any:
    """The job class of a callback's target; None for the name of a class not loaded here."""
    target = getattr(target, "job_class", target)  # a @job function's class
    if isinstance(target, type) and callable(getattr(target, "payload_base", None)):
        return target
    if isinstance(target, str) and target.strip():
        problem = registry.near_miss(target)  # a slip in a name this process could check
        if problem:
            raise TypeError(f"{name}: {problem}")
        # A push-only stub of that name gives the job's options (its queue), as its class
        # would.
        return registry.find(target) or registry.stub(target)
    raise TypeError(f"{name} must be {CALLBACK_FORM}; {target!r} is not a job")


def _check_arguments(name: str, job_class: Any, args: list[Any]) -> None:
    """Refused now, as a push would be, not as a callback failing when the batch is done."""
    try:
        check_call(job_class, tuple(args), {})
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None
