"""Numbers in `data` are stored exactly as sent or refused with a 422 naming the field (contract §1),
read back through the API from the real PostgreSQL after a real worker stored them."""

import json
import uuid
from decimal import Decimal

import pytest

from tests.fixtures.apps import wait_for

# The edges of what is kept: 64-bit integers, and any double written as its shortest decimal.
KEPT = {
    "int64_max": "9223372036854775807",
    "int64_min": "-9223372036854775808",
    "zero": "0",
    "negative_int_zero": "-0",
    "tenth": "0.1",
    "tiny": "1e-300",
    "smallest_subnormal": "5e-324",
    "largest_double": "1.7976931348623157e308",
    "sum_of_tenths": "0.30000000000000004",
    "float_zero": "0.0",
    "many_places": "123456.789012345",
}
# The first values past those edges, and what JSONB or a double would change.
REFUSED = {
    "int64_max_plus_one": "9223372036854775808",
    "int64_min_minus_one": "-9223372036854775809",
    "u64_max_plus_one": "18446744073709551616",
    "thirty_digits": "123456789012345678901234567890",
    "too_many_digits": "0.1000000000000000000001",
    "underflow": "1e-400",
    "negative_zero": "-0.0",
}


def body_with(session_id: str, numbers: dict[str, str]) -> bytes:
    data = ", ".join(f'"{name}": {text}' for name, text in numbers.items())
    return (f'{{"session_id": "{session_id}", "category": "custom", "name": "numbers", '
            f'"data": {{"host": "a.com", {data}}}, "timestamp": "2021-01-01T00:00:00Z"}}').encode()


def post(client, key, body: bytes, path="/api/v1/events"):
    return client.post(path, data=body, headers={"X-API-Key": key}, content_type="application/json")


def test_kept_numbers_read_back_as_the_exact_values_sent(pg_client, pg_key):
    key = pg_key("ingest", "read")
    session_id = str(uuid.uuid4())
    response = post(pg_client, key, body_with(session_id, KEPT))
    assert response.status_code == 202, response.json

    def stored_text():
        answer = pg_client.get(f"/api/v1/sessions/{session_id}/events", headers={"X-API-Key": key})
        return answer.status_code == 200 and answer.json["items"] and answer.get_data()

    # Read the answer's own text with exact numbers: Decimal for every non-integer, int for integers.
    data = json.loads(wait_for(stored_text), parse_float=Decimal, parse_int=Decimal)["items"][0]["data"]
    assert {name: data[name] for name in KEPT} == {name: Decimal(text) for name, text in KEPT.items()}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_numbers_not_kept_exactly_are_refused_naming_the_field(pg_client, pg_key, name):
    key = pg_key("ingest", "read")
    response = post(pg_client, key, body_with(str(uuid.uuid4()), {"fine": "1.5", name: REFUSED[name]}))
    assert response.status_code == 422
    assert response.json["kind"] == "invalid_event"
    assert list(response.json["errors"]) == ["data"] and list(response.json["errors"]["data"]) == [name]


def test_in_a_batch_only_the_item_holding_such_a_number_is_refused(pg_client, pg_key):
    application = f"numbers-{uuid.uuid4().hex[:8]}"
    key = pg_key("ingest", "read", application=application)
    good, bad = (body_with(str(uuid.uuid4()), numbers) for numbers in ({"n": "1"}, {"n": REFUSED["thirty_digits"]}))
    response = post(pg_client, key, b'{"events": [' + good + b", " + bad + b"]}", "/api/v1/events/batch")
    assert response.status_code == 202
    assert response.json["accepted"] == 1
    assert response.json["rejected"][0]["index"] == 1
    assert response.json["rejected"][0]["errors"]["data"]["n"]
    # The errors store keeps the refused item as sent, its number's digits included.
    recorded = wait_for(lambda: [item for item in pg_client.get(f"/api/v1/errors?application={application}",
                                                                headers={"X-API-Key": key}).json["items"]
                                 if REFUSED["thirty_digits"] in item["raw"]])
    assert json.loads(recorded[0]["raw"], parse_int=str)["data"]["n"] == REFUSED["thirty_digits"]
