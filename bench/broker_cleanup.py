"""Remove a bench run's queues and exchanges from RabbitMQ: what is not there is skipped.

    python bench/broker_cleanup.py amqp://guest:guest@127.0.0.1:5672// --queue eye_x --exchange eye_x-sio

Used by compare_commits.py, compare_mouse.sh, mouse_path.py and memory.py after each run (each made its own).
"""

import argparse
import sys

from kombu import Connection


def delete_broker_entities(broker_url: str, queues: list[str], exchanges: list[str]) -> None:
    with Connection(broker_url, connect_timeout=5) as connection:
        channel = connection.channel()
        for name, is_queue in [(q, True) for q in queues] + [(e, False) for e in exchanges]:
            try:
                channel.queue_delete(name) if is_queue else channel.exchange_delete(name)
            except Exception:  # not there: the broker closed the channel; take another
                channel = connection.channel()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("broker_url")
    parser.add_argument("--queue", action="append", default=[])
    parser.add_argument("--exchange", action="append", default=[])
    args = parser.parse_args(argv)
    delete_broker_entities(args.broker_url, args.queue, args.exchange)
    return 0


if __name__ == "__main__":
    sys.exit(main())
