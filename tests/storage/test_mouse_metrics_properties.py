"""Property: however a path is split into batches, the batches into messages, and in whatever order
(or concurrency) they are processed, the session's distance is that of one pass over all its
distinct points sorted by t."""

import math
import uuid
from concurrent.futures import ThreadPoolExecutor

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.mouse_geometry import path_length
from tests.storage.mouse import mouse_event

T0 = 1_700_000_000_000
# Each example uses a fresh session id, so examples sharing the function-scoped app is harmless.
SHARED_APP = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

coordinate = st.one_of(st.integers(-3000, 3000), st.floats(-3000, 3000, allow_nan=False))
# Small time steps, zero included: equal instants and repeated points must be handled too.
point_steps = st.lists(
    st.tuples(st.sampled_from(["", "tab-b"]), st.integers(0, 20), coordinate, coordinate),
    min_size=1, max_size=60,
)


@st.composite
def split_paths(draw):
    """A random path (two tabs, repeats allowed) cut into batches of arbitrary points, shuffled,
    then grouped into messages (the API merges requests into one message under load)."""
    t, points = float(T0), []
    for tab, dt, x, y in draw(point_steps):
        t += dt
        points.append((tab, (t, float(x), float(y))))
    if draw(st.booleans()):  # an exact repeat of some points (a page resending them)
        points += draw(st.lists(st.sampled_from(points), max_size=5))
    batch_of = draw(st.lists(st.integers(0, 5), min_size=len(points), max_size=len(points)))
    batches: dict[tuple[str, int], list] = {}
    for (tab, point), number in zip(points, batch_of, strict=True):
        batches.setdefault((tab, number), []).append(point)
    order = draw(st.permutations([(tab, batch) for (tab, _), batch in batches.items()]))
    cuts = sorted(draw(st.sets(st.integers(1, max(len(order) - 1, 1)), max_size=3)))
    messages = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True) if order[a:b]]
    return points, messages


def single_pass_distance(points: list) -> float:
    tabs = {tab for tab, _ in points}
    return math.fsum(path_length(sorted({p for tab, p in points if tab == name})) for name in tabs)


def events_of(session_id: str, message: list) -> list[dict]:
    return [mouse_event(session_id, batch, tab=tab or None) for tab, batch in message]


def assert_single_pass(send, session_id: str, points: list) -> None:
    totals = send.totals(session_id)
    assert math.isclose(totals.distance, single_pass_distance(points), rel_tol=1e-9, abs_tol=1e-9)
    assert totals.points == len(set(points))


@settings(max_examples=100, deadline=None, suppress_health_check=SHARED_APP)
@given(case=split_paths())
def test_any_split_in_any_order_gives_the_single_pass_distance(send_moves, case):
    points, messages = case
    session_id = str(uuid.uuid4())
    metrics = [m for message in messages for m in send_moves.message(events_of(session_id, message))]
    assert_single_pass(send_moves, session_id, points)
    # The series carries the totals as they grew: the last item is the session's current state.
    assert metrics[-1]["distance"] == send_moves.totals(session_id).distance
    assert [m["points"] for m in metrics] == sorted(m["points"] for m in metrics)


@settings(max_examples=60, deadline=None, suppress_health_check=SHARED_APP)
@given(case=split_paths())
def test_messages_processed_concurrently_on_postgresql_give_the_single_pass_distance(pg_send_moves, case):
    points, messages = case
    session_id = str(uuid.uuid4())
    # Each message in its own thread, app context and transaction, as concurrent workers run them.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda message: pg_send_moves.message(events_of(session_id, message)), messages))
    assert_single_pass(pg_send_moves, session_id, points)
