"""Live mouse metrics: the geometry, and batches folded into a session on the embedded default."""

import math
import uuid

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import MouseMetric
from app.mouse_geometry import (
    batch_velocity,
    distance_change,
    path_length,
    sorted_points,
    step_velocities,
)
from tests.storage.mouse import mouse_event

T0 = 1_700_000_000_000


def sample_points(sample) -> list[tuple]:
    return [(p["t"], p["x"], p["y"]) for p in sample("mouse_move")["data"]["points"]]


def stored_series(app, session_id: str) -> list[MouseMetric]:
    with app.app_context():
        return db.session.scalars(
            select(MouseMetric).where(MouseMetric.session_id == uuid.UUID(session_id)).order_by(MouseMetric.id)
        ).all()


# --- Pure functions ------------------------------------------------------------------------------


def test_the_sample_by_the_pure_functions(sample):
    points = sorted_points(sample("mouse_move")["data"]["points"])
    assert path_length(points) == 15
    assert batch_velocity(points) == pytest.approx(500)
    assert max(step_velocities(points)) == pytest.approx(1000)


def test_distance_change_is_the_difference_of_path_lengths():
    before = [(0.0, 0.0, 0.0), (10.0, 30.0, 40.0)]
    after = [(0.0, 0.0, 0.0), (5.0, 30.0, 0.0), (10.0, 30.0, 40.0)]
    assert distance_change(before, after) == pytest.approx(path_length(after) - path_length(before))
    assert distance_change(before, after) == pytest.approx(30 + 40 - 50)


# --- Folded into a session (embedded default) ----------------------------------------------------


def test_the_sample_gives_15_px_500_and_1000_px_per_s(send_moves, new_session, sample, embedded_app):
    [metrics] = send_moves(new_session, sample_points(sample))
    assert metrics == {
        "session_id": new_session, "t": T0 + 30, "distance": 15.0, "velocity": pytest.approx(500),
        "peak_velocity": pytest.approx(1000), "points": 4,
    }
    row = send_moves.totals(new_session)
    assert (row.distance, row.peak_velocity, row.points) == (15.0, pytest.approx(1000), 4)
    [stored] = stored_series(embedded_app, new_session)
    assert (stored.t, stored.distance, stored.velocity, stored.points) == (T0 + 30, 15, pytest.approx(500), 4)


def test_one_point_has_no_distance_and_no_velocity(send_moves, new_session):
    [metrics] = send_moves(new_session, [(T0, 10, 20)])
    assert (metrics["distance"], metrics["velocity"], metrics["peak_velocity"], metrics["points"]) == (0, 0, 0, 1)


def test_zero_time_steps_add_distance_but_no_velocity_sample(send_moves, new_session):
    # Two points at the same instant 5 px apart, then 5 px in 10 ms.
    [metrics] = send_moves(new_session, [(T0, 0, 0), (T0, 3, 4), (T0 + 10, 6, 8)])
    assert metrics["distance"] == 10
    assert metrics["velocity"] == pytest.approx(10 / 0.010)
    assert metrics["peak_velocity"] == pytest.approx(5 / 0.010)  # the zero-time step is no sample


def test_a_batch_within_one_instant_has_distance_but_zero_velocity(send_moves, new_session):
    [metrics] = send_moves(new_session, [(T0, 0, 0), (T0, 3, 4)])
    assert (metrics["distance"], metrics["velocity"], metrics["peak_velocity"]) == (5, 0, 0)


def test_duplicate_points_count_once(send_moves, new_session, embedded_app):
    points = [(T0, 0, 0), (T0 + 10, 3, 4), (T0 + 10, 3, 4), (T0 + 20, 6, 8)]
    [first] = send_moves(new_session, points)
    assert (first["distance"], first["points"]) == (10, 3)
    # The same points again in another event (a new event id): nothing new to measure.
    [again] = send_moves(new_session, points[1:])
    assert (again["distance"], again["points"]) == (10, 3)
    assert again["velocity"] == pytest.approx(500)  # the batch's own velocity is still reported
    assert len(stored_series(embedded_app, new_session)) == 2


def test_a_redelivered_message_computes_nothing_twice(send_moves, new_session, embedded_app):
    # A redelivery carries the very same event: same event_id, same timestamp.
    event = mouse_event(new_session, [(T0, 0, 0), (T0 + 10, 3, 4)])
    assert len(send_moves.message([event])) == 1
    assert send_moves.message([event]) == []
    assert send_moves.totals(new_session).distance == 5
    assert len(stored_series(embedded_app, new_session)) == 1


def test_two_tabs_are_never_joined_by_a_step(send_moves, new_session):
    # Interleaved in time, far apart in space: joining them would add ~1400 px per step.
    send_moves(new_session, [(T0, 0, 0), (T0 + 20, 3, 4)], tab="a")
    [metrics] = send_moves(new_session, [(T0 + 10, 1000, 1000), (T0 + 30, 1006, 1008)], tab="b")
    assert metrics["distance"] == 5 + 10
    assert metrics["points"] == 4


def test_out_of_order_batches_give_the_single_pass_distance(send_moves, new_session):
    path = [(T0 + 10 * i, (i * 7) % 13 * 10, (i * 5) % 11 * 10) for i in range(40)]
    # Every other point, then the ones between them (each lands between two stored points),
    # then the first half again in reverse order of batches.
    send_moves(new_session, path[20::2])
    send_moves(new_session, path[21::2])
    send_moves(new_session, path[10:20])
    [metrics] = send_moves(new_session, path[0:10])
    assert metrics["distance"] == pytest.approx(path_length(path), rel=1e-12)
    assert metrics["points"] == 40
    assert metrics["t"] == path[9][0]  # the batch's latest point, not the session's


def test_peak_velocity_keeps_the_highest_step_so_far(send_moves, new_session):
    [fast] = send_moves(new_session, [(T0, 0, 0), (T0 + 10, 100, 0)])
    [slow] = send_moves(new_session, [(T0 + 1000, 100, 0), (T0 + 2000, 101, 0)])
    assert fast["peak_velocity"] == slow["peak_velocity"] == pytest.approx(10_000)
    assert slow["velocity"] == pytest.approx(1)
    assert slow["distance"] == pytest.approx(101)


def test_metrics_are_stored_in_processing_order(send_moves, new_session, embedded_app):
    send_moves(new_session, [(T0 + 100, 0, 0), (T0 + 110, 3, 4)])
    send_moves(new_session, [(T0, 0, 0), (T0 + 10, 6, 8)])
    series = stored_series(embedded_app, new_session)
    assert [m.t for m in series] == [T0 + 110, T0 + 10]
    assert [m.distance for m in series] == [5, 5 + 10 + math.hypot(6, 8)]


def test_one_message_holding_several_batches_folds_them_in_order(send_moves, new_session):
    other = str(uuid.uuid4())
    metrics = send_moves.message([
        mouse_event(new_session, [(T0 + 20, 6, 8), (T0 + 30, 6, 8)]),
        mouse_event(other, [(T0, 0, 0), (T0 + 10, 0, 7)]),
        # Lands before the first batch's points, and repeats one of them.
        mouse_event(new_session, [(T0, 0, 0), (T0 + 10, 3, 4), (T0 + 20, 6, 8)]),
        mouse_event(new_session, [(T0 + 40, 6, 8)], tab="b"),
    ])
    assert [(m["session_id"], m["distance"], m["points"]) for m in metrics] == [
        (new_session, 0, 2), (other, 7, 2), (new_session, 10, 4), (new_session, 10, 5),
    ]
    assert send_moves.totals(new_session).distance == 10
