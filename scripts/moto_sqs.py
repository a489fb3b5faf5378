"""Serves the SQS API with moto on loopback, for the connector tests.

    python scripts/moto_sqs.py [PORT]      # default 9324, always binds 127.0.0.1

scripts/services.sh runs this with its virtualenv's python. Stock moto stamps and checks
every message with `unix_time` / `unix_time_millis`, which build datetimes on each call;
the queue's visible/delayed filters call them once per queued message, so every request
slows down as the queue grows. Both are imported by name into `moto.sqs.models`, so that
module's attributes are what the SQS backend calls: they are replaced here, in the server's
own process, before the server starts, with `time.time()` in the same units (seconds as a
float; milliseconds as a float). Its queues' deletes also take the queue's lock (see
`delete_message`).
"""

import inspect
import sys
import time

import moto.server
import moto.sqs.models as sqs_models

_stock_unix_time = sqs_models.unix_time
_stock_unix_time_millis = sqs_models.unix_time_millis


def unix_time(dt=None):
    return time.time() if dt is None else _stock_unix_time(dt)


def unix_time_millis(dt=None):
    return time.time() * 1000.0 if dt is None else _stock_unix_time_millis(dt)


_stock_delete_message = sqs_models.Queue.delete_message


def delete_message(self, receipt_handle):
    # Stock moto rebuilds the queue's message list without a lock: two deletes at once (or
    # a delete and a send) lose one of the changes, and a deleted message comes back.
    with self._messages_lock:
        return _stock_delete_message(self, receipt_handle)


def main() -> None:
    for name in ("unix_time", "unix_time_millis"):
        if not hasattr(sqs_models, name):
            sys.exit(f"moto_sqs: moto.sqs.models has no {name}; update the patch")
    if "_messages_lock" not in inspect.getsource(sqs_models.Queue.__init__):
        sys.exit("moto_sqs: moto.sqs.models.Queue has no _messages_lock; update the patch")
    sqs_models.unix_time = unix_time
    sqs_models.unix_time_millis = unix_time_millis
    sqs_models.Queue.delete_message = delete_message
    port = sys.argv[1] if len(sys.argv) > 1 else "9324"
    moto.server.main(["--host", "127.0.0.1", "--port", port])


if __name__ == "__main__":
    main()
